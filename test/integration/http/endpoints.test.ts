import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { githubExample } from '../../fixtures/webhooks/index.ts';
import { buildApp } from '../../../src/http/app.ts';
import { SqliteStateStore } from '../../../src/state/sqlite-store.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { FakeIntake, postGitHub, send, startTestServer, testConfig, testEnv } from './support.ts';

test('GET /healthz', async (t) => {
  const server = await startTestServer(t);
  const reply = await send(`${server.url}/healthz`, {});
  assert.equal(reply.status, 200);
  assert.deepEqual(reply.body, { status: 'ok' });
});

test('GET /readyz follows isReady and shutdown', async (t) => {
  const server = await startTestServer(t);
  assert.equal((await send(`${server.url}/readyz`, {})).status, 200);
  server.state.ready = false;
  assert.equal((await send(`${server.url}/readyz`, {})).status, 503);
  server.state.ready = true;
  server.state.shuttingDown = true;
  const draining = await send(`${server.url}/readyz`, {});
  assert.equal(draining.status, 503);
  assert.equal(draining.body.status, 'shutting down');
});

test('GET /status: version, shutdown flag, queue counts and jobs from the store', async (t) => {
  const server = await startTestServer(t);
  await server.store.enqueue({ kind: 'reconcile', wishlist: 'hello' });
  await server.store.enqueue({ kind: 'sync-branch', wishlist: 'hello', sha: 'a'.repeat(40) });
  const running = await server.store.claimNext(Date.now() + 1);
  assert.ok(running);
  const reply = await send(`${server.url}/status`, {});
  assert.equal(reply.status, 200);
  assert.equal(reply.body.version, '1.2.3-test');
  assert.equal(reply.body.shuttingDown, false);
  assert.deepEqual(reply.body.queue, { queued: 1, running: 1, done: 0, failed: 0 });
  assert.deepEqual(
    reply.body.running.map((job: { id: number }) => job.id),
    [running.id],
  );
  assert.equal(reply.body.queued.length, 1);
});

test('GET /metrics: webhook counters and duration, queue gauges, in its own registry', async (t) => {
  const server = await startTestServer(t);
  await server.store.enqueue({ kind: 'reconcile', wishlist: 'hello' });
  await postGitHub(
    server,
    'push',
    githubExample('push', (p) => p['ref'] === 'refs/heads/master'),
  );
  await postGitHub(server, 'push', '{}', { secret: 'wrong' });
  const reply = await send(`${server.url}/metrics`, {});
  assert.equal(reply.status, 200);
  assert.match(reply.headers.get('content-type') ?? '', /text\/plain/);
  const text = String(reply.body);
  assert.match(text, /ducc_webhooks_total\{source="github",outcome="queued"\} 1/);
  assert.match(text, /ducc_webhooks_total\{source="github",outcome="unauthorized"\} 1/);
  assert.match(text, /ducc_webhook_duration_seconds_count\{source="github"\} 2/);
  assert.match(text, /ducc_jobs\{status="queued"\} 1/);
  assert.match(text, /ducc_build_info\{version="1.2.3-test"\} 1/);
  // A second app has its own counters (no global registry).
  const other = await startTestServer(t);
  assert.doesNotMatch(String((await send(`${other.url}/metrics`, {})).body), /ducc_webhooks_total\{/);
});

test('GET /: the status page escapes every value from wish lists and the queue', async (t) => {
  const server = await startTestServer(t);
  const evil = 'docker://evil.example.org/x:<script>alert(1)</script>';
  await server.store.upsertPublished({
    wishlist: 'hello',
    cvmfsRepo: 'unpacked.example.org',
    input: evil,
    image: evil,
    manifestDigest: 'sha256:"><img src=x onerror=alert(2)>',
    configDigest: 'sha256:0',
    publicPath: '/cvmfs/unpacked.example.org/<b>x</b>',
    flatPath: '/cvmfs/unpacked.example.org/.flat/x',
    updatedAt: Date.UTC(2026, 0, 2, 3, 4, 5),
    lastResult: 'error',
    lastError: "failed: <iframe src='javascript:alert(3)'>",
  });
  await server.store.enqueue({ kind: 'registry-push', registry: 'r.example.org', repository: 'a/b', tag: '<script>t</script>' });
  const reply = await send(`${server.url}/`, {});
  assert.equal(reply.status, 200);
  assert.match(reply.headers.get('content-type') ?? '', /text\/html/);
  assert.match(reply.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  const html = String(reply.body);
  for (const raw of ['<script', '<img', '<iframe', '<b>x</b>']) assert.ok(!html.includes(raw), `${raw} left unescaped`);
  assert.ok(html.includes('&#60;script&#62;alert(1)&#60;/script&#62;'));
  assert.ok(html.includes('2026-01-02T03:04:05.000Z'));
  assert.ok(html.includes('<h2>hello</h2>'));
});

test('unknown paths: 404 without echoing the path', async (t) => {
  const server = await startTestServer(t);
  const reply = await send(`${server.url}/nope/<secret-looking-thing>`, {});
  assert.equal(reply.status, 404);
  assert.ok(!JSON.stringify(reply.body).includes('secret-looking'));
});

test('webhook paths: only POST reaches a hook (other methods are 404), a bad parameter encoding is 400', async (t) => {
  const server = await startTestServer(t);
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const reply = await send(`${server.url}/hooks/github`, { method });
    assert.equal(reply.status, 404, method);
    assert.deepEqual(reply.body, { error: 'not found' });
    assert.equal(reply.headers.get('x-content-type-options'), 'nosniff');
  }
  const bad = await send(`${server.url}/hooks/registry/dockerhub/hub/%E0%A4%A`, { method: 'POST', body: '{}' });
  assert.equal(bad.status, 400);
  assert.deepEqual(bad.body, { error: 'bad request' });
  assert.equal(server.intake.deliveries.length, 0);
  assert.match(server.logs(), /"route":"\/hooks\/registry\/:kind\/:name\/:secret","status":400,"outcome":"invalid"/);
});

test('buildApp refuses to start when a secret needed by the configuration is missing', () => {
  const store = SqliteStateStore.open(':memory:');
  try {
    const env = testEnv();
    delete env['GH_SECRET'];
    delete env['GH_SECRET_PREVIOUS'];
    delete env['REG_HUB'];
    assert.throws(
      () => buildApp({ config: testConfig(), env, intake: new FakeIntake(), store, logger: createLogger({ human: false, level: 'silent' }), version: 'x' }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'BOT_ERR_CONFIG');
        assert.match(error.message, /GH_SECRET/);
        assert.match(error.message, /registry hook 'hub': REG_HUB/);
        return true;
      },
    );
  } finally {
    store.close();
  }
});

test('endpoints without a secret and without wish lists are disabled (404)', async (t) => {
  const env = testEnv();
  delete env['GL_TOKEN'];
  const config = testConfig();
  config.wishlists = config.wishlists.filter((w) => w.forge === 'github');
  const server = await startTestServer(t, { config, env });
  const reply = await send(`${server.url}/hooks/gitlab`, { method: 'POST', headers: { 'x-gitlab-token': '' }, body: '{}' });
  assert.equal(reply.status, 404);
});

test('slow senders are cut off (headersTimeout)', async (t) => {
  const server = await startTestServer(t, { listen: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
  const started = Date.now();
  const closed = await new Promise<string>((resolve) => {
    const socket = connect(server.port, '127.0.0.1', () => socket.write('POST /hooks/github HTTP/1.1\r\nHost: x\r\n'));
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('close', () => resolve(data));
    socket.on('error', () => resolve(data));
  });
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  assert.match(closed, /^HTTP\/1\.1 408/);
});

test('slow bodies are cut off (requestTimeout)', async (t) => {
  const server = await startTestServer(t, { listen: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
  const started = Date.now();
  await new Promise<void>((resolve) => {
    const socket = connect(server.port, '127.0.0.1', () =>
      socket.write('POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nX-GitHub-Event: push\r\n\r\n{'),
    );
    const timer = setInterval(() => socket.writable && socket.write(' '), 100);
    socket.on('close', () => {
      clearInterval(timer);
      resolve();
    });
    socket.on('error', () => undefined);
  });
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  assert.equal(server.intake.deliveries.length, 0);
});
