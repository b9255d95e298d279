import { createHmac, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Logger } from 'pino';
import type { BotConfig, WishlistRepoConfig } from '../../src/config/bot-config.ts';
import { startServer, type RunningServer, type StartServerOptions } from '../../src/bot/serve.ts';
import { createLogger } from '../../src/util/logger.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { Cleanup } from './tmp-dir.ts';

export const GITHUB_SECRET = 'github-webhook-secret';
export const GITLAB_TOKEN = 'gitlab-webhook-token';
export const REGISTRY_SECRET = 'registry-hook-secret';

/** Environment of a test bot: webhook secrets and forge tokens, the way an operator sets them. */
export const BOT_ENV: NodeJS.ProcessEnv = {
  DUCC_GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
  DUCC_GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
  TEST_FORGE_TOKEN: 'forge-api-token',
  TEST_REGISTRY_SECRET: REGISTRY_SECRET,
  // Thin images are pushed only by tests that turn convert.skipThinImage off, to registries without auth.
  DUCC_OUTPUT_REGISTRY_PASS: 'thin-push-password',
};

export function botConfig(root: string, wishlists: Partial<WishlistRepoConfig>[], overrides: Partial<BotConfig> = {}): BotConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    statePath: join(root, 'state.db'),
    cacheDir: join(root, 'cache'),
    publisher: { kind: 'directory', root: join(root, 'cvmfs') },
    wishlists: wishlists.map((w) => ({
      name: 'unpacked',
      forge: 'github',
      apiUrl: 'http://127.0.0.1:1',
      project: 'cern/wishlist',
      cloneUrl: 'file:///nonexistent',
      branch: 'main',
      paths: ['recipe.yaml'],
      tokenEnv: 'TEST_FORGE_TOKEN',
      botUser: 'ducc-bot',
      allowForks: false,
      ...w,
    })),
    registryHooks: [{ name: 'local', kind: 'distribution', secretEnv: 'TEST_REGISTRY_SECRET' }],
    githubSecretEnv: 'DUCC_GITHUB_WEBHOOK_SECRET',
    gitlabTokenEnv: 'DUCC_GITLAB_WEBHOOK_TOKEN',
    reconcileMinutes: 0,
    registryDebounceSeconds: 0,
    maxQueuedJobs: 100,
    statusContext: 'ducc-gitops',
    convert: { skipThinImage: true, multiArch: false },
    ...overrides,
  };
}

export interface TestBot extends RunningServer {
  url: string;
  root: string;
}

/**
 * Starts `ducc serve` in this process on a free loopback port; stopped when the test ends. Logs nothing
 * unless DUCC_TEST_LOG names a level, or a logger is given.
 */
export async function startTestBot(
  t: TestContext | Cleanup,
  config: (root: string) => BotConfig,
  logger?: Logger,
  options: StartServerOptions & { env?: NodeJS.ProcessEnv } = {},
): Promise<TestBot> {
  const { env = BOT_ENV, ...serverOptions } = options;
  // One cleanup that stops the bot before removing its directory (after-hooks run in registration order).
  const root = await mkdtemp(join(tmpdir(), 'ducc-bot-'));
  const running = await startServer(config(root), env, logger ?? createLogger({ level: process.env['DUCC_TEST_LOG'] ?? 'silent' }), 'test', serverOptions);
  t.after(async () => {
    await running.stop(5000);
    await rm(root, { recursive: true, force: true });
  });
  const port = (running.server.address() as AddressInfo).port;
  return { ...running, url: `http://127.0.0.1:${port}`, root };
}

/** Posts a GitHub webhook signed as GitHub does (HMAC-SHA256 of the raw body). */
export function postGitHub(bot: { url: string }, event: string, payload: unknown, options: { delivery?: string; secret?: string } = {}): Promise<Response> {
  const body = JSON.stringify(payload);
  const signature = `sha256=${createHmac('sha256', options.secret ?? GITHUB_SECRET)
    .update(body)
    .digest('hex')}`;
  return fetch(`${bot.url}/hooks/github`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': options.delivery ?? randomUUID(),
      'x-hub-signature-256': signature,
    },
    body,
  });
}

/** Posts a GitLab webhook with its secret token header. */
export function postGitLab(bot: { url: string }, event: string, payload: unknown, options: { token?: string; uuid?: string } = {}): Promise<Response> {
  return fetch(`${bot.url}/hooks/gitlab`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-gitlab-event': event,
      'x-gitlab-token': options.token ?? GITLAB_TOKEN,
      'x-gitlab-event-uuid': options.uuid ?? randomUUID(),
    },
    body: JSON.stringify(payload),
  });
}

export function githubPush(project: string, branch: string, after: string, before = '0'.repeat(40)) {
  const [owner, name] = project.split('/');
  return {
    ref: `refs/heads/${branch}`,
    before,
    after,
    created: false,
    deleted: false,
    forced: false,
    commits: [],
    repository: { id: 1, name, full_name: project, owner: { login: owner, name: owner }, default_branch: 'main' },
    pusher: { name: 'alice' },
    sender: { login: 'alice', id: 1, type: 'User' },
  };
}

export function githubComment(project: string, number: number, body: string, login: string, commentId: number) {
  const [owner, name] = project.split('/');
  return {
    action: 'created',
    issue: { number, pull_request: { url: `https://api.github.com/repos/${project}/pulls/${number}` }, user: { login: 'alice' } },
    comment: { id: commentId, body, user: { login, id: 77, type: 'User' } },
    repository: { id: 1, name, full_name: project, owner: { login: owner } },
    sender: { login, id: 77, type: 'User' },
  };
}

export function gitlabPush(project: string, branch: string, after: string) {
  return {
    object_kind: 'push',
    ref: `refs/heads/${branch}`,
    before: '0'.repeat(40),
    after,
    checkout_sha: after,
    project: { id: 42, path_with_namespace: project },
    commits: [],
    total_commits_count: 0,
  };
}

export function gitlabMergeRequest(project: string, iid: number, action: 'open' | 'update', headSha: string, oldrev?: string) {
  return {
    object_kind: 'merge_request',
    event_type: 'merge_request',
    user: { id: 1, username: 'alice' },
    project: { id: 42, path_with_namespace: project },
    object_attributes: {
      iid,
      action,
      source_branch: `feature-${iid}`,
      target_branch: 'main',
      source_project_id: 42,
      target_project_id: 42,
      state: 'opened',
      last_commit: { id: headSha },
      ...(oldrev ? { oldrev } : {}),
    },
  };
}
