/**
 * A local cache of what registry-less sources learnt and may keep: small documents by digest (manifests,
 * indexes and configs of OCI layouts; the configs and manifests made for dogestry images), and for each
 * dogestry layer its digest and size. With it, an unchanged tag costs one small read (index.json, or the
 * dogestry tag file) and a published layer is never read again.
 *
 * Everything is content-addressed or keyed by what identifies it for good (a dogestry image id, which
 * dogestry never rewrites): nothing in it goes stale. Documents are checked against their digest when read
 * back, so a damaged cache file is a miss, not a wrong answer. Losing the cache costs time only. Writes
 * are atomic (temporary file, then rename); a cache that cannot be written is used in memory only.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { digestAlgorithm, digestOf, isValidDigest } from '../registry/digest.ts';
import { errorMessage } from '../util/errors.ts';

/**
 * Bytes of documents and records kept in memory besides the files, at most: the ones used last stay. A
 * `ducc serve` process sees every tag of every wish list for weeks; its memory must not grow with them.
 * 16 MiB holds the records and manifests of some 10,000 tags; beyond that, reads go to the files.
 */
export const MEMORY_BYTES = 16 * 1024 * 1024;

export class SourceCache {
  readonly #dir: string | undefined;
  readonly #log: Logger | undefined;
  /** In order of last use (a Map keeps insertion order; a hit is moved to the end). */
  readonly #memory = new Map<string, Buffer>();
  readonly #memoryLimit: number;
  #memoryBytes = 0;
  #warned = false;

  /** `dir` undefined: memory only (for one process). */
  constructor(dir: string | undefined, log?: Logger, options: { memoryBytes?: number } = {}) {
    this.#dir = dir;
    this.#log = log;
    this.#memoryLimit = options.memoryBytes ?? MEMORY_BYTES;
  }

  /** Bytes held in memory now (for tests). */
  get memoryBytes(): number {
    return this.#memoryBytes;
  }

  #recall(key: string): Buffer | undefined {
    const bytes = this.#memory.get(key);
    if (bytes !== undefined) {
      this.#memory.delete(key);
      this.#memory.set(key, bytes);
    }
    return bytes;
  }

  #remember(key: string, bytes: Buffer): void {
    const previous = this.#memory.get(key);
    if (previous !== undefined) {
      this.#memory.delete(key);
      this.#memoryBytes -= previous.length;
    }
    this.#memory.set(key, bytes);
    this.#memoryBytes += bytes.length;
    for (const [oldest, held] of this.#memory) {
      if (this.#memoryBytes <= this.#memoryLimit) break;
      this.#memory.delete(oldest);
      this.#memoryBytes -= held.length;
    }
  }

  /** A document by digest, verified, or undefined. Only what comes from a file is hashed: memory holds verified bytes alone. */
  async getDocument(digest: string): Promise<Buffer | undefined> {
    if (!isValidDigest(digest)) return undefined;
    const held = this.#recall(digest);
    if (held !== undefined) return held;
    const bytes = await this.#read(join('blobs', digest.replace(':', '/')));
    if (bytes === undefined || digestOf(bytes, digestAlgorithm(digest)) !== digest) return undefined;
    this.#remember(digest, bytes);
    return bytes;
  }

  /** Keeps a document whose bytes were verified against `digest`. */
  async putDocument(digest: string, bytes: Buffer): Promise<void> {
    if (!isValidDigest(digest) || digestOf(bytes, digestAlgorithm(digest)) !== digest) return;
    this.#remember(digest, bytes);
    await this.#write(join('blobs', digest.replace(':', '/')), bytes);
  }

  /** A JSON record under `key` (path-safe components joined by `/`), or undefined. */
  async getRecord<T>(key: string): Promise<T | undefined> {
    let bytes = this.#recall(`record:${key}`);
    if (bytes === undefined) {
      bytes = await this.#read(join('records', `${key}.json`));
      if (bytes === undefined) return undefined;
      this.#remember(`record:${key}`, bytes);
    }
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch {
      return undefined;
    }
  }

  async putRecord(key: string, value: unknown): Promise<void> {
    const bytes = Buffer.from(JSON.stringify(value));
    this.#remember(`record:${key}`, bytes);
    await this.#write(join('records', `${key}.json`), bytes);
  }

  /**
   * Read synchronously, as the directory publisher reads: these are small local files, and a reconcile
   * reads one per wish. An awaited readFile is four round trips through libuv's thread pool (open, fstat,
   * read, close): 1,000 such reads of 100-byte files took ~75 ms of CPU here, 1,000 readFileSync ~7 ms.
   */
  async #read(relative: string): Promise<Buffer | undefined> {
    if (this.#dir === undefined) return undefined;
    try {
      return readFileSync(join(this.#dir, relative));
    } catch {
      return undefined;
    }
  }

  async #write(relative: string, bytes: Buffer): Promise<void> {
    if (this.#dir === undefined) return;
    const path = join(this.#dir, relative);
    const temporary = `${path}.${randomUUID()}.tmp`;
    try {
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(temporary, bytes);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true }).catch(() => undefined);
      if (!this.#warned) {
        this.#warned = true;
        this.#log?.warn({ cacheDir: this.#dir, err: errorMessage(error) }, 'source cache cannot be written; keeping it in memory for this run');
      }
    }
  }
}
