/**
 * Caps on what a registry (or its token service) can make the client read or wait for, with small
 * node:http servers on 127.0.0.1 that answer more, longer or stranger than allowed: token bodies (1 MiB),
 * error bodies (64 KiB, quoted in one short line), manifests without Content-Length (4 MiB), tag lists,
 * blob ranges that do not fit the descriptor, and the DUCC_REGISTRY_* settings.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { buffer } from 'node:stream/consumers';
import { RegistryClient } from '../../../src/registry/client.ts';
import { registrySettingsFromEnv } from '../../../src/registry/settings.ts';
import type { RepositoryRef } from '../../../src/registry/types.ts';
import { listenOnLoopback } from '../../support/loopback-server.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function serve(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ host: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  const { host } = await listenOnLoopback(t, server);
  return { host, requests };
}

const refOn = (host: string): RepositoryRef => ({ scheme: 'http', registry: host, repository: 'team/app' });

/** Writes `chunk` again and again until the client goes away (an endless body). */
function endless(res: ServerResponse, chunk: Buffer): void {
  const pump = () => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', pump);
  };
  res.on('close', () => res.removeAllListeners('drain'));
  pump();
}

test('token-body-capped: a token service answering more than 1 MiB is refused, not buffered', async (t) => {
  const tokens = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"token":"');
    endless(res, Buffer.alloc(64 * 1024, 0x61));
  });
  const registry = await serve(t, (_req, res) => {
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${tokens.host}/token",service="x"` }).end();
  });
  const client = new RegistryClient({ retryBaseMs: 1, maxRetries: 0 });
  await assert.rejects(client.resolveManifest(refOn(registry.host), 'v1'), { code: 'BOT_ERR_REGISTRY_AUTH', message: /answered more than 1048576 bytes/ });
});

test('error-body-capped-and-one-line: an endless error body is cut at 64 KiB; a huge multi-line message is quoted short, on one line', async (t) => {
  const registry = await serve(t, (req, res) => {
    if (req.url?.includes('endless')) {
      res.writeHead(400, { 'content-type': 'application/json' });
      endless(res, Buffer.alloc(16 * 1024, 0x20));
      return;
    }
    const message = `line one\nline two\r\n\u001b[31m${'x'.repeat(30_000)}`;
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'DENIED', message }] }));
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  const started = Date.now();
  await assert.rejects(client.resolveManifest(refOn(registry.host), 'endless'), { code: 'BOT_ERR_REGISTRY', message: /HTTP 400$/ });
  assert.ok(Date.now() - started < 5000);
  await assert.rejects(client.resolveManifest(refOn(registry.host), 'v1'), (error: Error) => {
    assert.match(error.message, /HTTP 400 \(DENIED: line one line two \[31mx+…\)$/);
    assert.ok(!/[\n\r\u001b]/.test(error.message), 'no control characters from the registry');
    assert.ok(error.message.length < 500, `short: ${error.message.length} characters`);
    return true;
  });
});

test('manifest-capped-without-content-length: a chunked manifest over 4 MiB is refused while streaming', async (t) => {
  const registry = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    endless(res, Buffer.alloc(256 * 1024, 0x20));
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  await assert.rejects(client.resolveManifest(refOn(registry.host), 'v1'), { code: 'BOT_ERR_LIMIT', message: /larger than 4194304 bytes/ });
});

test('tag-list-capped: more than 100,000 tags are refused', async (t) => {
  const tags = Array.from({ length: 100_001 }, (_, i) => `t${i}`);
  const registry = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'team/app', tags }));
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  await assert.rejects(client.listTags(refOn(registry.host)), { code: 'BOT_ERR_LIMIT', message: /more than 100000 tags/ });
});

test('range-answer-must-fit-the-descriptor: a resumed 206 with another total size, or a body longer than asked, is refused', async (t) => {
  const blob = Buffer.alloc(300_000, 0x42);
  const descriptor = { mediaType: 'application/octet-stream', digest: sha256(blob), size: blob.length };
  let mode: 'wrong-total' | 'overlong' = 'wrong-total';
  const registry = await serve(t, (req, res) => {
    const range = req.headers.range;
    if (range === undefined) {
      // first attempt: cut after 100,000 bytes
      res.writeHead(200, { 'content-length': String(blob.length) });
      res.write(blob.subarray(0, 100_000), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    const start = Number(/^bytes=(\d+)-$/.exec(range)?.[1]);
    if (mode === 'wrong-total') {
      res
        .writeHead(206, { 'content-range': `bytes ${start}-${blob.length}/${blob.length + 1}`, 'content-length': String(blob.length + 1 - start) })
        .end(Buffer.alloc(blob.length + 1 - start, 0x42));
    } else {
      // claims the right range, sends more than it
      res.writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` });
      res.end(Buffer.concat([blob.subarray(start), Buffer.from('extra')]));
    }
  });
  const client = new RegistryClient({ retryBaseMs: 1 });
  await assert.rejects(buffer(await client.openBlob(refOn(registry.host), descriptor)), { code: 'BOT_ERR_REGISTRY', message: /never spliced in/ });
  mode = 'overlong';
  await assert.rejects(buffer(await client.openBlob(refOn(registry.host), descriptor)), {
    code: 'BOT_ERR_SIZE_MISMATCH',
    message: /more than the 300000 bytes/,
  });
});

test('resume-attempts-bounded: a blob that always breaks off fails after maxRetries resumptions, with position and cause', async (t) => {
  const blob = Buffer.alloc(200_000, 0x43);
  const registry = await serve(t, (req, res) => {
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    res.writeHead(start === 0 ? 200 : 206, {
      'content-length': String(blob.length - start),
      ...(start === 0 ? {} : { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` }),
    });
    res.write(blob.subarray(start, start + 1000), () => setTimeout(() => res.destroy(), 20));
  });
  const client = new RegistryClient({ retryBaseMs: 1, maxRetries: 3 });
  await assert.rejects(buffer(await client.openBlob(refOn(registry.host), { mediaType: 'x', digest: sha256(blob), size: blob.length })), {
    code: 'BOT_ERR_REGISTRY_UNREACHABLE',
    message: /failed at byte 4000 of 200000: .* \(after 4 attempts\)$/,
  });
  assert.equal(registry.requests.length, 4);
});

test('registry-settings-from-environment: DUCC_REGISTRY_TIMEOUT, _RETRIES and _MAX_CONCURRENT are read and checked', async (t) => {
  const registry = await serve(t, () => {
    // never answers
  });
  const saved = { ...process.env };
  t.after(() => {
    for (const key of ['DUCC_REGISTRY_TIMEOUT', 'DUCC_REGISTRY_RETRIES', 'DUCC_REGISTRY_MAX_CONCURRENT']) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  });
  process.env['DUCC_REGISTRY_TIMEOUT'] = '0.2';
  process.env['DUCC_REGISTRY_RETRIES'] = '0';
  const started = Date.now();
  await assert.rejects(new RegistryClient().resolveManifest(refOn(registry.host), 'v1'), {
    code: 'BOT_ERR_REGISTRY_UNREACHABLE',
    message: /timed out: no response within 0\.2 s \(DUCC_REGISTRY_TIMEOUT\)$/,
  });
  assert.ok(Date.now() - started < 3000);
  process.env['DUCC_REGISTRY_TIMEOUT'] = 'soon';
  assert.throws(() => new RegistryClient(), { code: 'BOT_ERR_CONFIG', message: /DUCC_REGISTRY_TIMEOUT must be a positive number of seconds/ });
  process.env['DUCC_REGISTRY_TIMEOUT'] = '1';
  process.env['DUCC_REGISTRY_MAX_CONCURRENT'] = '0';
  assert.throws(() => new RegistryClient(), { code: 'BOT_ERR_CONFIG', message: /DUCC_REGISTRY_MAX_CONCURRENT/ });
});

test('manifest-limits-from-settings: the client applies the layer and index-entry limits of the settings it is given', async (t) => {
  const digest = (i: number) => sha256(Buffer.from(`blob ${i}`));
  const descriptor = (i: number, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip') => ({ mediaType, digest: digest(i), size: 10 });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: descriptor(0, 'application/vnd.oci.image.config.v1+json'),
    layers: [1, 2, 3].map((i) => descriptor(i)),
  });
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [1, 2, 3].map((i) => ({ ...descriptor(i, 'application/vnd.oci.image.manifest.v1+json'), platform: { os: 'linux', architecture: `a${i}` } })),
  });
  const registry = await serve(t, (req, res) => {
    const body = req.url?.endsWith('/index') ? index : manifest;
    res.writeHead(200, { 'content-type': JSON.parse(body).mediaType }).end(body);
  });
  const settings = registrySettingsFromEnv({ DUCC_LIMIT_IMAGE_LAYERS: '2', DUCC_LIMIT_INDEX_ENTRIES: '2' });
  const client = new RegistryClient({ settings, retryBaseMs: 1 });

  await assert.rejects(client.resolveManifest(refOn(registry.host), 'v1'), {
    code: 'BOT_ERR_LIMIT',
    message: /lists 3 layers, more than the limit of 2 \(DUCC_LIMIT_IMAGE_LAYERS\)/,
  });
  await assert.rejects(client.resolveAllManifests(refOn(registry.host), 'index'), {
    code: 'BOT_ERR_LIMIT',
    message: /lists 3 manifests, more than the limit of 2 \(DUCC_LIMIT_INDEX_ENTRIES\)/,
  });
  const roomy = new RegistryClient({ settings: registrySettingsFromEnv({}), retryBaseMs: 1 });
  assert.equal((await roomy.resolveManifest(refOn(registry.host), 'v1')).manifest.layers.length, 3);
});
