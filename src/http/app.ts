import type { RequestListener } from 'node:http';
import express, { type ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Intake } from '../jobs/intake.ts';
import type { BotConfig } from '../config/bot-config.ts';
import { DEFAULT_SETTINGS, type HttpSettings } from '../config/settings.ts';
import type { PublishedImage, StateStore } from '../state/types.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { GitHubSignature, SharedSecret, secretsFromEnv } from './auth.ts';
import { githubHook } from './github-hook.ts';
import { gitlabHook } from './gitlab-hook.ts';
import { matchHookRoute, type HookName } from './hook-routes.ts';
import { createMetrics } from './metrics.ts';
import { registryHook, type RegistryHook } from './registry-hook.ts';
import { renderStatusPage } from './status-page.ts';
import type { GcRunLog } from '../gc/run-log.ts';
import { answerError, locals, replyEarly, track, type HookHandler, type HookResponse, type WebhookContext } from './webhook-common.ts';

export interface AppDeps {
  config: BotConfig;
  /** Default DEFAULT_SETTINGS.http. */
  settings?: HttpSettings;
  /** Where webhook secrets are read from (`NAME`, `NAME_FILE`, and `NAME_PREVIOUS` during a rotation). */
  env: NodeJS.ProcessEnv;
  intake: Intake;
  /** Read only: the status page, `/status` and the queue gauges. */
  store: StateStore;
  logger: Logger;
  version: string;
  /** `/readyz` answers 503 while this returns false. */
  isReady?: () => boolean;
  isShuttingDown?: () => boolean;
  /** The last garbage collection of each repository (/metrics, /status, the status page). */
  gcRuns?: GcRunLog;
}

/** Secrets shorter than this in a URL path can be guessed; we warn. */
const MIN_PATH_SECRET_LENGTH = 24;
/** Rows per job list on `/status` and the status page. */
const JOB_LIST_LIMIT = 50;

/**
 * The HTTP face of `ducc serve` (no `listen` here: see `listen()` in server.ts).
 *
 * - `POST /hooks/github`, `POST /hooks/gitlab`, `POST /hooks/registry/:kind/:name[/:secret]`: verify,
 *   parse, hand to the intake, answer — no network call, no conversion inside a request. These are
 *   dispatched before express, on the plain node:http request and response: express's own work per
 *   request (its request and response prototypes, routing) cost as much CPU as everything else a
 *   delivery needs, and a burst of deliveries is answered one after another (see hook-routes.ts).
 * - `GET /healthz`, `GET /readyz`, `GET /status`, `GET /metrics`, `GET /` (HTML status page): express.
 *
 * Secrets are read from `env` once, here. A webhook endpoint whose secret is not set is disabled
 * (404), and it is an error (BOT_ERR_CONFIG, thrown here) when a wish list or registry hook needs it.
 */
export function buildApp(deps: AppDeps): RequestListener {
  const { config, env, store, logger } = deps;
  const problems: string[] = [];
  const read = (name: string): string[] => {
    try {
      return secretsFromEnv(env, name);
    } catch (error) {
      problems.push(errorMessage(error));
      return [];
    }
  };

  const githubSignature = new GitHubSignature(read(config.githubSecretEnv));
  if (!githubSignature.configured && config.wishlists.some((w) => w.forge === 'github')) {
    problems.push(`${config.githubSecretEnv} (or ${config.githubSecretEnv}_FILE) is not set: GitHub wish lists need the webhook secret`);
  }
  const gitlabToken = new SharedSecret(read(config.gitlabTokenEnv));
  if (!gitlabToken.configured && config.wishlists.some((w) => w.forge === 'gitlab')) {
    problems.push(`${config.gitlabTokenEnv} (or ${config.gitlabTokenEnv}_FILE) is not set: GitLab wish lists need the webhook secret token`);
  }
  const registryHooks = new Map<string, RegistryHook>();
  for (const hook of config.registryHooks) {
    const secrets = read(hook.secretEnv);
    if (secrets.length === 0) problems.push(`registry hook '${hook.name}': ${hook.secretEnv} (or ${hook.secretEnv}_FILE) is not set`);
    else if ((hook.kind === 'dockerhub' || hook.kind === 'quay') && secrets.some((s) => s.length < MIN_PATH_SECRET_LENGTH)) {
      logger.warn(
        { hook: hook.name, minLength: MIN_PATH_SECRET_LENGTH },
        'registry hook secret is short for a URL secret; use a long random value (e.g. openssl rand -hex 24)',
      );
    }
    registryHooks.set(hook.name, { config: hook, secret: new SharedSecret(secrets) });
  }
  if (problems.length > 0) {
    throw new DuccError(
      'BOT_ERR_CONFIG',
      `webhook secrets missing (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`,
    );
  }

  const metrics = createMetrics({
    store,
    version: deps.version,
    wishlists: config.wishlists.map((w) => w.name),
    ...(deps.isShuttingDown ? { isShuttingDown: deps.isShuttingDown } : {}),
    ...(deps.gcRuns ? { gcRuns: deps.gcRuns } : {}),
  });
  const context: WebhookContext = { config, settings: deps.settings ?? DEFAULT_SETTINGS.http, intake: deps.intake, logger, metrics };
  const shuttingDown = () => deps.isShuttingDown?.() ?? false;

  // Webhooks. Each reads its own raw body: no body parser may run before a signature check.
  const notConfigured =
    (message: string): HookHandler =>
    (_req, res) =>
      replyEarly(res, 404, 'not_configured', { error: message });
  const hooks: Record<HookName, HookHandler> = {
    github: githubSignature.configured ? githubHook(context, githubSignature) : notConfigured('GitHub webhooks are not configured'),
    gitlab: gitlabToken.configured ? gitlabHook(context, gitlabToken) : notConfigured('GitLab webhooks are not configured'),
    registry: registryHook(context, registryHooks),
  };

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use((_req, res, next) => {
    setCommonHeaders(res);
    next();
  });

  // Probes and status.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const ready = (deps.isReady?.() ?? true) && !shuttingDown();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : shuttingDown() ? 'shutting down' : 'not ready' });
  });
  app.get('/status', async (_req, res) => {
    const [queue, running, queued, failed] = await Promise.all([
      store.counts(),
      store.listJobs({ status: 'running', limit: JOB_LIST_LIMIT }),
      store.listJobs({ status: 'queued', limit: JOB_LIST_LIMIT }),
      store.listJobs({ status: 'failed', limit: JOB_LIST_LIMIT }),
    ]);
    res.json({
      version: deps.version,
      shuttingDown: shuttingDown(),
      ready: deps.isReady?.() ?? true,
      queue,
      running,
      queued,
      failed,
      gc: deps.gcRuns?.list() ?? [],
    });
  });
  app.get('/metrics', async (_req, res) => {
    const body = await metrics.registry.metrics();
    res.set('Content-Type', metrics.registry.contentType).send(body);
  });
  app.get('/', async (req, res) => {
    const published = new Map<string, PublishedImage[]>();
    for (const wishlist of config.wishlists) published.set(wishlist.name, await store.listPublished(wishlist.name));
    const [queue, running, queued, failed, stats] = await Promise.all([
      store.counts(),
      store.listJobs({ status: 'running', limit: JOB_LIST_LIMIT }),
      store.listJobs({ status: 'queued', limit: JOB_LIST_LIMIT }),
      store.listJobs({ status: 'failed', limit: 10 }),
      store.wishlistStats(),
    ]);
    const html = renderStatusPage({
      version: deps.version,
      shuttingDown: shuttingDown(),
      config,
      queue,
      running,
      queued,
      failed,
      published,
      stats,
      refreshSeconds: refreshSeconds(req.query['refresh']),
      now: Date.now(),
      gc: deps.gcRuns?.list() ?? [],
    });
    res
      .set({
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        'Referrer-Policy': 'no-referrer',
      })
      .send(html);
  });

  // No echo of the path in 404s: it may hold a registry secret.
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use(errorHandler(logger));

  return (req, res) => {
    const match = req.method === 'POST' ? matchHookRoute(req.url ?? '/') : undefined;
    if (match === undefined) {
      app(req, res);
      return;
    }
    setCommonHeaders(res);
    track(context, res, match.source, match.route);
    const failed = (error: unknown): void => answerError(logger, res, error);
    // A parameter that is not valid percent-encoding: 400, as express answers it.
    if (match.params === undefined) {
      failed(Object.assign(new Error('bad parameter'), { status: 400 }));
      return;
    }
    try {
      const done = hooks[match.hook](req, res, match.params);
      if (done !== undefined) done.catch(failed);
    } catch (error) {
      failed(error);
    }
  };
}

/** Headers of every answer: nothing is sniffed or cached. */
function setCommonHeaders(res: HookResponse): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-store');
}

/** Last resort for the express routes (status and probes): thrown bugs. Never logs the URL. */
function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const state = locals(res);
    state.route = typeof req.route?.path === 'string' ? req.route.path : 'unmatched';
    answerError(logger, res, error);
  };
}

/** The status page reloads itself every 30 s; `/?refresh=N` sets N (2 to 3600), `0` turns it off. */
function refreshSeconds(value: unknown): number {
  if (typeof value !== 'string' || !/^\d{1,4}$/.test(value)) return 30;
  const seconds = Number(value);
  return seconds === 0 ? 0 : Math.min(3600, Math.max(2, seconds));
}
