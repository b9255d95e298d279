import express, { type ErrorRequestHandler, type Express } from 'express';
import type { Logger } from 'pino';
import type { Intake } from '../bot/intake.ts';
import type { BotConfig } from '../config/bot-config.ts';
import type { PublishedImage, StateStore } from '../state/types.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { GitHubSignature, SharedSecret, secretsFromEnv } from './auth.ts';
import { githubHookHandlers } from './github-hook.ts';
import { gitlabHookHandlers } from './gitlab-hook.ts';
import { createMetrics } from './metrics.ts';
import { REGISTRY_ROUTE, REGISTRY_ROUTE_WITH_SECRET, registryHookHandlers, type RegistryHook } from './registry-hook.ts';
import { renderStatusPage } from './status-page.ts';
import { locals, replyEarly, track, type WebhookContext } from './webhook-common.ts';

export interface AppDeps {
  config: BotConfig;
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
}

/** Secrets shorter than this in a URL path can be guessed; we warn. */
const MIN_PATH_SECRET_LENGTH = 24;
/** Rows per job list on `/status` and the status page. */
const JOB_LIST_LIMIT = 50;

/**
 * The HTTP face of `ducc serve` (no `listen` here: see `listen()` in server.ts).
 *
 * - `POST /hooks/github`, `POST /hooks/gitlab`, `POST /hooks/registry/:kind/:name[/:secret]`: verify,
 *   parse, hand to the intake, answer — no network call, no conversion inside a request.
 * - `GET /healthz`, `GET /readyz`, `GET /status`, `GET /metrics`, `GET /` (HTML status page).
 *
 * Secrets are read from `env` once, here. A webhook endpoint whose secret is not set is disabled
 * (404), and it is an error (BOT_ERR_CONFIG, thrown here) when a wish list or registry hook needs it.
 */
export function buildApp(deps: AppDeps): Express {
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
      logger.warn({ hook: hook.name, minLength: MIN_PATH_SECRET_LENGTH }, 'registry hook secret is short for a URL secret; use a long random value (e.g. openssl rand -hex 24)');
    }
    registryHooks.set(hook.name, { config: hook, secret: new SharedSecret(secrets) });
  }
  if (problems.length > 0) {
    throw new DuccError('BOT_ERR_CONFIG', `webhook secrets missing (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`);
  }

  const metrics = createMetrics({ store, version: deps.version, ...(deps.isShuttingDown ? { isShuttingDown: deps.isShuttingDown } : {}) });
  const context: WebhookContext = { config, intake: deps.intake, logger, metrics };
  const shuttingDown = () => deps.isShuttingDown?.() ?? false;

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use((_req, res, next) => {
    res.set({ 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' });
    next();
  });

  // Webhooks. Each route reads its own raw body: no global body parser may run before a signature check.
  if (githubSignature.configured) app.post('/hooks/github', ...githubHookHandlers(context, githubSignature));
  else app.post('/hooks/github', track(context, 'github', '/hooks/github'), (_req, res) => replyEarly(res, 404, 'not_configured', { error: 'GitHub webhooks are not configured' }));
  if (gitlabToken.configured) app.post('/hooks/gitlab', ...gitlabHookHandlers(context, gitlabToken));
  else app.post('/hooks/gitlab', track(context, 'gitlab', '/hooks/gitlab'), (_req, res) => replyEarly(res, 404, 'not_configured', { error: 'GitLab webhooks are not configured' }));
  app.post(REGISTRY_ROUTE, ...registryHookHandlers(context, registryHooks, REGISTRY_ROUTE));
  app.post(REGISTRY_ROUTE_WITH_SECRET, ...registryHookHandlers(context, registryHooks, REGISTRY_ROUTE_WITH_SECRET));

  // Probes and status.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const ready = (deps.isReady?.() ?? true) && !shuttingDown();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : shuttingDown() ? 'shutting down' : 'not ready' });
  });
  app.get('/status', (_req, res) => {
    res.json({
      version: deps.version,
      shuttingDown: shuttingDown(),
      ready: deps.isReady?.() ?? true,
      queue: store.counts(),
      running: store.listJobs({ status: 'running', limit: JOB_LIST_LIMIT }),
      queued: store.listJobs({ status: 'queued', limit: JOB_LIST_LIMIT }),
      failed: store.listJobs({ status: 'failed', limit: JOB_LIST_LIMIT }),
    });
  });
  app.get('/metrics', async (_req, res) => {
    const body = await metrics.registry.metrics();
    res.set('Content-Type', metrics.registry.contentType).send(body);
  });
  app.get('/', (_req, res) => {
    const published = new Map<string, PublishedImage[]>();
    for (const wishlist of config.wishlists) published.set(wishlist.name, store.listPublished(wishlist.name));
    const html = renderStatusPage({
      version: deps.version,
      shuttingDown: shuttingDown(),
      config,
      queue: store.counts(),
      running: store.listJobs({ status: 'running', limit: JOB_LIST_LIMIT }),
      queued: store.listJobs({ status: 'queued', limit: JOB_LIST_LIMIT }),
      failed: store.listJobs({ status: 'failed', limit: 10 }),
      published,
      now: Date.now(),
    });
    res
      .set({ 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", 'Referrer-Policy': 'no-referrer' })
      .send(html);
  });

  // No echo of the path in 404s: it may hold a registry secret.
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use(errorHandler(logger));
  return app;
}

/**
 * Last resort. Body-reading errors (413 for bodies without a declared length, aborted uploads) and
 * thrown bugs end here. For GitLab, 4xx become 200 (see gitlab-hook.ts). Never logs the URL.
 */
function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const err = error as { status?: unknown; type?: unknown };
    const status = typeof err.status === 'number' && err.status >= 400 && err.status < 600 ? err.status : 500;
    const state = locals(res);
    const route = state.route ?? req.route?.path ?? 'unmatched';
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err.type === 'request.aborted') {
      state.outcome = 'aborted';
      res.destroy();
      return;
    }
    const overloaded = err.type === 'bodies.overloaded';
    if (status >= 500 && !overloaded) logger.error({ err: error, route }, 'request failed');
    const outcome = overloaded ? 'overloaded' : status === 413 ? 'too_large' : status === 415 ? 'unsupported_encoding' : status >= 500 ? 'error' : 'invalid';
    // Body-reading errors (they carry a `type`) have safe messages; others could echo the URL.
    const message = typeof err.type === 'string' ? errorMessage(error) : status >= 500 ? 'internal error' : 'bad request';
    if (state.source === 'gitlab' && status < 500) {
      state.reason = message;
      replyEarly(res, 200, 'ignored', { outcome: 'ignored', reason: message });
      return;
    }
    replyEarly(res, status, outcome, { error: message });
  };
}
