/**
 * RegistryClient HTTP behaviour that a stock registry does not show: Bearer token flow, 429/5xx retries,
 * connection resets, redirects to blob storage, pull-through proxies, malformed answers, concurrency.
 * Each test runs small node:http servers on 127.0.0.1.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent } from 'undici';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { RegistryClient } from '../../../src/registry/client.ts';
import { CredentialStore } from '../../../src/registry/credentials.ts';
import type { Descriptor, RepositoryRef } from '../../../src/registry/types.ts';
import { buildTar } from '../../support/build-tar.ts';
import { hasCode } from '../../support/ducc-error.ts';
import { listenOnLoopback } from '../../support/loopback-server.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

interface Recorded {
  method: string;
  url: string;
  authorization: string | undefined;
}

interface FakeServer {
  host: string;
  port: number;
  requests: Recorded[];
}

async function serve(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void | Promise<void>): Promise<FakeServer> {
  const requests: Recorded[] = [];
  const server = createServer(async (req, res) => {
    const body = await buffer(req);
    requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    try {
      await handler(req, res, body);
    } catch (error) {
      res.writeHead(599).end(String(error));
    }
  });
  return { ...(await listenOnLoopback(t, server)), requests };
}

/** A one-layer OCI image held in memory. */
async function makeImage() {
  const layer = gzipSync(await buildTar([{ name: 'greeting', content: 'hello from the fake registry\n'.repeat(50) }]));
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['X=1'] }, rootfs: { type: 'layers', diff_ids: [sha256(Buffer.from('x'))] } }),
  );
  const layerDescriptor: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [layerDescriptor],
    }),
  );
  const blobs = new Map([
    [sha256(layer), layer],
    [sha256(config), config],
  ]);
  return { layer, config, manifest, blobs, layerDescriptor };
}

type Image = Awaited<ReturnType<typeof makeImage>>;

/** Answers manifest and blob GETs for `image` under any repository path; true when it handled the request. */
function serveImage(image: Image, req: IncomingMessage, res: ServerResponse, options: { contentDigest?: boolean } = {}): boolean {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const manifestMatch = /^\/v2\/.+\/manifests\/([^/]+)$/.exec(path);
  if (manifestMatch) {
    const reference = manifestMatch[1]!;
    if (reference !== 'v1' && reference !== sha256(image.manifest)) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
      return true;
    }
    const headers: Record<string, string> = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
    if (options.contentDigest !== false) headers['docker-content-digest'] = sha256(image.manifest);
    res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : image.manifest);
    return true;
  }
  const blobMatch = /^\/v2\/.+\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path);
  if (blobMatch) {
    const blob = image.blobs.get(blobMatch[1]!);
    if (blob === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(req.method === 'HEAD' ? undefined : blob);
    return true;
  }
  return false;
}

const refOn = (server: FakeServer, repository = 'team/app'): RepositoryRef => ({ scheme: 'http', registry: server.host, repository });

test('Bearer flow: challenge with quoted realm, access_token, caching, refresh after revocation', async (t) => {
  const image = await makeImage();
  let issued = 0;
  let validToken = '';
  const tokenServer = await serve(t, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.headers.authorization !== `Basic ${Buffer.from('robot:tok-pass').toString('base64')}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    assert.equal(url.searchParams.get('x'), 'a,b', 'query of the realm is kept');
    assert.equal(url.searchParams.get('service'), 'fake registry');
    assert.equal(url.searchParams.get('scope'), 'repository:team/app:pull');
    issued++;
    validToken = `tok-${issued}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: validToken, expires_in: 300 }));
  });
  const registry = await serve(t, (req, res) => {
    if (req.headers.authorization !== `Bearer ${validToken}` || validToken === '') {
      res
        .writeHead(401, {
          'www-authenticate': `Bearer realm="http://${tokenServer.host}/token?x=a,b",service="fake registry",scope="repository:team/app:pull",error="invalid_token"`,
          'content-type': 'application/json',
        })
        .end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });

  const credentials = new CredentialStore();
  credentials.set(registry.host, { username: 'robot', password: 'tok-pass' });
  const client = new RegistryClient({ credentials, retryBaseMs: 5 });
  const resolved = await client.resolveImage(refOn(registry), 'v1');
  assert.equal(resolved.manifestDigest, sha256(image.manifest));
  assert.deepEqual(resolved.config.config?.Env, ['X=1']);
  assert.deepEqual(await buffer(await client.openBlob(refOn(registry), image.layerDescriptor)), image.layer);
  await client.resolveImage(refOn(registry), 'v1');
  assert.equal(tokenServer.requests.length, 1, 'one token for all requests of the same scope');
  assert.equal(registry.requests.filter((r) => r.authorization === undefined).length, 1, 'only the first request went unauthenticated');

  // The registry stops accepting tok-1: the client gets a fresh token once and carries on.
  validToken = 'revoked';
  await client.resolveImage(refOn(registry), 'v1');
  assert.equal(tokenServer.requests.length, 2);
  assert.equal(validToken, 'tok-2');

  // Concurrent first requests share one token fetch.
  const fresh = new RegistryClient({ credentials, retryBaseMs: 5 });
  const before = tokenServer.requests.length;
  await Promise.all([1, 2, 3, 4].map(() => fresh.resolveImage(refOn(registry), 'v1')));
  assert.equal(tokenServer.requests.length, before + 1);

  // Without credentials the token service refuses: a clear auth error naming registry and repository.
  const anonymous = new RegistryClient({ retryBaseMs: 5 });
  await assert.rejects(
    anonymous.resolveImage(refOn(registry), 'v1'),
    hasCode(
      'BOT_ERR_REGISTRY_AUTH',
      new RegExp(`authentication failed for ${registry.host.replace(/\./g, '\\.')}/team/app: token service .* 401 .*no credentials`),
    ),
  );
});

test('the token response field "token" and the default expiry are understood', async (t) => {
  const image = await makeImage();
  const tokenServer = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'plain-token' }));
  });
  const registry = await serve(t, (req, res) => {
    if (req.headers.authorization !== 'Bearer plain-token') {
      res.writeHead(401, { 'www-authenticate': `bearer realm="http://${tokenServer.host}/t"` }).end();
      return;
    }
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });
  const client = new RegistryClient({ retryBaseMs: 5 });
  await client.resolveImage(refOn(registry), 'v1');
  assert.equal(tokenServer.requests.length, 1);
  const tokenUrl = new URL(tokenServer.requests[0]!.url, 'http://x');
  assert.equal(tokenUrl.searchParams.get('scope'), 'repository:team/app:pull', 'our own scope when the challenge has none');
  assert.equal(tokenServer.requests[0]!.authorization, undefined, 'anonymous token request');
});

test('429 with Retry-After: 1 is retried after a second', async (t) => {
  const image = await makeImage();
  let manifestRequests = 0;
  const registry = await serve(t, (req, res) => {
    if (req.url?.includes('/manifests/') && manifestRequests++ === 0) {
      res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
      return;
    }
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  const started = Date.now();
  const resolved = await client.resolveImage(refOn(registry), 'v1');
  const elapsed = Date.now() - started;
  assert.equal(resolved.manifestDigest, sha256(image.manifest));
  assert.equal(manifestRequests, 2);
  assert.ok(elapsed >= 950, `waited ${elapsed} ms as Retry-After asked`);
  assert.ok(elapsed < 5000);
});

test('5xx is retried a bounded number of times, then reported with the registry error code; PUT is not retried', async (t) => {
  const registry = await serve(t, (_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BOOM_CODE', message: 'exploded' }] }));
  });
  const client = new RegistryClient({ retryBaseMs: 1, maxRetries: 2 });
  await assert.rejects(client.resolveImage(refOn(registry), 'v1'), hasCode('BOT_ERR_REGISTRY', /HTTP 500 \(BOOM_CODE: exploded\).*after 3 attempts/));
  assert.equal(registry.requests.length, 3);

  const before = registry.requests.length;
  await assert.rejects(
    client.pushManifest(refOn(registry), 'v1', Buffer.from('{}'), 'application/vnd.oci.image.manifest.v1+json'),
    hasCode('BOT_ERR_REGISTRY', /HTTP 500/),
  );
  assert.equal(registry.requests.length - before, 1);
});

test('other 4xx answers are BOT_ERR_REGISTRY with status and code, not retried', async (t) => {
  const registry = await serve(t, (_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'NAME_INVALID', message: 'invalid repository name' }] }));
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  await assert.rejects(client.resolveImage(refOn(registry), 'v1'), hasCode('BOT_ERR_REGISTRY', /HTTP 400 \(NAME_INVALID: invalid repository name\)/));
  assert.equal(registry.requests.length, 1);
});

test('a connection reset is retried for GETs', async (t) => {
  const image = await makeImage();
  let first = true;
  const registry = await serve(t, (req, res) => {
    if (first) {
      first = false;
      req.socket.destroy();
      return;
    }
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  const resolved = await client.resolveImage(refOn(registry), 'v1');
  assert.equal(resolved.manifestDigest, sha256(image.manifest));
  assert.ok(registry.requests.length >= 3, 'reset manifest request, retried manifest request, config blob');
});

test('blob redirects: followed, no Authorization to another origin, bounded', async (t) => {
  const image = await makeImage();
  const storage = await serve(t, (req, res) => {
    const digest = new URL(req.url ?? '/', 'http://x').pathname.split('/').pop() ?? '';
    const blob = image.blobs.get(digest);
    if (blob === undefined) res.writeHead(404).end();
    else res.writeHead(200).end(blob);
  });
  const basic = `Basic ${Buffer.from('u:p').toString('base64')}`;
  const registry = await serve(t, (req, res) => {
    if (req.headers.authorization !== basic) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
      return;
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path.endsWith('/loop')) {
      res.writeHead(302, { location: path }).end();
      return;
    }
    const blob = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path);
    if (blob) {
      if (blob[1] === sha256(Buffer.from('loop'))) res.writeHead(307, { location: `/v2/team/app/blobs/${blob[1]}` }).end();
      else res.writeHead(307, { location: `http://${storage.host}/bucket/${blob[1]}?signature=abc` }).end();
      return;
    }
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });
  const credentials = new CredentialStore();
  credentials.set(registry.host, { username: 'u', password: 'p' });
  const client = new RegistryClient({ credentials, retryBaseMs: 1 });
  const resolved = await client.resolveImage(refOn(registry), 'v1');
  const data = await buffer(await client.openBlob(refOn(registry), resolved.manifest.layers[0]!));
  assert.deepEqual(data, image.layer);
  assert.ok(storage.requests.length >= 2);
  assert.ok(
    storage.requests.every((r) => r.authorization === undefined),
    'no credentials sent to blob storage',
  );
  assert.ok(storage.requests.every((r) => r.url.includes('signature=abc')));
  assert.ok(registry.requests.some((r) => r.authorization === basic));

  await assert.rejects(
    client.fetchBlob(refOn(registry), { mediaType: 'x', digest: sha256(Buffer.from('loop')), size: 4 }),
    hasCode('BOT_ERR_REGISTRY', /more than 5 redirects/),
  );
});

test('DUCC_<X>_PROXY sends requests to the pull-through proxy path', async (t) => {
  const image = await makeImage();
  const proxy = await serve(t, (req, res) => {
    if (!req.url?.startsWith('/v2/cache/library/busybox/')) {
      res.writeHead(404).end();
      return;
    }
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });
  const credentials = CredentialStore.fromEnvironment({
    DUCC_AUTH_REGISTRIES: 'MIRROR',
    DUCC_MIRROR_IDENT: 'docker.io',
    DUCC_MIRROR_PROXY: `${proxy.host}/cache`,
  });
  const client = new RegistryClient({ credentials, retryBaseMs: 1 });
  const resolved = await client.resolveImage({ scheme: 'http', registry: 'registry-1.docker.io', repository: 'library/busybox' }, 'v1');
  assert.equal(resolved.manifestDigest, sha256(image.manifest));
  assert.deepEqual(resolved.ref, { scheme: 'http', registry: 'registry-1.docker.io', repository: 'library/busybox' });
  assert.deepEqual(
    proxy.requests.map((r) => r.url),
    ['/v2/cache/library/busybox/manifests/v1', `/v2/cache/library/busybox/blobs/${sha256(image.config)}`],
  );
});

test('blob bodies that do not match their descriptor make the stream error', async (t) => {
  const image = await makeImage();
  const registry = await serve(t, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path.endsWith(image.layerDescriptor.digest)) {
      const altered = Buffer.from(image.layer);
      altered[altered.length - 10] = altered[altered.length - 10]! ^ 1;
      res.writeHead(200).end(altered);
      return;
    }
    if (path.endsWith('/blobs/' + sha256(image.config))) {
      // chunked, longer than announced by the descriptor
      res.writeHead(200);
      res.write(image.config);
      res.end(Buffer.from('trailing garbage'));
      return;
    }
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  const ref = refOn(registry);
  await assert.rejects(buffer(await client.openBlob(ref, image.layerDescriptor)), hasCode('BOT_ERR_DIGEST_MISMATCH'));
  const configDescriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(image.config), size: image.config.length };
  await assert.rejects(buffer(await client.openBlob(ref, configDescriptor)), hasCode('BOT_ERR_SIZE_MISMATCH'));
  await assert.rejects(client.fetchBlob(ref, configDescriptor), hasCode('BOT_ERR_SIZE_MISMATCH'));
  await assert.rejects(client.resolveImage(ref, 'v1'), hasCode('BOT_ERR_SIZE_MISMATCH'));
});

test('schema 1, oversized and mislabelled manifests are refused', async (t) => {
  const image = await makeImage();
  const registry = await serve(t, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path.endsWith('/manifests/old')) {
      res
        .writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' })
        .end(JSON.stringify({ schemaVersion: 1, name: 'team/app', tag: 'old', fsLayers: [] }));
    } else if (path.endsWith('/manifests/huge')) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(Buffer.alloc(5 * 1024 * 1024, 0x20));
    } else if (path.endsWith(`/manifests/${sha256(Buffer.from('pinned'))}`)) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(image.manifest);
    } else if (!serveImage(image, req, res)) {
      res.writeHead(404).end();
    }
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  await assert.rejects(client.resolveImage(refOn(registry), 'old'), hasCode('BOT_ERR_MEDIA_TYPE', /schema 1/));
  await assert.rejects(client.resolveImage(refOn(registry), 'huge'), hasCode('BOT_ERR_LIMIT'));
  await assert.rejects(client.resolveImage(refOn(registry), sha256(Buffer.from('pinned'))), hasCode('BOT_ERR_DIGEST_MISMATCH'));
});

test('headManifest falls back to GET + sha256 without Docker-Content-Digest', async (t) => {
  const image = await makeImage();
  const registry = await serve(t, (req, res) => {
    if (!serveImage(image, req, res, { contentDigest: false })) res.writeHead(404).end();
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  assert.deepEqual(await client.headManifest(refOn(registry), 'v1'), {
    digest: sha256(image.manifest),
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: image.manifest.length,
  });
  assert.deepEqual(
    registry.requests.map((r) => r.method),
    ['HEAD', 'GET'],
  );
  assert.equal(await client.headManifest(refOn(registry), 'absent'), undefined);
});

test('simultaneous requests per registry are limited', async (t) => {
  const image = await makeImage();
  let inFlight = 0;
  let maxInFlight = 0;
  const registry = await serve(t, async (req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 40));
    inFlight--;
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });
  const client = new RegistryClient({ retryBaseMs: 1, maxConcurrentPerRegistry: 2 });
  await Promise.all([1, 2, 3, 4, 5, 6].map(() => client.fetchBlob(refOn(registry), image.layerDescriptor)));
  assert.equal(maxInFlight, 2);
  assert.equal(client.blobRequestCount, 6);
});

test('monolithic upload with a relative Location that already has a query', async (t) => {
  const uploaded = new Map<string, Buffer>();
  const registry = await serve(t, (req, res, body) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'HEAD') {
      res.writeHead(404).end();
    } else if (req.method === 'POST' && url.pathname === '/v2/team/app/blobs/uploads/') {
      res.writeHead(202, { location: '/v2/team/app/blobs/uploads/u-1?_state=abc%3D%3D' }).end();
    } else if (req.method === 'PUT' && url.pathname === '/v2/team/app/blobs/uploads/u-1') {
      assert.equal(url.searchParams.get('_state'), 'abc==');
      uploaded.set(url.searchParams.get('digest') ?? '', body);
      res.writeHead(201).end();
    } else if (req.method === 'PUT' && url.pathname.startsWith('/v2/team/app/manifests/')) {
      assert.equal(req.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
      res.writeHead(201, { 'docker-content-digest': sha256(body) }).end();
    } else {
      res.writeHead(405).end();
    }
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  const data = Buffer.from('blob payload');
  await client.pushBlob(refOn(registry), data, sha256(data));
  assert.deepEqual(uploaded.get(sha256(data)), data);
  const manifest = Buffer.from('{"schemaVersion":2}');
  assert.equal(await client.pushManifest(refOn(registry), 'v9', manifest, 'application/vnd.oci.image.manifest.v1+json'), sha256(manifest));
});

test('https registry: works with a trusted CA, and a redirect down to plain http is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ducc-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-days',
    '1',
    '-keyout',
    keyPath,
    '-out',
    certPath,
  ]);
  const [key, cert] = await Promise.all([readFile(keyPath), readFile(certPath)]);
  const image = await makeImage();
  const plain = await serve(t, (_req, res) => {
    res.writeHead(200).end(image.layer);
  });
  const server = createHttpsServer({ key, cert }, (req, res) => {
    if (req.url?.includes(`/blobs/${image.layerDescriptor.digest}`)) {
      res.writeHead(302, { location: `http://${plain.host}/blob` }).end();
      return;
    }
    if (!serveImage(image, req, res)) res.writeHead(404).end();
  });
  const { host: tlsHost } = await listenOnLoopback(t, server);
  const agent = new Agent({ connect: { ca: cert } });
  t.after(() => agent.close());
  const ref: RepositoryRef = { scheme: 'https', registry: tlsHost, repository: 'team/app' };

  const untrusting = new RegistryClient({ retryBaseMs: 1, maxRetries: 0 });
  await assert.rejects(untrusting.resolveImage(ref, 'v1'), hasCode('BOT_ERR_REGISTRY_UNREACHABLE', /127\.0\.0\.1/));

  const client = new RegistryClient({ dispatcher: agent, retryBaseMs: 1 });
  const resolved = await client.resolveImage(ref, 'v1');
  assert.equal(resolved.manifestDigest, sha256(image.manifest));
  await assert.rejects(client.openBlob(ref, image.layerDescriptor), hasCode('BOT_ERR_REGISTRY', /https to plain http/));
  assert.equal(plain.requests.length, 0);
});
