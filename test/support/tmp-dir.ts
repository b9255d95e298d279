import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Anything with `after` (a TestContext, or a suite-level collector of cleanups). */
export interface Cleanup {
  after(fn: () => Promise<void>): void;
}

/** A fresh temporary directory, removed when the test (or suite) ends. */
export async function tempDir(t: Cleanup, prefix = 'ducc-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
