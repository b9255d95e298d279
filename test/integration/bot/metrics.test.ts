/**
 * /metrics per wish list (issue 17 point 13): images converted, up to date, failed and removed, jobs that
 * failed for good, and when the wish list was last published without (and with) failures — from the
 * state database, so a restart keeps them.
 */
import { it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { startApiDouble, githubRepoDouble } from '../../support/forge-api-double.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { botConfig, githubPush, postGitHub, startTestBot } from '../../support/bot-harness.ts';

async function pushImage(t: TestContext, registry: TestRegistry, repository: string): Promise<void> {
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, '1', [{ layers: [await buildTar([{ name: 'f', content: repository }])], config: { Cmd: ['/bin/true'] } }]);
  await pushOciLayout(layout, '1', { host: registry.host, repository, tag: '1' });
}

/** The samples of one metric: `{labels} value` → value. */
async function samples(url: string, name: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (match) found.set(match[1] ?? '', Number(match[2]));
  }
  return found;
}

it('/metrics counts conversions and failures per wish list and says when it was last published without failures', async (t) => {
  const registry = await startRegistry(t);
  await pushImage(t, registry, 'sci/a');
  const list = (images: string[]) =>
    ['version: 1', 'cvmfs_repo: unpacked.example.org', 'input:', ...images.map((i) => `  - 'http://${registry.host}/${i}'`), ''].join('\n');
  const repo = await createGitRepo(t);
  const broken = await repo.commit({ 'recipe.yaml': list(['sci/a:1', 'sci/missing:1']) });
  const fixed = await repo.commit({ 'recipe.yaml': list(['sci/a:1']) });
  const api = await startApiDouble(t);
  githubRepoDouble(api, { owner: 'cern', repo: 'wishlist' });
  const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }]));
  const before = Date.now() / 1000;
  const initial = await samples(bot.url, 'ducc_images_total');

  await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', broken));
  await bot.worker.onIdle();
  const afterFailure = await samples(bot.url, 'ducc_wishlist_last_failure_timestamp_seconds');
  const successBeforeFix = await samples(bot.url, 'ducc_wishlist_last_success_timestamp_seconds');
  await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', fixed, broken));
  await bot.worker.onIdle();
  const images = await samples(bot.url, 'ducc_images_total');
  const success = await samples(bot.url, 'ducc_wishlist_last_success_timestamp_seconds');
  const failedJobs = await samples(bot.url, 'ducc_failed_jobs_total');

  assert.equal(initial.get('{wishlist="unpacked",result="converted"}'), 0, 'a configured wish list is listed from the start');
  assert.ok(afterFailure.get('{wishlist="unpacked"}')! >= before);
  assert.equal(successBeforeFix.size, 0, 'no success yet');
  assert.deepEqual(Object.fromEntries(images), {
    '{wishlist="unpacked",result="converted"}': 1,
    '{wishlist="unpacked",result="up_to_date"}': 1,
    '{wishlist="unpacked",result="failed"}': 1,
    '{wishlist="unpacked",result="removed"}': 0,
  });
  assert.ok(success.get('{wishlist="unpacked"}')! >= afterFailure.get('{wishlist="unpacked"}')!);
  assert.equal(failedJobs.get('{wishlist="unpacked"}'), 0);
});
