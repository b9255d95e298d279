/**
 * Preload for crash tests (`node --import <this file> bin/ducc.js ...`): freezes the process at a chosen
 * call of one node:fs or node:fs/promises function, so that the test can SIGKILL it at exactly that
 * point of a conversion. Phases that touch no network (building the flat tree, the metadata
 * transaction) cannot be paused from outside; this pauses them from inside without changing the code.
 *
 * `DUCC_TEST_STALL` (JSON): { module: 'fs' | 'fs/promises', fn: e.g. 'linkSync' or 'rename', arg: index
 * of the path argument to match, match: regular expression (source), and optionally `also: { arg, match }`
 * for a second argument (e.g. openSync's flags), nth: freeze at the nth matching call (1 = first),
 * marker: file written (with this pid) just before freezing }. Without the variable nothing is changed.
 *
 * Freezing blocks the main thread for good (Atomics.wait without timeout), before the call is made: the
 * same for synchronous and asynchronous functions, and nothing of the process runs any more until the
 * test kills it.
 */
import { writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';

interface StallSpec {
  module: 'fs' | 'fs/promises';
  fn: string;
  arg: number;
  match: string;
  nth: number;
  marker: string;
  also?: { arg: number; match: string };
}

const raw = process.env['DUCC_TEST_STALL'];
if (raw !== undefined && raw !== '') {
  const spec = JSON.parse(raw) as StallSpec;
  const target = createRequire(import.meta.url)(`node:${spec.module}`) as Record<string, (...args: unknown[]) => unknown>;
  const original = target[spec.fn];
  if (typeof original !== 'function') throw new Error(`stall-hook: node:${spec.module} has no function ${spec.fn}`);
  const pattern = new RegExp(spec.match);
  const also = spec.also === undefined ? undefined : { arg: spec.also.arg, pattern: new RegExp(spec.also.match) };
  let seen = 0;
  target[spec.fn] = function stalling(this: unknown, ...args: unknown[]): unknown {
    if (pattern.test(String(args[spec.arg])) && (also === undefined || also.pattern.test(String(args[also.arg]))) && ++seen === spec.nth) {
      writeFileSync(spec.marker, String(process.pid));
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    }
    return original.apply(this, args);
  };
  // `import { rename } from 'node:fs/promises'` binds to the builtin's ESM exports: update them.
  syncBuiltinESMExports();
}
