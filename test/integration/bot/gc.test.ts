/**
 * The bot's side of garbage collection: an MR that removes an entry shows the bytes a gc will reclaim
 * after the grace period; a scheduled gc job collects the repository and /metrics, /status and the
 * status page show its result, the repository's bytes and the garbage's.
 */
import { it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { startApiDouble, githubRepoDouble, gitlabProjectDouble } from '../../support/forge-api-double.ts';
import { botConfig, githubPush, gitlabMergeRequest, gitlabPush, postGitHub, postGitLab, startTestBot } from '../../support/bot-harness.ts';

/** A small image whose own layer holds `bytes` bytes. */
async function pushImage(t: TestContext, registry: TestRegistry, repository: string, tag: string, bytes: number): Promise<number> {
  const layout = join(await tempDir(t), 'layout');
  const tar = await buildTar([{ name: 'content', content: Buffer.alloc(bytes, repository) }]);
  await writeOciLayout(layout, tag, [{ layers: [tar], config: { Cmd: ['/bin/true'] } }]);
  await pushOciLayout(layout, tag, { host: registry.host, repository, tag });
  return tar.length;
}

const wishlist = (registry: TestRegistry, images: string[]) =>
  ['version: 1', 'cvmfs_repo: unpacked.example.org', 'input:', ...images.map((i) => `  - 'http://${registry.host}/${i}'`), ''].join('\n');

it('an MR removing an entry shows the bytes gc will reclaim after the grace period', async (t) => {
  const registry = await startRegistry(t);
  await pushImage(t, registry, 'sci/keep', '1', 1000);
  const dropBytes = await pushImage(t, registry, 'sci/drop', '1', 30_000);
  const repo = await createGitRepo(t);
  const main = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/keep:1', 'sci/drop:1']) });
  const head = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/keep:1']) }, { branch: 'feature-3', from: 'main' });
  await repo.pushChangeRequestRef('refs/merge-requests/3/head', head);
  const api = await startApiDouble(t);
  const gitlab = gitlabProjectDouble(api, {
    project: 'unpacked/sync',
    mergeRequests: [{ iid: 3, sha: head, sourceBranch: 'feature-3', targetBranch: 'main' }],
  });
  const bot = await startTestBot(t, (root) => botConfig(root, [{ forge: 'gitlab', project: 'unpacked/sync', apiUrl: api.url, cloneUrl: repo.url }]));
  await postGitLab(bot, 'Push Hook', gitlabPush('unpacked/sync', 'main', main));
  await bot.worker.onIdle();

  await postGitLab(bot, 'Merge Request Hook', gitlabMergeRequest('unpacked/sync', 3, 'open', head));
  await bot.worker.onIdle();

  const report = gitlab.notes.find((n) => n.mergeRequestIid === 3)!.body;
  const freed = `${(dropBytes / 1024).toFixed(1)} KiB`;
  assert.match(report, new RegExp(`➖ remove \\| \`http://127\\.0\\.0\\.1:\\d+/sci/drop:1\` \\|  \\|  \\| frees ${freed.replace('.', '\\.')} after gc \\|`));
  assert.match(report, new RegExp(`The removals free ${freed.replace('.', '\\.')} once gc runs after the grace period\\.`));
});

it('a gc job collects the repository; /metrics, /status and the status page show the last run and the bytes', async (t) => {
  const registry = await startRegistry(t);
  await pushImage(t, registry, 'sci/a', '1', 2000);
  const bBytes = await pushImage(t, registry, 'sci/b', '1', 40_000);
  const repo = await createGitRepo(t);
  const base = await repo.commit({ 'recipe.yaml': wishlist(registry, []) });
  const first = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/a:1', 'sci/b:1']) });
  const api = await startApiDouble(t);
  githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
  const bot = await startTestBot(t, (root) =>
    botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }], { gc: { intervalHours: 24, gracePeriod: '7d', cvmfsGc: false } }),
  );
  await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', first, base));
  await bot.worker.onIdle();
  const second = await repo.commit({ 'recipe.yaml': wishlist(registry, ['sci/a:1']) });
  await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', second, first));
  await bot.worker.onIdle();

  await bot.bot.scheduleGc();
  await bot.worker.onIdle();

  const metrics = await (await fetch(`${bot.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}\\{repository="unpacked\\.example\\.org"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
  assert.equal(value('ducc_gc_last_run_success'), 1);
  assert.equal(value('ducc_garbage_bytes'), bBytes, 'b’s layer waits for its grace period');
  assert.ok(value('ducc_repository_bytes') > bBytes);
  assert.equal(value('ducc_gc_last_removed_bytes'), 0);
  assert.ok(Math.abs(value('ducc_gc_last_run_timestamp_seconds') - Date.now() / 1000) < 3600);
  const status = (await (await fetch(`${bot.url}/status`)).json()) as { gc: { repository: string; ok: boolean; pending: number }[] };
  assert.deepEqual(
    status.gc.map((run) => [run.repository, run.ok, run.pending]),
    [['unpacked.example.org', true, 2]],
  );
  const page = await (await fetch(`${bot.url}/`)).text();
  assert.match(page, /<h2>Garbage collection<\/h2>/);
  assert.match(page, /<td><code>unpacked\.example\.org<\/code><\/td>/);
});
