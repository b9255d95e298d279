/** Retry timing helpers: Retry-After parsing and exponential backoff with jitter. */

/** Upper bound for any single wait, whatever the server asks for. */
export const MAX_RETRY_AFTER_MS = 60_000;
const MAX_BACKOFF_MS = 30_000;

/**
 * Parses a Retry-After header (delay-seconds or an HTTP-date) into milliseconds from `nowMs`,
 * capped at 60 s. Returns undefined when absent or unparsable; a date in the past gives 0.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  // HTTP-date (IMF-fixdate, and the obsolete RFC 850 / asctime forms Date.parse also understands)
  if (!/[A-Za-z]/.test(text)) return undefined;
  const when = Date.parse(text);
  if (Number.isNaN(when)) return undefined;
  return Math.min(Math.max(0, when - nowMs), MAX_RETRY_AFTER_MS);
}

/**
 * Delay before retry number `attempt` (0-based): baseMs·2^attempt, with "equal jitter" (between half and
 * the full value), capped at 30 s.
 */
export function backoffDelay(attempt: number, baseMs: number, random: () => number = Math.random): number {
  const exp = Math.min(baseMs * 2 ** attempt, MAX_BACKOFF_MS);
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** Network error codes that are worth retrying for idempotent requests. */
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** The system / undici error code of an error or of one of its causes (transient codes preferred). */
export function networkErrorCode(error: unknown): string | undefined {
  let first: string | undefined;
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (TRANSIENT_NETWORK_CODES.has(code) && code !== 'UND_ERR_SOCKET') return code;
      first ??= code;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return first;
}

/** True for resets, timeouts and other failures that a retry may fix (not for refused connections / unknown hosts). */
export function isTransientNetworkError(error: unknown): boolean {
  const code = networkErrorCode(error);
  return code !== undefined && TRANSIENT_NETWORK_CODES.has(code);
}

/** HTTP statuses worth retrying for idempotent requests. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 || (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
