/**
 * Reading fields of untrusted webhook payloads: each helper returns undefined unless the value has the
 * expected type (and shape), so parsers never throw on malformed input.
 */

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A nested object field. */
export function rec(object: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const value = object[key];
  return isRecord(value) ? value : undefined;
}

/** A string field. */
export function str(object: Record<string, unknown>, key: string): string | undefined {
  const value = object[key];
  return typeof value === 'string' ? value : undefined;
}

/** A non-negative safe integer. */
export function int(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/** A commit id: 40 hex digits (SHA-1) or 64 (SHA-256 repositories). */
export function sha(value: string | undefined): string | undefined {
  return value !== undefined && /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(value) ? value : undefined;
}

/** An all-zero commit id: a deleted branch in push events. */
export const ZERO_SHA = /^0+$/;
