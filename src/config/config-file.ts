/**
 * Reading a configuration file (YAML) and reporting its problems: one `file: key.path: problem (line L,
 * column C)` line each, all of them in one DuccError('BOT_ERR_CONFIG'). Both `ducc convert` (its
 * `publisher:` section) and `ducc serve` (the whole file) read their file through here.
 */
import { readFileSync } from 'node:fs';
import { isMap, isNode, LineCounter, parseDocument, type Document } from 'yaml';
import type * as z from 'zod';
import { DuccError } from '../util/errors.ts';
import { isRecord } from './fields.ts';

/** Where a problem is: keys and list indexes from the top of the file, e.g. `['wishlists', 2, 'paths', 0]`. */
export type ConfigPath = readonly PropertyKey[];

export interface ConfigProblem {
  path: ConfigPath;
  message: string;
}

/** A configuration file read and parsed. */
export interface ConfigFile {
  file: string;
  /** The document as plain data, keys holding null left out (an empty `key:` counts as not given). */
  value: Record<string, unknown>;
  /** For the line and column of each problem. */
  document: Document;
  lineCounter: LineCounter;
}

/**
 * Reads and parses `file`. Unreadable files, YAML syntax errors and a top level that is not a mapping
 * are BOT_ERR_CONFIG at once; an empty file is an empty mapping.
 */
export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new DuccError('BOT_ERR_CONFIG', `cannot read config ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
    });
  }
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter });
  if (document.errors.length > 0) throw configError(document.errors.map((error) => `${file}: ${firstLine(error.message)}`));
  const value: unknown = withoutNulls(document.toJS({ maxAliasCount: 100 }));
  if (value !== null && value !== undefined && !isRecord(value)) throw configError([`${file}: (top level): must be a mapping of keys to values`]);
  return { file, value: value ?? {}, document, lineCounter };
}

/** zod's problems as ConfigProblems: one per unknown key, with the key in the path. */
export function problemsOfIssues(issues: readonly z.core.$ZodIssue[], under: ConfigPath = []): ConfigProblem[] {
  return issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ path: [...under, ...issue.path, key], message: issue.message }))
      : [{ path: [...under, ...issue.path], message: issue.message }],
  );
}

/**
 * `file: key.path: problem (line L, column C)` lines, in the order of the file; without a file
 * (defaults only), `source` is the word that stands for it.
 */
export function formatProblems(problems: readonly ConfigProblem[], source: ConfigFile | string): string[] {
  const where = typeof source === 'string' ? source : source.file;
  const placed = problems.map((problem) => ({ problem, position: typeof source === 'string' ? undefined : positionOf(source, problem.path) }));
  // Stable: problems at one place keep their order.
  placed.sort((a, b) => (a.position?.line ?? 0) - (b.position?.line ?? 0) || (a.position?.col ?? 0) - (b.position?.col ?? 0));
  return placed.map(
    ({ problem, position }) =>
      `${where}: ${formatPath(problem.path)}: ${problem.message}${position === undefined ? '' : ` (line ${position.line}, column ${position.col})`}`,
  );
}

/** The one error of a configuration with problems, one line each. */
export function configError(lines: readonly string[]): DuccError {
  return new DuccError('BOT_ERR_CONFIG', `invalid configuration (${lines.length} problem${lines.length === 1 ? '' : 's'}):\n  ${lines.join('\n  ')}`);
}

/** `wishlists[2].paths[0]`; the top level is `(top level)`. */
export function formatPath(path: ConfigPath): string {
  let text = '';
  for (const key of path) text += typeof key === 'number' ? `[${key}]` : `${text === '' ? '' : '.'}${String(key)}`;
  return text === '' ? '(top level)' : text;
}

/**
 * Where a path is in the file: the key of a mapping entry (so an unknown or misspelt key points at
 * itself), or an item of a list; for a key that is missing, the mapping that should hold it.
 */
function positionOf(source: ConfigFile, path: ConfigPath): { line: number; col: number } | undefined {
  let node: unknown = source.document.contents;
  let offset = isNode(node) ? node.range?.[0] : undefined;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isNode(item.key) && (item.key as { value?: unknown }).value === key);
      if (pair === undefined) break;
      offset = isNode(pair.key) ? pair.key.range?.[0] : offset;
      node = pair.value;
    } else if (isNode(node) && 'items' in node && Array.isArray(node.items) && typeof key === 'number') {
      const item: unknown = node.items[key];
      if (!isNode(item)) break;
      offset = item.range?.[0];
      node = item;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : source.lineCounter.linePos(offset);
}

/** A copy without the mapping keys that hold null: in this file, `key:` with no value means "not set". */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isRecord(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, child]) => child !== null && child !== undefined)
      .map(([key, child]) => [key, withoutNulls(child)]),
  );
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
