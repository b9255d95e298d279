/**
 * A cap on simultaneous requests per registry host (DUCC_REGISTRY_MAX_CONCURRENT), so that converting
 * many images at once does not open hundreds of connections to one registry (and get rate-limited for it).
 */
import pLimit, { type LimitFunction } from 'p-limit';

export class HostSlots {
  readonly #perHost: number;
  readonly #limiters = new Map<string, LimitFunction>();

  constructor(perHost: number) {
    this.#perHost = perHost;
  }

  /** Runs `fn` once one of the host's slots is free, and holds the slot until it settles. */
  run<T>(host: string, fn: () => Promise<T>): Promise<T> {
    let limit = this.#limiters.get(host);
    if (limit === undefined) {
      limit = pLimit(this.#perHost);
      this.#limiters.set(host, limit);
    }
    return limit(fn);
  }
}
