/**
 * DUCC 2026's tolerated failures: the wish list's `ignoreErrors:` globs, merged with the `ignoreErrors:`
 * list of the YAML file named by `DUCC_IGNORE_ERRORS_FILE`. A wish whose whole input name
 * (`scheme://registry/repository:tag[@digest]`, the wildcard tag as written) matches one of them
 * (`filepath.Match`) may fail without failing the run: its errors are reported as warnings and the
 * exit status stays 0 (ducc/cmd/convert.go, `isInIgnoreList`).
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { errorMessage } from '../util/errors.ts';

/**
 * Go's `path/filepath.Match` on Unix: `*` matches any run of characters other than `/`, `?` one such
 * character, `[...]` a class (ranges, `^` to negate; it may match `/`), `\` escapes. The whole name must match. Returns
 * undefined for a malformed pattern (Go's ErrBadPattern).
 */
export function globMatch(pattern: string, name: string): boolean | undefined {
  const compiled = compileGlob(pattern);
  return compiled === undefined ? undefined : compiled.test(name);
}

/** Whether a pattern is well-formed for `filepath.Match`. */
export function isValidGlob(pattern: string): boolean {
  return compileGlob(pattern) !== undefined;
}

function compileGlob(pattern: string): RegExp | undefined {
  let source = '';
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '\\') {
      if (i + 1 >= chars.length) return undefined;
      source += escapeRegex(chars[++i]!);
    } else if (c === '[') {
      let j = i + 1;
      let negate = false;
      if (chars[j] === '^') {
        negate = true;
        j++;
      }
      const ranges: string[] = [];
      let first = true;
      for (;;) {
        if (j >= chars.length) return undefined;
        if (chars[j] === ']' && !first) break;
        first = false;
        let lo = chars[j]!;
        if (lo === '\\') {
          j++;
          if (j >= chars.length) return undefined;
          lo = chars[j]!;
        } else if (lo === '-' || lo === ']') {
          // Go requires these escaped inside a class (a ']' first is an empty class: malformed).
          return undefined;
        }
        j++;
        let hi = lo;
        if (chars[j] === '-') {
          j++;
          if (j >= chars.length) return undefined;
          hi = chars[j]!;
          if (hi === '\\') {
            j++;
            if (j >= chars.length) return undefined;
            hi = chars[j]!;
          } else if (hi === ']' || hi === '-') {
            return undefined;
          }
          j++;
        }
        // Go accepts a reversed range; it matches nothing.
        if (hi.codePointAt(0)! >= lo.codePointAt(0)!) ranges.push(lo === hi ? escapeClass(lo) : `${escapeClass(lo)}-${escapeClass(hi)}`);
      }
      // Unlike * and ?, Go's classes may match the separator.
      if (ranges.length === 0) source += negate ? '.' : '(?!)';
      else source += negate ? `[^${ranges.join('')}]` : `[${ranges.join('')}]`;
      i = j;
    } else {
      source += escapeRegex(c);
    }
  }
  return new RegExp(`^${source}$`, 'su');
}

function escapeRegex(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function escapeClass(c: string): string {
  return c.replace(/[\\\]^-]/g, '\\$&');
}

/** Whether `name` matches one of the (well-formed) patterns; malformed ones never match. */
export function isTolerated(name: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => globMatch(pattern, name) === true);
}

/**
 * The `ignoreErrors:` list of the file `DUCC_IGNORE_ERRORS_FILE` names. As DUCC, a file that cannot be
 * read or parsed is a warning (returned), not a failure: the run goes on with the wish list's own list.
 */
export async function readIgnoreErrorsFile(path: string | undefined): Promise<{ patterns: string[]; warnings: string[] }> {
  if (path === undefined || path === '') return { patterns: [], warnings: [] };
  let value: unknown;
  try {
    value = parse(await readFile(path, 'utf8'));
  } catch (error) {
    return { patterns: [], warnings: [`DUCC_IGNORE_ERRORS_FILE ${path} cannot be read: ${errorMessage(error)}; only the wish list's ignoreErrors apply`] };
  }
  const list = (value as { ignoreErrors?: unknown } | null)?.ignoreErrors;
  if (list === undefined || list === null) return { patterns: [], warnings: [`DUCC_IGNORE_ERRORS_FILE ${path} has no ignoreErrors list`] };
  if (!Array.isArray(list)) return { patterns: [], warnings: [`DUCC_IGNORE_ERRORS_FILE ${path}: ignoreErrors must be a list of globs`] };
  const patterns: string[] = [];
  const warnings: string[] = [];
  for (const item of list) {
    if (typeof item !== 'string') warnings.push(`DUCC_IGNORE_ERRORS_FILE ${path}: ${JSON.stringify(item)} is not a string; ignored`);
    else if (!isValidGlob(item)) warnings.push(`DUCC_IGNORE_ERRORS_FILE ${path}: invalid pattern ${JSON.stringify(item)}; ignored`);
    else patterns.push(item);
  }
  return { patterns, warnings };
}
