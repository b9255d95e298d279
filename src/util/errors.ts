/**
 * Every error we raise on purpose is a DuccError with a stable code (BOT_ERR_<AREA>[_<WHAT>]) so that
 * callers and tests can tell failures apart without matching message text.
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
  | 'BOT_ERR_THIN';

export class DuccError extends Error {
  readonly code: DuccErrorCode;
  constructor(code: DuccErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DuccError';
    this.code = code;
  }
}

/** The message of any thrown value, for one-line reports. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
