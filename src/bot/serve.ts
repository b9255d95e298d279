import type { RequestListener, Server } from 'node:http';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { BotConfig, WishlistRepoConfig } from '../config/bot-config.ts';
import { readSettings, type Settings } from '../config/settings.ts';
import { checkPublisherPaths, describeFsError, describeSetting, ensureWritableDir } from '../config/writable-dir.ts';
import type { Forge } from '../forge/forge.ts';
import { GitHubForge } from '../forge/github-forge.ts';
import { GitLabForge } from '../forge/gitlab-forge.ts';
import { buildApp } from '../http/app.ts';
import { listen, type ListenOptions } from '../http/server.ts';
import { JobWorker } from '../jobs/worker.ts';
import { RegistryClient } from '../registry/client.ts';
import { SqliteStateStore } from '../state/sqlite-store.ts';
import { PostgresStateStore } from '../state/postgres-store.ts';
import { redactedUrl } from '../config/state-config.ts';
import type { StateStore } from '../state/types.ts';
import { DuccError } from '../util/errors.ts';
import { secretFromEnv } from '../util/secrets.ts';
import { pullCredentials } from '../registry/pull-credentials.ts';
import { Bot } from './bot.ts';
import { GcRunLog } from '../gc/run-log.ts';
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
  /** Attempts at a job that fails temporarily before it fails for good (JobWorker's maxAttempts; default 8). */
  jobAttempts?: number;
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
  // Everything that can be wrong with the configuration or the machine is found before anything starts,
  // and what was opened is closed again: a fatal start-up error ends `ducc serve` at once (exit 1, so
  // that systemd's Restart=on-failure and container restart policies see it), naming the setting.
  checkPaths(config);
  const store = await openStore(config, env, logger);
  try {
    const interrupted = await store.requeueRunning();
    if (interrupted.length > 0) logger.warn({ jobs: interrupted.map((job) => job.id) }, 'resuming jobs interrupted by a restart or by a replica that stopped');
    await prune(store);

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
    const gcRuns = new GcRunLog();
    const conversionThread = options.conversions === 'main-thread' ? undefined : new ConversionThread({ env, logger });
    const bot = new Bot({
      config,
      env,
      store,
      forgeFor,
      client: new RegistryClient({ credentials: await pullCredentials(env), logger }),
      logger,
      onEnqueued: () => workerRef.current?.poke(),
      gcRuns,
      ...(conversionThread === undefined ? {} : { conversionThread }),
    });
    const jobs = new JobWorker({
      store,
      logger,
      ...(options.jobAttempts === undefined ? {} : { maxAttempts: options.jobAttempts }),
      handle: (job, signal) => bot.handle(job, signal),
      onJobFinished: async (job, outcome, error) => {
        if (outcome !== 'failed') return;
        const wishlist = (job.payload as { wishlist?: unknown }).wishlist;
        if (typeof wishlist === 'string') await store.countConversions(wishlist, { failedJobs: 1 });
        await bot.finalizeStatuses(job, error);
      },
    });
    workerRef.current = jobs;

    let shuttingDown = false;
    // Reads the webhook secrets: a missing one is an error here, before anything listens or runs.
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
      gcRuns,
    });
    const server = await listenOn(app, config, options.timeouts);
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.listen.port;
    conversionThread?.yieldTo(server);
    jobs.start();
    logger.info({ host: config.listen.host, port, wishlists: config.wishlists.map((w) => w.name) }, 'ducc serve listening');
    return running({
      config,
      store,
      server,
      bot,
      worker: jobs,
      conversionThread,
      logger,
      isShuttingDown: () => shuttingDown,
      shutDown: () => (shuttingDown = true),
    });
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** What runs once `ducc serve` listens: the reconcile and prune timers, and the graceful stop. */
function running(parts: {
  config: BotConfig;
  store: StateStore;
  server: Server;
  bot: Bot;
  worker: JobWorker;
  conversionThread: ConversionThread | undefined;
  logger: Logger;
  isShuttingDown: () => boolean;
  shutDown: () => void;
}): RunningServer {
  const { config, store, server, bot, worker, logger } = parts;
  const timers: NodeJS.Timeout[] = [];
  // Timers run in the background: what fails there (the state database unreachable for a moment) is
  // logged, and the next tick tries again.
  const background = (what: string, work: () => Promise<unknown>) => () => {
    work().catch((error: unknown) => logger.error({ err: error }, `cannot ${what}`));
  };
  const scheduleReconcile = background('queue the reconcile', () => bot.scheduleReconcile());
  if (config.reconcileMinutes > 0) {
    scheduleReconcile();
    timers.push(setInterval(scheduleReconcile, config.reconcileMinutes * 60_000));
  }
  timers.push(
    setInterval(
      background('prune the state database', () => prune(store)),
      3600_000,
    ),
  );
  const gcHours = config.gc?.intervalHours ?? 0;
  if (gcHours > 0)
    timers.push(
      setInterval(
        background('queue the garbage collection', () => bot.scheduleGc()),
        gcHours * 3600_000,
      ),
    );
  for (const timer of timers) timer.unref();

  return {
    server,
    bot,
    worker,
    async stop(deadlineMs = 60_000) {
      if (parts.isShuttingDown()) return;
      parts.shutDown();
      for (const timer of timers) clearInterval(timer);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await worker.stop(deadlineMs);
      await parts.conversionThread?.close();
      // Keep-alive connections (a browser showing the status page, which reloads itself) would hold the
      // server open: idle ones are closed now, and whatever is left a second later.
      server.closeIdleConnections();
      const cut = setTimeout(() => server.closeAllConnections(), 1000);
      await closed;
      clearTimeout(cut);
      await store.close();
      logger.info('ducc serve stopped');
    },
  };
}

async function prune(store: StateStore): Promise<void> {
  await store.pruneDeliveries(DELIVERY_RETENTION_MS);
  await store.pruneFinishedJobs(FINISHED_JOB_RETENTION_MS);
}

/** The directories `ducc serve` writes, checked (and made) at start: each problem names its setting. */
function checkPaths(config: BotConfig): void {
  if (config.state?.kind !== 'postgres' && config.statePath !== ':memory:' && !config.statePath.startsWith('file:'))
    ensureWritableDir('statePath', dirname(config.statePath), config.statePath);
  ensureWritableDir('cacheDir', config.cacheDir);
  checkPublisherPaths(config.publisher);
}

/** The state store the configuration names; a failure to open it names the setting (never a password). */
async function openStore(config: BotConfig, env: NodeJS.ProcessEnv, logger: Logger): Promise<StateStore> {
  const state = config.state;
  if (state?.kind === 'postgres') {
    const password = secretFromEnv(env, state.passwordEnv);
    const setting = `state.url ${redactedUrl(state.url)}`;
    try {
      const store = await PostgresStateStore.open({
        url: state.url,
        ...(password === undefined ? {} : { password }),
        leaseMs: state.leaseSeconds * 1000,
        logger,
      });
      logger.info({ state: redactedUrl(state.url), leaseSeconds: state.leaseSeconds }, 'state in PostgreSQL: this replica shares its queue with the others');
      return store;
    } catch (error) {
      if (error instanceof DuccError) throw new DuccError(error.code, `${setting}: ${error.message}`, { cause: error });
      throw new DuccError('BOT_ERR_CONFIG', `${setting}: cannot open the PostgreSQL state database: ${(error as Error).message}`, { cause: error });
    }
  }
  const statePath = config.statePath;
  try {
    return SqliteStateStore.open(statePath);
  } catch (error) {
    if (error instanceof DuccError) throw new DuccError(error.code, `${describeSetting('statePath', statePath)}: ${error.message}`, { cause: error });
    throw new DuccError('BOT_ERR_CONFIG', `${describeSetting('statePath', statePath)}: cannot open the state database: ${describeFsError(error)}`, {
      cause: error,
    });
  }
}

/** Listens where the configuration says; a failure (the port is taken, the address is not here) names the setting. */
async function listenOn(app: RequestListener, config: BotConfig, timeouts: StartServerOptions['timeouts']): Promise<Server> {
  const { host, port } = config.listen;
  try {
    return await listen(app, { ...timeouts, host, port });
  } catch (error) {
    const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    throw new DuccError(
      'BOT_ERR_CONFIG',
      `listen: cannot listen on ${where}: ${describeFsError(error)}; change listen.host and listen.port in the config file, or set DUCC_LISTEN=host:port`,
      { cause: error },
    );
  }
}
