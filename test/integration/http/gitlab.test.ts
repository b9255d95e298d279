import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { fixture, fixtureBytes } from '../../fixtures/webhooks/index.ts';
import { GITLAB_TOKEN, rawRequest, send, startTestServer, type TestServer } from './support.ts';

function postGitLab(server: TestServer, event: string, body: Buffer | string, headers: Record<string, string> = {}) {
  return send(`${server.url}/hooks/gitlab`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-gitlab-event': event, 'x-gitlab-token': GITLAB_TOKEN, 'user-agent': 'GitLab/18.1.0', ...headers },
    body,
  });
}

test('right token: a Merge Request Hook is parsed and queued (200, the outcome in the body)', async (t) => {
  const server = await startTestServer(t);
  const reply = await postGitLab(server, 'Merge Request Hook', fixtureBytes('gitlab/merge-request-hook.open.json'), {
    'idempotency-key': 'f3c5e0a4-1111-2222-3333-444455556666',
  });
  assert.equal(reply.status, 200);
  assert.deepEqual(reply.body, { outcome: 'queued', jobs: [1] });
  assert.deepEqual(server.intake.deliveries, [
    {
      id: 'gitlab:f3c5e0a4-1111-2222-3333-444455556666',
      events: [
        {
          kind: 'change-request',
          repo: { forge: 'gitlab', project: 'gitlabhq/gitlab-test' },
          number: 1,
          action: 'opened',
          headSha: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
          sourceBranch: 'ms-viewport',
          targetBranch: 'master',
          fromFork: false,
        },
      ],
    },
  ]);
});

test('push and note hooks; ignored events (commit notes, title-only updates, pipelines) are 200', async (t) => {
  const server = await startTestServer(t);
  assert.equal((await postGitLab(server, 'Push Hook', fixtureBytes('gitlab/push-hook.json'))).body.outcome, 'queued');
  assert.equal(server.intake.deliveries.at(-1)!.events[0]!.kind, 'push');
  assert.equal((await postGitLab(server, 'Note Hook', fixtureBytes('gitlab/note-hook.merge-request.json'))).body.outcome, 'queued');
  assert.equal(server.intake.deliveries.at(-1)!.events[0]!.kind, 'comment');
  for (const [event, file] of [
    ['Note Hook', 'gitlab/note-hook.commit.json'],
    ['Note Hook', 'gitlab/note-hook.merge-request.edited.json'],
    ['Merge Request Hook', 'gitlab/merge-request-hook.update-title-only.json'],
    ['Tag Push Hook', 'gitlab/tag-push-hook.json'],
  ] as const) {
    const reply = await postGitLab(server, event, fixtureBytes(file));
    assert.equal(reply.status, 200, file);
    assert.equal(reply.body.outcome, 'ignored', file);
  }
  const pipeline = await postGitLab(server, 'Pipeline Hook', JSON.stringify({ object_kind: 'pipeline' }));
  assert.equal(pipeline.status, 200);
  assert.equal(pipeline.body.outcome, 'ignored');
});

test('wrong or missing token: 401 and the intake is not called', async (t) => {
  const server = await startTestServer(t);
  const body = fixtureBytes('gitlab/push-hook.json');
  assert.equal((await postGitLab(server, 'Push Hook', body, { 'x-gitlab-token': 'wrong' })).status, 401);
  assert.equal((await postGitLab(server, 'Push Hook', body, { 'x-gitlab-token': `${GITLAB_TOKEN}x` })).status, 401);
  assert.equal((await postGitLab(server, 'Push Hook', body, { 'x-gitlab-token': GITLAB_TOKEN.slice(0, -1) })).status, 401);
  const missing = await send(`${server.url}/hooks/gitlab`, { method: 'POST', headers: { 'x-gitlab-event': 'Push Hook' }, body });
  assert.equal(missing.status, 401);
  assert.equal(server.intake.deliveries.length, 0);
});

test('de-duplication key: Idempotency-Key, else X-Gitlab-Event-UUID, else the body hash', async (t) => {
  const server = await startTestServer(t);
  const body = fixtureBytes('gitlab/push-hook.json');
  await postGitLab(server, 'Push Hook', body, { 'idempotency-key': 'idem-1', 'x-gitlab-event-uuid': 'uuid-1' });
  await postGitLab(server, 'Push Hook', body, { 'x-gitlab-event-uuid': 'uuid-2' });
  await postGitLab(server, 'Push Hook', body);
  assert.deepEqual(
    server.intake.deliveries.map((d) => d.id),
    ['gitlab:idem-1', 'gitlab:uuid-2', `gitlab:${createHash('sha256').update(body).digest('hex')}`],
  );
  // A retry keeps its Idempotency-Key: duplicate, still 200.
  const retry = await postGitLab(server, 'Push Hook', body, { 'idempotency-key': 'idem-1', 'x-gitlab-event-uuid': 'uuid-3' });
  assert.equal(retry.status, 200);
  assert.deepEqual(retry.body, { outcome: 'duplicate' });
});

test('never a 4xx except for the token: bad JSON, gzip, oversized bodies are 200 ignored', async (t) => {
  const server = await startTestServer(t);
  const notJson = await postGitLab(server, 'Push Hook', 'not json');
  assert.equal(notJson.status, 200);
  assert.equal(notJson.body.outcome, 'ignored');
  const gz = gzipSync(fixtureBytes('gitlab/push-hook.json'));
  const gzipped = await rawRequest(server.port, {
    path: '/hooks/gitlab',
    headers: {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'content-length': gz.length,
      'x-gitlab-event': 'Push Hook',
      'x-gitlab-token': GITLAB_TOKEN,
    },
    body: gz,
  });
  assert.equal(gzipped.status, 200);
  const large = await rawRequest(server.port, {
    path: '/hooks/gitlab',
    headers: { 'content-type': 'application/json', 'content-length': 30 * 1024 * 1024, 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': GITLAB_TOKEN },
    body: async function* () {
      yield Buffer.from('{');
    },
  });
  assert.equal(large.status, 200);
  assert.equal(server.intake.deliveries.length, 0);
});

test('a full queue answers 503 (GitLab disables the hook only temporarily for 5xx)', async (t) => {
  const server = await startTestServer(t);
  server.intake.overloaded = true;
  const reply = await postGitLab(server, 'Push Hook', fixtureBytes('gitlab/push-hook.json'));
  assert.equal(reply.status, 503);
  assert.ok(reply.headers.get('retry-after'));
});

test('the bot user of the wish list is recognised in notes', async (t) => {
  const config = (await import('./support.ts')).testConfig();
  config.wishlists[1]!.botUser = 'root';
  const server = await startTestServer(t, { config });
  await postGitLab(server, 'Note Hook', JSON.stringify(fixture('gitlab/note-hook.merge-request.json')));
  assert.equal((server.intake.deliveries[0]!.events[0] as { author: { isBot: boolean } }).author.isBot, true);
});
