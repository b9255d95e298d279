import { createHash } from 'node:crypto';
import { DuccError, type DuccErrorCode } from '../util/errors.ts';

/** The digest algorithms we accept, with the length of their lowercase hex encoding. */
const DIGEST_PATTERN = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export type DigestAlgorithm = 'sha256' | 'sha512';

/** True when `value` is `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase hex only). */
export function isValidDigest(value: unknown): value is string {
  return typeof value === 'string' && DIGEST_PATTERN.test(value);
}

/**
 * Throws unless `value` is a valid digest. `what` names the digest in the message (never echo untrusted
 * long strings: the value is truncated).
 */
export function assertValidDigest(value: unknown, what: string, code: DuccErrorCode = 'BOT_ERR_DIGEST_MISMATCH'): asserts value is string {
  if (!isValidDigest(value)) {
    throw new DuccError(code, `invalid digest for ${what}: ${describeValue(value)} (expected sha256:<64 hex> or sha512:<128 hex>)`);
  }
}

export function digestAlgorithm(digest: string): DigestAlgorithm {
  return digest.startsWith('sha512:') ? 'sha512' : 'sha256';
}

/** `<algorithm>:<hex>` of the bytes. */
export function digestOf(data: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Throws BOT_ERR_DIGEST_MISMATCH unless the bytes hash to `expected`. */
export function verifyDigest(data: Uint8Array, expected: string, what: string): void {
  const actual = digestOf(data, digestAlgorithm(expected));
  if (actual !== expected) {
    throw new DuccError('BOT_ERR_DIGEST_MISMATCH', `digest mismatch for ${what}: expected ${expected}, got ${actual}`);
  }
}

function describeValue(value: unknown): string {
  if (typeof value !== 'string') return value === undefined ? 'missing' : `a ${typeof value}`;
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(shown);
}
