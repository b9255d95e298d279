/**
 * Bench support: statistics, formatting and process helpers (no shell anywhere: every external command
 * is spawned with an argument vector).
 */
import { execFile, spawn, type SpawnOptions } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of a non-empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'n/a';
  return seconds >= 100 ? seconds.toFixed(0) : seconds >= 10 ? seconds.toFixed(1) : seconds.toFixed(2);
}

export function formatRatio(ratio: number | undefined): string {
  return ratio === undefined || !Number.isFinite(ratio) ? '—' : `${ratio.toFixed(2)}×`;
}

export function formatMiB(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(bytes >= 100 * 1024 * 1024 ? 0 : 1)} MiB`;
}

export function formatMs(ms: number): string {
  return !Number.isFinite(ms) ? 'n/a' : ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

/** Seconds elapsed since `start` (from process.hrtime.bigint()). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Renders rows as a Markdown table (which also reads well on a terminal). */
export function markdownTable(header: string[], rawRows: string[][], align: ('l' | 'r')[] = []): string {
  // A `|` inside a cell would end it.
  const rows = rawRows.map((row) => row.map((cell) => cell.replaceAll('|', '\\|')));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const pad = (text: string, i: number) => (align[i] === 'r' ? text.padStart(widths[i]!) : text.padEnd(widths[i]!));
  const line = (cells: string[]) => `| ${cells.map((c, i) => pad(c, i)).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Runs a command to completion (no shell), resolving with stdout; rejects with the tail of stderr. */
export function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: options.cwd, env: options.env, maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 30 * 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${cmd} ${args.join(' ')} failed: ${tail(stderr) || error.message}`));
        else resolve(stdout);
      },
    );
  });
}

/** Spawns a command with inherited or chosen stdio and waits for it; rejects on a non-zero exit. */
export function spawnAndWait(cmd: string, args: string[], options: SpawnOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, options);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${signal ?? code}`));
    });
  });
}

export function tail(text: string, chars = 4000): string {
  const trimmed = text.trim();
  return trimmed.length > chars ? `…${trimmed.slice(-chars)}` : trimmed;
}

/** GNU time's format: elapsed s, peak RSS KiB, user s, system s. */
export const TIME_FORMAT = '%e %M %U %S';

/** What GNU time wrote (`-f TIME_FORMAT`) for a finished command: elapsed seconds, peak RSS in KiB, CPU seconds (user + system). */
export async function readTimeFile(path: string): Promise<{ elapsed: number; maxRssKiB: number; cpuSeconds: number }> {
  const text = await readFile(path, 'utf8');
  // On a non-zero exit GNU time writes "Command exited with non-zero status N" first.
  const last = text.trim().split('\n').at(-1) ?? '';
  const [elapsed, rss, user, system] = last.trim().split(/\s+/).map(Number);
  if ([elapsed, rss, user, system].some((v) => v === undefined || !Number.isFinite(v))) {
    throw new Error(`cannot read GNU time output in ${path}: '${text.trim()}'`);
  }
  return { elapsed: elapsed!, maxRssKiB: rss!, cpuSeconds: user! + system! };
}

/** Paths of this checkout. */
export const BENCH_DIR = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
export const REPO_ROOT = join(BENCH_DIR, '..');
export const CACHE_DIR = join(BENCH_DIR, '.cache');

export function log(message: string): void {
  const stamp = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${stamp}] ${message}\n`);
}

/** Cleanups registered with `after` (a TestContext stand-in for the test helpers the bench uses). */
export class Cleanups {
  #fns: (() => Promise<unknown> | unknown)[] = [];
  after(fn: () => Promise<unknown> | unknown): void {
    this.#fns.push(fn);
  }
  /** Runs every registered cleanup, last registered first, reporting (not throwing) failures. */
  async run(): Promise<void> {
    while (this.#fns.length > 0) {
      const fn = this.#fns.pop()!;
      try {
        await fn();
      } catch (error) {
        log(`cleanup: ${(error as Error).message}`);
      }
    }
  }
}
