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
});
