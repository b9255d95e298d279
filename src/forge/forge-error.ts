import { DuccError } from '../util/errors.ts';
import type { ForgeKind } from './events.ts';

/**
 * A forge API call that failed (BOT_ERR_FORGE). The message names the operation and the forge's own
 * explanation, or for a call that got no answer, the network failure (e.g. `getaddrinfo ENOTFOUND
 * api.github.com`); never the token. The original client error is not kept as `cause` because
 * gitbeaker's carries the request with its `PRIVATE-TOKEN` header; a network failure is.
 *
 * Temporary (see DuccError) when no answer came, or for 408, 429 and 5xx answers.
 */
export class ForgeError extends DuccError {
  readonly forge: ForgeKind;
  constructor(forge: ForgeKind, message: string, status: number | undefined, options: { cause?: unknown } = {}) {
    super('BOT_ERR_FORGE', message, { ...options, ...(status === undefined ? {} : { status }) });
    this.name = 'ForgeError';
    this.forge = forge;
  }
}
