/** Helpers for the HTTP tests: a real server on 127.0.0.1:0 around buildApp, a recording intake. */
import type { TestContext } from 'node:test';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Webhooks } from '@octokit/webhooks';
import { buildApp, type AppDeps } from '../../../src/http/app.ts';
import { listen, type ListenOptions } from '../../../src/http/server.ts';
import type { Intake, IntakeResult } from '../../../src/jobs/intake.ts';
import type { Delivery } from '../../../src/forge/events.ts';
import type { BotConfig } from '../../../src/config/bot-config.ts';
import { SqliteStateStore } from '../../../src/state/sqlite-store.ts';
import { createLogger } from '../../../src/util/logger.ts';

export const GITHUB_SECRET = 'github-secret-for-tests-0123456789';
export const GITHUB_PREVIOUS_SECRET = 'previous-github-secret-9876543210';
export const GITLAB_TOKEN = 'gitlab-token-for-tests-0123456789';
export const REGISTRY_SECRET = 'registry-secret-0123456789abcdef0123';
export const HUB_SECRET = 'dockerhub-path-secret-0123456789abcdef';

/**
 * Follows the intake contract like the real one: a delivery id seen before is `duplicate`; without
 * events `ignored`; `overloaded` when told so; otherwise `queued` with made-up job ids.
 */
export class FakeIntake implements Intake {
  readonly deliveries: Delivery[] = [];
  readonly seen = new Set<string>();
  overloaded = false;
  #nextJob = 1;

  async accept(delivery: Delivery): Promise<IntakeResult> {
    this.deliveries.push(structuredClone(delivery));
    if (this.overloaded) return { outcome: 'overloaded' };
    if (this.seen.has(delivery.id)) return { outcome: 'duplicate' };
    this.seen.add(delivery.id);
    if (delivery.events.length === 0) return { outcome: 'ignored', reason: 'no events' };
    return { outcome: 'queued', jobs: delivery.events.map(() => this.#nextJob++) };
  }
}

export function testConfig(overrides: Partial<BotConfig> = {}): BotConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    statePath: ':memory:',
    cacheDir: './var/cache',
    publisher: { kind: 'directory', root: './var/cvmfs' },
    wishlists: [
      {
        name: 'hello',
        forge: 'github',
        apiUrl: 'https://api.github.com',
        project: 'Codertocat/Hello-World',
        cloneUrl: 'https://github.com/Codertocat/Hello-World.git',
        branch: 'master',
        paths: ['recipe.yaml'],
        tokenEnv: 'DUCC_GITHUB_TOKEN',
        botUser: 'ducc-bot',
        allowForks: false,
      },
      {
        name: 'gitlab-test',
        forge: 'gitlab',
        apiUrl: 'https://gitlab.example.com',
        project: 'gitlab-org/gitlab-test',
        cloneUrl: 'https://gitlab.example.com/gitlab-org/gitlab-test.git',
        branch: 'master',
        paths: ['recipe.yaml'],
        tokenEnv: 'DUCC_GITLAB_TOKEN',
        allowForks: false,
      },
    ],
    registryHooks: [
      { name: 'local', kind: 'distribution', secretEnv: 'REG_LOCAL' },
      { name: 'harbor', kind: 'harbor', secretEnv: 'REG_HARBOR' },
      { name: 'hub', kind: 'dockerhub', secretEnv: 'REG_HUB' },
      { name: 'quay', kind: 'quay', secretEnv: 'REG_QUAY' },
    ],
    githubSecretEnv: 'GH_SECRET',
    gitlabTokenEnv: 'GL_TOKEN',
    reconcileMinutes: 15,
    registryDebounceSeconds: 10,
    maxQueuedJobs: 1000,
    statusContext: 'ducc-gitops',
    convert: { skipThinImage: false, multiArch: false },
    ...overrides,
  };
}

export function testEnv(): NodeJS.ProcessEnv {
  return {
    GH_SECRET: GITHUB_SECRET,
    GH_SECRET_PREVIOUS: GITHUB_PREVIOUS_SECRET,
    GL_TOKEN: GITLAB_TOKEN,
    REG_LOCAL: REGISTRY_SECRET,
    REG_HARBOR: REGISTRY_SECRET,
    REG_HUB: HUB_SECRET,
    REG_QUAY: HUB_SECRET,
  };
}

export interface TestServer {
  url: string;
  port: number;
  intake: FakeIntake;
  store: SqliteStateStore;
  /** Every log line written so far. */
  logs(): string;
  state: { ready: boolean; shuttingDown: boolean };
}

export async function startTestServer(
  t: TestContext,
  options: { config?: BotConfig; env?: NodeJS.ProcessEnv; listen?: Partial<ListenOptions>; deps?: Partial<AppDeps> } = {},
): Promise<TestServer> {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  const logger = createLogger({ stream, human: false, level: 'debug' });
  const intake = new FakeIntake();
  const store = SqliteStateStore.open(':memory:');
  const state = { ready: true, shuttingDown: false };
  const app = buildApp({
    config: options.config ?? testConfig(),
    env: options.env ?? testEnv(),
    intake,
    store,
    logger,
    version: '1.2.3-test',
    isReady: () => state.ready,
    isShuttingDown: () => state.shuttingDown,
    ...options.deps,
  });
  const server = await listen(app, { host: '127.0.0.1', port: 0, ...options.listen });
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        store.close();
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, intake, store, logs: () => lines.join(''), state };
}

/** Signs like GitHub: `sha256=<hex HMAC of the body>`. */
export function signGitHub(body: string, secret = GITHUB_SECRET): Promise<string> {
  return new Webhooks({ secret }).sign(body);
}

export async function postGitHub(
  server: TestServer,
  event: string,
  payload: unknown,
  options: { deliveryId?: string; secret?: string; headers?: Record<string, string>; signature?: string | null; path?: string } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const signature = options.signature === undefined ? await signGitHub(body, options.secret) : options.signature;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'GitHub-Hookshot/test',
    'x-github-event': event,
    'x-github-delivery': options.deliveryId ?? crypto.randomUUID(),
    ...(signature === null ? {} : { 'x-hub-signature-256': signature }),
    ...options.headers,
  };
  return send(`${server.url}${options.path ?? '/hooks/github'}`, { method: 'POST', headers, body });
}

export async function send(url: string, init: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body, headers: response.headers };
}

/**
 * A raw request with full control of the headers (a lying Content-Length, chunked bodies); resolves
 * with the status, or 'closed' when the server drops the connection without an answer.
 */
export function rawRequest(
  port: number,
  options: { path: string; headers: Record<string, string | number>; body?: Buffer | (() => AsyncIterable<Buffer>) },
): Promise<{ status: number | 'closed'; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: options.path, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', () => resolve({ status: 'closed', body: '', headers: {} }));
    const body = options.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      void (async () => {
        try {
          for await (const chunk of body()) {
            if (req.destroyed) return;
            if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
          }
          req.end();
        } catch {
          // the server closed the connection
        }
      })();
    }
  });
}
