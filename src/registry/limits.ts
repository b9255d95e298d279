import { DuccError } from '../util/errors.ts';

/**
 * Parsers for operator-tunable numbers given as environment variables, with the variable's name in every
 * error. The registry's own settings are read with them in settings.ts (registrySettingsFromEnv); the
 * layer extractor and the webhook body reader use them for their limits too. docs/security.md lists the
 * limits and their defaults.
 */

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * A positive integer from `env[name]` (an optional k/m/g/t binary suffix multiplies it), or `fallback`
 * when the variable is unset or empty. Anything else is a BOT_ERR_CONFIG naming the variable.
 */
export function integerFromEnv(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const match = /^(\d+)\s*([kmgt]?)(?:i?b)?$/i.exec(raw);
  const value = match === null ? NaN : Number(match[1]) * UNITS[match[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new DuccError('BOT_ERR_CONFIG', `${name} must be a positive integer (optionally with a k/m/g/t suffix), not ${JSON.stringify(raw)}`);
  }
  return value;
}

/** A positive number of seconds from `env[name]` (fractions allowed), in milliseconds, or `fallbackMs`. */
export function durationFromEnv(name: string, fallbackMs: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallbackMs;
  const seconds = /^\d+(?:\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new DuccError('BOT_ERR_CONFIG', `${name} must be a positive number of seconds, not ${JSON.stringify(raw)}`);
  }
  return Math.max(1, Math.round(seconds * 1000));
}

/** A non-negative integer (0 allowed, e.g. "no retries") from `env[name]`, or `fallback`. */
export function countFromEnv(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value)) throw new DuccError('BOT_ERR_CONFIG', `${name} must be a non-negative integer, not ${JSON.stringify(raw)}`);
  return value;
}
