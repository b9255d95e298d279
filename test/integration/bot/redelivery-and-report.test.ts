/**
 * Issue 17 point 10: a redelivery of a delivery whose job failed runs it again (a delivery id is done only
 * once its jobs succeeded); an error status says what failed in words, without git's output or the bot's
 * local paths; a `/reconvert` result is added to the merge request's report, next to the plan.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTar } from '../../support/build-tar.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { startApiDouble, githubRepoDouble, gitlabProjectDouble } from '../../support/forge-api-double.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { botConfig, githubPush, gitlabMergeRequest, postGitHub, postGitLab, startTestBot } from '../../support/bot-harness.ts';

async function pushImage(t: TestContext, registry: TestRegistry, repository: string, tag: string, content: string): Promise<void> {
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, tag, [{ layers: [await buildTar([{ name: 'content', content }])], config: { Cmd: ['/bin/true'] } }]);
  await pushOciLayout(layout, tag, { host: registry.host, repository, tag });
}

describe('ducc serve, deliveries and reports', () => {
  it('runs a redelivered delivery again once its job failed for good, and its error status says what failed in words', async (t) => {
    const repo = await createGitRepo(t);
    const sha = await repo.commit({ 'recipe.yaml': 'version: 1\ncvmfs_repo: unpacked.example.org\ninput: []\n' });
    const bare = fileURLToPath(repo.url);
    const api = await startApiDouble(t);
    const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist' });
    // One attempt: a job that fails fails for good at once (the real bot tries for about 45 minutes).
    const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }]), undefined, { jobAttempts: 1 });
    await rename(bare, `${bare}.away`);

    const first = await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha), { delivery: 'delivery-7' });
    await bot.worker.onIdle();
    const failed = github.statuses.at(-1)!;
    await rename(`${bare}.away`, bare);
    const redelivered = await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha), { delivery: 'delivery-7' });
    await bot.worker.onIdle();
    const again = await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha), { delivery: 'delivery-7' });

    assert.equal(first.status, 202);
    assert.equal(failed.state, 'error');
    assert.equal(failed.description, "failed: cannot fetch the wish-list repository (see the bot's log)");
    assert.doesNotMatch(failed.description!, new RegExp(`\\n|${bot.root}|fatal:`));
    assert.equal(redelivered.status, 202, 'the redelivery of the failed delivery was queued');
    assert.deepEqual(
      github.statuses.map((s) => s.state),
      ['pending', 'error', 'pending', 'success'],
    );
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as { outcome: string }).outcome, 'duplicate', 'once its job succeeded, the id is done');
  });

  it('adds a /reconvert result to the merge request report and keeps the plan', async (t) => {
    const registry = await startRegistry(t);
    await pushImage(t, registry, 'sci/a', '1', 'a');
    const image = `http://${registry.host}/sci/a:1`;
    const list = `version: 1\nuser: pusher\ncvmfs_repo: unpacked.example.org\ninput:\n  - '${image}'\n`;
    const repo = await createGitRepo(t);
    const main = await repo.commit({ 'recipe.yaml': list });
    const head = await repo.commit({ 'recipe.yaml': `${list}# a comment\n` }, { branch: 'feature-7', from: 'main' });
    await repo.pushChangeRequestRef('refs/merge-requests/7/head', head);
    const api = await startApiDouble(t);
    const gitlab = gitlabProjectDouble(api, { project: 'unpacked/sync', members: { 11: 30 }, mergeRequests: [{ iid: 7, sha: head }] });
    const bot = await startTestBot(t, (root) => botConfig(root, [{ forge: 'gitlab', project: 'unpacked/sync', apiUrl: api.url, cloneUrl: repo.url }]));
    const gitlabPushOf = (after: string) => ({
      object_kind: 'push',
      ref: 'refs/heads/main',
      before: '0'.repeat(40),
      after,
      checkout_sha: after,
      project: { id: 42, path_with_namespace: 'unpacked/sync' },
      commits: [],
      total_commits_count: 0,
    });
    await postGitLab(bot, 'Push Hook', gitlabPushOf(main));
    await postGitLab(bot, 'Merge Request Hook', gitlabMergeRequest('unpacked/sync', 7, 'open', head));
    await bot.worker.onIdle();
    const plan = gitlab.notes.find((n) => n.mergeRequestIid === 7)!.body;

    await postGitLab(bot, 'Note Hook', {
      object_kind: 'note',
      event_type: 'note',
      user: { id: 11, username: 'alice' },
      project: { id: 42, path_with_namespace: 'unpacked/sync' },
      object_attributes: { id: 901, note: '/reconvert', noteable_type: 'MergeRequest', action: 'create', system: false },
      merge_request: { iid: 7 },
    });
    await bot.worker.onIdle();
    const reports = gitlab.notes.filter((n) => n.mergeRequestIid === 7 && n.body.includes('ducc-gitops:report'));

    assert.match(plan, /### ducc-gitops plan for `recipe\.yaml`/);
    assert.equal(reports.length, 1, 'one report, edited in place');
    const report = reports[0]!.body;
    assert.match(report, /### ducc-gitops plan for `recipe\.yaml`/, 'the plan is kept');
    assert.match(report, /### \/reconvert by @alice[\s\S]*1 reconverted, 0 failed/, 'the result is added');
    assert.ok(report.indexOf('ducc-gitops plan') < report.indexOf('/reconvert by @alice'), 'plan first, then the result');
    assert.ok(gitlab.notes.some((n) => n.body === '@alice 1 reconverted, 0 failed.'));
  });
});
