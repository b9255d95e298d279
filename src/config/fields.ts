/**
 * The building blocks of the configuration schemas (zod): each field type carries the operator-facing
 * message of its problem, written as `must be ..., got <value>`, so that every problem reads the same
 * whichever section it is in. Formatting the problems with their place in the file is config-file.ts.
 */
import * as z from 'zod';

/** A value as it appears in a problem: short strings quoted, lists and mappings named, never long text. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (Array.isArray(value)) return 'a list';
  if (isRecord(value)) return 'a mapping';
  return String(value);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A string with something other than blanks in it. */
export function nonEmptyString() {
  const error = (issue: { input?: unknown }) => `must be a non-empty string, got ${describe(issue.input)}`;
  return z.string({ error }).refine((value) => value.trim() !== '', { error, abort: true });
}

/** A non-empty string matching `pattern` (problem: `invalid value "..."`). */
export function matching(pattern: RegExp) {
  return nonEmptyString().refine((value) => pattern.test(value), { error: (issue) => `invalid value ${describe(issue.input)}` });
}

/** A number from `min` to `max`; `whole` numbers only when asked. */
export function numberFrom(min: number, max: number, options: { whole?: boolean } = {}) {
  const error = (issue: { input?: unknown }) => `must be a${options.whole ? ' whole' : ''} number from ${min} to ${max}, got ${describe(issue.input)}`;
  return z
    .number({ error })
    .refine((value) => Number.isFinite(value) && (!options.whole || Number.isInteger(value)) && value >= min && value <= max, { error });
}

/** A number of seconds greater than 0. */
export function positiveSeconds() {
  const error = (issue: { input?: unknown }) => `must be a positive number of seconds, got ${describe(issue.input)}`;
  return z.number({ error }).refine((value) => Number.isFinite(value) && value > 0, { error });
}

export function boolean() {
  return z.boolean({ error: (issue) => `must be true or false, got ${describe(issue.input)}` });
}

/** What an `*Env` key must hold: the name of an environment variable, never the secret itself. */
const ENV_NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;

/** The NAME of an environment variable. The value is never echoed: it may be the secret itself, pasted in the wrong place. */
export function envName() {
  const error = 'must be the NAME of an environment variable (A-Z, 0-9, _), not the secret itself';
  return z.string({ error }).regex(ENV_NAME_PATTERN, { error });
}

/**
 * Returns the URL without a trailing slash, or `!problem`. Only http(s), without user or password
 * (a token in a URL is a secret in the file), query or fragment.
 */
export function checkHttpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `!must be an absolute http(s) URL, got ${JSON.stringify(value)}`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `!must be an http(s) URL, got ${JSON.stringify(url.protocol)}`;
  if (url.username !== '' || url.password !== '') return '!must not contain a user or password: give credentials through the environment';
  if (url.search !== '' || url.hash !== '') return '!must not contain a query or fragment';
  return value.replace(/\/+$/, '');
}

/** An http(s) URL (see checkHttpUrl), without its trailing slash. */
export function httpUrl() {
  return nonEmptyString().transform((value, context) => {
    const checked = checkHttpUrl(value);
    if (!checked.startsWith('!')) return checked;
    context.addIssue({ code: 'custom', message: checked.slice(1), input: value });
    return z.NEVER;
  });
}

/**
 * A mapping with the keys of `shape`. Every other key is a problem of its own (see reportUnknownKeys);
 * the known keys are still checked.
 */
export function mapping<Shape extends z.ZodRawShape>(shape: Shape, notAMapping: string) {
  const known = Object.keys(shape);
  return z.preprocess(
    (value, context) => {
      reportUnknownKeys(value, known, context);
      return value;
    },
    z.object(shape, { error: notAMapping }),
  );
}

/**
 * Reports each key of `value` (when it is a mapping) that is not in `known`, with a hint when it is the
 * snake_case or kebab-case spelling of a known key. For a preprocess step: zod lets a value whose only
 * problems are unrecognized keys go on to the schema after it, so the known keys are checked too.
 */
export function reportUnknownKeys(value: unknown, known: readonly string[], context: z.RefinementCtx): void {
  if (!isRecord(value)) return;
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) context.addIssue({ code: 'unrecognized_keys', keys: [key], input: value, message: unknownKey(key, known) });
  }
}

function unknownKey(key: string, known: readonly string[]): string {
  const camel = key.replace(/[_-]([a-z])/g, (_match, letter: string) => letter.toUpperCase());
  return camel !== key && known.includes(camel) ? `unknown key (did you mean "${camel}"? keys are camelCase)` : `unknown key (known keys: ${known.join(', ')})`;
}
