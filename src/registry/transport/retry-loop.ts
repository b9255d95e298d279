/**
 * Retrying what a retry may fix. Anything below an attempt that may be retried (a 5xx or 429 answer, a
 * reset, a timeout) throws a RetryableFailure; the loop waits (Retry-After when the registry named a
 * delay, else exponential backoff) and tries again, up to maxRetries times, for idempotent requests only:
 * a POST or PUT that broke off may have had its effect, so it fails at once.
 */
import type { Logger } from 'pino';
import type { DuccError } from '../../util/errors.ts';
import { backoffDelay, sleep } from './retry.ts';
import type { RequestSpec } from './types.ts';

/** A failed attempt that may be retried; `error` is what the caller gets when retries are exhausted. */
export class RetryableFailure extends Error {
  readonly error: DuccError;
  readonly delayMs: number | undefined;
  constructor(error: DuccError, delayMs?: number) {
    super(error.message);
    this.error = error;
    this.delayMs = delayMs;
  }
}

export interface RetryPolicy {
  /** Retries after the first attempt (DUCC_REGISTRY_RETRIES). */
  maxRetries: number;
  /** Base of the exponential backoff in ms. */
  retryBaseMs: number;
  log: Logger | undefined;
}

/** Runs `attempt`, retrying its RetryableFailures (GET and HEAD only) as the policy allows. */
export async function withRetries<T>(spec: RequestSpec, policy: RetryPolicy, attempt: () => Promise<T>): Promise<T> {
  const idempotent = spec.method === 'GET' || spec.method === 'HEAD';
  const maxRetries = idempotent ? policy.maxRetries : 0;
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof RetryableFailure)) throw error;
      if (n >= maxRetries) {
        if (n > 0) error.error.message += ` (after ${n + 1} attempts)`;
        throw error.error;
      }
      const delay = error.delayMs ?? backoffDelay(n, policy.retryBaseMs);
      policy.log?.warn(
        { registry: spec.ref.registry, repository: spec.ref.repository, what: spec.what, attempt: n + 1, delayMs: delay, reason: error.message },
        'registry request failed, retrying',
      );
      await sleep(delay);
    }
  }
}
