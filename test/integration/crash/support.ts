/**
 * Helpers of the crash tests: `ducc convert` as a child process (optionally with the stall preload),
 * waiting for a kill point, and comparing published trees with a clean run's.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { snapshotTree, type SnapshotEntry } from '../../support/tree-snapshot.ts';
import { waitFor as sharedWaitFor } from '../../support/wait-for.ts';
import { startCli as startCliProcess, type CliResult } from '../cli/cli-support.ts';
export { type CliResult } from '../cli/cli-support.ts';

export const STALL_HOOK = fileURLToPath(new URL('./stall-hook.ts', import.meta.url));

export interface RunningCli {
  child: ChildProcess;
  done: Promise<CliResult>;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
}

/** Where stall-hook.ts freezes the process: the nth call of `module.fn` whose argument `arg` matches. */
export interface StallSpec {
  module: 'fs' | 'fs/promises';
  fn: string;
  /** Index of the argument matched (rename and link: 1, the new name). */
  arg: number;
  match: RegExp;
  /** A second argument that must match too (e.g. openSync's flags, argument 1, `^r$`). */
  also?: { arg: number; match: string };
  nth?: number;
  marker: string;
}

/** Starts `node [--import stall-hook] bin/ducc.js ARGS` (no shell). Killed when the test ends if still running. */
export function startCli(t: { after(fn: () => unknown): void }, args: string[], options: { env?: Record<string, string>; stall?: StallSpec } = {}): RunningCli {
  const env: Record<string, string> = { ...options.env };
  if (options.stall) {
    const { match, nth, ...rest } = options.stall;
    env['DUCC_TEST_STALL'] = JSON.stringify({ ...rest, match: match.source, nth: nth ?? 1 });
  }
  const running = startCliProcess(args, { env, ...(options.stall ? { nodeOptions: ['--import', STALL_HOOK] } : {}) });
  const child = running.child;
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    done: running.done,
    output: () => {
      const { stdout, stderr } = running.output();
      return `--- stdout\n${stdout}--- stderr\n${stderr}`;
    },
  };
}

/** Runs the CLI to its end and fails with its output unless it exits with `expected`. */
export async function runCli(
  t: { after(fn: () => unknown): void },
  args: string[],
  expected: number,
  options: { env?: Record<string, string> } = {},
): Promise<CliResult> {
  const running = startCli(t, args, options);
  const timer = setTimeout(() => running.child.kill('SIGKILL'), 60_000);
  const result = await running.done;
  clearTimeout(timer);
  assert.equal(result.code, expected, `ducc ${args.join(' ')} ended with ${result.code ?? result.signal}\n${running.output()}`);
  return result;
}

/** SIGKILLs the child and waits for it to be gone; fails if it had already ended by itself. */
export async function kill(running: RunningCli): Promise<void> {
  running.child.kill('SIGKILL');
  const result = await running.done;
  assert.equal(result.signal, 'SIGKILL', `the conversion ended by itself before the kill point\n${running.output()}`);
}

/** Waits for a kill point; gives up at once (with the child's output) if the conversion has ended. */
export function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string, running?: RunningCli): Promise<void> {
  return sharedWaitFor(condition, timeoutMs, what, {
    intervalMs: 10,
    ...(running
      ? {
          detail: () => running.output(),
          abortIf: () => (running.child.exitCode !== null || running.child.signalCode !== null ? 'the conversion ended' : undefined),
        }
      : {}),
  });
}

import { entriesOf as entries } from '../../support/tmp-dir.ts';
export { exists, entriesOf as entries } from '../../support/tmp-dir.ts';

/** Every file below `dir` with its size. */
export async function filesBelow(dir: string): Promise<{ path: string; size: number }[]> {
  const found: { path: string; size: number }[] = [];
  for (const name of await entries(dir)) {
    const path = join(dir, name);
    const stat = await lstat(path).catch(() => undefined);
    if (stat?.isDirectory()) found.push(...(await filesBelow(path)));
    else if (stat?.isFile()) found.push({ path, size: stat.size });
  }
  return found;
}

/**
 * A published repository tree for comparison: type, mode, owner, content and link target of every
 * entry (mtimes are not compared). `layers.json` records when the layer was unpacked (`created`), so
 * it is compared without that field.
 */
export async function repoSnapshot(repoDir: string): Promise<Map<string, SnapshotEntry>> {
  const snapshot = await snapshotTree(repoDir);
  for (const [path, entry] of snapshot) {
    if (!path.endsWith('/.metadata/layers.json') || entry.type !== 'file') continue;
    const layers = JSON.parse(await readFile(join(repoDir, path), 'utf8')) as Record<string, unknown>[];
    for (const layer of layers) delete layer['created'];
    entry.sha256 = createHash('sha256').update(JSON.stringify(layers)).digest('hex');
    delete entry.size;
  }
  return snapshot;
}

/** Asserts two snapshots are equal, listing the paths that differ. */
export function assertSameTree(actual: Map<string, SnapshotEntry>, expected: Map<string, SnapshotEntry>, message: string): void {
  const differences: string[] = [];
  for (const [path, entry] of expected) {
    const other = actual.get(path);
    if (other === undefined) differences.push(`missing ${path}`);
    else if (JSON.stringify(other) !== JSON.stringify(entry)) differences.push(`differs ${path}: ${JSON.stringify(other)} vs ${JSON.stringify(entry)}`);
  }
  for (const path of actual.keys()) if (!expected.has(path)) differences.push(`extra ${path}`);
  assert.deepEqual(differences, [], `${message}:\n  ${differences.slice(0, 20).join('\n  ')}`);
}

const UNIT = /^(\.layers\/[0-9a-f]{2}\/[0-9a-f]{64}|\.flat\/[0-9a-f]{2}\/[0-9a-f]{64})(?:\/|$)/;

/**
 * What a killed conversion left under final names is complete: every layer directory and flat tree
 * present is exactly the clean run's; the public symlink and manifest.json, if present, too.
 */
export function assertOnlyCompleteUnits(partial: Map<string, SnapshotEntry>, reference: Map<string, SnapshotEntry>, finalNames: string[]): void {
  const units = new Set<string>();
  for (const path of partial.keys()) {
    const unit = UNIT.exec(path)?.[1];
    if (unit !== undefined) units.add(unit);
  }
  for (const unit of units) {
    const pick = (snapshot: Map<string, SnapshotEntry>) => new Map([...snapshot].filter(([path]) => path === unit || path.startsWith(`${unit}/`)));
    // origin.json lists the images using a layer: written by the metadata transaction, it may lag.
    const withoutOrigin = (snapshot: Map<string, SnapshotEntry>) => new Map([...pick(snapshot)].filter(([path]) => !path.endsWith('/.metadata/origin.json')));
    assertSameTree(withoutOrigin(partial), withoutOrigin(reference), `${unit} is incomplete under its final name`);
  }
  for (const name of finalNames) {
    if (partial.has(name)) assert.deepEqual(partial.get(name), reference.get(name), `${name} is visible but not final`);
  }
}
