/**
 * Manifests kept by digest between runs (src/registry/manifest-cache.ts), against a real registry
 * (distribution 2.8 on loopback) behind a recording proxy: a tag seen before is asked with a conditional
 * GET and answered 304 without a body, held platform manifests cost no request, and a moved tag, a
 * damaged cache or a registry that ignores If-None-Match still give the right manifest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { RegistryClient } from '../../../src/registry/client.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { parsePlatform } from '../../../src/registry/platform.ts';
import type { RepositoryRef } from '../../../src/registry/types.ts';
import { SourceCache } from '../../../src/sources/cache.ts';
import { buildTar } from '../../support/build-tar.ts';
import { startFaultProxy, type FaultProxy } from '../../support/fault-proxy.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';

/** The manifest requests the proxy saw since `from`, as "METHOD status if-none-match?" strings. */
function manifestRequests(proxy: FaultProxy, from: number): string[] {
  return proxy.requests
    .slice(from)
    .filter((request) => /\/manifests\//.test(request.path))
    .map((request) => `${request.method} ${request.status}${request.headers['if-none-match'] === undefined ? '' : ' conditional'}`);
}

/** Every file below `dir`. */
async function filesBelow(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

test('manifest cache against docker-registry', async (t) => {
  const registry = await startRegistry(t);
  const proxy = await startFaultProxy(t, registry.host);
  const work = await tempDir(t);
  const ref = (repository: string): RepositoryRef => ({ scheme: 'http', registry: proxy.host, repository });
  const client = new RegistryClient({ retryBaseMs: 5, maxRetries: 1 });

  const base = await buildTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/os-release', content: 'NAME=test\n' },
  ]);
  const other = await buildTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/os-release', content: 'NAME=other\n' },
  ]);
  const singleDir = join(work, 'single');
  const single = await writeOciLayout(singleDir, 'v1', [{ layers: [base], config: { Cmd: ['one'] } }]);
  await pushOciLayout(singleDir, 'v1', { host: registry.host, repository: 'test/single', tag: 'v1' });
  const multiDir = join(work, 'multi');
  const multi = await writeOciLayout(multiDir, 'v1', [
    { layers: [base], config: { Cmd: ['amd'] }, platform: { os: 'linux', architecture: 'amd64' } },
    { layers: [other], config: { Cmd: ['arm'] }, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  await pushOciLayout(multiDir, 'v1', { host: registry.host, repository: 'test/multi', tag: 'v1' });

  await t.test('a tag seen before costs one conditional GET answered 304, also in a new process (a new cache object on the same directory)', async () => {
    const dir = join(work, 'cache-single');
    const from = proxy.requests.length;
    const first = await client.resolveManifest(ref('test/single'), 'v1', { cache: new SourceCache(dir) });
    assert.equal(first.manifestDigest, single.manifests[0]!.digest);
    assert.deepEqual(manifestRequests(proxy, from), ['GET 200']);

    const again = proxy.requests.length;
    const second = await client.resolveManifest(ref('test/single'), 'v1', { cache: new SourceCache(dir) });
    assert.deepEqual(manifestRequests(proxy, again), ['GET 304 conditional']);
    assert.equal(proxy.requests.at(-1)!.headers['if-none-match'], `"${single.manifests[0]!.digest}"`);
    assert.equal(proxy.requests.at(-1)!.bytesSent, 0);
    assert.equal(second.manifestDigest, first.manifestDigest);
    assert.deepEqual(second.manifest, first.manifest);
    assert.ok(second.manifestBytes.equals(first.manifestBytes));
    assert.equal(second.manifestMediaType, first.manifestMediaType);
  });

  await t.test('an index: the platform manifest comes from the cache without a request', async () => {
    const dir = join(work, 'cache-multi');
    const from = proxy.requests.length;
    const first = await client.resolveManifest(ref('test/multi'), 'v1', { cache: new SourceCache(dir), platform: parsePlatform('linux/arm64/v8') });
    assert.deepEqual(manifestRequests(proxy, from), ['GET 200', 'GET 200']);
    const again = proxy.requests.length;
    const second = await client.resolveManifest(ref('test/multi'), 'v1', { cache: new SourceCache(dir), platform: parsePlatform('linux/arm64/v8') });
    assert.deepEqual(manifestRequests(proxy, again), ['GET 304 conditional']);
    assert.equal(second.manifestDigest, multi.manifests[1]!.digest);
    assert.equal(second.indexDigest, multi.indexDigest);
    assert.deepEqual(second.platform, first.platform);
    // Every platform at once: the amd64 manifest is fetched once, then held too.
    const all = proxy.requests.length;
    const platforms = await client.resolveAllManifests(ref('test/multi'), 'v1', { cache: new SourceCache(dir) });
    assert.deepEqual(
      platforms.map((resolved) => resolved.manifestDigest),
      multi.manifests.map((manifest) => manifest.digest),
    );
    assert.deepEqual(manifestRequests(proxy, all), ['GET 304 conditional', 'GET 200']);
  });

  await t.test('a moved tag: the conditional GET is answered with the new manifest, which is used and kept', async () => {
    const dir = join(work, 'cache-moved');
    await client.resolveManifest(ref('test/moving'), 'v1', { cache: new SourceCache(dir) }).catch(() => undefined);
    await pushOciLayout(singleDir, 'v1', { host: registry.host, repository: 'test/moving', tag: 'v1' });
    await client.resolveManifest(ref('test/moving'), 'v1', { cache: new SourceCache(dir) });
    const movedDir = join(work, 'moved');
    const moved = await writeOciLayout(movedDir, 'v2', [{ layers: [other], config: { Cmd: ['moved'] } }]);
    await pushOciLayout(movedDir, 'v2', { host: registry.host, repository: 'test/moving', tag: 'v1' });

    const from = proxy.requests.length;
    const resolved = await client.resolveManifest(ref('test/moving'), 'v1', { cache: new SourceCache(dir) });
    assert.equal(resolved.manifestDigest, moved.manifests[0]!.digest);
    assert.deepEqual(manifestRequests(proxy, from), ['GET 200 conditional']);
    const again = proxy.requests.length;
    assert.equal((await client.resolveManifest(ref('test/moving'), 'v1', { cache: new SourceCache(dir) })).manifestDigest, moved.manifests[0]!.digest);
    assert.deepEqual(manifestRequests(proxy, again), ['GET 304 conditional']);
  });

  await t.test('a damaged or emptied cache is a plain GET, never a wrong manifest', async () => {
    const dir = join(work, 'cache-damaged');
    await client.resolveManifest(ref('test/single'), 'v1', { cache: new SourceCache(dir) });
    for (const file of await filesBelow(join(dir, 'blobs')))
      await writeFile(file, '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}');
    const from = proxy.requests.length;
    const resolved = await client.resolveManifest(ref('test/single'), 'v1', { cache: new SourceCache(dir) });
    assert.equal(resolved.manifestDigest, single.manifests[0]!.digest);
    assert.deepEqual(manifestRequests(proxy, from), ['GET 200']);

    await rm(join(dir, 'blobs'), { recursive: true });
    const emptied = proxy.requests.length;
    assert.equal((await client.resolveManifest(ref('test/single'), 'v1', { cache: new SourceCache(dir) })).manifestDigest, single.manifests[0]!.digest);
    assert.deepEqual(manifestRequests(proxy, emptied), ['GET 200']);
  });

  await t.test('a registry that ignores If-None-Match: its 200 answer is used as any GET, one request either way', async () => {
    const dir = join(work, 'cache-ignored');
    await client.resolveManifest(ref('test/single'), 'v1', { cache: new SourceCache(dir) });
    // Stands in for a registry without conditional requests: the If-None-Match that reaches it never matches.
    const ignoring = await startFaultProxy(t, registry.host, [], { upstreamHeaders: { 'if-none-match': `"sha256:${'0'.repeat(64)}"` } });
    const viaIgnoring: RepositoryRef = { scheme: 'http', registry: ignoring.host, repository: 'test/single' };
    await client.resolveManifest(viaIgnoring, 'v1', { cache: new SourceCache(dir) });
    const from = ignoring.requests.length;
    const resolved = await client.resolveManifest(viaIgnoring, 'v1', { cache: new SourceCache(dir) });
    assert.equal(resolved.manifestDigest, single.manifests[0]!.digest);
    assert.deepEqual(manifestRequests(ignoring, from), ['GET 200 conditional']);
  });

  await t.test('a tag that is gone is BOT_ERR_REGISTRY_NOT_FOUND, as without a cache', async () => {
    const dir = join(work, 'cache-gone');
    await pushOciLayout(singleDir, 'v1', { host: registry.host, repository: 'test/gone', tag: 'v1' });
    await client.resolveManifest(ref('test/gone'), 'v1', { cache: new SourceCache(dir) });
    await assert.rejects(client.resolveManifest(ref('test/gone'), 'v2', { cache: new SourceCache(dir) }), { code: 'BOT_ERR_REGISTRY_NOT_FOUND' });
  });

  await t.test('a no-op `ducc convert` run: one conditional GET per wish, answered 304, and no blob request', async () => {
    const cacheDir = join(work, 'convert-cache');
    const repoRoot = join(work, 'convert-repo');
    const text = [
      'version: 1',
      'user: pusher',
      "cvmfs_repo: 'unpacked.example.org'",
      'input:',
      `  - 'http://${proxy.host}/test/single:v1'`,
      `  - 'http://${proxy.host}/test/multi:v1'`,
      '',
    ].join('\n');
    const env = { DUCC_CACHE_DIR: cacheDir };
    const logger = createLogger({ level: 'silent' });
    const first = await runConversion(parseWishlist(text, 'w.yaml'), { repoRoot, skipThinImage: true }, env, logger);
    assert.equal(first.converted, 2);
    const from = proxy.requests.length;
    const second = await runConversion(parseWishlist(text, 'w.yaml'), { repoRoot, skipThinImage: true }, env, logger);
    assert.equal(second.upToDate, 2);
    assert.equal(second.blobRequests, 0);
    assert.deepEqual(manifestRequests(proxy, from), ['GET 304 conditional', 'GET 304 conditional']);
    assert.deepEqual(
      proxy.requests.slice(from).filter((request) => /\/blobs\//.test(request.path)),
      [],
    );
  });
});
