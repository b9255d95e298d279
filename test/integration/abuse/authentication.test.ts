/**
 * Webhooks are authenticated before anything is parsed or queued: forged, malformed and misplaced
 * credentials are answered 401 and the intake never sees the delivery; credentials that cannot be right
 * are refused before a byte of the body is read. No secret reaches the log or an answer.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { githubPush } from '../../support/bot-harness.ts';
import {
  abuseConfig,
  assertNoSecrets,
  distributionPush,
  githubSignature,
  postGitHub,
  postGitLab,
  postRegistry,
  rawPost,
  SECRETS,
  startAbuseBot,
} from './support.ts';

const SHA = 'a'.repeat(40);

it('GitHub: missing, malformed, wrong-length and wrong-algorithm signatures are 401 and never reach the intake', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}]));
  // A push to a branch nobody watches: accepted, it would reach the intake and be ignored there.
  const body = JSON.stringify(githubPush('cern/wishlist', 'unwatched', SHA));
  const hex = githubSignature(body).slice('sha256='.length);
  const sha1 = `sha1=${createHmac('sha1', SECRETS.githubWebhook).update(body).digest('hex')}`;
  const sha512 = `sha512=${createHmac('sha512', SECRETS.githubWebhook).update(body).digest('hex')}`;
  const cases: [string, Record<string, string | null>][] = [
    ['missing', { 'x-hub-signature-256': null }],
    ['empty', { 'x-hub-signature-256': '' }],
    ['no algorithm prefix', { 'x-hub-signature-256': hex }],
    ['not hex', { 'x-hub-signature-256': `sha256=${'z'.repeat(64)}` }],
    ['63 hex digits', { 'x-hub-signature-256': `sha256=${hex.slice(1)}` }],
    ['65 hex digits', { 'x-hub-signature-256': `sha256=${hex}0` }],
    ['128 hex digits', { 'x-hub-signature-256': `sha256=${hex}${hex}` }],
    ['upper-case hex', { 'x-hub-signature-256': `sha256=${hex.toUpperCase()}` }],
    ['SHA-1 HMAC in the SHA-256 header', { 'x-hub-signature-256': sha1 }],
    ['SHA-512 HMAC', { 'x-hub-signature-256': sha512 }],
    ['only the legacy SHA-1 header', { 'x-hub-signature-256': null, 'x-hub-signature': sha1 }],
    ['plain SHA-256 of the body (no key)', { 'x-hub-signature-256': `sha256=${createHash('sha256').update(body).digest('hex')}` }],
    ['wrong secret', { 'x-hub-signature-256': githubSignature(body, 'not-the-secret') }],
    ['signature of another body', { 'x-hub-signature-256': githubSignature(`${body} `) }],
  ];
  for (const [name, headers] of cases) {
    const reply = await postGitHub(bot, 'push', body, { headers });
    assert.equal(reply.status, 401, name);
    assert.match(reply.body.error, /X-Hub-Signature-256/, name);
  }
  assert.deepEqual(bot.accepted, [], 'the intake never saw a forged delivery');
  assert.deepEqual(await bot.queue(), { queued: 0, running: 0, done: 0, failed: 0 });

  // The control: the same body, correctly signed, reaches the intake (and is ignored there).
  const good = await postGitHub(bot, 'push', body);
  assert.equal(good.status, 200);
  assert.equal(good.body.outcome, 'ignored');
  assert.equal(bot.accepted.length, 1);
  assert.equal(bot.logs().match(/webhook refused: bad or missing secret/g)?.length, cases.length);
  assertNoSecrets(bot.logs(), 'the log');
});

it('GitLab: wrong, missing, empty, overlong and misplaced tokens are 401 and never reach the intake', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{ forge: 'gitlab' }]));
  const payload = {
    object_kind: 'push',
    ref: 'refs/heads/unwatched',
    before: '0'.repeat(40),
    after: SHA,
    project: { id: 42, path_with_namespace: 'unpacked/sync' },
    commits: [],
  };
  const token = SECRETS.gitlabWebhook;
  const cases: [string, Record<string, string | null>][] = [
    ['missing', { 'x-gitlab-token': null }],
    ['empty', { 'x-gitlab-token': '' }],
    ['wrong', { 'x-gitlab-token': 'not-the-token' }],
    ['overlong (8 KiB)', { 'x-gitlab-token': 'x'.repeat(8192) }],
    ['the token with a suffix', { 'x-gitlab-token': `${token}x` }],
    ['a prefix of the token', { 'x-gitlab-token': token.slice(0, -1) }],
    ['the token repeated', { 'x-gitlab-token': `${token}${token}` }],
    ['different case', { 'x-gitlab-token': token.toUpperCase() }],
    ['the GitHub secret', { 'x-gitlab-token': SECRETS.githubWebhook }],
    ['the token in Authorization instead', { 'x-gitlab-token': null, authorization: `Bearer ${token}` }],
  ];
  for (const [name, headers] of cases) {
    const reply = await postGitLab(bot, 'Push Hook', payload, { headers });
    assert.equal(reply.status, 401, name);
    assert.match(reply.body.error, /X-Gitlab-Token/, name);
    assert.ok(!JSON.stringify(reply.body).includes(token), name);
  }
  assert.deepEqual(bot.accepted, []);
  assert.deepEqual(await bot.queue(), { queued: 0, running: 0, done: 0, failed: 0 });

  const good = await postGitLab(bot, 'Push Hook', payload);
  assert.equal(good.status, 200);
  assert.equal(good.body.outcome, 'ignored');
  assert.equal(bot.accepted.length, 1);
});

it('registry hooks: wrong or misplaced secrets are 401 (404 for the wrong URL shape), the path secret is never logged', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}]));
  const envelope = { events: [distributionPush({ repository: 'sci/nothing', tag: '1' })] };
  const hub = { push_data: { tag: '1', pusher: 'x' }, repository: { repo_name: 'sci/nothing', namespace: 'sci', name: 'nothing' } };
  const post = (path: string, body: unknown, authorization?: string | null) =>
    postRegistry(bot, body, { path, ...(authorization === undefined ? {} : { authorization }) });

  for (const [name, authorization] of [
    ['missing', null],
    ['empty', ''],
    ['wrong', 'Bearer not-the-secret'],
    ['prefix', `Bearer ${SECRETS.registryHeader.slice(0, -1)}`],
    ['suffix', `Bearer ${SECRETS.registryHeader}x`],
    ['Basic scheme', `Basic ${Buffer.from(`x:${SECRETS.registryHeader}`).toString('base64')}`],
    ['the path secret', `Bearer ${SECRETS.registryPath}`],
  ] as const) {
    assert.equal((await post('/hooks/registry/distribution/local', envelope, authorization)).status, 401, name);
  }
  // The header secret in the URL of a header-kind hook: no such route shape.
  assert.equal((await post(`/hooks/registry/distribution/local/${SECRETS.registryHeader}`, envelope)).status, 404);
  // Docker Hub: the secret belongs in the path, nowhere else.
  assert.equal((await post('/hooks/registry/dockerhub/hub', hub, null)).status, 401);
  assert.equal((await post(`/hooks/registry/dockerhub/hub?secret=${SECRETS.registryPath}`, hub, null)).status, 401);
  assert.equal((await post('/hooks/registry/dockerhub/hub', hub, `Bearer ${SECRETS.registryPath}`)).status, 401);
  assert.equal((await post(`/hooks/registry/dockerhub/hub/${SECRETS.registryPath.slice(0, -1)}`, hub, null)).status, 401);
  assert.equal((await post(`/hooks/registry/dockerhub/hub/${SECRETS.registryPath}x`, hub, null)).status, 401);
  assert.equal((await post(`/hooks/registry/quay/hub/${SECRETS.registryPath}`, hub, null)).status, 404, 'kind and name must agree');
  assert.deepEqual(bot.accepted, []);

  // Controls: the right secrets reach the intake.
  assert.equal((await post('/hooks/registry/distribution/local', envelope)).status, 202);
  assert.equal((await post(`/hooks/registry/dockerhub/hub/${SECRETS.registryPath}`, hub, null)).status, 202);
  assert.equal(bot.accepted.length, 2);
  // Logged lines name the route pattern, never the URL that holds the secret.
  assert.match(bot.logs(), /\/hooks\/registry\/:kind\/:name\/:secret/);
  assertNoSecrets(bot.logs(), 'the log');
});

it('a request without valid credentials is refused before its body is read', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}, { forge: 'gitlab' }]));
  // A 20 MiB body is announced (under the limit), 16 bytes are sent, the rest never comes.
  const announced = 20 * 1024 * 1024;
  const stalled = async function* () {
    yield Buffer.from('{"zen":"hello"} ');
    await new Promise((resolve) => setTimeout(resolve, 10_000).unref());
  };
  const cases: [string, string, Record<string, string | number>][] = [
    ['GitHub without a signature', '/hooks/github', { 'x-github-event': 'push' }],
    ['GitHub with a malformed signature', '/hooks/github', { 'x-github-event': 'push', 'x-hub-signature-256': 'sha1=0123' }],
    ['GitLab with a wrong token', '/hooks/gitlab', { 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': 'wrong' }],
    ['distribution with a wrong secret', '/hooks/registry/distribution/local', { authorization: 'Bearer wrong' }],
    ['Docker Hub with a wrong path secret', '/hooks/registry/dockerhub/hub/wrong-secret-wrong-secret-wrong', {}],
  ];
  for (const [name, path, headers] of cases) {
    const result = await rawPost(bot.port, path, { 'content-type': 'application/json', 'content-length': announced, ...headers }, stalled);
    assert.equal(result.status, 401, name);
    assert.ok(result.answeredAfterMs < 1000, `${name}: answered after ${result.answeredAfterMs} ms`);
    assert.notEqual(result.closedAfterMs, undefined, `${name}: the connection is closed`);
  }
  assert.deepEqual(bot.accepted, []);
});
