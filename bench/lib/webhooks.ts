/**
 * The bot (`ducc serve`) in this process, as the integration tests run it (test/support/bot-harness.ts),
 * with a GitHub API double and a real bare git repository holding the wish list of the reconcile
 * images. Measured:
 *
 * - acknowledgement latency: `concurrency` signed push deliveries (distinct delivery ids, same already
 *   published commit) fired at once from a separate process; per-request latency, p50 / p99 / max;
 * - push-to-status: a new commit whose wish list is already published, its push delivered, and the time
 *   until the `ducc-gitops/publish` success status reaches the forge double.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { botConfig, githubPush, postGitHub, startTestBot, GITHUB_SECRET } from '../../test/support/bot-harness.ts';
import { githubRepoDouble, startApiDouble } from '../../test/support/forge-api-double.ts';
import { createGitRepo } from '../../test/support/git-repo.ts';
import { createLogger } from '../../src/util/logger.ts';
import type { Cleanup } from '../../test/support/tmp-dir.ts';
import { wishlistYaml } from './tools.ts';
import { BENCH_DIR, log, percentile, secondsSince } from './util.ts';

export interface BurstResult {
  latenciesMs: number[];
  statuses: Record<string, number>;
  wallMs: number;
}

export interface PushToStatus {
  ackMs: number;
  pendingMs: number;
  successMs: number;
}

export interface WebhookResult {
  wishes: number;
  concurrency: number;
  primeSeconds: number;
  bursts: BurstResult[];
  pushToStatus: PushToStatus[];
}

/**
 * The logging `ducc serve` does, so that its cost is in the latencies: JSON lines at level info (one per
 * webhook, more per job), each written at once with a write(2), as to the journal's pipe on stderr. The
 * lines go to /dev/null.
 */
function servesLogging(): { logger: Logger; close: () => void } {
  let fd: number | undefined = openSync('/dev/null', 'w');
  const lines = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      // Lines the bot writes while it stops, after close, are dropped (cleanups may run in either order).
      if (fd !== undefined) writeSync(fd, chunk);
      callback();
    },
  });
  const close = (): void => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  return { logger: createLogger({ level: 'info', human: false, stream: lines }), close };
}

const PROJECT = 'cern/wishlist';
const CONTEXT = 'ducc-gitops/publish';

export async function measureWebhooks(cleanup: Cleanup, entries: string[], runs: number, concurrency: number): Promise<WebhookResult> {
  // The helpers take a node:test context only for its after() hook.
  const t = cleanup as unknown as TestContext;
  const api = await startApiDouble(t);
  const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
  const repo = await createGitRepo(cleanup);
  const sha = await repo.commit({ 'recipe.yaml': wishlistYaml(entries) });
  const logging = servesLogging();
  const bot = await startTestBot(cleanup, (root) => botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url, project: PROJECT }]), logging.logger);
  cleanup.after(logging.close);

  log(`webhooks: first publication of ${entries.length} wishes through the bot`);
  let started = process.hrtime.bigint();
  const first = await postGitHub(bot, 'push', githubPush(PROJECT, 'main', sha));
  if (first.status !== 202) throw new Error(`first push delivery answered ${first.status}: ${await first.text()}`);
  await bot.worker.onIdle();
  const primeSeconds = secondsSince(started);
  const primed = github.statuses.filter((s) => s.sha === sha && s.context === CONTEXT).at(-1);
  if (primed?.state !== 'success') throw new Error(`first publication did not succeed: ${JSON.stringify(primed)}`);

  const bursts: BurstResult[] = [];
  for (let r = 0; r < runs; r++) {
    const burst = await fireBurst({
      url: `${bot.url}/hooks/github`,
      secret: GITHUB_SECRET,
      event: 'push',
      payload: githubPush(PROJECT, 'main', sha),
      count: concurrency,
      warmup: 3,
      deliveryPrefix: `bench-${process.pid}-${r}`,
    });
    const bad = Object.entries(burst.statuses).filter(([code]) => code !== '202' && code !== '200');
    if (bad.length > 0) throw new Error(`webhook burst got unexpected answers: ${JSON.stringify(burst.statuses)}`);
    bursts.push(burst);
    log(`webhook burst ${r + 1}/${runs}: p50 ${percentile(burst.latenciesMs, 50).toFixed(1)} ms, p99 ${percentile(burst.latenciesMs, 99).toFixed(1)} ms`);
    // The deliveries queued (deduplicated) no-op publications; let them finish before the next burst.
    await bot.worker.onIdle();
  }

  const pushToStatus: PushToStatus[] = [];
  let before = sha;
  for (let r = 0; r < runs; r++) {
    const next = await repo.commit({}, { message: `no-op change ${r}` });
    await bot.worker.onIdle();
    started = process.hrtime.bigint();
    const response = await postGitHub(bot, 'push', githubPush(PROJECT, 'main', next, before));
    const ackMs = secondsSince(started) * 1000;
    if (response.status !== 202) throw new Error(`push delivery answered ${response.status}`);
    let pendingMs = Number.NaN;
    for (;;) {
      const mine = github.statuses.filter((s) => s.sha === next && s.context === CONTEXT);
      if (Number.isNaN(pendingMs) && mine.some((s) => s.state === 'pending')) pendingMs = secondsSince(started) * 1000;
      const final = mine.find((s) => s.state !== 'pending');
      if (final) {
        if (final.state !== 'success') throw new Error(`no-op push ended ${final.state}: ${final.description}`);
        break;
      }
      if (secondsSince(started) > 300) throw new Error('no success status within 300 s');
      await sleep(1);
    }
    const successMs = secondsSince(started) * 1000;
    pushToStatus.push({ ackMs, pendingMs, successMs });
    log(`push-to-status ${r + 1}/${runs}: ${(successMs / 1000).toFixed(2)} s`);
    before = next;
    await bot.worker.onIdle();
  }
  return { wishes: entries.length, concurrency, primeSeconds, bursts, pushToStatus };
}

function fireBurst(job: {
  url: string;
  secret: string;
  event: string;
  payload: unknown;
  count: number;
  warmup: number;
  deliveryPrefix: string;
}): Promise<BurstResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', join(BENCH_DIR, 'lib/webhook-client.ts')], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`webhook client exited with ${code}: ${stderr.slice(-3000)}`));
      else resolve(JSON.parse(stdout) as BurstResult);
    });
    child.stdin.end(JSON.stringify(job));
  });
}
