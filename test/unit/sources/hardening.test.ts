/**
 * Registry-less sources hold untrusted bytes like registries do: limits, digests and malformed documents
 * give the same errors. Layouts come from the test support (independent of the code under test), archives
 * and dogestry remotes are built here byte by byte (tar-stream), hostile where the test needs it.
 */
import { describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buffer } from 'node:stream/consumers';
import tarStream from 'tar-stream';
import { RegistryClient } from '../../../src/registry/client.ts';
import { DEFAULT_REGISTRY_SETTINGS } from '../../../src/registry/settings.ts';
import { Sources } from '../../../src/sources/sources.ts';
import { TarIndex } from '../../../src/sources/tar-index.ts';
import { parseImageReference } from '../../../src/wishlist/image-reference.ts';
import { writeOciLayout } from '../../support/oci-image.ts';
import { buildTar } from '../../support/build-tar.ts';
import { tempDir } from '../../support/tmp-dir.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function sources(settings: Partial<typeof DEFAULT_REGISTRY_SETTINGS> = {}, remotes: ConstructorParameters<typeof Sources>[0]['dogestryRemotes'] = []): Sources {
  return new Sources({ registry: new RegistryClient(), settings: { ...DEFAULT_REGISTRY_SETTINGS, ...settings }, dogestryRemotes: remotes });
}

async function tar(entries: { name: string; data?: Buffer | string; type?: 'file' | 'symlink'; linkname?: string }[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const done = buffer(pack);
  for (const entry of entries) {
    if (entry.type === 'symlink') pack.entry({ name: entry.name, type: 'symlink', linkname: entry.linkname! });
    else pack.entry({ name: entry.name }, typeof entry.data === 'string' ? Buffer.from(entry.data) : (entry.data ?? Buffer.alloc(0)));
  }
  pack.finalize();
  return done;
}

async function rejects(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error & { code?: string }) => {
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

describe('OCI layouts', () => {
  it('refuse a manifest with more layers than DUCC_LIMIT_IMAGE_LAYERS, and a tag named twice for two images', async (t) => {
    const dir = join(await tempDir(t), 'layout');
    const layer = await buildTar([{ name: 'a', content: 'a' }]);
    await writeOciLayout(dir, 'v1', [{ layers: [layer, layer, layer] }]);
    const image = parseImageReference(`oci:${dir}:v1`);

    await rejects(
      sources({ maxImageLayers: 2 }).forImage(image).resolveManifest('v1'),
      'BOT_ERR_LIMIT',
      /lists 3 layers, more than the limit of 2 \(DUCC_LIMIT_IMAGE_LAYERS\)/,
    );

    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    await writeOciLayout(dir, 'v2', [{ layers: [layer] }]);
    const both = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { annotations: Record<string, string> }[] };
    both.manifests[1]!.annotations['org.opencontainers.image.ref.name'] = 'v1';
    await writeFile(join(dir, 'index.json'), JSON.stringify(both));
    await rejects(sources().forImage(image).resolveManifest('v1'), 'BOT_ERR_REGISTRY', /tags 2 different images 'v1'; refused as ambiguous/);
    assert.equal(index.manifests.length, 1);
  });

  it('hand out a layer stream that errors when the blob does not hash to its digest', async (t) => {
    const dir = join(await tempDir(t), 'layout');
    const written = (await writeOciLayout(dir, 'v1', [{ layers: [await buildTar([{ name: 'a', content: 'a' }])] }])).manifests[0]!;
    const source = sources().forImage(parseImageReference(`oci:${dir}:v1`));
    const { manifest } = await source.resolveManifest('v1');
    const path = join(dir, 'blobs/sha256', written.layerDigests[0]!.slice(7));
    const bytes = await readFile(path);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
    await writeFile(path, bytes);

    await rejects(buffer(await source.openBlob(manifest.layers[0]!)), 'BOT_ERR_DIGEST_MISMATCH', /digest mismatch for blob sha256:/);
  });

  it('name the tags there are when the one asked for is missing', async (t) => {
    const dir = join(await tempDir(t), 'layout');
    await writeOciLayout(dir, 'v1', [{ layers: [] }]);

    await rejects(
      sources()
        .forImage(parseImageReference(`oci:${dir}:v9`))
        .resolveManifest('v9'),
      'BOT_ERR_REGISTRY_NOT_FOUND',
      /no image tagged 'v9' in oci:.* \(tags: v1\)/,
    );
  });
});

describe('archives', () => {
  it('read member tables with long PAX names and links inside the archive', async (t) => {
    const long = `${'deep/'.repeat(40)}file`;
    const path = join(await tempDir(t), 'a.tar');
    await writeFile(
      path,
      await tar([
        { name: long, data: 'content' },
        { name: 'dir/link', type: 'symlink', linkname: `../${long}` },
      ]),
    );

    const index = await TarIndex.open(path, 'test archive');

    assert.equal((await index.read(index.member(long)!, 100, 'x')).toString(), 'content');
    assert.equal(index.member('dir/link')!.name, long);
  });

  it('refuse gzip-compressed and truncated archives', async (t) => {
    const dir = await tempDir(t);
    const whole = await tar([
      { name: 'manifest.json', data: '[]' },
      { name: 'big', data: Buffer.alloc(4096) },
    ]);
    await writeFile(join(dir, 'gz.tar'), gzipSync(whole));
    await writeFile(join(dir, 'cut.tar'), whole.subarray(0, 2048));

    await rejects(TarIndex.open(join(dir, 'gz.tar'), 'gz'), 'BOT_ERR_ARCHIVE', /gz is gzip-compressed: decompress it first/);
    await rejects(TarIndex.open(join(dir, 'cut.tar'), 'cut'), 'BOT_ERR_ARCHIVE', /ends inside a member/);
  });

  it('docker-archive: no manifest.json, no such RepoTag, and a config whose diff_ids do not match the layers', async (t) => {
    const dir = await tempDir(t);
    const layer = await buildTar([{ name: 'a', content: 'a' }]);
    const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha256(layer), sha256(layer)] } }));
    const manifest = JSON.stringify([{ Config: 'c.json', RepoTags: ['example.org/app:1'], Layers: ['l.tar'] }]);
    await writeFile(join(dir, 'legacy.tar'), await tar([{ name: 'repositories', data: '{}' }]));
    await writeFile(
      join(dir, 'app.tar'),
      await tar([
        { name: 'c.json', data: config },
        { name: 'l.tar', data: layer },
        { name: 'manifest.json', data: manifest },
      ]),
    );
    const s = sources();

    await rejects(
      s.forImage(parseImageReference(`docker-archive:${dir}/legacy.tar:example.org/app:1`)).resolveManifest('1'),
      'BOT_ERR_ARCHIVE',
      /has no manifest\.json \(archives of docker before 1\.10/,
    );
    await rejects(
      s.forImage(parseImageReference(`docker-archive:${dir}/app.tar:example.org/app:2`)).resolveManifest('2'),
      'BOT_ERR_REGISTRY_NOT_FOUND',
      /RepoTags: example\.org\/app:1/,
    );
    await rejects(
      s.forImage(parseImageReference(`docker-archive:${dir}/app.tar:example.org/app:1`)).resolveManifest('1'),
      'BOT_ERR_REGISTRY',
      /lists 2 diff_ids for the 1 layers/,
    );
  });
});

describe('dogestry remotes', () => {
  const ID = (n: number) => n.toString(16).padStart(64, '0');

  async function remote(
    t: Parameters<typeof tempDir>[0],
    images: { id: string; parent?: string; layer: Buffer }[],
    tags: Record<string, string>,
  ): Promise<Sources> {
    const dir = await tempDir(t);
    for (const image of images) {
      await mkdir(join(dir, 'images', image.id), { recursive: true });
      await writeFile(
        join(dir, 'images', image.id, 'json'),
        JSON.stringify({ id: image.id, ...(image.parent ? { parent: image.parent } : {}), config: { Env: ['A=1'] } }),
      );
      await writeFile(join(dir, 'images', image.id, 'layer.tar'), image.layer);
    }
    for (const [tag, id] of Object.entries(tags)) {
      await mkdir(join(dir, 'repositories', 'app'), { recursive: true });
      await writeFile(join(dir, 'repositories', 'app', tag), id);
    }
    return sources({ maxImageLayers: 3 }, [{ name: 'local', kind: 'directory', path: dir }]);
  }

  it('make a config and manifest from the legacy JSON, each layer digest its layer.tar sha256', async (t) => {
    const base = await buildTar([{ name: 'a', content: 'a' }]);
    const top = await buildTar([{ name: 'b', content: 'b' }]);
    const s = await remote(
      t,
      [
        { id: ID(1), layer: base },
        { id: ID(2), parent: ID(1), layer: top },
      ],
      { v1: `${ID(2)}\n` },
    );
    const source = s.forImage(parseImageReference('dogestry://local/app:v1'));

    const { manifest } = await source.resolveManifest('v1');
    const config = JSON.parse((await source.fetchBlob(manifest.config)).toString()) as { config: unknown; rootfs: { diff_ids: string[] } };

    assert.deepEqual(
      manifest.layers.map((layer) => [layer.digest, layer.size]),
      [
        [sha256(base), base.length],
        [sha256(top), top.length],
      ],
    );
    assert.deepEqual(config.rootfs.diff_ids, [sha256(base), sha256(top)]);
    assert.deepEqual(config.config, { Env: ['A=1'] });
    assert.equal((await buffer(await source.openBlob(manifest.layers[1]!))).equals(top), true);
  });

  it('refuse a parent loop, a chain longer than DUCC_LIMIT_IMAGE_LAYERS, a compressed layer.tar and a tag file without an id', async (t) => {
    const layer = await buildTar([{ name: 'a', content: 'a' }]);
    const s = await remote(
      t,
      [
        { id: ID(1), parent: ID(2), layer },
        { id: ID(2), parent: ID(1), layer },
        { id: ID(3), layer },
        { id: ID(4), parent: ID(3), layer },
        { id: ID(5), parent: ID(4), layer },
        { id: ID(6), parent: ID(5), layer },
        { id: ID(7), layer: gzipSync(layer) },
      ],
      { loop: ID(1), long: ID(6), gz: ID(7), junk: 'not an id' },
    );
    const resolve = (tag: string) => s.forImage(parseImageReference(`dogestry://local/app:${tag}`)).resolveManifest(tag);

    await rejects(resolve('loop'), 'BOT_ERR_ARCHIVE', /ancestry of image 0+1 on dogestry:\/\/local\/app loops/);
    await rejects(resolve('long'), 'BOT_ERR_LIMIT', /more than 3 layers \(DUCC_LIMIT_IMAGE_LAYERS\)/);
    await rejects(resolve('gz'), 'BOT_ERR_MEDIA_TYPE', /layer\.tar of dogestry:\/\/local\/app is compressed/);
    await rejects(resolve('junk'), 'BOT_ERR_ARCHIVE', /repositories\/app\/junk of dogestry remote 'local' does not hold an image id/);
    await rejects(resolve('none'), 'BOT_ERR_REGISTRY_NOT_FOUND', /no tag app:none on dogestry remote 'local'/);
  });
});
