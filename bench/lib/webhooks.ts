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
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { BOT_ENV, botConfig, githubPush, postGitHub, startTestBot, GITHUB_SECRET } from '../../test/support/bot-harness.ts';
import { startServer, type RunningServer } from '../../src/bot/serve.ts';
import { githubRepoDouble, startApiDouble } from '../../test/support/forge-api-double.ts';
import { createGitRepo } from '../../test/support/git-repo.ts';
import { createLogger } from '../../src/util/logger.ts';
import type { Cleanup } from '../../test/support/tmp-dir.ts';
import { wishlistYaml } from './tools.ts';
import { BENCH_DIR, Cleanups, log, percentile, run, secondsSince } from './util.ts';

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

// -----------------------------------------------------------------------------------------------------
// Webhooks while a conversion runs, and freshness (issue 19, targets 3 and 5)
// -----------------------------------------------------------------------------------------------------

/** Where `ducc serve` runs its conversions (StartServerOptions.conversions). */
export type ConversionMode = 'worker-thread' | 'main-thread';
export const CONVERSION_MODES: ConversionMode[] = ['worker-thread', 'main-thread'];

export interface BurstDuringConversion extends BurstResult {
  /** The image's `success` status had not come yet when the last delivery was answered. */
  duringConversion: boolean;
  /** From the push delivery to the success status. */
  conversionSeconds: number;
}

export interface FreshnessRun {
  /** Push delivery answered. */
  ackMs: number;
  /** From sending the push delivery to the `success` status in the forge double. */
  successSeconds: number;
}

export interface DuringConversionResult {
  concurrency: number;
  bursts: Partial<Record<string, Partial<Record<ConversionMode, BurstDuringConversion[]>>>>;
  freshness: Partial<Record<ConversionMode, FreshnessRun[]>>;
  freshnessImage?: string;
}

interface ServeUnderTest {
  bot: RunningServer & { url: string };
  github: ReturnType<typeof githubRepoDouble>;
  repo: Awaited<ReturnType<typeof createGitRepo>>;
  stagingDir: string;
  /** Commits `entries` as the wish list, delivers the push, and returns the commit and when it was sent. */
  push(entries: string[], before: string): Promise<{ sha: string; sent: bigint; ackMs: number }>;
  /** Resolves with the final state of the publish status of `sha`. */
  final(sha: string, timeoutSeconds: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A fresh `ducc serve` (in this process, as the test harness runs it, logging as ducc serve does) whose
 * state and directory-publisher root are under `root`, watching a new wish-list repository whose first
 * commit (one small wish) is already published.
 */
async function serveUnderTest(cleanup: Cleanup, root: string, firstEntry: string, mode: ConversionMode): Promise<ServeUnderTest & { first: string }> {
  const t = cleanup as unknown as TestContext;
  const api = await startApiDouble(t);
  const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
  const repo = await createGitRepo(cleanup);
  const logging = servesLogging();
  const running = await startServer(botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url, project: PROJECT }]), BOT_ENV, logging.logger, 'bench', {
    conversions: mode,
  });
  const bot = { ...running, url: `http://127.0.0.1:${(running.server.address() as AddressInfo).port}` };
  const final = async (sha: string, timeoutSeconds: number): Promise<void> => {
    const started = process.hrtime.bigint();
    for (;;) {
      const done = github.statuses.find((s) => s.sha === sha && s.context === CONTEXT && s.state !== 'pending');
      if (done) {
        if (done.state !== 'success') throw new Error(`publication of ${sha.slice(0, 12)} ended ${done.state}: ${done.description}`);
        return;
      }
      if (secondsSince(started) > timeoutSeconds) throw new Error(`no final status for ${sha.slice(0, 12)} within ${timeoutSeconds} s`);
      await sleep(1);
    }
  };
  const push = async (entries: string[], before: string) => {
    const sha = await repo.commit({ 'recipe.yaml': wishlistYaml(entries) });
    const sent = process.hrtime.bigint();
    const response = await postGitHub(bot, 'push', githubPush(PROJECT, 'main', sha, before));
    const ackMs = secondsSince(sent) * 1000;
    if (response.status !== 202) throw new Error(`push delivery answered ${response.status}: ${await response.text()}`);
    return { sha, sent, ackMs };
  };
  const under: ServeUnderTest = {
    bot,
    github,
    repo,
    stagingDir: join(root, 'cvmfs', '.ducc-staging'),
    push,
    final,
    stop: async () => {
      await running.stop(5000);
      logging.close();
    },
  };
  const first = await push([firstEntry], '0'.repeat(40));
  await final(first.sha, 300);
  await bot.worker.onIdle();
  return { ...under, first: first.sha };
}

/** Resolves once a layer is being unpacked in the directory publisher's staging (the conversion has started). */
async function conversionStarted(stagingDir: string, timeoutSeconds: number): Promise<void> {
  const started = process.hrtime.bigint();
  for (;;) {
    const repos = await readdir(stagingDir).catch((): string[] => []);
    for (const repo of repos) if ((await readdir(join(stagingDir, repo)).catch((): string[] => [])).length > 0) return;
    if (secondsSince(started) > timeoutSeconds) throw new Error(`no conversion started within ${timeoutSeconds} s`);
    await sleep(2);
  }
}

/**
 * For each run, each image and each mode (the order of the modes alternates): a fresh `ducc serve`, a push
 * that adds the image to its published wish list, and, `delayMs` after the first layer appears in the
 * publisher's staging, a burst of `concurrency` signed deliveries from a separate process (as in
 * measureWebhooks). A burst counts as during the conversion when the image's success status came after
 * its last answer. Then, the freshness image the same way without a burst: the time from the push
 * delivery to its success status.
 */
export async function measureDuringConversions(options: {
  cleanup: Cleanup;
  workDir: string;
  smallEntry: string;
  images: { key: string; entry: string; delayMs: number }[];
  freshness: { key: string; entry: string } | undefined;
  runs: number;
  concurrency: number;
}): Promise<DuringConversionResult> {
  const result: DuringConversionResult = {
    concurrency: options.concurrency,
    bursts: {},
    freshness: {},
    ...(options.freshness ? { freshnessImage: options.freshness.key } : {}),
  };
  for (let r = 0; r < options.runs; r++) {
    const modes = r % 2 === 0 ? CONVERSION_MODES : [...CONVERSION_MODES].reverse();
    for (const mode of modes) {
      const jobs = [
        ...options.images.map((image) => ({ ...image, burst: true })),
        ...(options.freshness ? [{ ...options.freshness, delayMs: 0, burst: false }] : []),
      ];
      for (const job of jobs) {
        const root = await mkdtemp(join(options.workDir, 'serve-'));
        const cleanups = new Cleanups();
        try {
          const serve = await serveUnderTest(cleanups, root, options.smallEntry, mode);
          cleanups.after(serve.stop);
          await run('sync', []);
          const pushed = await serve.push([options.smallEntry, job.entry], serve.first);
          if (job.burst) {
            await conversionStarted(serve.stagingDir, 120);
            await sleep(job.delayMs);
            const burst = await fireBurst({
              url: `${serve.bot.url}/hooks/github`,
              secret: GITHUB_SECRET,
              event: 'push',
              payload: githubPush(PROJECT, 'main', pushed.sha, serve.first),
              count: options.concurrency,
              warmup: 0,
              deliveryPrefix: `bench-during-${process.pid}-${r}-${mode}-${job.key}`,
            });
            const duringConversion = !serve.github.statuses.some((s) => s.sha === pushed.sha && s.context === CONTEXT && s.state !== 'pending');
            await serve.final(pushed.sha, 600);
            const bad = Object.entries(burst.statuses).filter(([code]) => code !== '202' && code !== '200');
            if (bad.length > 0) throw new Error(`webhook burst got unexpected answers: ${JSON.stringify(burst.statuses)}`);
            const entry = { ...burst, duringConversion, conversionSeconds: secondsSince(pushed.sent) };
            ((result.bursts[job.key] ??= {})[mode] ??= []).push(entry);
            log(
              `run ${r + 1}/${options.runs} webhooks during the conversion of ${job.key}, ${mode}: p50 ${percentile(burst.latenciesMs, 50).toFixed(1)} ms, p99 ${percentile(burst.latenciesMs, 99).toFixed(1)} ms${duringConversion ? '' : ' (the conversion had ended before the burst did)'}`,
            );
          } else {
            await serve.final(pushed.sha, 600);
            const successSeconds = secondsSince(pushed.sent);
            (result.freshness[mode] ??= []).push({ ackMs: pushed.ackMs, successSeconds });
            log(`run ${r + 1}/${options.runs} freshness of ${job.key}, ${mode}: ${successSeconds.toFixed(2)} s from push to success`);
          }
          await serve.bot.worker.onIdle();
        } finally {
          await cleanups.run();
          await rm(root, { recursive: true, force: true });
        }
      }
    }
  }
  return result;
}
