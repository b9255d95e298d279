/**
 * Thin images written where output_format names an OCI layout or a dogestry remote (a directory, and S3 on
 * a real S3-protocol server), read back with skopeo (the layout) and from the remote's files and objects.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, runSkopeo, writeOciLayout, type WrittenImage } from '../../support/oci-image.ts';
import { buildTar } from '../../support/build-tar.ts';
import { dogestryPushFromArchive, skopeoCopy, startS3, type TestS3 } from '../../support/image-sources.ts';
import { asTestContext, expectExit, hexOf, runCli, suiteCleanup, tempDir } from '../cli/cli-support.ts';

/** The entries of an uncompressed tar holding small files: name → content. */
function untar(tar: Buffer): Map<string, string> {
  const files = new Map<string, string>();
  for (let offset = 0; offset + 512 <= tar.length && tar[offset] !== 0;) {
    const name = tar
      .subarray(offset, offset + 100)
      .toString('utf8')
      .replace(/\0.*$/s, '');
    const size = parseInt(
      tar
        .subarray(offset + 124, offset + 136)
        .toString('ascii')
        .replace(/\0.*$/s, '')
        .trim(),
      8,
    );
    files.set(name, tar.subarray(offset + 512, offset + 512 + size).toString('utf8'));
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

describe('thin images into OCI layouts and dogestry remotes', () => {
  const suite = suiteCleanup();
  let registry: TestRegistry;
  let s3: TestS3;
  let root: string;
  let written: WrittenImage;
  let env: Record<string, string>;
  let config: string;

  const convert = async (name: string, lines: string[]) => {
    const wishlist = join(root, `${name}.yaml`);
    await writeFile(wishlist, ['version: 1', "cvmfs_repo: 'thin.example.org'", ...lines, ''].join('\n'));
    return expectExit(await runCli(['convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--config', config], { env }), 0).stdout;
  };

  before(async () => {
    const t = asTestContext(suite);
    registry = await startRegistry(t);
    s3 = await startS3(t);
    root = await tempDir(suite, 'ducc-thin-sinks-');
    const layout = join(root, 'origin');
    const layer = await buildTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hello', content: 'hi' },
    ]);
    written = (await writeOciLayout(layout, 'v1', [{ layers: [layer], config: { Env: ['A=1'], Cmd: ['/bin/sh'] } }])).manifests[0]!;
    await pushOciLayout(layout, 'v1', { host: registry.host, repository: 'src/app', tag: 'v1' });
    await skopeoCopy(`docker://${registry.host}/src/app:v1`, `docker-archive:${root}/app.tar:example.org/app:v1`);
    await mkdir(join(root, 'dogestry'));
    await dogestryPushFromArchive(`${root}/app.tar`, join(root, 'dogestry'));
    await s3.upload(join(root, 'dogestry'), '');
    env = { DUCC_CACHE_DIR: join(root, 'cache'), AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
    config = join(root, 'ducc.yaml');
    await writeFile(
      config,
      [
        'dogestryRemotes:',
        `  - {name: local, url: "file://${root}/dogestry"}`,
        `  - {name: cloud, url: "s3://${s3.bucket}", endpoint: "${s3.endpoint}"}`,
        '',
      ].join('\n'),
    );
  });
  after(() => suite.runAll());

  it('writes the thin image of a registry image into an OCI layout, which skopeo reads back', async () => {
    const output = `oci:${root}/thin/$(repository):$(tag)`;
    assert.equal(
      await convert('to-layout', [`output_format: '${output}'`, 'input:', `  - 'http://${registry.host}/src/app:v1'`]),
      '1 converted, 0 up to date, 0 failed\n',
    );

    const manifest = JSON.parse(await runSkopeo(['inspect', '--raw', `oci:${root}/thin/src/app:v1`])) as { layers: { digest: string }[] };
    const copy = join(root, 'thin-copy');
    await runSkopeo(['copy', '--quiet', `oci:${root}/thin/src/app:v1`, `dir:${copy}`]);
    const thin = JSON.parse(untar(gunzipSync(await readFile(join(copy, hexOf(manifest.layers[0]!.digest))))).get('thin.json')!) as {
      origin: string;
      layers: { digest: string; url: string }[];
    };
    assert.equal(thin.origin, `http://${registry.host}/src/app:v1`);
    assert.deepEqual(
      thin.layers.map((layer) => layer.url),
      written.layerDigests.map((digest) => `cvmfs://thin.example.org/.layers/${hexOf(digest).slice(0, 2)}/${hexOf(digest)}/layerfs`),
    );
    const config = JSON.parse(await runSkopeo(['inspect', '--config', `oci:${root}/thin/src/app:v1`])) as { config: { Env: string[] } };
    assert.deepEqual(config.config.Env, ['A=1', 'CVMFS_IMAGE=true']);

    assert.equal(
      await convert('to-layout', [`output_format: '${output}'`, 'input:', `  - 'http://${registry.host}/src/app:v1'`]),
      '0 converted, 1 up to date, 0 failed\n',
    );
  });

  it('writes the thin image of a dogestry image into its remote (default output_format), in dogestry format', async () => {
    assert.equal(await convert('to-dogestry', ['input:', "  - 'dogestry://local/example.org/app:v1'"]), '1 converted, 0 up to date, 0 failed\n');

    const id = await readFile(join(root, 'dogestry/repositories/example.org/app_thin/v1'), 'utf8');
    assert.match(id, /^[a-f0-9]{64}$/);
    assert.deepEqual((await readdir(join(root, 'dogestry/images', id))).sort(), ['VERSION', 'json', 'layer.tar']);
    const thin = JSON.parse(untar(await readFile(join(root, 'dogestry/images', id, 'layer.tar'))).get('thin.json')!) as {
      origin: string;
      layers: { digest: string }[];
    };
    assert.equal(thin.origin, 'dogestry://local/example.org/app:v1');
    assert.deepEqual(
      thin.layers.map((layer) => `sha256:${layer.digest}`),
      written.diffIds,
    );
    const json = JSON.parse(await readFile(join(root, 'dogestry/images', id, 'json'), 'utf8')) as { id: string; config: { Env: string[] } };
    assert.equal(json.id, id);
    assert.deepEqual(json.config.Env, ['A=1', 'CVMFS_IMAGE=true']);
    // And ducc reads it back as an image of the remote.
    const shown = expectExit(await runCli(['download-manifest', 'dogestry://local/example.org/app_thin:v1', '--config', config], { env }), 0).stdout;
    assert.equal((JSON.parse(shown) as { layers: unknown[] }).layers.length, 1);
  });

  it('writes the thin image into an S3 remote, tag object last', async () => {
    const before = s3.events.length;

    assert.equal(await convert('to-s3', ['input:', "  - 'dogestry://cloud/example.org/app:v1'"]), '1 converted, 0 up to date, 0 failed\n');

    const keys = s3.events.slice(before).map((event) => (event as { Records: { s3: { object: { key: string } } }[] }).Records[0]!.s3.object.key);
    assert.equal(keys.length, 4);
    assert.match(keys.at(-1)!, /^repositories\/example\.org\/app_thin\/v1$/);
    assert.deepEqual(
      keys
        .slice(0, 3)
        .map((key) => key.split('/').at(-1))
        .sort(),
      ['VERSION', 'json', 'layer.tar'],
    );
  });
});
