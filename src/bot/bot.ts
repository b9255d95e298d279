import type { Logger } from 'pino';
import type { BotConfig, WishlistRepoConfig } from '../config/bot-config.ts';
import { createPublisher } from '../config/publisher-config.ts';
import {
  convertImage,
  convertMultiArch,
  DEFAULT_CONVERT_OPTIONS,
  type ConvertContext,
  type ConvertOptions,
  type ImageOutcome,
} from '../convert/convert-image.ts';
import { expandWish } from '../convert/convert-wishlist.ts';
import type { BotEvent, Delivery } from '../forge/events.ts';
import type { CommitState, Forge } from '../forge/forge.ts';
import { parseCommand } from '../forge/command.ts';
import { metadataDir, publicPath } from '../layout/paths.ts';
import { NotificationWriter } from '../metadata/notifications.ts';
import type { Publisher } from '../publish/publisher.ts';
import type { RegistryClient } from '../registry/client.ts';
import { parsePlatform } from '../registry/platform.ts';
import type { Job, JobPayload, StateStore } from '../state/types.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { parseImageReference, wholeName, type ImageReference } from '../wishlist/image-reference.ts';
import { matchWildcardTags } from '../wishlist/wildcard.ts';
import { parseWishlist, type Wish, type Wishlist } from '../wishlist/wishlist.ts';
import { thinPusher } from '../thin/thin-pusher.ts';
import type { Intake, IntakeResult } from '../jobs/intake.ts';
import { planWishlist } from './plan.ts';
import { renderPlanReport, renderPublishReport, type PublishOutcomeLine } from './report.ts';
import { WishlistRepository } from './wishlist-repo.ts';

export interface BotDeps {
  config: BotConfig;
  env: NodeJS.ProcessEnv;
  store: StateStore;
  /** The forge client of a wish-list repository. */
  forgeFor: (wishlist: WishlistRepoConfig) => Forge;
  client: RegistryClient;
  logger: Logger;
  /** Called after jobs were queued, so the worker starts at once. */
  onEnqueued?: () => void;
  now?: () => number;
}

/**
 * The GitOps loop: `accept` (the intake, inside webhook requests) turns events into durable jobs;
 * `handle` (the job worker) does the work — publish on push, plan on merge requests, reconvert on
 * command or registry push — and reports back through commit statuses and one report comment.
 */
export class Bot implements Intake {
  private readonly deps: BotDeps;
  private readonly repos = new Map<string, WishlistRepository>();
  private readonly publishers = new Map<string, Publisher>();

  constructor(deps: BotDeps) {
    this.deps = deps;
  }

  private get now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  // ---------------------------------------------------------------------------------------------------
  // Intake: fast, no network.
  // ---------------------------------------------------------------------------------------------------

  accept(delivery: Delivery): IntakeResult {
    // One transaction: the delivery id is recorded together with the jobs it queues or not at all, so a
    // failure half-way loses nothing (the sender's retry is not taken for a duplicate), and the answer
    // waits for one commit instead of several.
    const result = this.deps.store.atomically(() => this.decide(delivery));
    if (result.outcome === 'queued') this.deps.onEnqueued?.();
    return result;
  }

  private decide(delivery: Delivery): IntakeResult {
    const { store, config } = this.deps;
    // Overload is checked before the delivery id is recorded, so the sender's retry is not taken for a duplicate.
    if (store.queuedCount() + delivery.events.length > config.maxQueuedJobs) return { outcome: 'overloaded' };
    if (!store.recordDelivery(delivery.id, this.now)) return { outcome: 'duplicate' };
    const payloads: { payload: JobPayload; dedupKey: string; notBefore?: number }[] = [];
    const reasons: string[] = [];
    for (const event of delivery.events) {
      const job = this.jobFor(event);
      if (typeof job === 'string') reasons.push(job);
      else payloads.push(job);
    }
    if (payloads.length === 0) return { outcome: 'ignored', reason: reasons.join('; ') || 'no events' };
    const ids = payloads.map(
      ({ payload, dedupKey, notBefore }) => store.enqueue(payload, { dedupKey, ...(notBefore === undefined ? {} : { notBefore }), now: this.now }).job.id,
    );
    return { outcome: 'queued', jobs: ids };
  }

  /** The job an event asks for, or why it is ignored. */
  private jobFor(event: BotEvent): { payload: JobPayload; dedupKey: string; notBefore?: number } | string {
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
        // The same comment delivered again under a new delivery id is still one command.
        if (!this.deps.store.recordDelivery(`comment:${wishlist.name}:${event.commentId}`, this.now)) return 'command already seen';
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
        };
      }
    }
  }

  /** Queues a reconcile of every wish list (the periodic safety net). */
  scheduleReconcile(): void {
    for (const wishlist of this.deps.config.wishlists) {
      this.deps.store.enqueue({ kind: 'reconcile', wishlist: wishlist.name }, { dedupKey: `reconcile:${wishlist.name}`, now: this.now });
    }
    this.deps.onEnqueued?.();
  }

  // ---------------------------------------------------------------------------------------------------
  // Jobs
  // ---------------------------------------------------------------------------------------------------

  async handle(job: Job, signal: AbortSignal): Promise<void> {
    const payload = job.payload;
    const log = this.deps.logger.child({ jobId: job.id, kind: payload.kind });
    switch (payload.kind) {
      case 'sync-branch':
        return this.syncBranch(job, this.wishlistConfig(payload.wishlist), payload.sha, log, signal);
      case 'reconcile': {
        const wishlist = this.wishlistConfig(payload.wishlist);
        const repo = this.repo(wishlist);
        await repo.fetch();
        const head = await repo.branchHead(wishlist.branch);
        if (head === undefined) throw new DuccError('BOT_ERR_CONFIG', `branch ${wishlist.branch} not found in ${wishlist.cloneUrl}`);
        await this.publish(wishlist, head, { log, signal });
        return;
      }
      case 'check-change-request':
        return this.checkChangeRequest(job, this.wishlistConfig(payload.wishlist), payload.number, payload.headSha, log);
      case 'reconvert':
        return this.reconvert(payload, log, signal);
      case 'registry-push':
        return this.registryPush(payload, log, signal);
    }
  }

  /**
   * A job ended in failure for good: every commit status it owns still pending becomes `error`, so
   * nothing stays pending forever (the worker calls this; it also runs after crashes and restarts).
   */
  async finalizeStatuses(job: Job, error: unknown): Promise<void> {
    for (const status of this.deps.store.pendingStatuses(job.id)) {
      const wishlist = this.deps.config.wishlists.find((w) => w.forge === status.forge && w.project === status.project);
      if (!wishlist) continue;
      await this.setStatus(job, wishlist, status.sha, status.context, 'error', `failed: ${errorMessage(error)}`).catch((e: unknown) =>
        this.deps.logger.warn({ err: errorMessage(e), jobId: job.id }, 'could not finalise a commit status'),
      );
    }
  }

  private async syncBranch(job: Job, wishlist: WishlistRepoConfig, sha: string, log: Logger, signal: AbortSignal): Promise<void> {
    const context = `${this.deps.config.statusContext}/publish`;
    await this.setStatus(job, wishlist, sha, context, 'pending', 'publishing the wish list…');
    const repo = this.repo(wishlist);
    await repo.fetch();
    await repo.ensureCommit(sha);
    const result = await this.publish(wishlist, sha, { log, signal });
    const state: CommitState = result.failed > 0 ? 'failure' : 'success';
    await this.setStatus(job, wishlist, sha, context, state, result.counts);
    const forge = this.deps.forgeFor(wishlist);
    const merged = await forge.findMergedChangeRequest(wishlist.project, sha).catch(() => undefined);
    if (merged !== undefined) {
      await forge.upsertReport(wishlist.project, merged, renderPublishReport(`Published at ${sha.slice(0, 12)}`, result.counts, result.lines));
    }
  }

  /**
   * Publishes the wish list(s) at a commit: converts what is new or moved, removes the public names of
   * entries no longer listed (their content stays for a later GC), records the published state.
   */
  private async publish(
    wishlist: WishlistRepoConfig,
    sha: string,
    options: { log: Logger; signal: AbortSignal },
  ): Promise<{ failed: number; counts: string; lines: PublishOutcomeLine[] }> {
    const repo = this.repo(wishlist);
    const lines: PublishOutcomeLine[] = [];
    let converted = 0;
    let upToDate = 0;
    let failed = 0;
    let removed = 0;
    let unreadable = false;
    const listed = new Set<string>();
    for (const path of wishlist.paths) {
      const text = await repo.readFile(sha, path);
      if (text === undefined) {
        failed++;
        unreadable = true;
        lines.push({ image: path, status: 'failed', detail: `${path} does not exist at ${sha.slice(0, 12)}` });
        continue;
      }
      const list = parseWishlist(text, path);
      // A file that does not parse lists nothing: never take that as "every image was removed".
      if (list.problems.some((p) => p.severity === 'error' && p.wish === undefined)) unreadable = true;
      for (const problem of list.problems.filter((p) => p.severity === 'error')) {
        failed++;
        lines.push({ image: problem.wish ?? path, status: 'failed', detail: `${path}:${problem.line}:${problem.column}: ${problem.message}` });
      }
      for (const wish of list.wishes) listed.add(wish.input);
      if (list.cvmfsRepo === undefined) continue;
      const ctx = await this.convertContext(list);
      for (const wish of list.wishes) {
        if (options.signal.aborted) throw new DuccError('BOT_ERR_PUBLISH', 'stopped by shutdown');
        const outcomes = await this.convertWish(wishlist, wish, ctx, sha, false, options.log);
        for (const outcome of outcomes) {
          if (outcome.status === 'converted') converted++;
          else if (outcome.status === 'up-to-date') upToDate++;
          else failed++;
          lines.push(outcome);
        }
      }
    }
    // Entries gone from the list lose their public name and metadata (newer DUCC's delete-image); their
    // content stays for a later garbage collection. Only decided once every wish-list file was read.
    for (const record of this.deps.store.listPublished(wishlist.name)) {
      if (listed.has(record.input) || unreadable) continue;
      const image = parseImageReference(record.image);
      const publisher = await this.publisherFor(record.cvmfsRepo);
      await publisher.transaction(async (tx) => {
        await tx.remove(publicPath(image));
        await tx.remove(metadataDir(image));
      });
      this.deps.store.removePublished(wishlist.name, record.image);
      removed++;
      lines.push({ image: record.image, status: 'removed', detail: 'no longer in the wish list; content kept for garbage collection' });
    }
    const counts = `${converted} converted, ${upToDate} up to date${removed ? `, ${removed} removed` : ''}, ${failed} failed`;
    options.log.info({ converted, upToDate, removed, failed }, 'wish list published');
    return { failed, counts, lines };
  }

  private async convertWish(
    wishlist: WishlistRepoConfig,
    wish: Wish,
    ctx: ConvertContext,
    sha: string,
    force: boolean,
    log: Logger,
  ): Promise<PublishOutcomeLine[]> {
    const results: PublishOutcomeLine[] = [];
    let images: ImageReference[];
    try {
      images = await expandWish(this.deps.client, wish);
    } catch (error) {
      return [{ image: wish.input, status: 'failed', detail: `line ${wish.source.line}: ${errorMessage(error)}` }];
    }
    const options: ConvertOptions = { ...this.convertOptions(), ...(force ? { convertAgain: true } : {}) };
    for (const image of images) {
      const name = wholeName(image);
      try {
        const outcomes: ImageOutcome[] = options.multiArch ? await convertMultiArch(ctx, image, options) : [await convertImage(ctx, image, options)];
        const main = outcomes[0]!;
        this.deps.store.upsertPublished({
          wishlist: wishlist.name,
          cvmfsRepo: wish.cvmfsRepo,
          input: wish.input,
          image: name,
          manifestDigest: main.manifestDigest,
          configDigest: main.configDigest,
          publicPath: publicPath(image),
          flatPath: main.flatDir,
          ...(main.thinImage ? { thinName: main.thinImage.name, thinDigest: main.thinImage.digest } : {}),
          commitSha: sha,
          updatedAt: this.now,
          lastResult: 'ok',
        });
        const status = outcomes.some((o) => o.status === 'converted') ? 'converted' : 'up-to-date';
        results.push({
          image: name,
          status,
          ...(status === 'converted' ? { detail: `${main.newLayers} new layers, config ${main.configDigest.slice(7, 19)}` } : {}),
        });
      } catch (error) {
        log.error({ image: name, err: errorMessage(error) }, 'conversion failed');
        const previous = this.deps.store.listPublished(wishlist.name).find((record) => record.image === name);
        if (previous) this.deps.store.upsertPublished({ ...previous, updatedAt: this.now, lastResult: 'error', lastError: errorMessage(error) });
        results.push({ image: name, status: 'failed', detail: `line ${wish.source.line}: ${errorMessage(error)}` });
      }
    }
    return results;
  }

  private async checkChangeRequest(job: Job, wishlist: WishlistRepoConfig, number: number, headSha: string, log: Logger): Promise<void> {
    const context = `${this.deps.config.statusContext}/plan`;
    await this.setStatus(job, wishlist, headSha, context, 'pending', 'checking the wish list…');
    const repo = this.repo(wishlist);
    await repo.fetch();
    await repo.ensureCommit(headSha);
    const baseSha = await repo.branchHead(wishlist.branch);
    const reports: string[] = [];
    let failed = 0;
    let changes = 0;
    for (const path of wishlist.paths) {
      const text = await repo.readFile(headSha, path);
      if (text === undefined) {
        failed++;
        reports.push(`### ${path}\n\n\`${path}\` does not exist at this commit.`);
        continue;
      }
      const head = parseWishlist(text, path);
      const baseText = baseSha ? await repo.readFile(baseSha, path) : undefined;
      const base = baseText === undefined ? undefined : parseWishlist(baseText, path);
      const publisher = head.cvmfsRepo ? await this.publisherFor(head.cvmfsRepo) : undefined;
      const plan = await planWishlist(head, base, {
        client: this.deps.client,
        ...(publisher ? { publisher } : {}),
        published: this.deps.store.listPublished(wishlist.name),
      });
      // Entry-level problems count only for entries this merge request changes.
      const changedLines = new Set(plan.entries.filter((e) => e.action !== 'unchanged').map((e) => e.line));
      const baseProblems = new Set((base?.problems ?? []).map((p) => p.message));
      const blocking = plan.problems.filter(
        (p) => p.severity === 'error' && (p.wish === undefined || changedLines.has(p.line) || !baseProblems.has(p.message)),
      );
      failed += blocking.length + plan.entries.filter((e) => e.action === 'error').length;
      changes += plan.entries.filter((e) => e.action !== 'unchanged').length;
      reports.push(renderPlanReport(plan, { file: path, sha: headSha }));
    }
    const description =
      failed > 0
        ? `${failed} problem${failed === 1 ? '' : 's'} in the wish list (see the report)`
        : `${changes} change${changes === 1 ? '' : 's'} ready to publish`;
    const forge = this.deps.forgeFor(wishlist);
    await forge.upsertReport(wishlist.project, number, reports.join('\n\n---\n\n'));
    await this.setStatus(job, wishlist, headSha, context, failed > 0 ? 'failure' : 'success', description);
    log.info({ number, failed, changes }, 'merge request checked');
  }

  private async reconvert(payload: Extract<JobPayload, { kind: 'reconvert' }>, log: Logger, signal: AbortSignal): Promise<void> {
    const wishlist = this.wishlistConfig(payload.wishlist);
    const forge = this.deps.forgeFor(wishlist);
    if (payload.invalid !== undefined) {
      await forge.reply(wishlist.project, payload.number, `@${payload.author.login} ${payload.invalid}. Usage: \`/reconvert [image ...]\``);
      return;
    }
    let allowed: boolean;
    try {
      allowed = await forge.canWrite(wishlist.project, { ...payload.author, isBot: false });
    } catch (error) {
      // Fail closed, and say so: "you lack write access" would be wrong, and retrying the job could run
      // the command later without anyone asking again.
      log.warn({ err: errorMessage(error) }, 'permission check failed; refusing');
      await forge.reply(
        wishlist.project,
        payload.number,
        `@${payload.author.login} \`/reconvert\` was refused: the permissions of @${payload.author.login} on ${wishlist.project} could not be checked (the ${wishlist.forge === 'github' ? 'GitHub' : 'GitLab'} API failed); nothing was converted. Please try again later.`,
      );
      return;
    }
    if (!allowed) {
      await forge.reply(
        wishlist.project,
        payload.number,
        `@${payload.author.login} \`/reconvert\` needs write access (Developer or higher) to ${wishlist.project}; nothing was converted.`,
      );
      return;
    }
    const request = await forge.getChangeRequest(wishlist.project, payload.number);
    if (request.fromFork && !wishlist.allowForks) {
      await forge.reply(
        wishlist.project,
        payload.number,
        `@${payload.author.login} \`/reconvert\` is not accepted on merge requests from forks; nothing was converted.`,
      );
      return;
    }
    const repo = this.repo(wishlist);
    await repo.fetch();
    // Reconversion publishes, so it uses the published wish list (the target branch), never unmerged content.
    const head = await repo.branchHead(wishlist.branch);
    if (head === undefined) throw new DuccError('BOT_ERR_CONFIG', `branch ${wishlist.branch} not found`);
    const requested = payload.images;
    const force = new Set<string>();
    const unknown: string[] = [];
    const lists: Wishlist[] = [];
    for (const path of wishlist.paths) {
      const text = await repo.readFile(head, path);
      if (text !== undefined) lists.push(parseWishlist(text, path));
    }
    const allWishes = lists.flatMap((list) => list.wishes);
    if (requested.length === 0) {
      // No names: everything this merge request touches that is published.
      await repo.ensureCommit(request.headSha);
      for (const path of wishlist.paths) {
        const text = await repo.readFile(request.headSha, path);
        if (text === undefined) continue;
        const mine = new Set(parseWishlist(text, path).wishes.map((w) => w.input));
        for (const wish of allWishes) if (mine.has(wish.input)) force.add(wish.input);
      }
    } else {
      for (const name of requested) {
        const match = allWishes.find(
          (wish) => wish.input === name || wholeName(wish.image) === name || publicPath(wish.image) === name.replace(/^https?:\/\//, ''),
        );
        if (match) force.add(match.input);
        else unknown.push(name);
      }
    }
    if (force.size === 0) {
      await forge.reply(
        wishlist.project,
        payload.number,
        `@${payload.author.login} nothing to reconvert${unknown.length ? `: not in the published wish list: ${unknown.map((u) => `\`${u.replace(/`/g, '')}\``).join(', ')}` : ''}.`,
      );
      return;
    }
    const onlyForced: Wishlist[] = lists.map((list) => ({ ...list, wishes: list.wishes.filter((w) => force.has(w.input)), problems: [] }));
    const lines: PublishOutcomeLine[] = [];
    let failed = 0;
    for (const list of onlyForced) {
      if (list.cvmfsRepo === undefined) continue;
      const ctx = await this.convertContext(list);
      for (const wish of list.wishes) {
        if (signal.aborted) throw new DuccError('BOT_ERR_PUBLISH', 'stopped by shutdown');
        const outcomes = await this.convertWish(wishlist, wish, ctx, head, true, log);
        failed += outcomes.filter((o) => o.status === 'failed').length;
        lines.push(...outcomes);
      }
    }
    const counts = `${lines.filter((l) => l.status === 'converted').length} reconverted, ${failed} failed`;
    await forge.upsertReport(wishlist.project, payload.number, renderPublishReport(`/reconvert by @${payload.author.login}`, counts, lines));
    await forge.reply(
      wishlist.project,
      payload.number,
      `@${payload.author.login} ${counts}${unknown.length ? `; not in the published wish list: ${unknown.length}` : ''}.`,
    );
  }

  private async registryPush(payload: Extract<JobPayload, { kind: 'registry-push' }>, log: Logger, signal: AbortSignal): Promise<void> {
    for (const wishlist of this.deps.config.wishlists) {
      const repo = this.repo(wishlist);
      await repo.fetch();
      const head = await repo.branchHead(wishlist.branch);
      if (head === undefined) continue;
      for (const path of wishlist.paths) {
        const text = await repo.readFile(head, path);
        if (text === undefined) continue;
        const list = parseWishlist(text, path);
        const matching = list.wishes.filter(
          (wish) =>
            wish.image.registry === payload.registry &&
            wish.image.repository === payload.repository &&
            (payload.tag === undefined ||
              wish.image.tag === payload.tag ||
              (wish.image.tag?.includes('*') && matchWildcardTags(wish.image.tag, [payload.tag]).length > 0)),
        );
        if (matching.length === 0 || list.cvmfsRepo === undefined) continue;
        const ctx = await this.convertContext(list);
        for (const wish of matching) {
          if (signal.aborted) throw new DuccError('BOT_ERR_PUBLISH', 'stopped by shutdown');
          // convertImage asks the registry for the manifest itself and does nothing if the config is unchanged.
          const outcomes = await this.convertWish(wishlist, wish, ctx, head, false, log);
          log.info({ wish: wish.input, outcomes: outcomes.map((o) => o.status) }, 'registry push handled');
        }
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Helpers
  // ---------------------------------------------------------------------------------------------------

  private async setStatus(job: Job, wishlist: WishlistRepoConfig, sha: string, context: string, state: CommitState, description: string): Promise<void> {
    const forge = this.deps.forgeFor(wishlist);
    const targetUrl = this.deps.config.publicUrl ? `${this.deps.config.publicUrl.replace(/\/$/, '')}/jobs/${job.id}` : undefined;
    await forge.setCommitStatus(wishlist.project, sha, { state, context, description, ...(targetUrl ? { targetUrl } : {}) });
    this.deps.store.recordStatus({ jobId: job.id, forge: wishlist.forge, project: wishlist.project, sha, context, state });
  }

  private wishlistConfig(name: string): WishlistRepoConfig {
    const wishlist = this.deps.config.wishlists.find((w) => w.name === name);
    if (!wishlist) throw new DuccError('BOT_ERR_CONFIG', `wish list '${name}' is no longer configured`);
    return wishlist;
  }

  private repo(wishlist: WishlistRepoConfig): WishlistRepository {
    let repo = this.repos.get(wishlist.name);
    if (!repo) {
      repo = new WishlistRepository({ cacheDir: this.deps.config.cacheDir, name: wishlist.name, cloneUrl: wishlist.cloneUrl });
      this.repos.set(wishlist.name, repo);
    }
    return repo;
  }

  private async publisherFor(cvmfsRepo: string): Promise<Publisher> {
    let publisher = this.publishers.get(cvmfsRepo);
    if (!publisher) {
      publisher = await createPublisher(this.deps.config.publisher, cvmfsRepo, this.deps.logger);
      await publisher.recover();
      this.publishers.set(cvmfsRepo, publisher);
    }
    return publisher;
  }

  private async convertContext(list: Wishlist): Promise<ConvertContext> {
    const options = this.convertOptions();
    const pushThin = options.skipThinImage ? undefined : thinPusher(list, this.deps.env, this.deps.logger);
    return {
      client: this.deps.client,
      publisher: await this.publisherFor(list.cvmfsRepo!),
      cvmfsRepo: list.cvmfsRepo!,
      notifications: NotificationWriter.discard(),
      logger: this.deps.logger,
      ...(pushThin ?? {}),
    };
  }

  private convertOptions(): ConvertOptions {
    const convert = this.deps.config.convert;
    return {
      ...DEFAULT_CONVERT_OPTIONS,
      skipThinImage: convert.skipThinImage,
      multiArch: convert.multiArch,
      ...(convert.platform ? { platform: parsePlatform(convert.platform) } : {}),
    };
  }
}
