import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { githubExample, pullRequestComment } from '../../fixtures/webhooks/index.ts';
import { GITHUB_PREVIOUS_SECRET, postGitHub, rawRequest, signGitHub, startTestServer } from './support.ts';

const repo = { forge: 'github', project: 'Codertocat/Hello-World' };

test('a signed push is parsed and queued: 202', async (t) => {
  const server = await startTestServer(t);
  const payload = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  const started = Date.now();
  const reply = await postGitHub(server, 'push', payload, { deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958' });
  assert.ok(Date.now() - started < 1000);
  assert.equal(reply.status, 202);
  assert.deepEqual(reply.body, { outcome: 'queued', jobs: [1] });
  assertJsonAnswer(reply.headers);
  assert.deepEqual(server.intake.deliveries, [
    {
      id: 'github:72d3162e-cc78-11e3-81ab-4c9367dc0958',
      events: [{ kind: 'push', repo, branch: 'master', after: '6113728f27ae82c7b1a177c8d03f9e96e0adf246' }],
    },
  ]);
  // Matched as express matched it: any case, trailing slash, query string.
  const again = await postGitHub(server, 'push', payload, { deliveryId: 'other-id', path: '/Hooks/GitHub/?from=test' });
  assert.equal(again.status, 202);
  assert.equal(server.intake.deliveries.at(-1)!.id, 'github:other-id');
});

test('pull_request opened / synchronize / closed (merged) reach the intake as change requests', async (t) => {
  const server = await startTestServer(t);
  const merged = githubExample('pull_request', (p) => p['action'] === 'closed');
  merged['pull_request'].merged = true;
  for (const [payload, action] of [
    [githubExample('pull_request', (p) => p['action'] === 'opened'), 'opened'],
    [githubExample('pull_request', (p) => p['action'] === 'synchronize'), 'updated'],
    [githubExample('pull_request', (p) => p['action'] === 'closed'), 'closed'],
    [merged, 'merged'],
  ] as const) {
    const reply = await postGitHub(server, 'pull_request', payload);
    assert.equal(reply.status, 202, action);
    const event = server.intake.deliveries.at(-1)!.events[0] as { kind: string; action: string; headSha: string };
    assert.equal(event.kind, 'change-request');
    assert.equal(event.action, action);
    assert.equal(event.headSha, payload['pull_request'].head.sha);
  }
});

test('comments: created on a PR → comment event; edited → ignored (200); the bot user is marked', async (t) => {
  const server = await startTestServer(t);
  const created = pullRequestComment('created');
  assert.equal((await postGitHub(server, 'issue_comment', created)).status, 202);
  assert.deepEqual(server.intake.deliveries.at(-1)!.events, [
    {
      kind: 'comment',
      repo,
      number: 1,
      commentId: String(created['comment'].id),
      author: { login: 'Codertocat', id: created['comment'].user.id, isBot: false },
      body: created['comment'].body,
    },
  ]);
  const edited = await postGitHub(server, 'issue_comment', pullRequestComment('edited'));
  assert.equal(edited.status, 200);
  assert.equal(edited.body.outcome, 'ignored');
  assert.deepEqual(server.intake.deliveries.at(-1)!.events, []);
  // The configured botUser of the wish list for this repository (ducc-bot).
  const own = pullRequestComment('created');
  own['comment'].user.login = 'ducc-bot';
  await postGitHub(server, 'issue_comment', own);
  assert.equal((server.intake.deliveries.at(-1)!.events[0] as { author: { isBot: boolean } }).author.isBot, true);
});

test('ping: 200 ignored', async (t) => {
  const server = await startTestServer(t);
  const reply = await postGitHub(server, 'ping', githubExample('ping'));
  assert.equal(reply.status, 200);
  assert.equal(reply.body.outcome, 'ignored');
});

test('forged, missing, tampered and SHA-1-only signatures: 401 and the intake is not called', async (t) => {
  const server = await startTestServer(t);
  const payload = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  const body = JSON.stringify(payload);
  const sha1 = `sha1=${createHmac('sha1', 'github-secret-for-tests-0123456789').update(body).digest('hex')}`;
  const cases = [
    ['wrong secret', { secret: 'not-the-secret' }],
    ['missing', { signature: null }],
    ['garbage', { signature: 'sha256=zzz' }],
    ['uppercase hex', { signature: (await signGitHub(body)).toUpperCase() }],
    ['sha1 only', { signature: null, headers: { 'x-hub-signature': sha1 } }],
    ['sha1 value in the sha256 header', { signature: sha1 }],
    ['signature of another body', { signature: await signGitHub(`${body} `) }],
  ] as const;
  for (const [name, options] of cases) {
    const reply = await postGitHub(server, 'push', body, options);
    assert.equal(reply.status, 401, name);
  }
  assert.equal(server.intake.deliveries.length, 0);
  assert.match(server.logs(), /webhook refused: bad or missing secret/);
});

test('secret rotation: the previous secret (<NAME>_PREVIOUS) is still accepted', async (t) => {
  const server = await startTestServer(t);
  const payload = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  assert.equal((await postGitHub(server, 'push', payload, { secret: GITHUB_PREVIOUS_SECRET })).status, 202);
  assert.equal(server.intake.deliveries.length, 1);
});

test('a redelivery (same X-GitHub-Delivery) is answered 200 duplicate', async (t) => {
  const server = await startTestServer(t);
  const payload = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  assert.equal((await postGitHub(server, 'push', payload, { deliveryId: 'same' })).status, 202);
  const again = await postGitHub(server, 'push', payload, { deliveryId: 'same' });
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, { outcome: 'duplicate' });
});

test('a full queue answers 503 with Retry-After', async (t) => {
  const server = await startTestServer(t);
  server.intake.overloaded = true;
  const reply = await postGitHub(
    server,
    'push',
    githubExample('push', (p) => p['ref'] === 'refs/heads/master'),
  );
  assert.equal(reply.status, 503);
  assert.equal(reply.body.outcome, 'overloaded');
  assert.ok(Number(reply.headers.get('retry-after')) > 0);
  assertJsonAnswer(reply.headers);
  const refused = await postGitHub(
    server,
    'push',
    githubExample('push', (p) => p['ref'] === 'refs/heads/master'),
    { secret: 'not the secret' },
  );
  assert.equal(refused.status, 401);
  assertJsonAnswer(refused.headers);
});

/** Webhook answers are JSON, never sniffed or cached, with an exact length. */
function assertJsonAnswer(headers: Headers): void {
  assert.equal(headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(headers.get('x-content-type-options'), 'nosniff');
  assert.equal(headers.get('cache-control'), 'no-store');
  assert.match(headers.get('content-length') ?? '', /^\d+$/);
}

test('form-encoded deliveries (payload=<json>) are verified over the raw body and parsed', async (t) => {
  const server = await startTestServer(t);
  const payload = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const reply = await postGitHub(server, 'push', body, { headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(reply.status, 202);
  assert.equal(server.intake.deliveries[0]!.events[0]!.kind, 'push');
});

test('a verified body that is not JSON is 400; a missing event header is 400', async (t) => {
  const server = await startTestServer(t);
  assert.equal((await postGitHub(server, 'push', 'not json')).status, 400);
  assert.equal((await postGitHub(server, '', '{}', { headers: { 'x-github-event': '' } })).status, 400);
  assert.equal(server.intake.deliveries.length, 0);
});

test('an oversized declared body is refused with 413 before it is read', async (t) => {
  const server = await startTestServer(t);
  const started = Date.now();
  const reply = await rawRequest(server.port, {
    path: '/hooks/github',
    headers: {
      'content-type': 'application/json',
      'content-length': 26 * 1024 * 1024,
      'x-github-event': 'push',
      'x-hub-signature-256': `sha256=${'0'.repeat(64)}`,
    },
    // Only a few bytes are ever sent: the answer must not wait for the rest.
    body: async function* () {
      yield Buffer.from('{"a":');
      await new Promise((r) => setTimeout(r, 5000).unref());
    },
  });
  assert.equal(reply.status, 413);
  assert.ok(Date.now() - started < 2000);
  assert.equal(server.intake.deliveries.length, 0);
});

test('an oversized chunked body (no Content-Length) is cut at the limit: 413', async (t) => {
  const server = await startTestServer(t);
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  const reply = await rawRequest(server.port, {
    path: '/hooks/github',
    headers: {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
      'x-github-event': 'push',
      'x-hub-signature-256': `sha256=${'0'.repeat(64)}`,
    },
    body: async function* () {
      for (let i = 0; i < 30; i++) yield chunk;
    },
  });
  assert.ok(reply.status === 413 || reply.status === 'closed', String(reply.status));
  assert.equal(server.intake.deliveries.length, 0);
});

test('a gzip-encoded body is refused with 415', async (t) => {
  const server = await startTestServer(t);
  const body = JSON.stringify(githubExample('push', (p) => p['ref'] === 'refs/heads/master'));
  const compressed = gzipSync(body);
  const reply = await rawRequest(server.port, {
    path: '/hooks/github',
    headers: {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'content-length': compressed.length,
      'x-github-event': 'push',
      'x-github-delivery': 'gz',
      'x-hub-signature-256': await signGitHub(body),
    },
    body: compressed,
  });
  assert.equal(reply.status, 415);
  assert.equal(server.intake.deliveries.length, 0);
});
