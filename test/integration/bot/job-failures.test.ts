/**
 * How `ducc serve` handles a job that fails (issue 17 point 9): a temporary failure (the forge API cannot
 * be reached) goes back to the queue with its real cause, to be tried again minutes later; a permanent
 * one (the forge refuses the token) fails at once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startApiDouble } from '../../support/forge-api-double.ts';
import { botConfig, githubPush, postGitHub, startTestBot, type TestBot } from '../../support/bot-harness.ts';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { startFaultProxy } from '../../support/fault-proxy.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { githubRepoDouble } from '../../support/forge-api-double.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import type { Job } from '../../../src/state/types.ts';

const SHA = 'e'.repeat(40);

interface Status {
  queue: { queued: number; running: number; done: number; failed: number };
  queued: Job[];
  failed: Job[];
}

async function status(bot: TestBot): Promise<Status> {
  return (await (await fetch(`${bot.url}/status`)).json()) as Status;
}

describe('ducc serve, when a job fails', () => {
  it('retries a push whose forge API cannot be reached, minutes later, and says why (not "HTTP 500")', async (t) => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: `http://127.0.0.1:${port}` }]));
    const before = Date.now();

    const response = await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', SHA));
    await bot.worker.onIdle();
    const after = await status(bot);

    assert.equal(response.status, 202);
    assert.deepEqual(after.queue, { queued: 1, running: 0, done: 0, failed: 0 });
    const job = after.queued[0]!;
    assert.equal(job.attempts, 1);
    assert.equal(
      job.error,
      `setting status ducc-gitops/publish on cern/wishlist@${SHA}: no answer from the GitHub API: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
    assert.ok(job.notBefore >= before + 30_000, `next try in ${job.notBefore - before} ms`);
  });

  it('fails a push at once when the forge refuses the call (HTTP 403)', async (t) => {
    const api = await startApiDouble(t);
    api.expect({
      method: 'POST',
      path: `/repos/cern/wishlist/statuses/${SHA}`,
      reply: { status: 403, body: { message: 'Resource not accessible by integration' } },
    });
    const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url }]));

    await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', SHA));
    await bot.worker.onIdle();
    const after = await status(bot);

    assert.deepEqual(after.queue, { queued: 0, running: 0, done: 0, failed: 1 });
    const job = after.failed[0]!;
    assert.equal(job.attempts, 1);
    assert.equal(job.error, `setting status ducc-gitops/publish on cern/wishlist@${SHA}: HTTP 403: Resource not accessible by integration`);
    api.assertDone();
  });

  it('tries a push again minutes later when an image failed for a temporary reason (registry 503), not when it is missing', async (t) => {
    const registry = await startRegistry(t);
    for (const name of ['sci/ok', 'sci/flaky']) {
      const layout = join(await tempDir(t), 'layout');
      await writeOciLayout(layout, '1', [{ layers: [await buildTar([{ name: 'f', content: name }])], config: { Cmd: ['/bin/true'] } }]);
      await pushOciLayout(layout, '1', { host: registry.host, repository: name, tag: '1' });
    }
    const proxy = await startFaultProxy(t, registry.host, [{ path: /^\/v2\/sci\/flaky\/manifests\//, action: { kind: 'status', status: 503 } }]);
    const list = (images: string[]) =>
      ['version: 1', 'cvmfs_repo: unpacked.example.org', 'input:', ...images.map((i) => `  - 'http://${proxy.host}/${i}'`), ''].join('\n');
    const repo = await createGitRepo(t);
    const flaky = await repo.commit({ 'recipe.yaml': list(['sci/ok:1', 'sci/flaky:1']) });
    const missing = await repo.commit({ 'recipe.yaml': list(['sci/ok:1', 'sci/missing:1']) });
    const api = await startApiDouble(t);
    const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist' });
    const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }]), undefined);
    const before = Date.now();

    await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', flaky));
    await bot.worker.onIdle();
    const afterFlaky = await status(bot);
    await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', missing, flaky));
    await bot.worker.onIdle();
    const afterMissing = await status(bot);

    assert.deepEqual(
      github.statuses.filter((s) => s.sha === flaky).map((s) => [s.state, s.description]),
      [
        ['pending', 'publishing the wish list…'],
        ['failure', '1 converted, 0 up to date, 1 failed'],
      ],
    );
    const retry = afterFlaky.queued.find((job) => job.payload.kind === 'sync-branch')!;
    assert.equal(retry.error, '1 image failed for a temporary reason; trying again');
    assert.ok(retry.notBefore >= before + 30_000, `next try in ${retry.notBefore - before} ms`);
    assert.equal(github.statuses.filter((s) => s.sha === missing).at(-1)!.state, 'failure');
    assert.equal(
      afterMissing.queued.filter((job) => job.payload.kind === 'sync-branch' && (job.payload as { sha: string }).sha === missing).length,
      0,
      'a missing image is not tried again',
    );
  });
});
