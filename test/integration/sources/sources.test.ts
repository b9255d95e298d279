/**
 * One image in a registry and in every registry-less source — an OCI layout, an OCI archive and a docker
 * archive (all three written by skopeo), a dogestry remote in a directory and one in S3 (s3rver on loopback)
 * — converted by `ducc convert` into a repository each: the flat trees are the same, the layer directories
 * are named as documented, and a second run reads no layer and no layout blob.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import tarStream from 'tar-stream';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout, type WrittenImage } from '../../support/oci-image.ts';
import { debianLikeImage } from '../../support/test-images.ts';
import { buildTar } from '../../support/build-tar.ts';
import { snapshotTree } from '../../support/tree-snapshot.ts';
import { startFaultProxy, type FaultProxy } from '../../support/fault-proxy.ts';
import { dogestryPushFromArchive, filesBelow, skopeoCopy, startS3, type TestS3 } from '../../support/image-sources.ts';
import { asTestContext, expectExit, hexOf, runCli, suiteCleanup, tempDir, wishlistYaml } from '../cli/cli-support.ts';

interface Input {
  label: string;
  input: (tag: string) => string;
  publicName: (tag: string) => string;
}

describe('registry-less sources (ducc convert)', () => {
  const suite = suiteCleanup();
  let registry: TestRegistry;
  let s3: TestS3;
  let proxy: FaultProxy;
  let root: string;
  let written: WrittenImage;
  let inputs: Input[];
  let env: Record<string, string>;
  let config: string;
  let v1Ids: string[];

  /** Copies tag `tag` of the registry image into every source; returns the dogestry image ids it wrote. */
  async function spread(tag: string): Promise<string[]> {
    const from = `docker://${registry.host}/src/app:${tag}`;
    await skopeoCopy(from, `oci:${root}/layout:${tag}`);
    await skopeoCopy(from, `oci-archive:${root}/app-oci-${tag}.tar:${tag}`);
    await skopeoCopy(from, `docker-archive:${root}/app-docker-${tag}.tar:example.org/app:${tag}`);
    const { ids } = await dogestryPushFromArchive(`${root}/app-docker-${tag}.tar`, join(root, 'dogestry'), { skipExisting: true });
    await s3.upload(join(root, 'dogestry'), 'remotes/central/');
    return ids;
  }

  const convert = async (label: string, tag: string) => {
    const source = inputs.find((candidate) => candidate.label === label)!;
    const wishlist = join(root, `${label}-${tag}.yaml`);
    await writeFile(wishlist, wishlistYaml(`${label}.example.org`, [source.input(tag)]));
    const result = await runCli(['convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--config', config, '--skip-thin-image'], { env });
    return expectExit(result, 0).stdout;
  };
  const repo = (label: string) => join(root, 'cvmfs', `${label}.example.org`);

  before(async () => {
    const t = asTestContext(suite);
    registry = await startRegistry(t);
    s3 = await startS3(t);
    proxy = await startFaultProxy(t, s3.host);
    root = await tempDir(suite, 'ducc-sources-');
    const layout = join(root, 'origin');
    written = (await writeOciLayout(layout, 'v1', [await debianLikeImage()])).manifests[0]!;
    await pushOciLayout(layout, 'v1', { host: registry.host, repository: 'src/app', tag: 'v1' });
    await writeFile(join(root, 'aws-key-id'), `${s3.accessKeyId}\n`);
    env = { DUCC_CACHE_DIR: join(root, 'cache'), AWS_ACCESS_KEY_ID_FILE: join(root, 'aws-key-id'), AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
    config = join(root, 'ducc.yaml');
    await writeFile(
      config,
      [
        'dogestryRemotes:',
        '  - name: local',
        `    url: file://${root}/dogestry`,
        '  - name: cloud',
        '    url: s3://images/remotes/central',
        `    endpoint: http://${proxy.host}`,
        '',
      ].join('\n'),
    );
    const path = root.slice(1);
    inputs = [
      { label: 'registry', input: (tag) => `http://${registry.host}/src/app:${tag}`, publicName: (tag) => `${registry.host}/src/app:${tag}` },
      { label: 'oci', input: (tag) => `oci:${root}/layout:${tag}`, publicName: (tag) => `oci/${path}/layout:${tag}` },
      {
        label: 'ociarchive',
        input: (tag) => `oci-archive:${root}/app-oci-${tag}.tar:${tag}`,
        publicName: (tag) => `oci-archive/${path}/app-oci-${tag}.tar:${tag}`,
      },
      {
        label: 'dockerarchive',
        input: (tag) => `docker-archive:${root}/app-docker-${tag}.tar:example.org/app:${tag}`,
        publicName: (tag) => `docker-archive/${path}/app-docker-${tag}.tar/example.org/app:${tag}`,
      },
      { label: 'dogestrydir', input: (tag) => `dogestry://local/example.org/app:${tag}`, publicName: (tag) => `dogestry/local/example.org/app:${tag}` },
      { label: 'dogestrys3', input: (tag) => `dogestry://cloud/example.org/app:${tag}`, publicName: (tag) => `dogestry/cloud/example.org/app:${tag}` },
    ];
    v1Ids = await spread('v1');
  });
  after(() => suite.runAll());

  it('converts the image from every source into the same flat tree, under its documented public name', async () => {
    for (const { label } of inputs) assert.equal(await convert(label, 'v1'), '1 converted, 0 up to date, 0 failed\n', label);

    const trees = new Map<string, unknown>();
    for (const { label, publicName } of inputs) {
      const link = join(repo(label), publicName('v1'));
      assert.ok((await lstat(link)).isSymbolicLink(), `${label}: ${publicName('v1')} is a symlink`);
      trees.set(label, await snapshotTree(join(link, '..', await readlink(link))));
    }
    const expected = trees.get('registry');
    assert.ok((expected as Map<string, unknown>).has('usr/bin/su'));
    for (const [label, tree] of trees) assert.deepEqual(tree, expected, `flat tree from ${label}`);
  });

  it('names layer directories by the blob digest: the registry one for layouts, the diff_id where the source keeps uncompressed tars', async () => {
    const manifestOf = async (label: string, name: string) =>
      JSON.parse(await readFile(join(repo(label), '.metadata', name, 'manifest.json'), 'utf8')) as {
        Config: { Digest: string };
        Layers: { Digest: string; MediaType: string }[];
      };

    for (const label of ['registry', 'oci', 'ociarchive']) {
      const manifest = await manifestOf(label, inputs.find((input) => input.label === label)!.publicName('v1'));
      assert.deepEqual(
        manifest.Layers.map((layer) => layer.Digest),
        written.layerDigests,
        label,
      );
      assert.equal(manifest.Config.Digest, written.configDigest, label);
    }
    for (const label of ['dockerarchive', 'dogestrydir', 'dogestrys3']) {
      const manifest = await manifestOf(label, inputs.find((input) => input.label === label)!.publicName('v1'));
      assert.deepEqual(
        manifest.Layers.map((layer) => layer.Digest),
        written.diffIds,
        label,
      );
      assert.ok(manifest.Layers.every((layer) => layer.MediaType === 'application/vnd.oci.image.layer.v1.tar'));
      for (const diffId of written.diffIds) {
        const layersJson = JSON.parse(
          await readFile(join(repo(label), '.layers', hexOf(diffId).slice(0, 2), hexOf(diffId), '.metadata/layers.json'), 'utf8'),
        ) as {
          id: string;
          'compressed-diff-digest': string;
          'diff-digest': string;
        }[];
        assert.deepEqual([layersJson[0]!.id, layersJson[0]!['diff-digest'], layersJson[0]!['compressed-diff-digest']], [hexOf(diffId), diffId, diffId]);
      }
    }
    // docker save keeps the config's bytes: the same image config as the registry's.
    assert.equal((await manifestOf('dockerarchive', inputs[3]!.publicName('v1'))).Config.Digest, written.configDigest);
  });

  it('a second run reads no layer and no layout blob: one small read per source', async () => {
    // Whatever a run would read beyond the tag is gone or damaged now.
    for (const file of await filesBelow(join(root, 'layout', 'blobs'))) await rm(join(root, 'layout', 'blobs', file));
    await damageMembers(`${root}/app-oci-v1.tar`, (name) => name.startsWith('blobs/'));
    await damageMembers(`${root}/app-docker-v1.tar`, (name) => /^[a-f0-9]{64}\.tar$/.test(name));
    for (const file of await filesBelow(join(root, 'dogestry', 'images'))) if (file.endsWith('layer.tar')) await rm(join(root, 'dogestry', 'images', file));
    const before = proxy.requests.length;

    for (const { label } of inputs) assert.equal(await convert(label, 'v1'), '0 converted, 1 up to date, 0 failed\n', label);

    assert.deepEqual(
      proxy.requests.slice(before).map((request) => `${request.method} ${request.path}`),
      ['GET /images/remotes/central/repositories/example.org/app/v1?x-id=GetObject'],
    );
  });

  it('a new tag sharing layers reads only the layers whose dogestry ids are new', async () => {
    const spec = await debianLikeImage();
    spec.layers.push(await buildTar([{ name: 'etc/release', content: 'v2' }]));
    const layout = join(root, 'origin');
    await writeOciLayout(layout, 'v2', [spec]);
    await pushOciLayout(layout, 'v2', { host: registry.host, repository: 'src/app', tag: 'v2' });
    const v2Ids = await spread('v2');
    const newIds = v2Ids.filter((id) => !v1Ids.includes(id));
    const before = proxy.requests.length;

    assert.equal(await convert('dogestrydir', 'v2'), '1 converted, 0 up to date, 0 failed\n');
    assert.equal(await convert('dogestrys3', 'v2'), '1 converted, 0 up to date, 0 failed\n');

    // skopeo's legacy ids of a layer depend on what is above it, so the old top layer has a new id in v2
    // (docker 1.x kept ids); the layer.tar files of the ids seen in v1 are gone from the directory remote.
    const read = new Set(
      proxy.requests
        .slice(before)
        .filter((request) => request.path.includes('/layer.tar'))
        .map((request) => request.path.split('/').at(-2)),
    );
    assert.ok(newIds.length >= 1 && newIds.length < v2Ids.length, 'v2 shares layer ids with v1');
    assert.deepEqual([...read].sort(), [...newIds].sort());
    assert.ok(await lstat(join(repo('dogestrydir'), 'dogestry/local/example.org/app:v2')));
  });
});

/** Rewrites a tar with the bytes of the members `which` selects replaced by as many 0xff bytes. */
async function damageMembers(archive: string, which: (name: string) => boolean): Promise<void> {
  const members: { header: tarStream.Header; data: Buffer }[] = [];
  await new Promise<void>((resolve, reject) => {
    const extract = tarStream.extract();
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on('end', () => {
        members.push({ header, data: Buffer.concat(chunks) });
        next();
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    createReadStream(archive).pipe(extract);
  });
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  let damaged = 0;
  for (const { header, data } of members) {
    const name = header.name.replace(/^\.\//, '');
    const body = header.type === 'file' && which(name) ? Buffer.alloc(data.length, 0xff) : data;
    if (body !== data) damaged++;
    if (header.type === 'file') pack.entry(header, body);
    else pack.entry(header, Buffer.alloc(0));
  }
  pack.finalize();
  await done;
  assert.ok(damaged > 0, `nothing damaged in ${archive}`);
  await writeFile(archive, Buffer.concat(chunks));
}
