import type { BotEvent, Delivery } from '../forge/events.ts';
import { parseCommand } from '../forge/command.ts';
import type { Intake, IntakeResult } from '../jobs/intake.ts';
import type { Job, JobPayload, StateStore } from '../state/types.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { BotContext, type BotDeps, type JobRunner } from './bot-context.ts';
import { JOB_RUNNERS } from './job-runners.ts';

/**
 * The GitOps loop: `accept` (the intake, inside webhook requests) turns events into durable jobs;
 * `handle` (the job worker) runs each job with the runner of its kind (job-runners.ts, one file each
 * under runners/) — publish on push, plan on merge requests, reconvert on command or registry push —
 * which report back through commit statuses and one report comment.
 */
export class Bot implements Intake {
  private readonly deps: BotDeps;
  readonly #context: BotContext;

  constructor(deps: BotDeps) {
    this.deps = deps;
    this.#context = new BotContext(deps);
  }

  private get now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  // ---------------------------------------------------------------------------------------------------
  // Intake: fast, no network.
  // ---------------------------------------------------------------------------------------------------

  async accept(delivery: Delivery): Promise<IntakeResult> {
    // One transaction: the delivery id is recorded together with the jobs it queues or not at all, so a
    // failure half-way loses nothing (the sender's retry is not taken for a duplicate), and the answer
    // waits for one commit instead of several. With several replicas on one PostgreSQL, a delivery id
    // reaching two of them at once is decided by one, then the other (see recordDelivery).
    const result = await this.deps.store.atomically((tx) => this.decide(tx, delivery));
    if (result.outcome === 'queued') this.deps.onEnqueued?.();
    return result;
  }

  private async decide(store: StateStore, delivery: Delivery): Promise<IntakeResult> {
    const { config } = this.deps;
    // Overload is checked before the delivery id is recorded, so the sender's retry is not taken for a duplicate.
    if ((await store.queuedCount()) + delivery.events.length > config.maxQueuedJobs) return { outcome: 'overloaded' };
    // A delivery id is done once its jobs succeeded: the same id again (the forge's "Redeliver", a
    // sender's retry) is a duplicate while they are queued or running or after they succeeded, and runs
    // again when one of them failed for good (GitHub: redeliver failed deliveries; docs/security.md).
    if (!(await this.#mayRun(store, delivery.id))) return { outcome: 'duplicate' };
    const payloads: { payload: JobPayload; dedupKey: string; notBefore?: number; key?: string }[] = [];
    const reasons: string[] = [];
    for (const event of delivery.events) {
      const job = await this.jobFor(store, event);
      if (typeof job === 'string') reasons.push(job);
      else payloads.push(job);
    }
    if (payloads.length === 0) {
      await store.linkDelivery(delivery.id, []);
      return { outcome: 'ignored', reason: reasons.join('; ') || 'no events' };
    }
    const ids: number[] = [];
    for (const { payload, dedupKey, notBefore, key } of payloads) {
      const id = (await store.enqueue(payload, { dedupKey, ...(notBefore === undefined ? {} : { notBefore }), now: this.now })).job.id;
      if (key !== undefined) await store.linkDelivery(key, [id]);
      ids.push(id);
    }
    await store.linkDelivery(delivery.id, ids);
    return { outcome: 'queued', jobs: ids };
  }

  /**
   * Records `key` (a delivery id, a comment) and says whether its work is to be done (again): when it is
   * new, or when what it queued before failed for good. Recorded first, so that a replica deciding on
   * the same key at the same time waits for this transaction (see StateStore.recordDelivery).
   */
  async #mayRun(store: StateStore, key: string): Promise<boolean> {
    if (await store.recordDelivery(key, this.now)) return true;
    return (await store.deliveryState(key)) === 'failed';
  }

  /** The job an event asks for, or why it is ignored. */
  private async jobFor(store: StateStore, event: BotEvent): Promise<{ payload: JobPayload; dedupKey: string; notBefore?: number; key?: string } | string> {
    if (event.kind === 'registry-push') {
      const tag = event.tag;
      return {
        payload: { kind: 'registry-push', registry: event.registry, repository: event.repository, ...(tag === undefined ? {} : { tag }) },
        dedupKey: `registry:${event.registry}/${event.repository}:${tag ?? ''}`,
        notBefore: this.now + this.deps.config.registryDebounceSeconds * 1000,
      };
    }
    // Forges treat project paths case-insensitively (GitHub's full_name may differ in case from the config).
    const wishlist = this.deps.config.wishlists.find((w) => w.forge === event.repo.forge && w.project.toLowerCase() === event.repo.project.toLowerCase());
    if (!wishlist) return `${event.repo.forge} project ${event.repo.project} is not a watched wish list`;
    switch (event.kind) {
      case 'push':
        if (event.branch !== wishlist.branch) return `push to ${event.branch}, not ${wishlist.branch}`;
        return { payload: { kind: 'sync-branch', wishlist: wishlist.name, sha: event.after }, dedupKey: `sync:${wishlist.name}:${event.after}` };
      case 'change-request':
        if (event.action === 'closed' || event.action === 'merged') return `merge request ${event.action}`;
        if (event.targetBranch !== wishlist.branch) return `merge request targets ${event.targetBranch}`;
        return {
          payload: { kind: 'check-change-request', wishlist: wishlist.name, number: event.number, headSha: event.headSha },
          dedupKey: `check:${wishlist.name}:${event.number}:${event.headSha}`,
        };
      case 'comment': {
        if (event.author.isBot || (wishlist.botUser !== undefined && event.author.login === wishlist.botUser)) return 'comment by a bot';
        const command = parseCommand(event.body);
        if (command === undefined) return 'not a command';
        // The same comment delivered again under a new delivery id is still one command (run again only
        // if its job failed for good).
        const key = `comment:${wishlist.name}:${event.commentId}`;
        if (!(await this.#mayRun(store, key))) return 'command already seen';
        const author = { login: event.author.login, ...(event.author.id === undefined ? {} : { id: event.author.id }) };
        return {
          payload: {
            kind: 'reconvert',
            wishlist: wishlist.name,
            number: event.number,
            images: command.kind === 'reconvert' ? command.images : [],
            author,
            commentId: event.commentId,
            ...(command.kind === 'invalid' ? { invalid: command.message } : {}),
          },
          dedupKey: `reconvert:${wishlist.name}:${event.commentId}`,
          key,
        };
      }
    }
  }

  /** Queues a reconcile of every wish list (the periodic safety net). */
  async scheduleReconcile(): Promise<void> {
    for (const wishlist of this.deps.config.wishlists) {
      await this.deps.store.enqueue({ kind: 'reconcile', wishlist: wishlist.name }, { dedupKey: `reconcile:${wishlist.name}`, now: this.now });
    }
    this.deps.onEnqueued?.();
  }

  /** Queues a garbage collection of every repository the bot has published into (config `gc:`). */
  async scheduleGc(): Promise<void> {
    const repositories = new Set<string>();
    for (const wishlist of this.deps.config.wishlists) {
      for (const image of await this.deps.store.listPublished(wishlist.name)) repositories.add(image.cvmfsRepo);
    }
    for (const cvmfsRepo of repositories) await this.deps.store.enqueue({ kind: 'gc', cvmfsRepo }, { dedupKey: `gc:${cvmfsRepo}`, now: this.now });
    this.deps.onEnqueued?.();
  }

  // ---------------------------------------------------------------------------------------------------
  // Jobs: one runner per kind (job-runners.ts), sharing the BotContext.
  // ---------------------------------------------------------------------------------------------------

  handle(job: Job, signal: AbortSignal): Promise<void> {
    const log = this.deps.logger.child({ jobId: job.id, kind: job.payload.kind });
    const run = JOB_RUNNERS[job.payload.kind] as JobRunner<JobPayload['kind']>;
    return run(this.#context, job, { log, signal });
  }

  /**
   * A job ended in failure for good: every commit status it owns still pending becomes `error`, so
   * nothing stays pending forever (the worker calls this; it also runs after crashes and restarts).
   */
  async finalizeStatuses(job: Job, error: unknown): Promise<void> {
    for (const status of await this.deps.store.pendingStatuses(job.id)) {
      const wishlist = this.deps.config.wishlists.find((w) => w.forge === status.forge && w.project === status.project);
      if (!wishlist) continue;
      await this.#context
        .setStatus(job, wishlist, status.sha, status.context, 'error', `failed: ${publicReason(error)}`)
        .catch((e: unknown) => this.deps.logger.warn({ err: errorMessage(e), jobId: job.id }, 'could not finalise a commit status'));
    }
  }
}

/**
 * What a commit status says about a failure: what failed, in words, on one line. Our own errors say it in
 * their message (git's output and local paths are kept apart, for the log); anything else is not ours to
 * show on a forge.
 */
export function publicReason(error: unknown): string {
  if (!(error instanceof DuccError)) return "an internal error (see the bot's log)";
  const line = error.message.split('\n')[0]!.trim();
  return error.code === 'BOT_ERR_GIT' || error.code === 'BOT_ERR_CONFIG' ? `${line} (see the bot's log)` : line;
}
