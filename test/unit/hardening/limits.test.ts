/**
 * Resource limits on what a layer or a manifest may make us do: entries, path depth and length, symlink
 * hops, PAX header size, uncompressed bytes (decompression bombs), layers per image. Each limit is hit
 * with a small setting (explicit or through its DUCC_LIMIT_* variable) and must fail early and clearly.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { buildTar, type TarEntrySpec } from '../../support/build-tar.ts';
import { DigestingStream, decompressionStages } from '../../../src/convert/layer-stream.ts';
import { decompressThreadStats } from '../../../src/convert/decompress-thread.ts';
import { extractLayer } from '../../../src/unpack/extract-layer.ts';
import { extractLimits } from '../../../src/unpack/settings.ts';
import { parseManifestDocument } from '../../../src/registry/manifest.ts';
import { registrySettingsFromEnv } from '../../../src/registry/settings.ts';
import { arena, extractInto } from './arena.ts';
import { withEnv } from '../../support/with-env.ts';

const MiB = 1024 * 1024;

async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir, { recursive: true })) {
    const info = await stat(join(dir, name));
    if (info.isFile()) total += info.blocks * 512;
  }
  return total;
}

describe('layer limits', () => {
  it('limit-entries-per-layer: more entries than allowed fail at the limit', async (t) => {
    const a = await arena(t);
    const entries: TarEntrySpec[] = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, content: '' }));
    await assert.rejects(extractInto(a, await buildTar(entries), { maxEntries: 10 }), { code: 'BOT_ERR_LIMIT', message: /more than 10 entries/ });
    assert.ok((await readdir(a.target)).length <= 10);
  });

  it('limit-path-depth: a name deeper than the limit (default 256) is refused before any directory is made', async (t) => {
    const a = await arena(t);
    await assert.rejects(extractInto(a, await buildTar([{ name: `${'d/'.repeat(300)}f`, content: '' }])), {
      code: 'BOT_ERR_LIMIT',
      message: /deeper than 256/,
    });
    assert.deepEqual(await readdir(a.target), []);
    await assert.rejects(extractInto(a, await buildTar([{ name: `${'d/'.repeat(9)}f`, content: '' }]), { maxDepth: 8 }), { code: 'BOT_ERR_LIMIT' });
  });

  it('limit-path-bytes: a (PAX) name or symlink target longer than the limit is refused', async (t) => {
    const a = await arena(t);
    await assert.rejects(extractInto(a, await buildTar([{ name: 'n'.repeat(200), content: '' }]), { maxPathBytes: 128 }), {
      code: 'BOT_ERR_LIMIT',
      message: /longer than 128 bytes/,
    });
    await assert.rejects(extractInto(a, await buildTar([{ name: 'l', type: 'symlink', linkname: 'x'.repeat(200) }]), { maxPathBytes: 128 }), {
      code: 'BOT_ERR_LIMIT',
      message: /symlink target longer than 128/,
    });
  });

  it('limit-symlink-hops: a chain longer than 40 links fails; a higher limit lets it through', async (t) => {
    const chain: TarEntrySpec[] = [{ name: 'end/', type: 'directory' }];
    for (let i = 0; i < 45; i++) chain.push({ name: `l${i}`, type: 'symlink', linkname: i === 44 ? 'end' : `l${i + 1}` });
    chain.push({ name: 'l0/file', content: 'x' });
    const tar = await buildTar(chain);
    const a = await arena(t);
    await assert.rejects(extractInto(a, tar), { code: 'BOT_ERR_UNSAFE_ENTRY', message: /too many symlinks/ });
    const b = await arena(t);
    await extractInto(b, tar, { maxSymlinkHops: 50 });
    assert.deepEqual(await readdir(join(b.target, 'end')), ['file']);
  });

  it('limit-pax-header-size: a PAX header over 4 MiB is refused as a limit, naming the layer', async (t) => {
    const a = await arena(t);
    const tar = await buildTar([{ name: 'f', content: 'x', pax: { comment: 'c'.repeat(5 * MiB) } }]);
    await assert.rejects(extractInto(a, tar), { code: 'BOT_ERR_LIMIT', message: /layer sha256:feed: a PAX or GNU long-name header larger than 4 MiB/ });
  });

  it('limit-layer-bytes-file-content: a file larger than the layer limit stops at the limit, on disk too', async (t) => {
    const a = await arena(t);
    const tar = await buildTar([{ name: 'big', content: Buffer.alloc(16 * MiB, 7) }]);
    await assert.rejects(extractInto(a, tar, { maxBytes: MiB }), {
      code: 'BOT_ERR_LIMIT',
      message: /entry 'big': layer larger than 1048576 uncompressed bytes/,
    });
    assert.ok((await diskUsage(a.target)) <= 2 * MiB, 'no more than the limit was written');
  });

  for (const threaded of [false, true]) {
    it(`decompression-bomb-fails-early: a 10 GiB gzip stream (10 MiB compressed) fails at the limit with bounded memory and time${threaded ? ' (decompressed on its own thread)' : ''}`, async (t) => {
      const a = await arena(t);
      // Concatenated gzip members of 1 MiB of zeros each: 10,240 of them inflate to 10 GiB of tar zeros.
      const member = gzipSync(Buffer.alloc(MiB));
      let pulled = 0;
      const compressed = Readable.from(
        (function* () {
          for (let i = 0; i < 10 * 1024; i++) {
            pulled++;
            yield member;
          }
        })(),
      );
      const limit = 8 * MiB;
      const digesting = new DigestingStream(undefined, 'test: layer sha256:b0mb', limit);
      const [check, gunzip] = decompressionStages('gzip', 'test: layer sha256:b0mb', { threaded });
      compressed.pipe(check!).pipe(gunzip!).pipe(digesting);
      for (const stage of [compressed, check!, gunzip!]) stage.on('error', (error) => digesting.destroy(error));
      const started = Date.now();
      const heapBefore = process.memoryUsage().rss;
      await assert.rejects(extractLayer(digesting, a.target, { label: 'layer sha256:b0mb' }), {
        code: 'BOT_ERR_LIMIT',
        message: /layer sha256:b0mb: more than 8388608 bytes once uncompressed \(the layer size limit, DUCC_LIMIT_LAYER_BYTES\)/,
      });
      // As unpackLayer does when the layer fails: every stage is given up (the thread, if any, ends).
      for (const stage of [compressed, check!, gunzip!]) stage.destroy();
      assert.ok(Date.now() - started < 5000, `failed after ${Date.now() - started} ms`);
      // Compressed input is handed to gunzip 1 MiB at a time (see decompressionStages): reading stops
      // within a few of those, far from the 10 MiB there are.
      const pulledBytes = pulled * member.length;
      assert.ok(pulledBytes < 4 * MiB, `stopped early: ${pulledBytes} of ${10 * 1024 * member.length} compressed bytes were read`);
      assert.ok(process.memoryUsage().rss - heapBefore < 256 * MiB, 'memory stayed bounded');
      assert.deepEqual(await readdir(a.target), []);
      for (let i = 0; i < 200 && decompressThreadStats.running > 0; i++) await sleep(10);
      assert.equal(decompressThreadStats.running, 0);
    });
  }

  it('limit-layer-bytes-from-environment: DUCC_LIMIT_LAYER_BYTES sets the default (with a unit suffix); nonsense is a config error', async () => {
    const data = Buffer.alloc(3 * MiB);
    const run = () =>
      new Promise<void>((resolve, reject) => {
        const digesting = new DigestingStream(`sha256:${createHash('sha256').update(data).digest('hex')}`, 'layer sha256:env');
        digesting.on('error', reject).on('finish', resolve).resume();
        digesting.end(data);
      });
    await withEnv({ DUCC_LIMIT_LAYER_BYTES: '2m' }, async () => {
      assert.equal(extractLimits().maxBytes, 2 * MiB);
      await assert.rejects(run(), { code: 'BOT_ERR_LIMIT', message: /more than 2097152 bytes/ });
    });
    await withEnv({ DUCC_LIMIT_LAYER_BYTES: '4MiB' }, run);
    await withEnv({ DUCC_LIMIT_LAYER_BYTES: 'lots' }, async () => {
      assert.throws(() => new DigestingStream(undefined, 'x'), { code: 'BOT_ERR_CONFIG', message: /DUCC_LIMIT_LAYER_BYTES must be a positive integer/ });
    });
    await withEnv({ DUCC_LIMIT_LAYER_ENTRIES: '3' }, async () => assert.equal(extractLimits().maxEntries, 3));
  });
});

describe('manifest limits', () => {
  const digest = (i: number) => `sha256:${createHash('sha256').update(String(i)).digest('hex')}`;
  const layer = (i: number) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest(i), size: 1 });
  const manifest = (layers: number) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(-1), size: 2 },
        layers: Array.from({ length: layers }, (_, i) => layer(i)),
      }),
    );

  it('limit-layers-per-image: a manifest with 10,000 layers is refused; DUCC_LIMIT_IMAGE_LAYERS moves the limit', async () => {
    assert.throws(() => parseManifestDocument(manifest(10_000), undefined, 'manifest r/x:big'), {
      code: 'BOT_ERR_LIMIT',
      message: /manifest r\/x:big lists 10000 layers, more than the limit of 1000 \(DUCC_LIMIT_IMAGE_LAYERS\)/,
    });
    assert.equal(parseManifestDocument(manifest(1000), undefined, 'm').kind, 'manifest');
    await withEnv({ DUCC_LIMIT_IMAGE_LAYERS: '10' }, async () => {
      assert.throws(() => parseManifestDocument(manifest(11), undefined, 'm', registrySettingsFromEnv(process.env)), { code: 'BOT_ERR_LIMIT' });
    });
  });

  it('limit-index-entries: an index with 5,000 entries is refused', () => {
    const entries = Array.from({ length: 5000 }, (_, i) => ({
      ...layer(i),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      platform: { os: 'linux', architecture: `a${i}` },
    }));
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries }));
    assert.throws(() => parseManifestDocument(index, undefined, 'index r/x:many'), {
      code: 'BOT_ERR_LIMIT',
      message: /5000 manifests, more than the limit of 1000/,
    });
  });

  it('media-type-consistent: a Content-Type naming an index for a document that is a manifest (or the reverse) is refused', () => {
    assert.throws(() => parseManifestDocument(manifest(1), 'application/vnd.oci.image.index.v1+json', 'manifest r/x:v1'), {
      code: 'BOT_ERR_MEDIA_TYPE',
      message: /served as "application\/vnd.oci.image.index.v1\+json" but is an image manifest/,
    });
    assert.equal(parseManifestDocument(manifest(1), 'application/vnd.oci.image.manifest.v1+json', 'm').kind, 'manifest');
    assert.equal(parseManifestDocument(manifest(1), 'application/json', 'm').kind, 'manifest', 'generic types are not held against it');
  });

  it('digest-grammar-before-use: a layer digest that is a path is refused while parsing', () => {
    const bad = JSON.parse(manifest(1).toString()) as { layers: { digest: string }[] };
    bad.layers[0]!.digest = 'sha256:../../../../etc/passwd';
    assert.throws(() => parseManifestDocument(Buffer.from(JSON.stringify(bad)), undefined, 'm'), {
      code: 'BOT_ERR_DIGEST_MISMATCH',
      message: /invalid digest/,
    });
  });
});
