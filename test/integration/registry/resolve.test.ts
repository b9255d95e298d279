/**
 * RegistryClient against a real registry (distribution 2.8 on loopback), seeded with skopeo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { gunzipSync } from 'node:zlib';
import { RegistryClient } from '../../../src/registry/client.ts';
import { parsePlatform } from '../../../src/registry/platform.ts';
import type { RepositoryRef } from '../../../src/registry/types.ts';
import { buildTar } from '../../support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { freePort, startRegistry } from '../../support/registry.ts';
import { hasCode } from '../../support/ducc-error.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Flips one byte in the middle of a blob's data file in the registry's filesystem storage. */
async function corruptBlob(storageDir: string, digest: string): Promise<void> {
  const hex = digest.slice('sha256:'.length);
  const path = join(storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  const data = await readFile(path);
  const at = Math.floor(data.length / 2);
  data[at] = data[at]! ^ 0xff;
  await writeFile(path, data);
}

test('RegistryClient against docker-registry', async (t) => {
  const registry = await startRegistry(t);
  const work = await mkdtemp(join(tmpdir(), 'ducc-registry-test-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const ref = (repository: string): RepositoryRef => ({ scheme: 'http', registry: registry.host, repository });
  const client = new RegistryClient({ retryBaseMs: 5, maxRetries: 1 });

  const baseTar = await buildTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/os-release', content: 'NAME=test\n' },
  ]);
  const appTar = await buildTar([{ name: 'app/run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 }]);
  const armTar = await buildTar([{ name: 'arch', content: 'arm64\n' }]);
  const imageConfig = { Env: ['PATH=/usr/bin:/bin', 'GREETING=hello world'], Cmd: ['/app/run.sh'], WorkingDir: '/app', Labels: { 'org.example': 'yes' } };

  const singleDir = join(work, 'single');
  const single = await writeOciLayout(singleDir, 'v1', [{ layers: [baseTar, appTar], config: imageConfig }]);
  await pushOciLayout(singleDir, 'v1', { host: registry.host, repository: 'test/single', tag: 'v1' });
  await pushOciLayout(singleDir, 'v1', { host: registry.host, repository: 'test/docker', tag: 'v1', format: 'docker' });

  const multiDir = join(work, 'multi');
  const multi = await writeOciLayout(multiDir, 'v1', [
    { layers: [baseTar], config: { Cmd: ['amd'] }, platform: { os: 'linux', architecture: 'amd64' } },
    { layers: [baseTar, armTar], config: { Cmd: ['arm'] }, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  await pushOciLayout(multiDir, 'v1', { host: registry.host, repository: 'test/multi', tag: 'v1' });
  const [amd, arm] = multi.manifests as [(typeof multi.manifests)[0], (typeof multi.manifests)[0]];

  await t.test('single-manifest OCI image by tag', async () => {
    const image = await client.resolveImage(ref('test/single'), 'v1');
    const written = single.manifests[0]!;
    assert.equal(image.manifestDigest, written.digest);
    assert.equal(sha256(image.manifestBytes), written.digest);
    assert.equal(image.manifestMediaType, OCI_MANIFEST);
    assert.equal(image.indexDigest, undefined);
    assert.equal(image.platform, undefined);
    assert.equal(image.manifest.config.digest, written.configDigest);
    assert.deepEqual(
      image.manifest.layers.map((l) => l.digest),
      written.layerDigests,
    );
    assert.equal(sha256(image.configBytes), written.configDigest);
    assert.deepEqual(image.config.config?.Env, imageConfig.Env);
    assert.deepEqual(image.config.config?.Cmd, imageConfig.Cmd);
    assert.equal(image.config.config?.WorkingDir, '/app');
    assert.deepEqual(image.config.rootfs?.diff_ids, written.diffIds);
    assert.deepEqual(image.ref, ref('test/single'));

    const all = await client.resolveAllPlatforms(ref('test/single'), 'v1');
    assert.equal(all.length, 1);
    assert.equal(all[0]!.manifestDigest, written.digest);
    assert.deepEqual(all[0]!.platform, { os: 'linux', architecture: 'amd64' });

    const manifestOnly = await client.resolveManifest(ref('test/single'), 'v1');
    assert.equal(manifestOnly.manifestDigest, written.digest);
    assert.equal('config' in manifestOnly, false);
  });

  await t.test('Docker schema 2 image (pushed with --format v2s2)', async () => {
    const image = await client.resolveImage(ref('test/docker'), 'v1');
    assert.equal(image.manifestMediaType, DOCKER_MANIFEST);
    assert.equal(image.manifest.mediaType, DOCKER_MANIFEST);
    assert.equal(image.manifest.config.mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.deepEqual(
      image.manifest.layers.map((l) => l.mediaType),
      ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.docker.image.rootfs.diff.tar.gzip'],
    );
    // skopeo reuses the gzip blobs as they are
    assert.deepEqual(
      image.manifest.layers.map((l) => l.digest),
      single.manifests[0]!.layerDigests,
    );
    assert.notEqual(image.manifestDigest, single.manifests[0]!.digest);
    assert.equal(sha256(image.manifestBytes), image.manifestDigest);
    assert.deepEqual(image.config.config?.Env, imageConfig.Env);
  });

  await t.test('OCI index: default linux/amd64, arm64 on request, all platforms', async () => {
    const dflt = await client.resolveImage(ref('test/multi'), 'v1');
    assert.equal(dflt.indexDigest, multi.indexDigest);
    assert.equal(dflt.manifestDigest, amd.digest);
    assert.deepEqual(dflt.platform, { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(dflt.config.config?.Cmd, ['amd']);

    for (const platform of [{ os: 'linux', architecture: 'arm64' }, parsePlatform('arm64'), parsePlatform('linux/arm64/v8')]) {
      const image = await client.resolveImage(ref('test/multi'), 'v1', { platform });
      assert.equal(image.manifestDigest, arm.digest);
      assert.equal(image.indexDigest, multi.indexDigest);
      assert.deepEqual(image.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
      assert.equal(image.config.architecture, 'arm64');
      assert.deepEqual(image.config.rootfs?.diff_ids, arm.diffIds);
    }

    const all = await client.resolveAllPlatforms(ref('test/multi'), 'v1');
    assert.deepEqual(
      all.map((i) => [i.manifestDigest, i.platform?.architecture, i.indexDigest]),
      [
        [amd.digest, 'amd64', multi.indexDigest],
        [arm.digest, 'arm64', multi.indexDigest],
      ],
    );

    await assert.rejects(
      client.resolveImage(ref('test/multi'), 'v1', { platform: { os: 'linux', architecture: 's390x' } }),
      hasCode('BOT_ERR_PLATFORM', /linux\/s390x.*available: linux\/amd64, linux\/arm64\/v8/),
    );
  });

  await t.test('digest-pinned references', async () => {
    const byManifest = await client.resolveImage(ref('test/multi'), arm.digest);
    assert.equal(byManifest.manifestDigest, arm.digest);
    assert.equal(byManifest.indexDigest, undefined);
    assert.deepEqual(byManifest.config.config?.Cmd, ['arm']);

    const byIndex = await client.resolveImage(ref('test/multi'), multi.indexDigest!, { platform: parsePlatform('linux/arm64') });
    assert.equal(byIndex.indexDigest, multi.indexDigest);
    assert.equal(byIndex.manifestDigest, arm.digest);

    await assert.rejects(client.resolveImage(ref('test/multi'), sha256(Buffer.from('nothing'))), hasCode('BOT_ERR_REGISTRY_NOT_FOUND'));
    await assert.rejects(client.resolveImage(ref('test/multi'), 'sha256:1234'), hasCode('BOT_ERR_REFERENCE'));
    await assert.rejects(client.resolveImage(ref('test/multi'), '../../v2/_catalog'), hasCode('BOT_ERR_REFERENCE'));
  });

  await t.test('headManifest', async () => {
    const head = await client.headManifest(ref('test/multi'), 'v1');
    assert.deepEqual(head, { digest: multi.indexDigest, mediaType: OCI_INDEX, size: head?.size });
    assert.ok(head !== undefined && head.size > 100);
    const byDigest = await client.headManifest(ref('test/single'), single.manifests[0]!.digest);
    assert.equal(byDigest?.digest, single.manifests[0]!.digest);
    assert.equal(byDigest?.mediaType, OCI_MANIFEST);
    assert.equal(await client.headManifest(ref('test/single'), 'missing'), undefined);
  });

  await t.test('openBlob streams a verified layer; blob requests are counted', async () => {
    const image = await client.resolveImage(ref('test/single'), 'v1');
    const layer = image.manifest.layers[1]!;
    const before = client.blobRequestCount;
    const stream = await client.openBlob(ref('test/single'), layer);
    const data = await buffer(stream);
    assert.equal(sha256(data), layer.digest);
    assert.equal(data.length, layer.size);
    assert.deepEqual(gunzipSync(data), appTar);
    assert.equal(client.blobRequestCount, before + 1);

    assert.equal(await client.blobExists(ref('test/single'), layer.digest), true);
    assert.equal(await client.blobExists(ref('test/single'), sha256(randomBytes(8))), false);
    assert.equal(client.blobRequestCount, before + 1, 'HEAD requests are not blob GETs');

    await assert.rejects(client.fetchBlob(ref('test/single'), layer, 10), hasCode('BOT_ERR_LIMIT'));
    await assert.rejects(client.openBlob(ref('test/single'), { ...layer, size: layer.size + 1 }), hasCode('BOT_ERR_SIZE_MISMATCH'));
    assert.deepEqual(await client.fetchBlob(ref('test/single'), layer), data);
  });

  await t.test('zstd layers and indexes are kept as pushed', async () => {
    const dir = join(work, 'zstd');
    const written = await writeOciLayout(dir, 'z', [{ layers: [appTar] }], { compression: 'zstd' });
    await pushOciLayout(dir, 'z', { host: registry.host, repository: 'test/zstd', tag: 'z' });
    const image = await client.resolveImage(ref('test/zstd'), 'z');
    assert.equal(image.manifestDigest, written.manifests[0]!.digest);
    assert.equal(image.manifest.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    const blob = await buffer(await client.openBlob(ref('test/zstd'), image.manifest.layers[0]!));
    assert.equal(sha256(blob), written.manifests[0]!.layerDigests[0]);

    const plainDir = join(work, 'plain');
    const plain = await writeOciLayout(plainDir, 'p', [{ layers: [appTar] }], { compression: 'none' });
    await pushOciLayout(plainDir, 'p', { host: registry.host, repository: 'test/plain', tag: 'p' });
    const plainImage = await client.resolveImage(ref('test/plain'), 'p');
    assert.equal(plainImage.manifestDigest, plain.manifests[0]!.digest);
    assert.equal(plainImage.manifest.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar');
    assert.deepEqual(await buffer(await client.openBlob(ref('test/plain'), plainImage.manifest.layers[0]!)), appTar);
  });

  await t.test('a corrupted blob errors with BOT_ERR_DIGEST_MISMATCH', async () => {
    const unique = await buildTar([{ name: 'random.bin', content: randomBytes(64 * 1024) }]);
    const dir = join(work, 'corrupt');
    const written = await writeOciLayout(dir, 'v1', [{ layers: [unique] }]);
    await pushOciLayout(dir, 'v1', { host: registry.host, repository: 'test/corrupt', tag: 'v1' });
    const image = await client.resolveImage(ref('test/corrupt'), 'v1');
    const layer = image.manifest.layers[0]!;
    assert.equal(layer.digest, written.manifests[0]!.layerDigests[0]);
    await corruptBlob(registry.storageDir, layer.digest);

    const stream = await client.openBlob(ref('test/corrupt'), layer);
    let received = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) received += (chunk as Buffer).length;
      })(),
      hasCode('BOT_ERR_DIGEST_MISMATCH', new RegExp(layer.digest)),
    );
    assert.ok(received > 0 && received <= layer.size, `data flowed (${received} bytes) but the stream did not end cleanly`);
    await assert.rejects(client.fetchBlob(ref('test/corrupt'), layer, 1024 * 1024), hasCode('BOT_ERR_DIGEST_MISMATCH'));

    await corruptBlob(registry.storageDir, written.manifests[0]!.configDigest);
    await assert.rejects(client.resolveImage(ref('test/corrupt'), 'v1'), hasCode('BOT_ERR_DIGEST_MISMATCH', /config|blob/));
  });

  await t.test('listTags, and pagination through Link headers', async () => {
    const tags = ['t0', 't1', 't2', 't3', 't4'];
    for (const tag of tags) await pushOciLayout(singleDir, 'v1', { host: registry.host, repository: 'test/tags', tag });
    assert.deepEqual((await client.listTags(ref('test/tags'))).sort(), tags);

    // distribution 2.8 ignores ?n= for tag lists (pagination came with distribution 3), so a small
    // proxy in front of the real registry pages its answer the way distribution 3 does.
    const pageRequests: string[] = [];
    const proxy = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://proxy');
      const forward = (path: string, onBody: (status: number, headers: Record<string, string | string[] | undefined>, body: Buffer) => void) => {
        const upstream = httpRequest(`${registry.url}${path}`, { method: req.method, headers: { ...req.headers, host: registry.host } }, async (up) => {
          onBody(up.statusCode ?? 502, up.headers, await buffer(up));
        });
        upstream.on('error', () => res.destroy());
        req.pipe(upstream);
      };
      if (url.pathname.endsWith('/tags/list')) {
        pageRequests.push(url.search);
        forward(url.pathname, (status, _headers, body) => {
          const all = ((JSON.parse(body.toString()) as { tags: string[] }).tags ?? []).sort();
          const n = Number(url.searchParams.get('n') ?? all.length);
          const last = url.searchParams.get('last');
          const rest = last === null ? all : all.filter((tag) => tag > last);
          const page = rest.slice(0, n);
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (rest.length > n) headers['link'] = `<${url.pathname}?n=${n}&last=${page[page.length - 1]}>; rel="next"`;
          res.writeHead(status, headers).end(JSON.stringify({ name: 'test/tags', tags: page }));
        });
        return;
      }
      forward(url.pathname + url.search, (status, headers, body) => {
        res.writeHead(status, headers as Record<string, string>).end(body);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const port = (proxy.address() as { port: number }).port;
    const paged = await client.listTags({ scheme: 'http', registry: `127.0.0.1:${port}`, repository: 'test/tags' }, { pageSize: 2 });
    assert.deepEqual(paged, tags);
    assert.deepEqual(pageRequests, ['?n=2', '?n=2&last=t1', '?n=2&last=t3']);
  });

  await t.test('missing manifests and repositories are BOT_ERR_REGISTRY_NOT_FOUND', async () => {
    await assert.rejects(
      client.resolveImage(ref('test/none'), 'latest'),
      hasCode('BOT_ERR_REGISTRY_NOT_FOUND', new RegExp(`^manifest test/none:latest not found on ${registry.host.replace(/\./g, '\\.')}$`)),
    );
    await assert.rejects(client.resolveImage(ref('test/single'), 'v2'), hasCode('BOT_ERR_REGISTRY_NOT_FOUND', /test\/single:v2/));
    await assert.rejects(client.listTags(ref('test/none')), hasCode('BOT_ERR_REGISTRY_NOT_FOUND', /test\/none/));
    await assert.rejects(
      client.fetchBlob(ref('test/single'), { mediaType: 'x', digest: sha256(Buffer.from('absent')), size: 6 }),
      hasCode('BOT_ERR_REGISTRY_NOT_FOUND'),
    );
  });

  await t.test('connection refused is BOT_ERR_REGISTRY_UNREACHABLE', async () => {
    const port = await freePort();
    const started = Date.now();
    await assert.rejects(
      client.resolveImage({ scheme: 'http', registry: `127.0.0.1:${port}`, repository: 'x' }, 'latest'),
      hasCode('BOT_ERR_REGISTRY_UNREACHABLE', new RegExp(`127\\.0\\.0\\.1:${port}`)),
    );
    assert.ok(Date.now() - started < 2000, 'refused connections are not retried with backoff');
  });
});
