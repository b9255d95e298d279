/**
 * Blobs are hashed exactly as sent (issue 16, point 13). Registries redirect blob downloads to storage,
 * and storage may label a gzip layer `Content-Encoding: gzip` (the object's metadata says so) or compress
 * on the fly for a client that did not refuse it (RFC 9110 §12.5.3: no Accept-Encoding means any coding
 * is acceptable). The client never decodes a content coding, and asks for none: `Accept-Encoding:
 * identity` on every request. The real test registry sits behind the fault proxy, which redirects blob
 * GETs to a storage double on loopback.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { RegistryClient } from '../../../src/registry/client.ts';
import { registrySettingsFromEnv } from '../../../src/registry/settings.ts';
import type { RepositoryRef } from '../../../src/registry/types.ts';
import { buildTar } from '../../support/build-tar.ts';
import { startFaultProxy } from '../../support/fault-proxy.ts';
import { listenOnLoopback } from '../../support/loopback-server.ts';
import { pushOciLayout, writeOciLayout, type WrittenImage } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, suiteCleanup, tempDir } from '../../support/tmp-dir.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('blob bytes are hashed as sent, whatever Content-Encoding storage puts on them', () => {
  let registry: TestRegistry;
  let image: WrittenImage;
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    const dir = await tempDir(suite);
    const layer = await buildTar([{ name: 'etc/motd', content: 'compressible text\n'.repeat(2000) }]);
    image = (await writeOciLayout(dir, 'v1', [{ layers: [layer], config: { Env: ['A=1'] } }])).manifests[0]!;
    await pushOciLayout(dir, 'v1', { host: registry.host, repository: 'test/app', tag: 'v1' });
  });
  after(() => suite.runAll());

  const client = () => new RegistryClient({ settings: registrySettingsFromEnv({}), retryBaseMs: 1, maxRetries: 0 });
  const refOn = (host: string): RepositoryRef => ({ scheme: 'http', registry: host, repository: 'test/app' });

  /**
   * Storage on its own origin: serves a blob of the registry at /bucket/<digest>. With `encoding`
   * 'label' it sends the blob's bytes as they are with `Content-Encoding: gzip`; with 'negotiate' it
   * gzips them on the fly unless the request's Accept-Encoding refuses gzip.
   */
  async function startStorage(t: TestContext, encoding: 'label' | 'negotiate') {
    const seen: { path: string; acceptEncoding: string | undefined; contentEncoding: string | undefined }[] = [];
    const server = createServer((req, res) => {
      const digest = (req.url ?? '').split('/').pop() ?? '';
      const upstream = httpRequest(`${registry.url}/v2/test/app/blobs/${digest}`, (answer) => {
        void buffer(answer).then((blob) => {
          const acceptEncoding = req.headers['accept-encoding'];
          const gzipAccepted = acceptEncoding === undefined || /\bgzip\b|\*/.test(acceptEncoding);
          let body = blob;
          let contentEncoding: string | undefined;
          if (encoding === 'label') contentEncoding = 'gzip';
          else if (gzipAccepted) [body, contentEncoding] = [gzipSync(blob), 'gzip'];
          seen.push({ path: req.url ?? '', acceptEncoding, contentEncoding });
          res
            .writeHead(200, { 'content-length': String(body.length), ...(contentEncoding === undefined ? {} : { 'content-encoding': contentEncoding }) })
            .end(body);
        });
      });
      upstream.end();
    });
    const { host } = await listenOnLoopback(t, server);
    const front = await startFaultProxy(t, registry.host, [
      {
        method: 'GET',
        path: /\/blobs\/sha256:/,
        action: { kind: 'redirect', status: 307, location: (path) => `http://${host}/bucket/${path.split('/').pop()}` },
      },
    ]);
    return { front, seen };
  }

  it('a gzip layer that storage labels Content-Encoding: gzip is streamed and verified as sent, not decoded', async (t) => {
    const { front, seen } = await startStorage(t, 'label');
    const puller = client();

    const resolved = await puller.resolveImage(refOn(front.host), 'v1');
    const descriptor = resolved.manifest.layers[0]!;
    const layer = await buffer(await puller.openBlob(refOn(front.host), descriptor));
    const fetched = await puller.fetchBlob(refOn(front.host), descriptor, 1024 * 1024);

    assert.equal(sha256(layer), image.layerDigests[0]);
    assert.equal(layer.length, descriptor.size);
    assert.deepEqual(fetched, layer);
    assert.deepEqual(resolved.config.config?.Env, ['A=1'], 'the config came through storage the same way');
    assert.deepEqual(
      seen.map((s) => [s.path, s.contentEncoding]),
      [
        [`/bucket/${image.configDigest}`, 'gzip'],
        [`/bucket/${descriptor.digest}`, 'gzip'],
        [`/bucket/${descriptor.digest}`, 'gzip'],
      ],
    );
  });

  it('storage that compresses for clients that do not refuse it sends the blob as it is: the client asks for identity', async (t) => {
    const { front, seen } = await startStorage(t, 'negotiate');
    const puller = client();

    const resolved = await puller.resolveImage(refOn(front.host), 'v1');
    const layer = await buffer(await puller.openBlob(refOn(front.host), resolved.manifest.layers[0]!));

    assert.equal(sha256(layer), image.layerDigests[0]);
    assert.deepEqual(
      seen.map((s) => [s.acceptEncoding, s.contentEncoding]),
      [
        ['identity', undefined],
        ['identity', undefined],
      ],
    );
    assert.ok(
      front.requests.every((r) => r.headers['accept-encoding'] === 'identity'),
      'every request to the registry says identity too',
    );
  });
});
