/**
 * Harness of the webhook abuse tests: the real `ducc serve` (startServer: SQLite queue, Bot intake,
 * worker, HTTP app) in this process, with its log captured, distinctive secrets, and helpers that send
 * hostile requests byte by byte.
 *
 * Every bot started here checks, when its test ends, that none of the secrets appears in its log.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { startServer, type RunningServer } from '../../../src/bot/serve.ts';
import type { BotConfig, WishlistRepoConfig } from '../../../src/config/bot-config.ts';
import type { Delivery } from '../../../src/forge/events.ts';
import type { ListenOptions } from '../../../src/http/server.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { botConfig } from '../../support/bot-harness.ts';

/** Long, distinctive values: any of them in a log line, a status or a comment is a leak. */
export const SECRETS = {
  githubWebhook: 'gh-hook-secret-Q7mX2vR9kL4pT8wZ',
  gitlabWebhook: 'gl-hook-token-N3bH6yC1fJ5sD0aE',
  githubApi: 'ghp_forgeapitokenK8uV3mB6nQ1wE4rT',
  gitlabApi: 'glpat-forgeapitokenY2iO7pA9sD5fG3h',
  registryHeader: 'registry-header-secret-W4eR6tY8uI0oP2a',
  registryPath: 'registry-path-secret-0f9e8d7c6b5a4f3e2d1c0b9a',
  outputRegistryPass: 'thin-push-password-Z1xC3vB5nM7',
} as const;

export const ABUSE_ENV: NodeJS.ProcessEnv = {
  DUCC_GITHUB_WEBHOOK_SECRET: SECRETS.githubWebhook,
  DUCC_GITLAB_WEBHOOK_TOKEN: SECRETS.gitlabWebhook,
  ABUSE_GITHUB_TOKEN: SECRETS.githubApi,
  ABUSE_GITLAB_TOKEN: SECRETS.gitlabApi,
  ABUSE_REGISTRY_SECRET: SECRETS.registryHeader,
  ABUSE_HUB_SECRET: SECRETS.registryPath,
  DUCC_OUTPUT_REGISTRY_PASS: SECRETS.outputRegistryPass,
};

/** A GitHub wish list `cern/wishlist` (override anything, e.g. `forge: 'gitlab'`). */
export function abuseConfig(root: string, wishlists: Partial<WishlistRepoConfig>[], overrides: Partial<BotConfig> = {}): BotConfig {
  return botConfig(
    root,
    wishlists.map((w) => ({
      name: w.forge === 'gitlab' ? 'sync' : 'unpacked',
      project: w.forge === 'gitlab' ? 'unpacked/sync' : 'cern/wishlist',
      tokenEnv: w.forge === 'gitlab' ? 'ABUSE_GITLAB_TOKEN' : 'ABUSE_GITHUB_TOKEN',
      ...w,
    })),
    {
      registryHooks: [
        { name: 'local', kind: 'distribution', secretEnv: 'ABUSE_REGISTRY_SECRET' },
        { name: 'harbor', kind: 'harbor', secretEnv: 'ABUSE_REGISTRY_SECRET' },
        { name: 'hub', kind: 'dockerhub', secretEnv: 'ABUSE_HUB_SECRET' },
        { name: 'quay', kind: 'quay', secretEnv: 'ABUSE_HUB_SECRET' },
      ],
      ...overrides,
    },
  );
}

export interface AbuseBot {
  url: string;
  port: number;
  root: string;
  running: RunningServer;
  /** Every delivery the intake was handed, in order. */
  accepted: Delivery[];
  /** The log so far (JSON lines, level trace). */
  logs(): string;
  /** Queue counts from GET /status. */
  queue(): Promise<{ queued: number; running: number; done: number; failed: number }>;
}

/** Starts the real bot on a free loopback port; stopped (and its log checked for secrets) when the test ends. */
export async function startAbuseBot(
  t: TestContext,
  config: (root: string) => BotConfig,
  options: { timeouts?: Pick<ListenOptions, 'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs'>; env?: NodeJS.ProcessEnv } = {},
): Promise<AbuseBot> {
  // Removed by the one cleanup below, after the bot has stopped: its worker may still be writing there.
  const root = await mkdtemp(join(tmpdir(), 'ducc-abuse-'));
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  const logger = createLogger({ stream, human: false, level: 'trace' });
  const logs = () => lines.join('');
  // Set once the server runs; the cleanup is registered first so that it runs whatever happens.
  const started: { running?: RunningServer } = {};
  t.after(async () => {
    try {
      started.running?.server.closeAllConnections();
      await started.running?.stop(5000);
    } finally {
      await rm(root, { recursive: true, force: true, maxRetries: 3 });
    }
    assertNoSecrets(logs(), 'the bot log');
  });
  const running = await startServer(config(root), { ...ABUSE_ENV, ...options.env }, logger, 'test', options.timeouts ? { timeouts: options.timeouts } : {});
  const accepted: Delivery[] = [];
  started.running = running;
  const bot = running.bot;
  const accept = bot.accept.bind(bot);
  bot.accept = (delivery) => {
    accepted.push(structuredClone(delivery));
    return accept(delivery);
  };
  const port = (running.server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    root,
    running,
    accepted,
    logs,
    queue: async () => ((await (await fetch(`${url}/status`)).json()) as { queue: { queued: number; running: number; done: number; failed: number } }).queue,
  };
}

/** Throws naming the secret (by its key, never its value) when `text` contains one. */
export function assertNoSecrets(text: string, where: string): void {
  for (const [name, value] of Object.entries(SECRETS)) {
    if (text.includes(value)) throw new Error(`${where} contains the secret ${name}`);
  }
}

export function githubSignature(body: string | Buffer, secret: string = SECRETS.githubWebhook): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface Reply {
  status: number;
  body: any;
}

async function reply(response: Response): Promise<Reply> {
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: text };
  }
}

/** A GitHub delivery, signed unless `headers` says otherwise (a header set to null is left out). */
export async function postGitHub(
  bot: { url: string },
  event: string,
  payload: unknown,
  options: { delivery?: string; secret?: string; headers?: Record<string, string | null> } = {},
): Promise<Reply> {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const headers: Record<string, string | null> = {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': options.delivery ?? randomUUID(),
    'x-hub-signature-256': githubSignature(body, options.secret),
    ...options.headers,
  };
  return reply(await fetch(`${bot.url}/hooks/github`, { method: 'POST', headers: present(headers), body }));
}

export async function postGitLab(
  bot: { url: string },
  event: string,
  payload: unknown,
  options: { headers?: Record<string, string | null> } = {},
): Promise<Reply> {
  const headers: Record<string, string | null> = {
    'content-type': 'application/json',
    'x-gitlab-event': event,
    'x-gitlab-token': SECRETS.gitlabWebhook,
    'x-gitlab-event-uuid': randomUUID(),
    ...options.headers,
  };
  return reply(await fetch(`${bot.url}/hooks/gitlab`, { method: 'POST', headers: present(headers), body: JSON.stringify(payload) }));
}

/** A distribution notification to `/hooks/registry/distribution/local` with `Authorization: Bearer <secret>`. */
export async function postRegistry(bot: { url: string }, envelope: unknown, options: { path?: string; authorization?: string | null } = {}): Promise<Reply> {
  const authorization = options.authorization === undefined ? `Bearer ${SECRETS.registryHeader}` : options.authorization;
  return reply(
    await fetch(`${bot.url}${options.path ?? '/hooks/registry/distribution/local'}`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.docker.distribution.events.v1+json', ...(authorization === null ? {} : { authorization }) },
      body: typeof envelope === 'string' ? envelope : JSON.stringify(envelope),
    }),
  );
}

function present(headers: Record<string, string | null>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== null));
}

/** One CNCF distribution push event. */
export function distributionPush(
  target: Record<string, unknown>,
  request: Record<string, unknown> = { host: 'registry.example.org' },
): Record<string, unknown> {
  return {
    id: randomUUID(),
    timestamp: '2025-01-01T00:00:00Z',
    action: 'push',
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 100, digest: `sha256:${'a'.repeat(64)}`, ...target },
    request: { id: randomUUID(), addr: '10.0.0.1', method: 'PUT', useragent: 'test', ...request },
    actor: {},
    source: { addr: 'registry:5000', instanceID: randomUUID() },
  };
}

export interface RawResult {
  /** HTTP status, or undefined when the server closed the connection without answering. */
  status: number | undefined;
  /** Response headers (empty without an answer). */
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Bytes of body the client managed to hand to the socket before it was closed. */
  sent: number;
  /** ms from the start until the answer (or the close). */
  answeredAfterMs: number;
  /** ms from the start until the connection was closed (undefined: still open when `closeWaitMs` ran out). */
  closedAfterMs: number | undefined;
}

/**
 * A raw POST with full control over headers and body timing. `body` yields chunks (it may never end: the
 * generator is stopped as soon as the connection closes, or with `stopOnAnswer` once an answer came, as
 * HTTP clients do). Resolves once the connection is closed, or `closeWaitMs` after the answer.
 */
export function rawPost(
  port: number,
  path: string,
  headers: Record<string, string | number>,
  body: () => AsyncGenerator<Buffer>,
  options: { closeWaitMs?: number; stopOnAnswer?: boolean } = {},
): Promise<RawResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let status: number | undefined;
    let responseHeaders: RawResult['headers'] = {};
    let text = '';
    let sent = 0;
    let answeredAfterMs: number | undefined;
    let finished = false;
    const finish = (closed: boolean) => {
      if (finished) return;
      finished = true;
      const now = Math.round(performance.now() - started);
      req.destroy();
      resolve({ status, headers: responseHeaders, body: text, sent, answeredAfterMs: answeredAfterMs ?? now, closedAfterMs: closed ? now : undefined });
    };
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false }, (res) => {
      status = res.statusCode;
      responseHeaders = res.headers;
      answeredAfterMs = Math.round(performance.now() - started);
      res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      res.on('error', () => {});
      setTimeout(() => finish(false), options.closeWaitMs ?? 3000).unref();
    });
    req.on('error', () => {});
    req.on('close', () => finish(true));
    req.on('socket', (socket) => socket.on('close', () => finish(true)));
    void (async () => {
      try {
        for await (const chunk of body()) {
          if (finished || req.destroyed || (options.stopOnAnswer && status !== undefined)) return;
          sent += chunk.length;
          if (!req.write(chunk)) await drainOrClose(req);
        }
        if (!finished && !req.destroyed) req.end();
      } catch {
        // the connection went away
      }
    })();
  });
}

function drainOrClose(req: ReturnType<typeof request>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}

/** Records every outgoing HTTP request of this process made through undici (fetch, octokit, gitbeaker, the registry client). */
export function recordOutgoingRequests(t: TestContext): string[] {
  const seen: string[] = [];
  const onCreate = (message: unknown) => {
    const request = (message as { request?: { origin?: unknown; path?: unknown } }).request;
    seen.push(`${String(request?.origin ?? '')}${String(request?.path ?? '')}`);
  };
  subscribe('undici:request:create', onCreate);
  t.after(() => unsubscribe('undici:request:create', onCreate));
  return seen;
}

export { waitFor } from '../../support/wait-for.ts';
