import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { BotConfig, WishlistRepoConfig } from '../config/bot-config.ts';
import { readSettings, type Settings } from '../config/settings.ts';
import type { Forge } from '../forge/forge.ts';
import { GitHubForge } from '../forge/github-forge.ts';
import { GitLabForge } from '../forge/gitlab-forge.ts';
import { buildApp } from '../http/app.ts';
import { listen, type ListenOptions } from '../http/server.ts';
import { JobWorker } from '../jobs/worker.ts';
import { RegistryClient } from '../registry/client.ts';
import { SqliteStateStore } from '../state/sqlite-store.ts';
import { DuccError } from '../util/errors.ts';
import { secretFromEnv } from '../util/secrets.ts';
import { pullCredentials } from '../registry/pull-credentials.ts';
import { Bot } from './bot.ts';
import { ConversionThread } from './conversion-thread.ts';

/** Delivery ids are kept this long to recognise redeliveries (GitHub and GitLab retry for up to days). */
const DELIVERY_RETENTION_MS = 7 * 24 * 3600 * 1000;
/** Finished jobs are kept this long (status page, /status); without a limit the table grows forever. */
const FINISHED_JOB_RETENTION_MS = 30 * 24 * 3600 * 1000;

/** Knobs for tests and embedders; `ducc serve` itself uses the defaults. */
export interface StartServerOptions {
  /** Listener timeouts (see SERVER_TIMEOUTS in http/server.ts); tests shorten them to exercise slow senders. */
  timeouts?: Pick<ListenOptions, 'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs'>;
  /** The DUCC_* settings, read by the caller (`ducc serve` reads them at start); default readSettings(env). */
  settings?: Settings;
  /** Where conversions run: on a thread of their own (default; conversion-thread.ts), or on the main thread (the bench compares both). */
  conversions?: 'worker-thread' | 'main-thread';
}

export interface RunningServer {
  server: Server;
  bot: Bot;
  worker: JobWorker;
  /** Graceful shutdown: stop intake, let the running job finish (or requeue it) within the deadline. */
  stop(deadlineMs?: number): Promise<void>;
}

/**
 * `ducc serve`: the webhook listener, the durable job queue and its worker, and the periodic reconcile,
 * wired together. Jobs interrupted by a crash are put back in the queue at start and run again
 * (conversions are idempotent), so every commit status they own ends in a final state.
 */
export async function startServer(
  config: BotConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  version: string,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const settings = options.settings ?? readSettings(env);
  const store = SqliteStateStore.open(config.statePath);
  const interrupted = store.requeueRunning();
  if (interrupted.length > 0) logger.warn({ jobs: interrupted.map((job) => job.id) }, 'resuming jobs interrupted by a restart');
  const prune = (): void => {
    store.pruneDeliveries(DELIVERY_RETENTION_MS);
    store.pruneFinishedJobs(FINISHED_JOB_RETENTION_MS);
  };
  prune();

  const forges = new Map<string, Forge>();
  const forgeFor = (wishlist: WishlistRepoConfig): Forge => {
    let forge = forges.get(wishlist.name);
    if (!forge) {
      const token = secretFromEnv(env, wishlist.tokenEnv);
      if (token === undefined)
        throw new DuccError('BOT_ERR_CONFIG', `wish list '${wishlist.name}': ${wishlist.tokenEnv} (or ${wishlist.tokenEnv}_FILE) is not set`);
      const botUser = wishlist.botUser;
      forge =
        wishlist.forge === 'github'
          ? new GitHubForge({ baseUrl: wishlist.apiUrl, token, ...(botUser ? { botLogin: botUser } : {}), logger })
          : new GitLabForge({ host: wishlist.apiUrl, token, ...(botUser ? { botUsername: botUser } : {}), logger });
      forges.set(wishlist.name, forge);
    }
    return forge;
  };
  // Fail at start, not at the first webhook, when a token is missing.
  for (const wishlist of config.wishlists) forgeFor(wishlist);

  // The bot pokes the worker, and the worker runs the bot's jobs: the worker is made second.
  const workerRef: { current?: JobWorker } = {};
  const conversionThread = options.conversions === 'main-thread' ? undefined : new ConversionThread({ env, logger });
  const bot = new Bot({
    config,
    env,
    store,
    forgeFor,
    client: new RegistryClient({ credentials: await pullCredentials(env), logger }),
    logger,
    onEnqueued: () => workerRef.current?.poke(),
    ...(conversionThread === undefined ? {} : { conversionThread }),
  });
  const worker = new JobWorker({
    store,
    logger,
    handle: (job, signal) => bot.handle(job, signal),
    onJobFinished: async (job, outcome, error) => {
      if (outcome === 'failed') await bot.finalizeStatuses(job, error);
    },
  });
  workerRef.current = worker;
  worker.start();

  let shuttingDown = false;
  const app = buildApp({
    config,
    settings: settings.http,
    env,
    intake: bot,
    store,
    logger,
    version,
    isReady: () => !shuttingDown,
    isShuttingDown: () => shuttingDown,
  });
  const server = await listen(app, { ...options.timeouts, host: config.listen.host, port: config.listen.port });
  conversionThread?.yieldTo(server);
  logger.info({ host: config.listen.host, port: config.listen.port, wishlists: config.wishlists.map((w) => w.name) }, 'ducc serve listening');

  const timers: NodeJS.Timeout[] = [];
  if (config.reconcileMinutes > 0) {
    bot.scheduleReconcile();
    timers.push(setInterval(() => bot.scheduleReconcile(), config.reconcileMinutes * 60_000));
  }
  timers.push(setInterval(prune, 3600_000));
  for (const timer of timers) timer.unref();

  return {
    server,
    bot,
    worker,
    async stop(deadlineMs = 60_000) {
      if (shuttingDown) return;
      shuttingDown = true;
      for (const timer of timers) clearInterval(timer);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections?.();
      await worker!.stop(deadlineMs);
      await conversionThread?.close();
      await closed;
      store.close();
      logger.info('ducc serve stopped');
    },
  };
}
