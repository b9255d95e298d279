/**
 * Hostile bodies: oversized (declared or chunked without end), compressed, and trickled slower than
 * the request timeout. The server answers and closes; it neither buffers past the limit nor waits for
 * the sender; nothing reaches the intake.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { deflateSync, gzipSync } from 'node:zlib';
import { githubPush } from '../../support/bot-harness.ts';
import { LINGER_MAX_MS } from '../../../src/http/webhook-common.ts';
import { webhookBodyBytesHeld } from '../../../src/http/body.ts';
import { WEBHOOK_BODIES_MAX_BYTES_VARIABLE } from '../../../src/config/settings.ts';
import { abuseConfig, distributionPush, githubSignature, postGitHub, rawPost, SECRETS, startAbuseBot, waitFor } from './support.ts';

const MiB = 1024 * 1024;
const LIMIT = 25 * MiB;
const SHA = 'b'.repeat(40);
const WELL_FORMED_SIGNATURE = `sha256=${'0'.repeat(64)}`;

const stalledAfter = (first: Buffer, ms = 10_000) =>
  async function* () {
    yield first;
    await new Promise((resolve) => setTimeout(resolve, ms).unref());
  };

it('a declared Content-Length of 30 MiB is refused at once (413; GitLab: 200 ignored) and the connection closed', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}, { forge: 'gitlab' }]));
  const length = 30 * MiB;
  const cases: [string, string, Record<string, string>, number][] = [
    ['GitHub', '/hooks/github', { 'x-github-event': 'push', 'x-hub-signature-256': WELL_FORMED_SIGNATURE }, 413],
    ['distribution', '/hooks/registry/distribution/local', { authorization: `Bearer ${SECRETS.registryHeader}` }, 413],
    ['Docker Hub', `/hooks/registry/dockerhub/hub/${SECRETS.registryPath}`, {}, 413],
    // GitLab disables a hook for good after repeated 4xx: refused bodies are answered 200 "ignored".
    ['GitLab', '/hooks/gitlab', { 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': SECRETS.gitlabWebhook }, 200],
  ];
  for (const [name, path, headers, status] of cases) {
    const result = await rawPost(
      bot.port,
      path,
      { 'content-type': 'application/json', 'content-length': length, ...headers },
      stalledAfter(Buffer.from('{"a":')),
    );
    assert.equal(result.status, status, name);
    assert.match(result.body, /larger than 26214400 bytes/, name);
    assert.ok(result.answeredAfterMs < 1000, `${name}: answered after ${result.answeredAfterMs} ms`);
    assert.notEqual(result.closedAfterMs, undefined, `${name}: connection closed`);
  }
  assert.deepEqual(bot.accepted, []);
});

it('a chunked body that goes on past 25 MiB gets 413 and a closed connection, without being buffered', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}]));
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  const endless = async function* () {
    for (;;) yield chunk;
  };
  const cases: [string, string, Record<string, string>][] = [
    // A well-formed (but wrong) signature: the body must be read before it can be checked.
    ['GitHub', '/hooks/github', { 'x-github-event': 'push', 'x-hub-signature-256': WELL_FORMED_SIGNATURE }],
    ['distribution', '/hooks/registry/distribution/local', { authorization: `Bearer ${SECRETS.registryHeader}` }],
  ];
  for (const [name, path, headers] of cases) {
    const baseline = process.memoryUsage();
    let peak = 0;
    const sampler = setInterval(() => {
      const now = process.memoryUsage();
      peak = Math.max(peak, now.arrayBuffers + now.heapUsed - baseline.arrayBuffers - baseline.heapUsed);
    }, 5);
    // A sender that stops once it has an answer, as HTTP clients do; the server closes when it goes quiet.
    const result = await rawPost(bot.port, path, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...headers }, endless, {
      stopOnAnswer: true,
    });
    clearInterval(sampler);
    assert.equal(result.status, 413, name);
    assert.notEqual(result.closedAfterMs, undefined, `${name}: the server closed the connection`);
    assert.ok(result.sent < LIMIT + 16 * MiB, `${name}: ${result.sent} bytes sent before the answer`);
    // The server keeps at most the limit (it has to, to check a signature); never what keeps coming.
    assert.ok(peak < LIMIT + 24 * MiB, `${name}: memory grew by ${Math.round(peak / MiB)} MiB`);
  }
  // A sender that ignores the answer and never stops still reads its 413, and is cut off.
  for (const [name, path, headers] of cases) {
    const result = await rawPost(bot.port, path, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...headers }, endless);
    assert.equal(result.status, 413, `${name}, sender ignoring the answer`);
    assert.notEqual(result.closedAfterMs, undefined, `${name}, sender ignoring the answer: connection closed`);
    assert.ok(
      result.closedAfterMs! - result.answeredAfterMs < LINGER_MAX_MS + 1000,
      `${name}: cut off ${result.closedAfterMs! - result.answeredAfterMs} ms after the answer`,
    );
  }
  assert.deepEqual(bot.accepted, []);
  // The server still works.
  assert.equal((await postGitHub(bot, 'push', githubPush('cern/wishlist', 'unwatched', SHA))).status, 200);
});

it('the body bytes held by all requests together are capped: past the cap a request gets 503 with Retry-After, and the server goes on', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}]), { env: { [WEBHOOK_BODIES_MAX_BYTES_VARIABLE]: '4MiB' } });
  const headers = {
    'content-type': 'application/json',
    'transfer-encoding': 'chunked',
    'x-github-event': 'push',
    'x-hub-signature-256': WELL_FORMED_SIGNATURE,
  };
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  // A sender of a wrongly signed body that pauses after 3 MiB: the server must hold it to check it.
  let resume!: () => void;
  const paused = new Promise<void>((resolve) => (resume = resolve));
  const first = rawPost(bot.port, '/hooks/github', headers, async function* () {
    for (let i = 0; i < 12; i++) yield chunk;
    await paused;
    yield chunk;
  });
  await waitFor(() => webhookBodyBytesHeld() >= 3 * MiB, 5000, 'the first body is held');
  let mostHeld = 0;
  const sampler = setInterval(() => (mostHeld = Math.max(mostHeld, webhookBodyBytesHeld())), 1);
  const second = await rawPost(
    bot.port,
    '/hooks/github',
    headers,
    async function* () {
      for (;;) yield chunk;
    },
    { stopOnAnswer: true },
  );
  assert.equal(second.status, 503);
  assert.equal(second.headers['retry-after'], '60');
  assert.match(second.body, /too many webhook bodies .*DUCC_WEBHOOK_BODIES_MAX_BYTES/);
  clearInterval(sampler);
  assert.ok(mostHeld <= 4 * MiB, `the server held ${mostHeld} body bytes at once, more than the 4 MiB cap`);
  // The sender never stops: it got its answer early. What it wrote meanwhile sits in the kernel's socket
  // buffers (up to net.ipv4.tcp_wmem's maximum, 4 MiB here, plus the receive side), not in the server.
  assert.ok(second.sent < 16 * MiB, `${second.sent} bytes sent before the answer`);
  // The first one is unaffected: it ends, is checked (wrong signature: 401), and its bytes are given back.
  resume();
  assert.equal((await first).status, 401);
  await waitFor(() => webhookBodyBytesHeld() === 0, 5000, 'all body bytes given back');
  assert.deepEqual(bot.accepted, []);
  assert.match(bot.logs(), /"outcome":"overloaded"/);
  assert.equal((await postGitHub(bot, 'push', githubPush('cern/wishlist', 'unwatched', SHA))).status, 200);
});

it('compressed request bodies are refused (415; GitLab: 200 ignored) even when correctly signed', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}, { forge: 'gitlab' }]));
  const json = JSON.stringify(githubPush('cern/wishlist', 'unwatched', SHA));
  const gzipped = gzipSync(json);
  for (const [encoding, bytes] of [
    ['gzip', gzipped],
    ['x-gzip', gzipped],
    ['deflate', deflateSync(json)],
    ['br', Buffer.from(json)],
    ['gzip, identity', gzipped],
  ] as const) {
    const headers = { 'content-type': 'application/json', 'content-encoding': encoding, 'content-length': bytes.length };
    const once = async function* () {
      yield bytes;
    };
    const github = await rawPost(bot.port, '/hooks/github', { ...headers, 'x-github-event': 'push', 'x-hub-signature-256': githubSignature(bytes) }, once);
    assert.equal(github.status, 415, `GitHub ${encoding}`);
    const registry = await rawPost(bot.port, '/hooks/registry/distribution/local', { ...headers, authorization: `Bearer ${SECRETS.registryHeader}` }, once);
    assert.equal(registry.status, 415, `distribution ${encoding}`);
    const gitlab = await rawPost(bot.port, '/hooks/gitlab', { ...headers, 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': SECRETS.gitlabWebhook }, once);
    assert.equal(gitlab.status, 200, `GitLab ${encoding}`);
    assert.match(gitlab.body, /"outcome":"ignored".*Content-Encoding/, `GitLab ${encoding}`);
  }
  assert.deepEqual(bot.accepted, []);
  // identity is no compression: accepted.
  assert.equal((await postGitHub(bot, 'push', json, { headers: { 'content-encoding': 'identity' } })).status, 200);
  assert.equal(bot.accepted.length, 1);
});

it('slow senders are cut off by the request and header timeouts; the server keeps serving', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}, { forge: 'gitlab' }]), { timeouts: { headersTimeoutMs: 400, requestTimeoutMs: 800 } });
  const body = Buffer.from(JSON.stringify({ events: [distributionPush({ repository: 'sci/slow', tag: '1' })] }));
  // One byte every 100 ms: the whole body would take minutes.
  const trickle = async function* () {
    for (const byte of body) {
      yield Buffer.from([byte]);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const cases: [string, string, Record<string, string>][] = [
    ['GitHub', '/hooks/github', { 'x-github-event': 'push', 'x-hub-signature-256': WELL_FORMED_SIGNATURE }],
    ['GitLab', '/hooks/gitlab', { 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': SECRETS.gitlabWebhook }],
    ['distribution', '/hooks/registry/distribution/local', { authorization: `Bearer ${SECRETS.registryHeader}` }],
  ];
  const started = performance.now();
  const results = await Promise.all(
    cases.map(([, path, headers]) => rawPost(bot.port, path, { 'content-type': 'application/json', 'content-length': body.length, ...headers }, trickle)),
  );
  for (const [i, [name]] of cases.entries()) {
    const result = results[i]!;
    assert.ok(result.status === 408 || result.status === undefined, `${name}: ${result.status}`);
    assert.notEqual(result.closedAfterMs, undefined, `${name}: connection closed`);
    assert.ok(result.closedAfterMs! >= 700 && result.closedAfterMs! < 2000, `${name}: closed after ${result.closedAfterMs} ms`);
    assert.ok(result.sent < body.length, name);
  }

  // Headers trickled one line at a time (slowloris): cut off by the header timeout.
  const slowloris = await new Promise<{ ms: number; answer: string }>((resolve) => {
    const socket = connect(bot.port, '127.0.0.1');
    let answer = '';
    const lines = ['POST /hooks/github HTTP/1.1\r\n', 'Host: 127.0.0.1\r\n', ...Array.from({ length: 100 }, (_, i) => `X-Padding-${i}: ${i}\r\n`)];
    let timer: NodeJS.Timeout | undefined;
    const next = () => {
      const line = lines.shift();
      if (line === undefined || socket.destroyed) return;
      socket.write(line);
      timer = setTimeout(next, 100);
    };
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - started2, answer });
    });
    const started2 = performance.now();
    next();
  });
  assert.ok(slowloris.ms >= 300 && slowloris.ms < 1500, `slowloris closed after ${Math.round(slowloris.ms)} ms`);
  assert.ok(slowloris.answer === '' || slowloris.answer.startsWith('HTTP/1.1 408'), slowloris.answer);

  assert.deepEqual(bot.accepted, []);
  assert.ok(performance.now() - started < 4000);
  // Legitimate deliveries still get through.
  assert.equal((await postGitHub(bot, 'push', githubPush('cern/wishlist', 'unwatched', SHA))).status, 200);
  assert.equal(bot.accepted.length, 1);
});
