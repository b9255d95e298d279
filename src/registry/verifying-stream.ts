import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DuccError } from '../util/errors.ts';
import { assertValidDigest, digestAlgorithm } from './digest.ts';
import type { Descriptor } from './types.ts';

/**
 * Passes a blob's bytes on while counting and hashing them; errors instead of ending when they are more
 * or fewer than the descriptor's size or do not hash to its digest (the registry client's blob streams and
 * the registry-less sources use it alike).
 */
export class VerifyingStream extends Transform {
  readonly #descriptor: Descriptor;
  readonly #what: string;
  readonly #hash: Hash;
  #received = 0;

  constructor(descriptor: Descriptor, what: string) {
    super();
    assertValidDigest(descriptor.digest, what, 'BOT_ERR_REFERENCE');
    this.#descriptor = descriptor;
    this.#what = what;
    this.#hash = createHash(digestAlgorithm(descriptor.digest));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#received += chunk.length;
    if (this.#received > this.#descriptor.size) {
      callback(new DuccError('BOT_ERR_SIZE_MISMATCH', `${this.#what}: more than the ${this.#descriptor.size} bytes of its descriptor`));
      return;
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#received !== this.#descriptor.size) {
      callback(new DuccError('BOT_ERR_SIZE_MISMATCH', `${this.#what}: got ${this.#received} bytes, descriptor says ${this.#descriptor.size}`));
      return;
    }
    const actual = `${digestAlgorithm(this.#descriptor.digest)}:${this.#hash.digest('hex')}`;
    if (actual !== this.#descriptor.digest) {
      callback(new DuccError('BOT_ERR_DIGEST_MISMATCH', `digest mismatch for ${this.#what}: got ${actual}`));
      return;
    }
    callback();
  }
}
