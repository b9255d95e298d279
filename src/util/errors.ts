/**
 * Every error we raise on purpose is a DuccError with a stable code (BOT_ERR_<AREA>[_<WHAT>]) so that
 * callers and tests can tell failures apart without matching message text. Each also says whether it is
 * `temporary`: worth trying again later (the job worker retries those, and only those).
 */
export type DuccErrorCode =
  | 'BOT_ERR_WISHLIST'
  | 'BOT_ERR_REFERENCE'
  | 'BOT_ERR_REGISTRY'
  | 'BOT_ERR_REGISTRY_AUTH'
  | 'BOT_ERR_REGISTRY_NOT_FOUND'
  | 'BOT_ERR_REGISTRY_UNREACHABLE'
  | 'BOT_ERR_DIGEST_MISMATCH'
  | 'BOT_ERR_SIZE_MISMATCH'
  | 'BOT_ERR_MEDIA_TYPE'
  | 'BOT_ERR_PLATFORM'
  | 'BOT_ERR_UNSAFE_ENTRY'
  /** A layer that is not a valid (or is a truncated) tar / gzip / zstd stream. */
  | 'BOT_ERR_ARCHIVE'
  | 'BOT_ERR_LIMIT'
  | 'BOT_ERR_PUBLISH'
  | 'BOT_ERR_CVMFS'
  | 'BOT_ERR_CONFIG'
  | 'BOT_ERR_THIN'
  /** A GitHub or GitLab API call that failed (ForgeError, src/forge/forge-error.ts). */
  | 'BOT_ERR_FORGE'
  /** git could not fetch the wish-list repository, or a commit is not (yet) in it. */
  | 'BOT_ERR_GIT'
  /** Garbage collection, delete-image and prune: a damaged schedule, a removal that failed half-way. */
  | 'BOT_ERR_GC';

/**
 * Codes that are the same on every try: bad configuration, bad input (wish lists, references, archives,
 * limits), refused credentials, missing images, content that does not match its digest.
 */
const PERMANENT_CODES: ReadonlySet<DuccErrorCode> = new Set([
  'BOT_ERR_WISHLIST',
  'BOT_ERR_REFERENCE',
  'BOT_ERR_REGISTRY_AUTH',
  'BOT_ERR_REGISTRY_NOT_FOUND',
  'BOT_ERR_DIGEST_MISMATCH',
  'BOT_ERR_SIZE_MISMATCH',
  'BOT_ERR_MEDIA_TYPE',
  'BOT_ERR_PLATFORM',
  'BOT_ERR_UNSAFE_ENTRY',
  'BOT_ERR_ARCHIVE',
  'BOT_ERR_LIMIT',
  'BOT_ERR_CONFIG',
  'BOT_ERR_THIN',
]);

export interface DuccErrorOptions {
  cause?: unknown;
  /** HTTP status of the answer that failed, when there was one. */
  status?: number;
  /** Overrides what the code, the status and the cause say (see isTemporary). */
  temporary?: boolean;
}

export class DuccError extends Error {
  readonly code: DuccErrorCode;
  readonly status: number | undefined;
  /**
   * Whether trying again later may succeed. From the HTTP status when there is one (408, 429 and 5xx
   * are temporary, other 4xx are not); else permanent for the codes of bad configuration and input;
   * else from the cause (network failures are temporary); else temporary.
   */
  readonly temporary: boolean;
  constructor(code: DuccErrorCode, message: string, options: DuccErrorOptions = {}) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined);
    this.name = 'DuccError';
    this.code = code;
    this.status = options.status;
    this.temporary = options.temporary ?? temporaryByCode(code, options.status, options.cause);
  }
}

function temporaryByCode(code: DuccErrorCode, status: number | undefined, cause: unknown): boolean {
  if (status !== undefined) return isTemporaryStatus(status);
  if (PERMANENT_CODES.has(code)) return false;
  return cause === undefined ? true : isTemporary(cause);
}

/** 408 Request Timeout, 429 Too Many Requests and every 5xx. */
export function isTemporaryStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** System and undici error codes of a request that got no answer: the network, DNS, timeouts. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
]);

/** The innermost network failure among an error and its causes (e.g. `getaddrinfo ENOTFOUND api.github.com`). */
export function networkCause(error: unknown): (Error & { code: string }) | undefined {
  let found: (Error & { code: string }) | undefined;
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || code.startsWith('UND_ERR_'))) found = current as Error & { code: string };
    current = current.cause;
  }
  return found;
}

/**
 * Whether any thrown value is worth trying again later: a DuccError (or ForgeError) says so itself;
 * an abort (the worker stopping) is; a network failure anywhere in the causes is; an HTTP status
 * decides as for DuccError. Anything else, which we did not foresee (a git or database hiccup as much
 * as a bug), counts as temporary: its retries are bounded.
 */
export function isTemporary(error: unknown): boolean {
  if (error instanceof DuccError) return error.temporary;
  const flag = (error as { temporary?: unknown } | null)?.temporary;
  if (typeof flag === 'boolean') return flag;
  if (networkCause(error) !== undefined) return true;
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400) return isTemporaryStatus(status);
  return true;
}

/** The message of any thrown value, for one-line reports. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
