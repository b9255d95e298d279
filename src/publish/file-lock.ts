import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DuccError } from '../util/errors.ts';

export type LockMode = 'shared' | 'exclusive';

/** Exit status flock(1) gives when `-w` runs out (EX_TEMPFAIL), told apart from a failing command. */
const FLOCK_TIMEOUT_EXIT = 75;

/** What the current async context holds, per lock. */
interface Held {
  mode: LockMode;
  /** Run once the outermost section of this context has released the lock. */
  afterRelease: (() => Promise<void>)[];
}

const holding = new AsyncLocalStorage<Map<FileLock, Held>>();

/**
 * A shared/exclusive lock on a file, held by a `flock(1)` child process for as long as a section runs:
 * the kernel drops it when that process ends, so a lock never outlives the process that took it (a
 * crash, SIGKILL) and nobody waits for a stale lock to age. Each section takes the lock through a
 * process of its own (its own open file description), so sections of one process exclude each other
 * as those of different processes do.
 *
 * Sections nest: a section entered while the same async context already holds the lock (exclusive, or
 * shared for a shared section) runs at once instead of waiting for itself. flock(1) runs `cat`, which
 * echoes a byte once the lock is held; closing its input ends `cat` and releases the lock. No shell.
 */
export class FileLock {
  readonly path: string;
  readonly #waitMs: number;
  readonly #onWait: (() => void) | undefined;

  constructor(path: string, options: { waitMs: number; onWait?: () => void }) {
    this.path = path;
    this.#waitMs = options.waitMs;
    this.#onWait = options.onWait;
  }

  /** Whether the current async context holds this lock (in any mode). */
  held(): LockMode | undefined {
    return holding.getStore()?.get(this)?.mode;
  }

  /**
   * Runs `fn` after the lock is released by the outermost section of the current context, or at once
   * when the context does not hold it: cleanup that must not keep others waiting.
   */
  async afterRelease(fn: () => Promise<void>): Promise<void> {
    const held = holding.getStore()?.get(this);
    if (held === undefined) await fn();
    else held.afterRelease.push(fn);
  }

  async run<T>(mode: LockMode, section: () => Promise<T>): Promise<T> {
    const outer = holding.getStore();
    const current = outer?.get(this);
    if (current !== undefined) {
      if (current.mode === 'exclusive' || mode === 'shared') return section();
      throw new DuccError('BOT_ERR_PUBLISH', `cannot take the lock ${this.path} exclusively inside a section that holds it shared`);
    }
    const release = await this.#acquire(mode);
    const held: Held = { mode, afterRelease: [] };
    const store = new Map(outer ?? []);
    store.set(this, held);
    try {
      return await holding.run(store, section);
    } finally {
      await release();
      for (const fn of held.afterRelease) await fn();
    }
  }

  async #acquire(mode: LockMode): Promise<() => Promise<void>> {
    await mkdir(dirname(this.path), { recursive: true });
    const seconds = String(Math.max(1, Math.ceil(this.#waitMs / 1000)));
    const child = spawn(
      'flock',
      [mode === 'shared' ? '--shared' : '--exclusive', '--conflict-exit-code', String(FLOCK_TIMEOUT_EXIT), '-w', seconds, this.path, 'cat'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2000)));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const waiting = setTimeout(() => this.#onWait?.(), 1000);
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('error', (error) =>
          reject(new DuccError('BOT_ERR_PUBLISH', `cannot run flock (util-linux) for the repository lock ${this.path}: ${error.message}`, { cause: error })),
        );
        child.stdout.once('data', () => resolve());
        void exited.then((code) => {
          if (code === FLOCK_TIMEOUT_EXIT) {
            reject(new DuccError('BOT_ERR_PUBLISH', `timed out after ${seconds} s waiting for the repository lock ${this.path} (another process holds it)`));
          } else {
            reject(
              new DuccError(
                'BOT_ERR_PUBLISH',
                `cannot take the repository lock ${this.path}: flock exited with ${String(code)}: ${stderr.trim() || 'no output'}`,
              ),
            );
          }
        });
        child.stdin.on('error', () => {}); // flock may be gone; its exit status says why
        child.stdin.write('\n');
      });
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    } finally {
      clearTimeout(waiting);
    }
    return async () => {
      child.stdin.end();
      await exited;
    };
  }
}
