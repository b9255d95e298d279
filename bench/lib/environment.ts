/**
 * What else was true while measuring: the machine's load (other processes compete for the 2 cores and
 * make wall times noisy) and which code was measured (commit, uncommitted changes, and whether the
 * sources changed while the bench ran).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { REPO_ROOT, median, run } from './util.ts';

/** Samples the 1-minute load average every few seconds. */
export class LoadSampler {
  readonly samples: number[] = [];
  #timer: NodeJS.Timeout | undefined;

  start(intervalMs = 5000): void {
    const sample = () =>
      void readFile('/proc/loadavg', 'utf8')
        .then((text) => {
          const value = Number(text.split(' ')[0]);
          if (Number.isFinite(value)) this.samples.push(value);
        })
        .catch(() => undefined);
    sample();
    this.#timer = setInterval(sample, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  summary(): { min: number; median: number; max: number; count: number } | undefined {
    if (this.samples.length === 0) return undefined;
    return { min: Math.min(...this.samples), median: median(this.samples), max: Math.max(...this.samples), count: this.samples.length };
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/** A hash over the code `ducc` runs (src/, bin/, package.json), to notice changes during a run. */
export async function codeFingerprint(): Promise<string> {
  const hash = createHash('sha256');
  const files = [...(await filesUnder(join(REPO_ROOT, 'src'))), ...(await filesUnder(join(REPO_ROOT, 'bin'))), join(REPO_ROOT, 'package.json')].sort();
  for (const file of files) {
    hash.update(relative(REPO_ROOT, file)).update('\0');
    hash.update(await readFile(file).catch(() => Buffer.alloc(0))).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/** The commit and the count of uncommitted changes under src/ and bin/ (read-only git commands). */
export async function gitState(): Promise<{ head: string; changed: string[] }> {
  try {
    const head = (await run('git', ['-C', REPO_ROOT, 'rev-parse', '--short=12', 'HEAD'])).trim();
    const status = await run('git', ['-C', REPO_ROOT, '--no-optional-locks', 'status', '--porcelain', '--', 'src', 'bin']);
    return {
      head,
      changed: status
        .split('\n')
        .filter(Boolean)
        .map((line) => line.slice(3)),
    };
  } catch {
    return { head: 'unknown (not a git checkout?)', changed: [] };
  }
}
