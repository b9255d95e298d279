import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGitLabWebhook } from '../../../src/forge/parse-gitlab.ts';
import { fixture } from '../../fixtures/webhooks/index.ts';

test('Push Hook on a branch → push event', () => {
  const delivery = parseGitLabWebhook('Push Hook', 'key-1', fixture('gitlab/push-hook.json'), {});
  assert.equal(delivery.id, 'gitlab:key-1');
  assert.deepEqual(delivery.events, [
    {
      kind: 'push',
      repo: { forge: 'gitlab', project: 'mike/diaspora' },
      branch: 'master',
      after: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      before: '95790bf891e76fee5e1747ab589903a6a1f80f22',
    },
  ]);
});

test('deleted branches and tag pushes are not events', () => {
  assert.deepEqual(parseGitLabWebhook('Push Hook', 'k', fixture('gitlab/push-hook.branch-deleted.json')).events, []);
  assert.deepEqual(parseGitLabWebhook('Tag Push Hook', 'k', fixture('gitlab/tag-push-hook.json')).events, []);
  // A tag payload sent with a forged Push Hook header: object_kind disagrees.
  assert.deepEqual(parseGitLabWebhook('Push Hook', 'k', fixture('gitlab/tag-push-hook.json')).events, []);
});

const mr = (action: string, headSha: string, fromFork = false) => ({
  kind: 'change-request',
  repo: { forge: 'gitlab', project: 'gitlabhq/gitlab-test' },
  number: 1,
  action,
  headSha,
  sourceBranch: 'ms-viewport',
  targetBranch: 'master',
  fromFork,
});

test('Merge Request Hook: open, reopen → opened; merge → merged; close → closed', () => {
  const open = fixture('gitlab/merge-request-hook.open.json');
  assert.deepEqual(parseGitLabWebhook('Merge Request Hook', 'k', open).events, [mr('opened', 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7')]);
  open['object_attributes'].action = 'reopen';
  assert.deepEqual(parseGitLabWebhook('Merge Request Hook', 'k', open).events, [mr('opened', 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7')]);
  open['object_attributes'].action = 'close';
  assert.deepEqual(parseGitLabWebhook('Merge Request Hook', 'k', open).events, [mr('closed', 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7')]);
  assert.deepEqual(parseGitLabWebhook('Merge Request Hook', 'k', fixture('gitlab/merge-request-hook.merge.json')).events, [
    mr('merged', 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7'),
  ]);
});

test('update is an event only with oldrev (new commits), not for title or label changes', () => {
  assert.deepEqual(parseGitLabWebhook('Merge Request Hook', 'k', fixture('gitlab/merge-request-hook.update-new-commits.json')).events, [
    mr('updated', 'b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327'),
  ]);
  assert.deepEqual(parseGitLabWebhook('Merge Request Hook', 'k', fixture('gitlab/merge-request-hook.update-title-only.json')).events, []);
});

test('approvals and other actions are ignored', () => {
  for (const action of ['approved', 'approval', 'unapproved', 'unapproval', undefined]) {
    const payload = fixture('gitlab/merge-request-hook.open.json');
    payload['object_attributes'].action = action;
    assert.deepEqual(parseGitLabWebhook('Merge Request Hook', 'k', payload).events, [], String(action));
  }
});

test('a merge request from another project is fromFork', () => {
  assert.deepEqual(parseGitLabWebhook('Merge Request Hook', 'k', fixture('gitlab/merge-request-hook.open-from-fork.json')).events, [
    mr('opened', 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7', true),
  ]);
});

const comment = (isBot: boolean) => ({
  kind: 'comment',
  repo: { forge: 'gitlab', project: 'gitlab-org/gitlab-test' },
  number: 1,
  commentId: '1244',
  author: { login: 'root', id: 1, isBot },
  body: '/reconvert',
});

test('Note Hook on a merge request → comment (action create, or missing before GitLab 16.11)', () => {
  assert.deepEqual(parseGitLabWebhook('Note Hook', 'k', fixture('gitlab/note-hook.merge-request.json')).events, [comment(false)]);
  assert.deepEqual(parseGitLabWebhook('Note Hook', 'k', fixture('gitlab/note-hook.merge-request.before-16.11.json')).events, [comment(false)]);
  assert.deepEqual(parseGitLabWebhook('Note Hook', 'k', fixture('gitlab/note-hook.merge-request.json'), { botUsername: 'ROOT' }).events, [comment(true)]);
});

test('edited notes, system notes and notes on commits are ignored', () => {
  assert.deepEqual(parseGitLabWebhook('Note Hook', 'k', fixture('gitlab/note-hook.merge-request.edited.json')).events, []);
  assert.deepEqual(parseGitLabWebhook('Note Hook', 'k', fixture('gitlab/note-hook.commit.json')).events, []);
  const system = fixture('gitlab/note-hook.merge-request.json');
  system['object_attributes'].system = true;
  assert.deepEqual(parseGitLabWebhook('Note Hook', 'k', system).events, []);
});

test('other hooks and malformed payloads give no events and never throw', () => {
  assert.deepEqual(parseGitLabWebhook('Pipeline Hook', 'k', { object_kind: 'pipeline' }).events, []);
  assert.deepEqual(parseGitLabWebhook('Issue Hook', 'k', { object_kind: 'issue' }).events, []);
  for (const payload of [null, 1, 'x', [], {}, { object_attributes: null }, { object_kind: 'push', ref: 'refs/heads/x', after: 'zz' }]) {
    for (const header of ['Push Hook', 'Merge Request Hook', 'Note Hook', '']) assert.deepEqual(parseGitLabWebhook(header, 'k', payload).events, []);
  }
});
