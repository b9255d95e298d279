/**
 * The `state:` section of `ducc serve`: where the job queue and the bot's records live. `sqlite` (the
 * default) is the file `statePath`, for one process; `postgres` is a PostgreSQL database that several
 * `ducc serve` replicas share (one queue behind one webhook address, see docs/operations.md).
 */
import * as z from 'zod';
import { describe, envName, isRecord, nonEmptyString, numberFrom, reportUnknownKeys } from './fields.ts';

export const STATE_DEFAULTS = { passwordEnv: 'DUCC_STATE_PASSWORD', leaseSeconds: 60 } as const;

export interface PostgresStateConfig {
  kind: 'postgres';
  /** `postgres://user@host:port/database`: no password in the file (it may carry one from DUCC_STATE_URL). */
  url: string;
  /** Environment variable with the password (or `<NAME>_FILE`); unset: none, or the URL's. */
  passwordEnv: string;
  /** How long a claimed job stays its replica's without a renewal before another replica takes it over. */
  leaseSeconds: number;
}

export type StateConfig = { kind: 'sqlite' } | PostgresStateConfig;

/** Why `text` is not a PostgreSQL URL, or undefined. Never echoes it: it may carry a password. */
export function postgresUrlProblem(text: string, options: { passwordAllowed: boolean }): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be a postgres://user@host:port/database URL';
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') return 'must be a postgres://user@host:port/database URL';
  if (url.hostname === '') return 'must name the server: postgres://user@host:port/database';
  if (!options.passwordAllowed && url.password !== '') {
    return 'must not contain a password: it is a secret in the file; set it in the environment variable named by passwordEnv (default DUCC_STATE_PASSWORD)';
  }
  return undefined;
}

/** The URL as it may be shown: without its password. */
export function redactedUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== '') url.password = '***';
    return url.toString();
  } catch {
    return '(not a URL)';
  }
}

const POSTGRES_KEYS = {
  kind: z.literal('postgres'),
  url: nonEmptyString().superRefine((text, context) => {
    const problem = postgresUrlProblem(text, { passwordAllowed: false });
    if (problem !== undefined) context.addIssue({ code: 'custom', message: problem, input: '' });
  }),
  passwordEnv: envName().default(STATE_DEFAULTS.passwordEnv),
  leaseSeconds: numberFrom(1, 3600).default(STATE_DEFAULTS.leaseSeconds),
};

export const StateSection = z.preprocess(
  (value, context) => {
    if (!isRecord(value)) return value;
    const kind = value['kind'] ?? 'sqlite';
    if (kind === 'sqlite') reportUnknownKeys(value, ['kind'], context);
    if (kind === 'postgres') reportUnknownKeys(value, Object.keys(POSTGRES_KEYS), context);
    return { ...value, kind };
  },
  z.discriminatedUnion('kind', [z.object({ kind: z.literal('sqlite') }), z.object(POSTGRES_KEYS)], {
    error: (issue) =>
      issue.code === 'invalid_union'
        ? `must be 'sqlite' or 'postgres', got ${describe((issue.input as { kind?: unknown }).kind)}`
        : "must be a mapping with kind 'sqlite' (the file statePath) or 'postgres' (url, passwordEnv, leaseSeconds)",
  }),
);
