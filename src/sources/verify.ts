import { createHash } from 'node:crypto';
import { DuccError } from '../util/errors.ts';
import { verifyDigest } from '../registry/digest.ts';
import type { Descriptor } from '../registry/types.ts';

/** Throws unless `bytes` are exactly the descriptor's size and digest. */
export function verifyBlob(bytes: Buffer, descriptor: Descriptor, what: string): void {
  if (bytes.length !== descriptor.size) {
    throw new DuccError('BOT_ERR_SIZE_MISMATCH', `${what}: got ${bytes.length} bytes, descriptor says ${descriptor.size}`);
  }
  verifyDigest(bytes, descriptor.digest, what);
}

/** Refuses a blob larger than a cap before it is read. */
export function assertBlobWithin(descriptor: Descriptor, maxBytes: number, what: string): void {
  if (descriptor.size > maxBytes) throw new DuccError('BOT_ERR_LIMIT', `${what} is ${descriptor.size} bytes, more than the ${maxBytes} allowed here`);
}

/** `sha256:<hex>` of some bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
