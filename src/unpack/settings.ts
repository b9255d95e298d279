/**
 * The operator's settings for unpacking layers, read from the environment in one place (as probot reads
 * its options with `readEnvOptions(env = process.env)`) and passed down: nothing below reads
 * `process.env`. Callers that pass no settings get `unpackSettingsFromEnv(process.env)`.
 */
import { availableParallelism } from 'node:os';
import { integerFromEnv } from '../registry/limits.ts';
import { DuccError } from '../util/errors.ts';

/** Limits on what one layer may contain; defaults are far above real images and far below trouble. */
export interface ExtractLimits {
  maxEntries: number;
  maxPathBytes: number;
  maxDepth: number;
  /** Uncompressed bytes of file content per layer. */
  maxBytes: number;
  /** Symlinks followed while resolving one path. */
  maxSymlinkHops: number;
}

export const DEFAULT_EXTRACT_LIMITS: ExtractLimits = {
  maxEntries: 2_000_000,
  maxPathBytes: 4096,
  maxDepth: 256,
  maxBytes: 64 * 1024 ** 3,
  maxSymlinkHops: 40,
};

/** The environment variable that overrides each limit (see docs/security.md). */
export const EXTRACT_LIMIT_VARIABLES: Record<keyof ExtractLimits, string> = {
  maxEntries: 'DUCC_LIMIT_LAYER_ENTRIES',
  maxPathBytes: 'DUCC_LIMIT_PATH_BYTES',
  maxDepth: 'DUCC_LIMIT_PATH_DEPTH',
  maxBytes: 'DUCC_LIMIT_LAYER_BYTES',
  maxSymlinkHops: 'DUCC_LIMIT_SYMLINK_HOPS',
};

export const WRITER_THREADS_VARIABLE = 'DUCC_WRITER_THREADS';

export interface UnpackSettings {
  limits: ExtractLimits;
  /** File-writer threads (file-writer.ts); 0 writes everything on the main thread. */
  writerThreads: number;
}

/** The settings in `env`: DUCC_LIMIT_* and DUCC_WRITER_THREADS. A malformed value is a BOT_ERR_CONFIG naming the variable. */
export function unpackSettingsFromEnv(env: NodeJS.ProcessEnv): UnpackSettings {
  return { limits: extractLimits({}, env), writerThreads: writerThreadsFromEnv(env) };
}

/** The limits in force: defaults, overridden by DUCC_LIMIT_* variables, overridden by `explicit`. */
export function extractLimits(explicit: Partial<ExtractLimits> = {}, env: NodeJS.ProcessEnv = process.env): ExtractLimits {
  const limits = { ...DEFAULT_EXTRACT_LIMITS };
  for (const key of Object.keys(limits) as (keyof ExtractLimits)[]) {
    limits[key] = explicit[key] ?? integerFromEnv(EXTRACT_LIMIT_VARIABLES[key], DEFAULT_EXTRACT_LIMITS[key], env);
  }
  return limits;
}

/** DUCC_WRITER_THREADS, by default one writer per core beyond the main thread's, at least one, at most four. */
function writerThreadsFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env[WRITER_THREADS_VARIABLE]?.trim();
  if (raw === undefined || raw === '') {
    const cores = availableParallelism();
    return cores <= 1 ? 0 : Math.min(4, cores - 1);
  }
  if (!/^\d{1,3}$/.test(raw))
    throw new DuccError('BOT_ERR_CONFIG', `${WRITER_THREADS_VARIABLE} must be a number of threads (0 or more), not ${JSON.stringify(raw)}`);
  return Number(raw);
}
