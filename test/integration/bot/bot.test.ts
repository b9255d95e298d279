import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { waitFor } from '../../support/wait-for.ts';
import { startApiDouble, githubRepoDouble, gitlabProjectDouble } from '../../support/forge-api-double.ts';
import {
  botConfig,
  githubComment,
  githubPush,
  gitlabMergeRequest,
  gitlabPush,
  postGitHub,
  postGitLab,
  startTestBot,
  REGISTRY_SECRET,
} from '../../support/bot-harness.ts';

/** Pushes a small distinct image to the test registry. */
async function pushImage(t: TestContext, registry: TestRegistry, repository: string, tag: string, content: string): Promise<void> {
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, tag, [{ layers: [await buildTar([{ name: 'content', content }])], config: { Cmd: ['/bin/true'] } }]);
  await pushOciLayout(layout, tag, { host: registry.host, repository, tag });
}

function wishlist(registry: TestRegistry, images: string[]): string {
  return ['version: 1', 'user: pusher', 'cvmfs_repo: unpacked.example.org', 'input:', ...images.map((i) => `  - 'http://${registry.host}/${i}'`), ''].join(
    '\n',
  );
}

describe('ducc serve', () => {
  it('publishes the two images a signed GitHub push adds, sets a success status, ignores a redelivery and a forged signature', async (t) => {
    const registry = await startRegistry(t);
    await pushImage(t, registry, 'sci/a', '1', 'a');
    await pushImage(t, registry, 'sci/b', '1', 'b');
    const repo = await createGitRepo(t);
    const base = await repo.commit({ 'recipe.yaml': wishlist(registry, []) });
    const sha = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/a:1', 'sci/b:1']) });
    const api = await startApiDouble(t);
    const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
    const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }]));

    const response = await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha, base), { delivery: 'delivery-1' });
    assert.equal(response.status, 202);
    await bot.worker.onIdle();

    const mine = github.statuses.filter((s) => s.sha === sha);
    assert.deepEqual(
      mine.map((s) => s.state),
      ['pending', 'success'],
    );
    assert.equal(mine[1]!.context, 'ducc-gitops/publish');
    assert.match(mine[1]!.description ?? '', /^2 converted, 0 up to date, 0 failed$/);
    const repoRoot = join(bot.root, 'cvmfs', 'unpacked.example.org');
    for (const name of ['sci/a:1', 'sci/b:1']) assert.ok((await lstat(join(repoRoot, registry.host, name))).isSymbolicLink());

    const again = await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha, base), { delivery: 'delivery-1' });
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as { outcome: string }).outcome, 'duplicate');
    const forged = await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha, base), { secret: 'not-the-secret' });
    assert.equal(forged.status, 401);
    await bot.worker.onIdle();
    assert.equal(github.statuses.filter((s) => s.sha === sha).length, 2);
  });

  it('publishes on a GitLab push, and removing an entry unlinks its public name', async (t) => {
    const registry = await startRegistry(t);
    await pushImage(t, registry, 'sci/a', '1', 'a');
    await pushImage(t, registry, 'sci/b', '1', 'b');
    const repo = await createGitRepo(t);
    const first = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/a:1', 'sci/b:1']) });
    const api = await startApiDouble(t);
    const gitlab = gitlabProjectDouble(api, { project: 'unpacked/sync' });
    const bot = await startTestBot(t, (root) => botConfig(root, [{ forge: 'gitlab', project: 'unpacked/sync', apiUrl: api.url, cloneUrl: repo.url }]));

    assert.equal((await postGitLab(bot, 'Push Hook', gitlabPush('unpacked/sync', 'main', first))).status, 200);
    await bot.worker.onIdle();
    const second = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/a:1']) });
    await postGitLab(bot, 'Push Hook', gitlabPush('unpacked/sync', 'main', second));
    await bot.worker.onIdle();

    assert.deepEqual(
      gitlab.statuses.filter((s) => s.sha === first).map((s) => s.state),
      ['running', 'success'],
    );
    const last = gitlab.statuses.filter((s) => s.sha === second).at(-1)!;
    assert.equal(last.state, 'success');
    assert.match(last.description ?? '', /0 converted, 1 up to date, 1 removed, 0 failed/);
    const repoRoot = join(bot.root, 'cvmfs', 'unpacked.example.org');
    assert.ok((await lstat(join(repoRoot, registry.host, 'sci/a:1'))).isSymbolicLink());
    await assert.rejects(lstat(join(repoRoot, registry.host, 'sci/b:1')), { code: 'ENOENT' });
    await assert.rejects(lstat(join(repoRoot, '.metadata', registry.host, 'sci/b:1')), { code: 'ENOENT' });
    assert.equal((await postGitLab(bot, 'Push Hook', gitlabPush('unpacked/sync', 'main', second), { token: 'wrong' })).status, 401);
  });

  it('reports a merge request with an unresolvable image as failed, naming its line, and turns green once fixed', async (t) => {
    const registry = await startRegistry(t);
    await pushImage(t, registry, 'sci/base', '1', 'shared');
    await pushImage(t, registry, 'sci/good', '1', 'good');
    const repo = await createGitRepo(t);
    await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/base:1']) });
    const bad = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/base:1', 'sci/good:1', 'sci/missing:1']) }, { branch: 'feature-7', from: 'main' });
    await repo.pushChangeRequestRef('refs/merge-requests/7/head', bad);
    const api = await startApiDouble(t);
    const gitlab = gitlabProjectDouble(api, {
      project: 'unpacked/sync',
      mergeRequests: [{ iid: 7, sha: bad, sourceBranch: 'feature-7', targetBranch: 'main' }],
    });
    const bot = await startTestBot(t, (root) => botConfig(root, [{ forge: 'gitlab', project: 'unpacked/sync', apiUrl: api.url, cloneUrl: repo.url }]));

    await postGitLab(bot, 'Merge Request Hook', gitlabMergeRequest('unpacked/sync', 7, 'open', bad));
    await bot.worker.onIdle();

    const failed = gitlab.statuses.filter((s) => s.sha === bad).at(-1)!;
    assert.equal(failed.state, 'failed');
    assert.equal(failed.name, 'ducc-gitops/plan');
    const report = gitlab.notes.filter((n) => n.mergeRequestIid === 7);
    assert.equal(report.length, 1);
    assert.match(report[0]!.body, /❌ error \| `http:\/\/127\.0\.0\.1:\d+\/sci\/missing:1` \| 7 \|/);
    assert.match(report[0]!.body, /➕ add \| `http:\/\/127\.0\.0\.1:\d+\/sci\/good:1` \| 6 \| 1 \/ 0 \|/);

    const fixed = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/base:1', 'sci/good:1']) }, { branch: 'feature-7' });
    await repo.pushChangeRequestRef('refs/merge-requests/7/head', fixed);
    await postGitLab(bot, 'Merge Request Hook', gitlabMergeRequest('unpacked/sync', 7, 'update', fixed, bad));
    await bot.worker.onIdle();

    const green = gitlab.statuses.filter((s) => s.sha === fixed).at(-1)!;
    assert.equal(green.state, 'success');
    const notes = gitlab.notes.filter((n) => n.mergeRequestIid === 7);
    assert.equal(notes.length, 1, 'the report is edited in place');
    assert.match(notes[0]!.body, /1 to add, 0 to update, 0 to remove, 0 failed\*\* — 1 new layers/);
    assert.doesNotMatch(notes[0]!.body, /missing/);
  });

  it('refuses /reconvert from a user without write access and reconverts for one with it', async (t) => {
    const registry = await startRegistry(t);
    await pushImage(t, registry, 'sci/a', '1', 'a');
    const repo = await createGitRepo(t);
    const sha = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/a:1']) });
    const api = await startApiDouble(t);
    const github = githubRepoDouble(api, {
      owner: 'cern',
      repo: 'wishlist',
      botLogin: 'ducc-bot',
      permissions: { mallory: 'read', alice: 'write' },
      pulls: [{ number: 5, headSha: sha, state: 'merged', mergeCommitSha: sha }],
    });
    const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }]));
    await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha));
    await bot.worker.onIdle();
    const before = await readlink(join(bot.root, 'cvmfs/unpacked.example.org', registry.host, 'sci/a:1'));
    // The push came from merged PR #5: its report shows what was published.
    const published = github.comments.filter((c) => c.issueNumber === 5);
    assert.equal(published.length, 1);
    assert.match(published[0]!.body, new RegExp(`Published at ${sha.slice(0, 12)}[\\s\\S]*1 converted, 0 up to date, 0 failed`));

    await postGitHub(bot, 'issue_comment', githubComment('cern/wishlist', 5, '/reconvert', 'mallory', 1001));
    await bot.worker.onIdle();

    const refusal = github.comments.filter((c) => c.issueNumber === 5 && c.body.startsWith('@mallory'));
    assert.equal(refusal.length, 1);
    assert.match(refusal[0]!.body, /needs write access.*nothing was converted/);

    await postGitHub(bot, 'issue_comment', githubComment('cern/wishlist', 5, `/reconvert http://${registry.host}/sci/a:1`, 'alice', 1002));
    await bot.worker.onIdle();
    const answer = github.comments.filter((c) => c.issueNumber === 5 && c.body.startsWith('@alice'));
    assert.equal(answer.length, 1);
    assert.match(answer[0]!.body, /^@alice 1 reconverted, 0 failed\.$/);
    const report = github.comments.find((c) => c.issueNumber === 5 && c.body.includes('/reconvert by @alice'));
    assert.ok(report, 'the report names the reconversion');
    assert.equal(await readlink(join(bot.root, 'cvmfs/unpacked.example.org', registry.host, 'sci/a:1')), before);
  });

  it('reconverts only the wish whose tag moved when the registry notifies a push', async (t) => {
    const api = await startApiDouble(t);
    githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
    const repo = await createGitRepo(t);
    // The registry posts its real notifications to the bot; the bot starts first so its port is known.
    const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }]));
    const botUrl = bot.url;
    const registry = await startRegistry(t, {
      notifications: {
        endpoints: [
          {
            name: 'ducc',
            url: `${botUrl}/hooks/registry/distribution/local`,
            headers: { Authorization: [`Bearer ${REGISTRY_SECRET}`] },
            timeout: '2s',
            threshold: 3,
            backoff: '100ms',
          },
        ],
      },
    });
    await pushImage(t, registry, 'sci/moving', 'latest', 'v1');
    await pushImage(t, registry, 'sci/still', '1', 'still');
    const sha = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/moving:latest', 'sci/still:1']) });
    await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha));
    await bot.worker.onIdle();
    const linkBefore = await readlink(join(bot.root, 'cvmfs/unpacked.example.org', registry.host, 'sci/moving:latest'));
    const stillBefore = await lstat(join(bot.root, 'cvmfs/unpacked.example.org', registry.host, 'sci/still:1'));

    await pushImage(t, registry, 'sci/moving', 'latest', 'v2');
    await waitFor(
      async () => (await readlink(join(bot.root, 'cvmfs/unpacked.example.org', registry.host, 'sci/moving:latest'))) !== linkBefore,
      20_000,
      'the public symlink to move after the registry push',
    );
    await bot.worker.onIdle();

    const stillAfter = await lstat(join(bot.root, 'cvmfs/unpacked.example.org', registry.host, 'sci/still:1'));
    assert.equal(stillAfter.ino, stillBefore.ino, 'the other wish was not touched');
    assert.equal(stillAfter.mtimeMs, stillBefore.mtimeMs);
  });
});
