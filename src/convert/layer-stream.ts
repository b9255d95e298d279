import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { DuccError } from '../util/errors.ts';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** Layer media types that are skipped, as DUCC does: their content is not in the registry. */
export function isForeignLayer(mediaType: string): boolean {
  return mediaType === 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
}

/** Compression named by a layer media type (Docker schema 2 and OCI, distributable or not). */
export function compressionOf(mediaType: string, label: string): LayerCompression {
  switch (mediaType) {
    case 'application/vnd.docker.image.rootfs.diff.tar.gzip':
    case 'application/vnd.oci.image.layer.v1.tar+gzip':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip':
      return 'gzip';
    case 'application/vnd.oci.image.layer.v1.tar+zstd':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd':
      return 'zstd';
    case 'application/vnd.oci.image.layer.v1.tar':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
      return 'none';
    default:
      throw new DuccError('BOT_ERR_MEDIA_TYPE', `${label}: unsupported layer media type '${mediaType}'`);
  }
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/**
 * Decompresses a layer blob stream in Node's own zlib (gzip or zstd), after checking that the first bytes
 * agree with the media type, so a mislabelled blob fails with a clear error instead of a tar parse error.
 * Returns the stages to put into a `pipeline`.
 */
export function decompressionStages(compression: LayerCompression, label: string): Transform[] {
  let checked = false;
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (!checked) {
        checked = true;
        const actual: LayerCompression = chunk.subarray(0, 2).equals(GZIP_MAGIC) ? 'gzip' : chunk.subarray(0, 4).equals(ZSTD_MAGIC) ? 'zstd' : 'none';
        if (actual !== compression) {
          callback(new DuccError('BOT_ERR_MEDIA_TYPE', `${label}: media type says ${compression} but the blob is ${actual === 'none' ? 'not compressed' : actual}`));
          return;
        }
      }
      callback(null, chunk);
    },
  });
  if (compression === 'none') return [check];
  return [check, compression === 'gzip' ? createGunzip() : createZstdDecompress()];
}

/**
 * Passes bytes through while hashing them; at the end, fails the stream if the digest differs from the
 * expected one (the layer's diff_id in the image config), so nothing built from it is ever published.
 */
export class DigestingStream extends Transform {
  private readonly hash = createHash('sha256');
  private readonly expected: string | undefined;
  private readonly label: string;
  bytes = 0;
  digest = '';

  constructor(expected: string | undefined, label: string) {
    super();
    this.expected = expected;
    this.label = label;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.digest = `sha256:${this.hash.digest('hex')}`;
    if (this.expected !== undefined && this.expected !== this.digest) {
      callback(new DuccError('BOT_ERR_DIGEST_MISMATCH', `${this.label}: uncompressed content has digest ${this.digest}, but the image config says ${this.expected}`));
      return;
    }
    callback();
  }
}
