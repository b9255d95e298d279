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
import type { CommitState, Forge } from '../forge/forge.ts';
import { publicPath } from '../layout/paths.ts';
import { NotificationWriter } from '../metadata/notifications.ts';
import type { Publisher } from '../publish/publisher.ts';
import type { GcRunLog } from '../gc/run-log.ts';
import type { RegistryClient } from '../registry/client.ts';
import { Sources } from '../sources/sources.ts';
import { registrySettingsFromEnv } from '../registry/settings.ts';
import { join } from 'node:path';
import { parsePlatform } from '../registry/platform.ts';
import type { Job, JobPayload, StateStore } from '../state/types.ts';
import { thinPusher } from '../thin/thin-pusher.ts';
import { DuccError, errorMessage, isTemporary } from '../util/errors.ts';
import { wholeName, type ImageReference } from '../wishlist/image-reference.ts';
import { parseWishlist, type Wish, type Wishlist } from '../wishlist/wishlist.ts';
import type { ConversionRequest, ConversionThread } from './conversion-thread.ts';
import type { PublishOutcomeLine } from './report.ts';
import { WishlistRepository } from './wishlist-repo.ts';

export interface BotDeps {
  config: BotConfig;
  /** Where secrets are read from (the thin-image push password). */
  env: NodeJS.ProcessEnv;
  store: StateStore;
  /** The forge client of a wish-list repository. */
  forgeFor: (wishlist: WishlistRepoConfig) => Forge;
  client: RegistryClient;
  logger: Logger;
  /** Called after jobs were queued, so the worker starts at once. */
  onEnqueued?: () => void;
  /** Where gc jobs record their result (for /metrics and the status page). */
  gcRuns?: GcRunLog;
  now?: () => number;
  /** Where conversions run: on this thread of their own (`ducc serve`), or, without it, in this thread. */
  conversionThread?: ConversionThread;
}

/** One job of one kind, run by the bot's worker (see job-runners.ts). */
export type JobRunner<Kind extends JobPayload['kind']> = (
  bot: BotContext,
  job: Job & { payload: Extract<JobPayload, { kind: Kind }> },
  run: { log: Logger; signal: AbortSignal },
) => Promise<void>;

/** A wish-list file read at a commit: its parsed content, or `undefined` when the file does not exist there. */
export interface WishlistFile {
  path: string;
  list: Wishlist | undefined;
}

/**
 * What every job runner shares: the configuration and clients, the wish-list clones and publishers
 * (one each, kept across jobs), and the steps several runners take — read the wish lists at a commit,
 * convert one wish, set a commit status the job owns.
 */
export class BotContext {
  readonly deps: BotDeps;
  readonly #repos = new Map<string, WishlistRepository>();
  readonly #publishers = new Map<string, Publisher>();
  #sources: Sources | undefined;
  /** What the conversion thread needs of the wish list a ConvertContext was made for. */
  readonly #threadSpecs = new WeakMap<ConvertContext, Pick<ConversionRequest, 'thin'>>();

  constructor(deps: BotDeps) {
    this.deps = deps;
  }

  /** Where images are read from: the registry client, and the registry-less sources of the configuration. */
  get sources(): Sources {
    this.#sources ??= new Sources({
      registry: this.deps.client,
      settings: registrySettingsFromEnv(this.deps.env),
      dogestryRemotes: this.config.dogestryRemotes ?? [],
      env: this.deps.env,
      cacheDir: this.sourcesCacheDir,
      logger: this.deps.logger,
    });
    return this.#sources;
  }

  /** The source cache (src/sources/cache.ts), shared with the conversion thread: its writes are atomic. */
  get sourcesCacheDir(): string {
    return join(this.config.cacheDir, 'sources');
  }

  get config(): BotConfig {
    return this.deps.config;
  }

  get store(): StateStore {
    return this.deps.store;
  }

  now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  forgeFor(wishlist: WishlistRepoConfig): Forge {
    return this.deps.forgeFor(wishlist);
  }

  wishlistConfig(name: string): WishlistRepoConfig {
    const wishlist = this.config.wishlists.find((w) => w.name === name);
    if (!wishlist) throw new DuccError('BOT_ERR_CONFIG', `wish list '${name}' is no longer configured`);
    return wishlist;
  }

  /** The local clone of a wish-list repository. */
  repo(wishlist: WishlistRepoConfig): WishlistRepository {
    let repo = this.#repos.get(wishlist.name);
    if (!repo) {
      repo = new WishlistRepository({ cacheDir: this.config.cacheDir, name: wishlist.name, cloneUrl: wishlist.cloneUrl });
      this.#repos.set(wishlist.name, repo);
    }
    return repo;
  }

  /** Every wish-list file of `wishlist` (its `paths`) at commit `sha`, parsed; the commit must be in the clone. */
  async readWishlists(wishlist: WishlistRepoConfig, sha: string): Promise<WishlistFile[]> {
    const repo = this.repo(wishlist);
    const files: WishlistFile[] = [];
    for (const path of wishlist.paths) {
      const text = await repo.readFile(sha, path);
      files.push({ path, list: text === undefined ? undefined : parseWishlist(text, path) });
    }
    return files;
  }

  /** The publisher of a `cvmfs_repo`, made and recovered (a transaction left open is aborted) on first use. */
  async publisherFor(cvmfsRepo: string): Promise<Publisher> {
    let publisher = this.#publishers.get(cvmfsRepo);
    if (!publisher) {
      publisher = await createPublisher(this.config.publisher, cvmfsRepo, this.deps.logger);
      await publisher.recover();
      this.#publishers.set(cvmfsRepo, publisher);
    }
    return publisher;
  }

  async convertContext(list: Wishlist): Promise<ConvertContext> {
    const options = this.convertOptions();
    const pushThin = options.skipThinImage || list.wishes.length === 0 ? undefined : thinPusher(list, this.deps.env, this.deps.logger, this.sources.sinks);
    const ctx: ConvertContext = {
      sources: this.sources,
      publisher: await this.publisherFor(list.cvmfsRepo!),
      cvmfsRepo: list.cvmfsRepo!,
      notifications: NotificationWriter.discard(),
      logger: this.deps.logger,
      ...(pushThin ?? {}),
    };
    const thin = pushThin === undefined ? undefined : { user: list.user, outputFormat: list.outputFormat, wishes: list.wishes };
    this.#threadSpecs.set(ctx, { thin });
    return ctx;
  }

  /** Converts one image, on the conversion thread when there is one. */
  async #convert(ctx: ConvertContext, image: ImageReference, options: ConvertOptions, log: Logger): Promise<ImageOutcome[]> {
    const spec = this.#threadSpecs.get(ctx);
    if (this.deps.conversionThread !== undefined && spec !== undefined) {
      const sources = { dogestryRemotes: this.config.dogestryRemotes ?? [], cacheDir: this.sourcesCacheDir };
      return this.deps.conversionThread.convert({ publisher: this.config.publisher, cvmfsRepo: ctx.cvmfsRepo, sources, thin: spec.thin, image, options }, log);
    }
    return options.multiArch ? convertMultiArch(ctx, image, options) : [await convertImage(ctx, image, options)];
  }

  convertOptions(): ConvertOptions {
    const convert = this.config.convert;
    return {
      ...DEFAULT_CONVERT_OPTIONS,
      skipThinImage: convert.skipThinImage,
      multiArch: convert.multiArch,
      ...(convert.platform ? { platform: parsePlatform(convert.platform) } : {}),
    };
  }

  /**
   * Converts every image a wish names (a wildcard names several) and records what was published; a
   * failing image is a `failed` line, not an exception. `force` converts even what is up to date.
   */
  async convertWish(wishlist: WishlistRepoConfig, wish: Wish, ctx: ConvertContext, sha: string, force: boolean, log: Logger): Promise<PublishOutcomeLine[]> {
    const results: PublishOutcomeLine[] = [];
    let images: ImageReference[];
    try {
      images = await expandWish(this.sources, wish);
    } catch (error) {
      const failed: PublishOutcomeLine[] = [
        { image: wish.input, status: 'failed', detail: `line ${wish.source.line}: ${errorMessage(error)}`, temporary: isTemporary(error) },
      ];
      await this.#count(wishlist, failed);
      return failed;
    }
    const options: ConvertOptions = { ...this.convertOptions(), ...(force ? { convertAgain: true } : {}) };
    for (const image of images) {
      const name = wholeName(image);
      try {
        const outcomes = await this.#convert(ctx, image, options, log);
        const main = outcomes[0]!;
        await this.store.upsertPublished({
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
          updatedAt: this.now(),
          lastResult: 'ok',
        });
        const status = outcomes.some((o) => o.status === 'converted') ? 'converted' : 'up-to-date';
        results.push({
          image: name,
          status,
          ...(status === 'converted'
            ? {
                detail: `${main.newLayers} new layers, config ${main.configDigest.slice(7, 19)}`,
                published: {
                  path: `/cvmfs/${wish.cvmfsRepo}/${main.publicPath}`,
                  flatDigest: main.configDigest,
                  ...(main.thinImage ? { thinImage: main.thinImage } : {}),
                  newLayers: main.newLayers,
                  newLayerBytes: main.newLayerBytes,
                  reusedLayers: main.layers - main.newLayers,
                  reusedLayerBytes: main.layerBytes - main.newLayerBytes,
                },
              }
            : {}),
        });
      } catch (error) {
        log.error({ image: name, err: errorMessage(error) }, 'conversion failed');
        const previous = (await this.store.listPublished(wishlist.name)).find((record) => record.image === name);
        if (previous) await this.store.upsertPublished({ ...previous, updatedAt: this.now(), lastResult: 'error', lastError: errorMessage(error) });
        results.push({ image: name, status: 'failed', detail: `line ${wish.source.line}: ${errorMessage(error)}`, temporary: isTemporary(error) });
      }
    }
    await this.#count(wishlist, results);
    return results;
  }

  /** Adds a wish's outcomes to the wish list's counters (/metrics, the status page). */
  async #count(wishlist: WishlistRepoConfig, results: PublishOutcomeLine[]): Promise<void> {
    const count = (status: PublishOutcomeLine['status']) => results.filter((r) => r.status === status).length;
    await this.store.countConversions(wishlist.name, { converted: count('converted'), upToDate: count('up-to-date'), failed: count('failed') });
  }

  /** Sets a commit status and records it as owned by `job` (so a failed job leaves none pending). */
  async setStatus(job: Job, wishlist: WishlistRepoConfig, sha: string, context: string, state: CommitState, description: string): Promise<void> {
    const forge = this.forgeFor(wishlist);
    const targetUrl = this.config.publicUrl ? `${this.config.publicUrl.replace(/\/$/, '')}/jobs/${job.id}` : undefined;
    await forge.setCommitStatus(wishlist.project, sha, { state, context, description, ...(targetUrl ? { targetUrl } : {}) });
    await this.store.recordStatus({ jobId: job.id, forge: wishlist.forge, project: wishlist.project, sha, context, state });
  }
}

/** Thrown between images when the worker stops: the job goes back to the queue. */
export function throwIfStopped(signal: AbortSignal): void {
  if (signal.aborted) throw new DuccError('BOT_ERR_PUBLISH', 'stopped by shutdown');
}
