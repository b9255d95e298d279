import type { Logger } from 'pino';
import type { Job, StateStore } from '../state/types.ts';
import { errorMessage, isTemporary } from '../util/errors.ts';

/** Does the work of one job; must stop soon after `signal` is aborted (the job is then retried later). */
export type JobHandler = (job: Job, signal: AbortSignal) => Promise<void>;

/** How an attempt at a job ended: done, failed for good, or back in the queue (error, or interrupted by stop()). */
export type JobOutcome = 'done' | 'failed' | 'retry';

export interface JobWorkerOptions {
  store: StateStore;
  handle: JobHandler;
  logger: Logger;
  /** How often the queue is polled when idle (ms). Default 500. */
  pollMs?: number;
  /**
   * A job whose handler failed this many attempts with temporary errors is marked failed (default 8: with
   * the backoff of retryDelayMs, about 45 minutes of trying). A permanent error fails it at once.
   */
  maxAttempts?: number;
  /** The clock (ms since the epoch) used for the queue and the backoff. Default Date.now. */
  now?: () => number;
  /** After stop() aborts a job, how long to wait for its handler to give up before resolving anyway (ms). Default 1000. */
  abortGraceMs?: number;
  /**
   * After poke(), the next job starts only once no poke came for this long (ms; default 25), and at the latest
   * `maxQuietWaitMs` (default 250) after the first of them: a burst of webhook deliveries is acknowledged
   * before the jobs it queued start competing with it for the event loop. 0 starts at once.
   */
  quietMs?: number;
  maxQuietWaitMs?: number;
  /**
   * Called once per attempt after the store was updated: 'done', 'failed' (for good) or 'retry' (requeued after
   * an error, or interrupted by stop()). The bot finalises the commit statuses of failed jobs here. Errors are
   * logged and otherwise ignored.
   */
  onJobFinished?: (job: Job, outcome: JobOutcome, error?: unknown) => Promise<void> | void;
}

/**
 * Retry delay after the given number of failed attempts: 30 s, 1, 2, 4, 8 minutes, then every 15 minutes.
 * Over minutes, not seconds: what fails for a moment (a forge or registry outage, an unreachable
 * repository) is usually not back seconds later.
 */
export function retryDelayMs(attempts: number): number {
  return Math.min(FIRST_RETRY_DELAY_MS * 2 ** Math.max(0, attempts - 1), MAX_RETRY_DELAY_MS);
}

const FIRST_RETRY_DELAY_MS = 30_000;
const MAX_RETRY_DELAY_MS = 15 * 60_000;
export const DEFAULT_MAX_ATTEMPTS = 8;

interface Run {
  job: Job;
  controller: AbortController;
  /** Resolves once the handler settled and the store was updated (or the run was abandoned). */
  finished: Promise<void>;
  /** The handler settled and its result was recorded. */
  recorded: boolean;
  /** stop() gave up on it: the job was requeued and whatever the handler does later is ignored. */
  abandoned: boolean;
}

interface Loop {
  stopping: boolean;
  /** Resolves when the loop has left (it may never, if a handler ignores its abort signal). */
  done: Promise<void>;
}

/**
 * Runs queued jobs one at a time, in queue order. A job that fails with a temporary error (see
 * isTemporary: network, 5xx, 429...) is retried with backoff (retryDelayMs) until it has failed
 * `maxAttempts` times; one that fails with a permanent error (bad configuration or input, 4xx) is failed
 * at once. Jobs left running by a crash are not its business: call `store.requeueRunning()` before start().
 */
export class JobWorker {
  readonly #store: StateStore;
  readonly #handle: JobHandler;
  readonly #logger: Logger;
  readonly #pollMs: number;
  readonly #maxAttempts: number;
  readonly #now: () => number;
  readonly #abortGraceMs: number;
  readonly #quietMs: number;
  readonly #maxQuietWaitMs: number;
  readonly #onJobFinished: JobWorkerOptions['onJobFinished'];
  /** performance.now() of the last poke, and of the first one since a job was last claimed. */
  #lastPoke = 0;
  #pokedSince: number | undefined;

  #loop: Loop | undefined;
  #current: Run | undefined;
  #poked = false;
  #wake: (() => void) | undefined;
  #idleWaiters: (() => void)[] = [];

  constructor(options: JobWorkerOptions) {
    this.#store = options.store;
    this.#handle = options.handle;
    this.#logger = options.logger;
    this.#pollMs = options.pollMs ?? 500;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    this.#now = options.now ?? Date.now;
    this.#abortGraceMs = options.abortGraceMs ?? 1000;
    this.#quietMs = Math.max(0, options.quietMs ?? 25);
    this.#maxQuietWaitMs = Math.max(0, options.maxQuietWaitMs ?? 250);
    this.#onJobFinished = options.onJobFinished;
  }

  /** The job being run, if any. */
  get running(): Job | undefined {
    return this.#current?.job;
  }

  /**
   * Starts the loop: claims one job at a time and runs it; a handler error marks the job failed when it is
   * permanent or attempts >= maxAttempts, else requeues it with a backoff (notBefore = now +
   * retryDelayMs(attempts)). Does nothing if already started.
   */
  start(): void {
    if (this.#loop) return;
    const loop: Loop = { stopping: false, done: Promise.resolve() };
    this.#loop = loop;
    loop.done = this.#runLoop(loop);
  }

  /**
   * Wakes the loop (called after enqueue so jobs start without waiting for the poll); the job starts once
   * the pokes have been quiet for `quietMs` (see JobWorkerOptions).
   */
  poke(): void {
    const now = performance.now();
    this.#lastPoke = now;
    this.#pokedSince ??= now;
    this.#poked = true;
    this.#wake?.();
  }

  /**
   * Graceful stop: no new job is claimed; waits for the running job up to `deadlineMs`; if it is still
   * running then, aborts its signal, and the job goes back to the queue (requeue) so the next start resumes
   * it. Resolves when stopped (after at most `deadlineMs` + `abortGraceMs`).
   */
  async stop(deadlineMs: number): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    loop.stopping = true;
    this.#wake?.();
    const run = this.#current;
    if (run && !(await settlesWithin(run.finished, deadlineMs)) && !run.recorded) {
      await this.#abandon(run);
      await settlesWithin(run.finished, this.#abortGraceMs);
    } else {
      await settlesWithin(loop.done, deadlineMs);
    }
    if (this.#loop === loop) this.#loop = undefined;
    await this.#resolveIdleIfIdle();
  }

  /** Resolves when the queue holds no runnable job and nothing runs (for tests). */
  onIdle(): Promise<void> {
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      void this.#resolveIdleIfIdle();
    });
  }

  async #runLoop(loop: Loop): Promise<void> {
    while (!loop.stopping) {
      await this.#untilQuiet(loop);
      if (loop.stopping) break;
      let job: Job | undefined;
      try {
        job = await this.#store.claimNext(this.#now());
      } catch (error) {
        this.#logger.error({ err: error }, 'cannot claim the next job');
      }
      if (job && loop.stopping) {
        // stop() came while the claim was on its way: the job goes back untouched.
        await this.#safeRequeue(job, this.#logger.child({ jobId: job.id, kind: job.payload.kind }));
        break;
      }
      if (job) {
        await this.#run(job);
        await this.#checkpoint();
        continue;
      }
      await this.#resolveIdleIfIdle();
      // stop() may have come while the queue was read, when there was no nap to wake.
      if (loop.stopping) break;
      await this.#sleep();
    }
  }

  async #run(job: Job): Promise<void> {
    const log = this.#logger.child({ jobId: job.id, kind: job.payload.kind });
    const controller = new AbortController();
    let finish!: () => void;
    const run: Run = { job, controller, finished: new Promise((resolve) => (finish = resolve)), recorded: false, abandoned: false };
    this.#current = run;
    const started = performance.now();
    log.info({ attempt: job.attempts }, 'job started');
    const heartbeat = this.#heartbeat(run, log);
    try {
      let error: unknown;
      let ok = true;
      try {
        await this.#handle(job, controller.signal);
      } catch (caught) {
        ok = false;
        error = caught;
      }
      if (run.abandoned) {
        log.info({ ok, ms: Math.round(performance.now() - started) }, 'interrupted job settled after it was requeued');
        return;
      }
      run.recorded = true;
      const ms = Math.round(performance.now() - started);
      let outcome: JobOutcome | undefined;
      try {
        outcome = await this.#record(job, ok, error);
      } catch (storeError) {
        log.error({ err: storeError }, 'cannot record the outcome of the job');
        return;
      }
      if (outcome === undefined) {
        // Its lease expired before the heartbeat could renew it, and another replica took the job over:
        // the outcome and the commit statuses are that replica's to set.
        log.warn({ ok, ms }, 'job finished after another replica took it over; its outcome here is ignored');
        return;
      }
      const temporary = ok ? undefined : isTemporary(error);
      if (outcome === 'done') log.info({ ms }, 'job done');
      // temporary: true means it ran out of attempts; false, that trying again would not help.
      else if (outcome === 'failed') log.error({ ms, err: error, attempts: job.attempts, temporary }, 'job failed');
      else log.warn({ ms, err: error, attempts: job.attempts, retryInMs: retryDelayMs(job.attempts) }, 'job attempt failed, will retry');
      await this.#notify(log, job, outcome, error);
    } finally {
      if (heartbeat !== undefined) clearInterval(heartbeat);
      if (this.#current === run) this.#current = undefined;
      finish();
    }
  }

  /**
   * With leases (several replicas on one PostgreSQL), renews the job's lease every third of it while it
   * runs; when the lease was lost (this process stalled for longer than the lease, and another replica
   * took the job over), the handler is aborted and its outcome ignored: the job is the other one's now.
   */
  #heartbeat(run: Run, log: Logger): NodeJS.Timeout | undefined {
    const leaseMs = this.#store.leaseMs;
    if (leaseMs === undefined) return undefined;
    let renewing = false;
    const timer = setInterval(
      () => {
        if (renewing || run.recorded || run.abandoned) return;
        renewing = true;
        this.#store
          .renewLease(run.job.id, this.#now())
          .then((held) => {
            if (held || run.recorded || run.abandoned) return;
            run.abandoned = true;
            const reason = new Error('the job was taken over by another replica');
            reason.name = 'AbortError';
            run.controller.abort(reason);
            log.warn('lease lost: the job was taken over by another replica; its outcome here is ignored');
          })
          .catch((error: unknown) => log.warn({ err: error }, 'cannot renew the lease of the job'))
          .finally(() => (renewing = false));
      },
      Math.max(1, Math.floor(leaseMs / 3)),
    );
    timer.unref();
    return timer;
  }

  /**
   * After a job: webhooks were quiet when it started (see `quietMs`), so this is when the store's log
   * is copied into the database, not inside a webhook's write (see SqliteStateStore.open).
   */
  async #checkpoint(): Promise<void> {
    try {
      await this.#store.checkpoint();
    } catch (error) {
      this.#logger.warn({ err: error }, 'cannot checkpoint the state database');
    }
  }

  /** Writes the outcome of an attempt to the store; undefined when the job was no longer this worker's. */
  async #record(job: Job, ok: boolean, error: unknown): Promise<JobOutcome | undefined> {
    const now = this.#now();
    if (ok) return (await this.#store.complete(job.id, now)) ? 'done' : undefined;
    const message = errorMessage(error);
    if (!isTemporary(error) || job.attempts >= this.#maxAttempts) {
      return (await this.#store.fail(job.id, message, now)) ? 'failed' : undefined;
    }
    const requeued = await this.#store.requeue(job.id, { notBefore: now + retryDelayMs(job.attempts), error: message, now });
    return requeued ? 'retry' : undefined;
  }

  /** stop() ran out of time: abort the handler and put the job back in the queue right away. */
  async #abandon(run: Run): Promise<void> {
    run.abandoned = true;
    const log = this.#logger.child({ jobId: run.job.id, kind: run.job.payload.kind });
    const reason = new Error('the worker is stopping');
    reason.name = 'AbortError';
    run.controller.abort(reason);
    await this.#safeRequeue(run.job, log);
    log.warn('job interrupted by shutdown, requeued');
    if (this.#current === run) this.#current = undefined;
    await this.#notify(log, run.job, 'retry', reason);
  }

  async #safeRequeue(job: Job, log: Logger): Promise<void> {
    try {
      await this.#store.requeue(job.id, { now: this.#now() });
    } catch (error) {
      log.error({ err: error, jobId: job.id }, 'cannot requeue the job');
    }
  }

  async #notify(log: Logger, job: Job, outcome: JobOutcome, error: unknown): Promise<void> {
    if (!this.#onJobFinished) return;
    try {
      await this.#onJobFinished(job, outcome, error);
    } catch (hookError) {
      log.error({ err: hookError, outcome }, 'onJobFinished failed');
    }
  }

  /** Waits while pokes keep coming (see JobWorkerOptions.quietMs), or until stopped. */
  async #untilQuiet(loop: Loop): Promise<void> {
    while (this.#pokedSince !== undefined && !loop.stopping) {
      const now = performance.now();
      const wait = Math.min(this.#lastPoke + this.#quietMs, this.#pokedSince + this.#maxQuietWaitMs) - now;
      if (wait <= 0) break;
      // A poke wakes it too, and the wait is computed again.
      await this.#nap(wait);
    }
    this.#pokedSince = undefined;
  }

  /** Waits `pollMs`, or less if poked or stopped. */
  #sleep(): Promise<void> {
    if (this.#poked) {
      this.#poked = false;
      return Promise.resolve();
    }
    return this.#nap(this.#pollMs).then(() => {
      this.#poked = false;
    });
  }

  /** Waits `ms`, or less if poked or stopped (both call #wake). */
  #nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  async #resolveIdleIfIdle(): Promise<void> {
    if (this.#idleWaiters.length === 0 || this.#current) return;
    let runnable: boolean;
    try {
      const now = this.#now();
      runnable = (await this.#store.listJobs({ status: 'queued' })).some((job) => job.notBefore <= now);
    } catch (error) {
      this.#logger.error({ err: error }, 'cannot read the queue');
      return;
    }
    if (runnable || this.#current) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** True if `promise` settled within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
