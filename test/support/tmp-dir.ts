import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** Anything with `after`: a TestContext, or a suite-level collector of cleanups. */
export interface Cleanup {
  after(fn: () => Promise<unknown> | unknown): void;
}

/** A fresh temporary directory, removed when the test (or suite) ends. */
export async function tempDir(t: Cleanup, prefix = 'ducc-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 3 }));
  return dir;
}

/** A suite-level stand-in for TestContext: collects cleanups; run them with `runAll()` in `after`. */
export function suiteCleanup(): Cleanup & { runAll(): Promise<void> } {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  return {
    after: (fn) => cleanups.push(fn),
    runAll: async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/** For helpers typed with TestContext that only call its `after` (startRegistry). */
export function asTestContext(cleanup: Cleanup): TestContext {
  return cleanup as unknown as TestContext;
}

export async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Entries of a directory, [] when it does not exist. */
export async function entriesOf(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}
