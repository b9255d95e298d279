/**
 * Bearer tokens of the distribution token flow, kept until shortly before they expire so that one token
 * serves every request of its scope.
 */

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Bearer tokens keyed by (registry, scope, user), each valid until its expiry minus a safety margin. */
export class TokenCache {
  readonly #entries = new Map<string, CachedToken>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  static key(registry: string, scope: string, username: string | undefined): string {
    return JSON.stringify([registry, scope, username ?? '']);
  }

  get(key: string): string | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (this.#now() >= entry.expiresAt) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.header;
  }

  /** expiresInSeconds defaults to 60 (the distribution token spec's default). */
  set(key: string, header: string, expiresInSeconds: number | undefined): void {
    const seconds = expiresInSeconds !== undefined && Number.isFinite(expiresInSeconds) && expiresInSeconds > 0 ? expiresInSeconds : 60;
    const margin = Math.min(30, seconds * 0.1);
    this.#entries.set(key, { header, expiresAt: this.#now() + (seconds - margin) * 1000 });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }
}
