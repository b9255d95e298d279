import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { DEFAULT_MAX_ATTEMPTS, JobWorker, retryDelayMs, type JobHandler, type JobOutcome, type JobWorkerOptions } from '../../../src/jobs/worker.ts';
import { ForgeError } from '../../../src/forge/forge-error.ts';
import { DuccError } from '../../../src/util/errors.ts';
import { SqliteStateStore } from '../../../src/state/sqlite-store.ts';
import type { Job, JobPayload, StateStore } from '../../../src/state/types.ts';

type After = { after: (fn: () => void | Promise<void>) => void };

const silent = pino({ level: 'silent' });
const sync = (sha: string): JobPayload => ({ kind: 'sync-branch', wishlist: 'main', sha });

function openStore(t: After): SqliteStateStore {
  const dir = mkdtempSync(join(tmpdir(), 'ducc-worker-'));
  const store = SqliteStateStore.open(join(dir, 'state.db'));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

function makeWorker(t: After, options: Partial<JobWorkerOptions> & Pick<JobWorkerOptions, 'store' | 'handle'>): JobWorker {
  const worker = new JobWorker({ logger: silent, pollMs: 5, ...options });
  t.after(() => worker.stop(0));
  return worker;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('retry delay: over minutes, 30 s doubling up to 15 minutes', () => {
  assert.equal(retryDelayMs(1), 30_000);
  assert.equal(retryDelayMs(2), 60_000);
  assert.equal(retryDelayMs(3), 120_000);
  assert.equal(retryDelayMs(5), 480_000);
  assert.equal(retryDelayMs(6), 900_000);
  assert.equal(retryDelayMs(50), 900_000);
});

test('runs queued jobs one at a time, oldest first', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const ids: number[] = [];
  for (const sha of ['a', 'b', 'c']) ids.push((await store.enqueue(sync(sha))).job.id);
  const order: number[] = [];
  let active = 0;
  let maxActive = 0;
  const worker = makeWorker(t, {
    store,
    handle: async (job) => {
      active++;
      maxActive = Math.max(maxActive, active);
      order.push(job.id);
      assert.equal(worker.running?.id, job.id);
      assert.equal((await store.getJob(job.id))?.status, 'running');
      await sleep(5);
      active--;
    },
  });
  assert.equal(worker.running, undefined);
  worker.start();
  worker.start(); // a second start does not start a second loop
  await worker.onIdle();
  assert.deepEqual(order, ids);
  assert.equal(maxActive, 1);
  assert.equal(worker.running, undefined);
  assert.deepEqual(await store.counts(), { queued: 0, running: 0, done: 3, failed: 0 });
  await worker.stop(1000);
});

test('the state database is checkpointed after each job, once its outcome is recorded', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const ids: number[] = [];
  for (const sha of ['a', 'b']) ids.push((await store.enqueue(sync(sha))).job.id);
  const checkpoints: string[] = [];
  const checkpoint = store.checkpoint.bind(store);
  store.checkpoint = async () => {
    checkpoints.push((await Promise.all(ids.map(async (id) => (await store.getJob(id))?.status))).join(','));
    return checkpoint();
  };
  const worker = makeWorker(t, { store, handle: async () => {} });
  worker.start();
  await worker.onIdle();
  assert.deepEqual(checkpoints, ['done,queued', 'done,done']);
  await worker.stop(1000);
});

test('a job failing with a temporary error is retried with backoff, then failed after maxAttempts', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  let clock = 1_000_000;
  const attempts: number[] = [];
  const outcomes: [number, JobOutcome, string | undefined][] = [];
  const worker = makeWorker(t, {
    store,
    now: () => clock,
    maxAttempts: 3,
    handle: async (job) => {
      attempts.push(job.attempts);
      throw new Error(`attempt ${job.attempts} failed`);
    },
    onJobFinished: (job, outcome, error) => {
      outcomes.push([job.id, outcome, error instanceof Error ? error.message : undefined]);
    },
  });
  const { job } = await store.enqueue(sync('a'), { now: clock });
  worker.start();
  await worker.onIdle();
  assert.deepEqual(attempts, [1]);
  let stored = await store.getJob(job.id);
  assert.equal(stored?.status, 'queued');
  assert.equal(stored?.notBefore, clock + 30_000);
  assert.equal(stored?.error, 'attempt 1 failed');

  clock += 29_999;
  worker.poke();
  await worker.onIdle();
  await sleep(20); // a few polls: still too early
  assert.deepEqual(attempts, [1]);

  clock += 1;
  worker.poke();
  await worker.onIdle();
  assert.deepEqual(attempts, [1, 2]);
  stored = await store.getJob(job.id);
  assert.equal(stored?.status, 'queued');
  assert.equal(stored?.notBefore, clock + 60_000);

  clock += 60_000;
  worker.poke();
  await worker.onIdle();
  assert.deepEqual(attempts, [1, 2, 3]);
  stored = await store.getJob(job.id);
  assert.equal(stored?.status, 'failed');
  assert.equal(stored?.attempts, 3);
  assert.equal(stored?.error, 'attempt 3 failed');
  assert.deepEqual(outcomes, [
    [job.id, 'retry', 'attempt 1 failed'],
    [job.id, 'retry', 'attempt 2 failed'],
    [job.id, 'failed', 'attempt 3 failed'],
  ]);

  clock += 3_600_000;
  await sleep(20);
  assert.deepEqual(attempts, [1, 2, 3], 'a failed job is not run again');
});

test('a job failing with a permanent error is failed at once, without a retry', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const cases: [string, Error][] = [
    ['bad configuration', new DuccError('BOT_ERR_CONFIG', "wish list 'gone' is no longer configured")],
    ['a 4xx answer of the forge', new ForgeError('github', 'setting status ducc-gitops/publish: HTTP 422: Validation Failed', 422)],
  ];
  const outcomes: [string, JobOutcome][] = [];
  const worker = makeWorker(t, {
    store,
    handle: async (job) => {
      throw cases.find(([sha]) => sha === (job.payload as { sha: string }).sha)![1];
    },
    onJobFinished: (job, outcome) => {
      outcomes.push([(job.payload as { sha: string }).sha, outcome]);
    },
  });
  const jobs: Job[] = [];
  for (const [sha] of cases) jobs.push((await store.enqueue(sync(sha))).job);

  worker.start();
  await worker.onIdle();

  assert.deepEqual(outcomes, [
    ['bad configuration', 'failed'],
    ['a 4xx answer of the forge', 'failed'],
  ]);
  for (const [index, job] of jobs.entries()) {
    const stored = await store.getJob(job.id);
    assert.equal(stored?.status, 'failed');
    assert.equal(stored?.attempts, 1);
    assert.equal(stored?.error, cases[index]![1].message);
  }
});

test('by default a temporary failure is tried 8 times over about 45 minutes, then failed with its cause', { timeout: 5000 }, async (t) => {
  const store = openStore(t);
  let clock = 1_000_000;
  const started: number[] = [];
  const unreachable = new ForgeError(
    'github',
    'setting status ducc-gitops/publish: no answer from the GitHub API: getaddrinfo ENOTFOUND api.github.com',
    undefined,
  );
  const worker = makeWorker(t, {
    store,
    now: () => clock,
    handle: async () => {
      started.push(clock);
      throw unreachable;
    },
  });
  const { job } = await store.enqueue(sync('a'), { now: clock });
  worker.start();

  for (;;) {
    await worker.onIdle();
    const stored = (await store.getJob(job.id))!;
    if (stored.status !== 'queued') break;
    clock = stored.notBefore;
    worker.poke();
  }

  const stored = (await store.getJob(job.id))!;
  assert.equal(stored.status, 'failed');
  assert.equal(stored.attempts, DEFAULT_MAX_ATTEMPTS);
  assert.equal(stored.error, unreachable.message);
  const waits = started.slice(1).map((at, index) => (at - started[index]!) / 60_000);
  assert.deepEqual(waits, [0.5, 1, 2, 4, 8, 15, 15]);
  assert.equal(
    waits.reduce((a, b) => a + b),
    45.5,
  );
});

test('onJobFinished reports done; a synchronous throw or a throwing hook does not stop the loop', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const outcomes: [string, JobOutcome][] = [];
  const worker = makeWorker(t, {
    store,
    maxAttempts: 1,
    handle: (job) => {
      if (job.payload.kind === 'sync-branch' && job.payload.sha === 'sync-throw') throw new Error('sync throw');
      return Promise.resolve();
    },
    onJobFinished: (job, outcome) => {
      outcomes.push([(job.payload as { sha: string }).sha, outcome]);
      throw new Error('hook failed');
    },
  });
  await store.enqueue(sync('sync-throw'));
  await store.enqueue(sync('ok'));
  worker.start();
  await worker.onIdle();
  assert.deepEqual(outcomes, [
    ['sync-throw', 'failed'],
    ['ok', 'done'],
  ]);
  assert.deepEqual(await store.counts(), { queued: 0, running: 0, done: 1, failed: 1 });
});

test('a store error while claiming is logged and the loop goes on', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  let failClaims = 2;
  const flaky: StateStore = new Proxy(store, {
    get(target, property) {
      if (property === 'claimNext') {
        return async (now?: number) => {
          if (failClaims > 0) {
            failClaims--;
            throw new Error('database is locked');
          }
          return target.claimNext(now);
        };
      }
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const done: number[] = [];
  const worker = makeWorker(t, { store: flaky, handle: async (job) => void done.push(job.id) });
  const { job } = await store.enqueue(sync('a'));
  worker.start();
  await worker.onIdle();
  assert.equal(failClaims, 0);
  assert.deepEqual(done, [job.id]);
});

test('poke starts queued work at once instead of waiting for the poll', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const ran: number[] = [];
  const worker = makeWorker(t, { store, pollMs: 60_000, handle: async (job) => void ran.push(job.id) });
  worker.start();
  await worker.onIdle();
  await sleep(10); // the loop is now asleep for a minute
  const { job } = await store.enqueue(sync('a'));
  const started = performance.now();
  worker.poke();
  await worker.onIdle();
  assert.deepEqual(ran, [job.id]);
  assert.ok(performance.now() - started < 1000);
  const stopStarted = performance.now();
  await worker.stop(5000);
  assert.ok(performance.now() - stopStarted < 1000, 'stop wakes a sleeping loop');
});

test('a burst of pokes postpones the next job until the pokes have been quiet for quietMs', { timeout: 5000 }, async (t) => {
  const store = openStore(t);
  let startedAt: number | undefined;
  const worker = makeWorker(t, { store, pollMs: 60_000, quietMs: 80, maxQuietWaitMs: 5000, handle: async () => void (startedAt ??= performance.now()) });
  worker.start();
  await worker.onIdle();
  await store.enqueue(sync('a'));
  let lastPoke = 0;
  for (let i = 0; i < 15; i++) {
    worker.poke();
    lastPoke = performance.now();
    await sleep(10);
  }
  await worker.onIdle();
  assert.ok(startedAt !== undefined, 'the job ran');
  // Timers fire late, never early: the job cannot start before the quiet period after the last poke.
  assert.ok(startedAt - lastPoke >= 70, `started ${(startedAt - lastPoke).toFixed(0)} ms after the last poke`);
});

test('pokes that never stop delay the next job by at most maxQuietWaitMs', { timeout: 5000 }, async (t) => {
  const store = openStore(t);
  let startedAt: number | undefined;
  const worker = makeWorker(t, { store, pollMs: 60_000, quietMs: 80, maxQuietWaitMs: 100, handle: async () => void (startedAt ??= performance.now()) });
  worker.start();
  await worker.onIdle();
  await store.enqueue(sync('a'));
  const firstPoke = performance.now();
  while (performance.now() - firstPoke < 800) {
    worker.poke();
    await sleep(10);
  }
  await worker.onIdle();
  assert.ok(
    startedAt !== undefined && startedAt - firstPoke < 600,
    `started ${((startedAt ?? Infinity) - firstPoke).toFixed(0)} ms after the first poke, while the pokes went on`,
  );
});

test('onIdle resolves at once when nothing is runnable, even before start', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  await store.enqueue(sync('later'), { notBefore: Date.now() + 3_600_000 });
  const worker = makeWorker(t, { store, handle: async () => {} });
  await worker.onIdle();
});

test('stop() waits for the running job, then claims nothing more', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const gate = deferred();
  const entered = deferred();
  let aborted = false;
  const worker = makeWorker(t, {
    store,
    handle: async (_job, signal) => {
      entered.resolve();
      await gate.promise;
      aborted = signal.aborted;
    },
  });
  const a = (await store.enqueue(sync('a'))).job;
  const b = (await store.enqueue(sync('b'))).job;
  worker.start();
  await entered.promise;
  setTimeout(gate.resolve, 30);
  const started = performance.now();
  await worker.stop(2000);
  assert.ok(performance.now() - started >= 25, 'stop waited for the job');
  assert.equal(aborted, false);
  assert.equal(worker.running, undefined);
  assert.equal((await store.getJob(a.id))?.status, 'done');
  await sleep(20);
  assert.equal((await store.getJob(b.id))?.status, 'queued', 'no new job after stop');
  assert.equal((await store.getJob(b.id))?.attempts, 0);
});

test('stop() past its deadline aborts the handler and requeues the job; the next start resumes it', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const entered = deferred();
  const outcomes: JobOutcome[] = [];
  let reason: unknown;
  const handle: JobHandler = (_job, signal) =>
    new Promise<void>((_resolve, reject) => {
      entered.resolve();
      signal.addEventListener('abort', () => {
        reason = signal.reason;
        reject(signal.reason);
      });
    });
  const worker = makeWorker(t, { store, handle, onJobFinished: (_job, outcome) => void outcomes.push(outcome) });
  const { job } = await store.enqueue(sync('a'));
  worker.start();
  await entered.promise;
  assert.equal(worker.running?.id, job.id);
  const started = performance.now();
  await worker.stop(20);
  assert.ok(performance.now() - started < 1000);
  assert.ok(reason instanceof Error && reason.name === 'AbortError');
  assert.equal(worker.running, undefined);
  const stored = await store.getJob(job.id);
  assert.equal(stored?.status, 'queued');
  assert.equal(stored?.attempts, 1);
  assert.deepEqual(outcomes, ['retry']);

  const resumed: Job[] = [];
  const next = makeWorker(t, { store, handle: async (j) => void resumed.push(j) });
  next.start();
  await next.onIdle();
  assert.deepEqual(
    resumed.map((j) => [j.id, j.attempts]),
    [[job.id, 2]],
  );
  assert.equal((await store.getJob(job.id))?.status, 'done');
});

test('a handler that ignores its abort signal cannot hold stop() or change the requeued job', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const entered = deferred();
  const gate = deferred();
  const worker = makeWorker(t, {
    store,
    abortGraceMs: 20,
    handle: async () => {
      entered.resolve();
      await gate.promise;
    },
  });
  const { job } = await store.enqueue(sync('a'));
  worker.start();
  await entered.promise;
  const started = performance.now();
  await worker.stop(20);
  assert.ok(performance.now() - started < 1000);
  assert.equal((await store.getJob(job.id))?.status, 'queued');
  gate.resolve();
  await sleep(20);
  assert.equal((await store.getJob(job.id))?.status, 'queued', 'the late result of an abandoned run is ignored');
});

test('each job logs through a child logger with jobId and kind', { timeout: 3000 }, async (t) => {
  const store = openStore(t);
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const logger = pino({ level: 'info' }, stream);
  const worker = makeWorker(t, { store, logger, maxAttempts: 1, handle: async () => Promise.reject(new Error('nope')) });
  const { job } = await store.enqueue({ kind: 'reconcile', wishlist: 'main' });
  worker.start();
  await worker.onIdle();
  await worker.stop(100);
  const mine = lines.filter((l) => l.jobId === job.id);
  assert.ok(mine.length >= 2, JSON.stringify(lines));
  assert.ok(mine.every((l) => l.kind === 'reconcile'));
  assert.ok(mine.some((l) => l.msg === 'job failed'));
});
