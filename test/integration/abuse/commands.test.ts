/**
 * `/reconvert` fails closed: without write access, on forks, when the permission API fails → nothing is
 * converted and the answer says why; edited comments and the bot's own comments are ignored silently.
 * A user with write access on the project's own merge request is the control: that one converts.
 */
import { it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { githubComment } from '../../support/bot-harness.ts';
import { githubRepoDouble, gitlabProjectDouble, startApiDouble } from '../../support/forge-api-double.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { abuseConfig, assertNoSecrets, postGitHub, postGitLab, startAbuseBot } from './support.ts';

async function pushImage(t: TestContext, registry: TestRegistry, repository: string, tag: string): Promise<void> {
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, tag, [{ layers: [await buildTar([{ name: 'content', content: repository }])], config: { Cmd: ['/bin/true'] } }]);
  await pushOciLayout(layout, tag, { host: registry.host, repository, tag });
}

function gitlabNote(iid: number, noteId: number, user: { id: number; username: string }, note: string, action: 'create' | 'update' = 'create') {
  return {
    object_kind: 'note',
    event_type: 'note',
    user,
    project: { id: 42, path_with_namespace: 'unpacked/sync' },
    object_attributes: { id: noteId, note, noteable_type: 'MergeRequest', action, system: false },
    merge_request: { iid },
  };
}

it('/reconvert is refused without write access, on forks and when the permission API fails; edits and bot comments are ignored', async (t) => {
  const registry = await startRegistry(t);
  await pushImage(t, registry, 'sci/a', '1');
  const image = `http://${registry.host}/sci/a:1`;
  const repo = await createGitRepo(t);
  const sha = await repo.commit({ 'recipe.yaml': `version: 1\ncvmfs_repo: unpacked.example.org\ninput:\n  - '${image}'\n` });
  const api = await startApiDouble(t);
  // Registered first, so they win over the doubles' handlers: the permission APIs fail for carol.
  api.expect({ method: 'GET', path: /\/collaborators\/carol\/permission$/, times: Infinity, reply: { status: 500, body: { message: 'Server Error' } } });
  api.expect({ method: 'GET', path: /\/members\/all\/13$/, times: Infinity, reply: { status: 500, body: { message: '500 Internal Server Error' } } });
  const github = githubRepoDouble(api, {
    owner: 'cern',
    repo: 'wishlist',
    permissions: { mallory: 'read', alice: 'write' },
    pulls: [
      { number: 5, headSha: sha },
      { number: 6, headSha: sha, fromFork: true },
    ],
  });
  const gitlab = gitlabProjectDouble(api, {
    project: 'unpacked/sync',
    members: { 11: 30, 12: 20 },
    mergeRequests: [
      { iid: 7, sha },
      { iid: 8, sha, fromFork: true },
    ],
  });
  const bot = await startAbuseBot(t, (root) =>
    abuseConfig(root, [
      { apiUrl: api.url, cloneUrl: repo.url },
      { forge: 'gitlab', apiUrl: api.url, cloneUrl: repo.url },
    ]),
  );
  const published = join(bot.root, 'cvmfs', 'unpacked.example.org', registry.host, 'sci/a:1');
  const command = `/reconvert ${image}`;
  let commentId = 100;
  const comment = (number: number, login: string, body = command) => githubComment('cern/wishlist', number, body, login, commentId++);

  // GitHub.
  assert.equal((await postGitHub(bot, 'issue_comment', comment(5, 'mallory'))).status, 202);
  assert.equal((await postGitHub(bot, 'issue_comment', comment(6, 'alice'))).status, 202);
  assert.equal((await postGitHub(bot, 'issue_comment', comment(5, 'carol'))).status, 202);
  const edited = { ...comment(5, 'alice'), action: 'edited', changes: { body: { from: 'lgtm' } } };
  const own = comment(5, 'ducc-bot');
  const otherBot = comment(5, 'renovate[bot]');
  otherBot.comment.user.type = 'Bot';
  for (const payload of [edited, own, otherBot]) {
    const reply = await postGitHub(bot, 'issue_comment', payload);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.outcome, 'ignored');
  }
  // GitLab.
  assert.equal((await postGitLab(bot, 'Note Hook', gitlabNote(7, 501, { id: 12, username: 'mallory' }, command))).status, 200);
  assert.equal((await postGitLab(bot, 'Note Hook', gitlabNote(8, 502, { id: 11, username: 'alice' }, command))).status, 200);
  assert.equal((await postGitLab(bot, 'Note Hook', gitlabNote(7, 503, { id: 13, username: 'carol' }, command))).status, 200);
  for (const payload of [
    gitlabNote(7, 504, { id: 11, username: 'alice' }, command, 'update'),
    gitlabNote(7, 505, { id: 9000, username: 'ducc-bot' }, command),
  ]) {
    const reply = await postGitLab(bot, 'Note Hook', payload);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.outcome, 'ignored');
  }
  await bot.running.worker.onIdle();

  const answers = github.comments.map((c) => [c.issueNumber, c.body] as const);
  assert.equal(answers.length, 3, JSON.stringify(answers));
  assert.match(answers.find(([, body]) => body.startsWith('@mallory'))![1], /needs write access .*nothing was converted/);
  assert.deepEqual(answers.find(([, body]) => body.startsWith('@alice'))?.[0], 6);
  assert.match(answers.find(([, body]) => body.startsWith('@alice'))![1], /not accepted on merge requests from forks; nothing was converted/);
  assert.match(answers.find(([, body]) => body.startsWith('@carol'))![1], /could not be checked \(the GitHub API failed\); nothing was converted/);
  const notes = gitlab.notes.map((n) => n.body);
  assert.equal(notes.length, 3, JSON.stringify(notes));
  assert.match(
    notes.find((body) => body.startsWith('@mallory'))!,
    /needs write access .*nothing was converted/,
  );
  assert.match(
    notes.find((body) => body.startsWith('@alice'))!,
    /forks; nothing was converted/,
  );
  assert.match(
    notes.find((body) => body.startsWith('@carol'))!,
    /could not be checked \(the GitLab API failed\); nothing was converted/,
  );
  await assert.rejects(lstat(published), { code: 'ENOENT' }, 'nothing was converted');
  await assert.rejects(lstat(join(bot.root, 'cvmfs', 'unpacked.example.org', '.layers')), { code: 'ENOENT' });
  const jobs = await bot.queue();
  assert.deepEqual(jobs, { queued: 0, running: 0, done: 6, failed: 0 }, 'refusals are answers, not failures to retry');

  // The control: write access, the project's own pull request.
  await postGitHub(bot, 'issue_comment', comment(5, 'alice'));
  await bot.running.worker.onIdle();
  assert.equal(github.comments.at(-1)!.body, '@alice 1 reconverted, 0 failed.');
  assert.ok((await lstat(published)).isSymbolicLink());
  assertNoSecrets(JSON.stringify([github.comments, gitlab.notes, github.statuses, gitlab.statuses]), 'comments and statuses');
});
