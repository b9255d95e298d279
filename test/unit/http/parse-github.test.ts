import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGitHubWebhook } from '../../../src/forge/parse-github.ts';
import { githubExample, pullRequestComment } from '../../fixtures/webhooks/index.ts';

const repo = { forge: 'github', project: 'Codertocat/Hello-World' } as const;

test('push to a branch becomes a push event (a new branch has no `before`)', () => {
  const payload = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  const delivery = parseGitHubWebhook('push', 'd-1', payload, {});
  assert.equal(delivery.id, 'github:d-1');
  assert.deepEqual(delivery.events, [{ kind: 'push', repo, branch: 'master', after: '6113728f27ae82c7b1a177c8d03f9e96e0adf246' }]);
});

test('push keeps `before` when it is a real commit', () => {
  const payload = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  payload['before'] = 'a'.repeat(40);
  assert.deepEqual(parseGitHubWebhook('push', 'd', payload).events[0], {
    kind: 'push',
    repo,
    branch: 'master',
    after: payload['after'],
    before: 'a'.repeat(40),
  });
});

test('tags and deleted branches are not events', () => {
  const tag = githubExample('push', (p) => p['ref'] === 'refs/tags/simple-tag' && p['deleted'] === false);
  assert.deepEqual(parseGitHubWebhook('push', 'd', tag).events, []);
  const deleted = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  deleted['deleted'] = true;
  deleted['after'] = '0'.repeat(40);
  assert.deepEqual(parseGitHubWebhook('push', 'd', deleted).events, []);
});

test('pull_request opened / reopened / ready_for_review → opened, synchronize → updated', () => {
  for (const [action, expected] of [
    ['opened', 'opened'],
    ['reopened', 'opened'],
    ['ready_for_review', 'opened'],
    ['synchronize', 'updated'],
  ] as const) {
    const payload = githubExample('pull_request', (p) => p['action'] === action);
    const [event] = parseGitHubWebhook('pull_request', 'd', payload).events;
    assert.deepEqual(
      event,
      {
        kind: 'change-request',
        repo,
        number: payload['number'],
        action: expected,
        headSha: payload['pull_request'].head.sha,
        sourceBranch: payload['pull_request'].head.ref,
        targetBranch: payload['pull_request'].base.ref,
        fromFork: false,
      },
      action,
    );
  }
});

test('drafts are still validated', () => {
  const payload = githubExample('pull_request', (p) => p['action'] === 'opened');
  payload['pull_request'].draft = true;
  assert.equal(parseGitHubWebhook('pull_request', 'd', payload).events.length, 1);
});

test('pull_request closed → merged when merged, closed otherwise', () => {
  const closed = githubExample('pull_request', (p) => p['action'] === 'closed');
  assert.equal((parseGitHubWebhook('pull_request', 'd', closed).events[0] as { action: string }).action, 'closed');
  closed['pull_request'].merged = true;
  assert.equal((parseGitHubWebhook('pull_request', 'd', closed).events[0] as { action: string }).action, 'merged');
});

test('a pull request from a fork (or a deleted fork) is marked fromFork', () => {
  const payload = githubExample('pull_request', (p) => p['action'] === 'opened');
  payload['pull_request'].head.repo.full_name = 'someone/Hello-World';
  assert.equal((parseGitHubWebhook('pull_request', 'd', payload).events[0] as { fromFork: boolean }).fromFork, true);
  payload['pull_request'].head.repo = null;
  assert.equal((parseGitHubWebhook('pull_request', 'd', payload).events[0] as { fromFork: boolean }).fromFork, true);
});

test('other pull_request actions are ignored', () => {
  for (const action of ['labeled', 'assigned', 'edited', 'converted_to_draft']) {
    const payload = githubExample('pull_request', (p) => p['action'] === 'labeled');
    payload['action'] = action;
    assert.deepEqual(parseGitHubWebhook('pull_request', 'd', payload).events, [], action);
  }
});

test('a new comment on a pull request becomes a comment event', () => {
  const payload = pullRequestComment('created');
  const [event] = parseGitHubWebhook('issue_comment', 'd', payload).events;
  assert.deepEqual(event, {
    kind: 'comment',
    repo,
    number: payload['issue'].number,
    commentId: String(payload['comment'].id),
    author: { login: 'Codertocat', id: payload['comment'].user.id, isBot: false },
    body: payload['comment'].body,
  });
});

test('bot comments are marked: user.type Bot, or the configured bot login (any case)', () => {
  const payload = pullRequestComment('created');
  payload['comment'].user.type = 'Bot';
  assert.equal((parseGitHubWebhook('issue_comment', 'd', payload).events[0] as { author: { isBot: boolean } }).author.isBot, true);
  payload['comment'].user.type = 'User';
  assert.equal((parseGitHubWebhook('issue_comment', 'd', payload, { botLogin: 'codertocat' }).events[0] as { author: { isBot: boolean } }).author.isBot, true);
  assert.equal((parseGitHubWebhook('issue_comment', 'd', payload, { botLogin: 'other' }).events[0] as { author: { isBot: boolean } }).author.isBot, false);
});

test('edited comments, comments on issues, pings and unknown events are not events', () => {
  assert.deepEqual(parseGitHubWebhook('issue_comment', 'd', pullRequestComment('edited')).events, []);
  assert.deepEqual(parseGitHubWebhook('issue_comment', 'd', pullRequestComment('deleted')).events, []);
  assert.deepEqual(
    parseGitHubWebhook(
      'issue_comment',
      'd',
      githubExample('issue_comment', (p) => p['action'] === 'created'),
    ).events,
    [],
  );
  assert.deepEqual(parseGitHubWebhook('ping', 'd', githubExample('ping')).events, []);
  assert.deepEqual(parseGitHubWebhook('issues', 'd', { action: 'opened' }).events, []);
});

test('malformed payloads never throw', () => {
  for (const payload of [
    null,
    42,
    'x',
    [],
    {},
    { ref: 'refs/heads/main' },
    { pull_request: {}, action: 'opened' },
    { action: 'created', issue: { pull_request: {} } },
  ]) {
    for (const event of ['push', 'pull_request', 'issue_comment']) {
      assert.deepEqual(parseGitHubWebhook(event, 'd', payload).events, []);
    }
  }
  const bad = githubExample('push', (p) => p['ref'] === 'refs/heads/master');
  bad['after'] = 'not-a-sha; rm -rf /';
  assert.deepEqual(parseGitHubWebhook('push', 'd', bad).events, []);
});
