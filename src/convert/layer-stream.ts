import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { DuccError } from '../util/errors.ts';
import { EXTRACT_LIMIT_VARIABLES, extractLimits } from '../unpack/entry-path.ts';

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
 * The first 4 bytes are gathered before deciding (a network read may deliver fewer). Returns the stages
 * to put into a `pipeline`.
 */
export function decompressionStages(compression: LayerCompression, label: string): Transform[] {
  let head: Buffer | undefined = Buffer.alloc(0);
  const decide = (data: Buffer): DuccError | undefined => {
    const actual: LayerCompression = data.subarray(0, 2).equals(GZIP_MAGIC) ? 'gzip' : data.subarray(0, 4).equals(ZSTD_MAGIC) ? 'zstd' : 'none';
    if (actual === compression) return undefined;
    return new DuccError('BOT_ERR_MEDIA_TYPE', `${label}: media type says ${compression} but the blob is ${actual === 'none' ? 'not compressed' : actual}`);
  };
  /** Passes on the bytes held back so far, or fails if they contradict the media type. */
  const release = (callback: TransformCallback): void => {
    const data = head!;
    head = undefined;
    const error = decide(data);
    if (error) callback(error);
    else callback(null, data);
  };
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (head === undefined) {
        callback(null, chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      if (head.length < ZSTD_MAGIC.length) callback();
      else release(callback);
    },
    flush(callback) {
      // A blob shorter than 4 bytes (or empty): decided on what there is.
      if (head === undefined || head.length === 0) callback();
      else release(callback);
    },
  });
  if (compression === 'none') return [check];
  // Large output chunks: the default 16 KiB means ~65,000 hand-offs (and file writes) per GiB.
  const chunkSize = 1024 * 1024;
  return [check, compression === 'gzip' ? createGunzip({ chunkSize }) : createZstdDecompress({ chunkSize })];
}

/**
 * Passes bytes through while hashing them; at the end, fails the stream if the digest differs from the
 * expected one (the layer's diff_id in the image config), so nothing built from it is ever published.
 * Fails as soon as more than `maxBytes` uncompressed bytes went through (default: the layer byte limit,
 * DUCC_LIMIT_LAYER_BYTES): a decompression bomb stops there, with bounded time, memory and disk, whatever
 * the tar holds (end-of-archive zeros count too).
 */
export class DigestingStream extends Transform {
  private readonly hash = createHash('sha256');
  private readonly expected: string | undefined;
  private readonly label: string;
  readonly maxBytes: number;
  bytes = 0;
  digest = '';

  constructor(expected: string | undefined, label: string, maxBytes: number = extractLimits().maxBytes) {
    super();
    this.expected = expected;
    this.label = label;
    this.maxBytes = maxBytes;
    // Bytes (and so errors: a small corrupt blob fails its digest check at once) may arrive before the
    // publisher attaches its reader — it may first wait for a lock or make a staging directory. Such an
    // error must not be an uncaught exception that takes the whole process down: it stays in
    // `errored`, where the reader finds it (stream.finished / pipeline report it at once).
    this.on('error', () => undefined);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      callback(
        new DuccError(
          'BOT_ERR_LIMIT',
          `${this.label}: more than ${this.maxBytes} bytes once uncompressed (the layer size limit, ${EXTRACT_LIMIT_VARIABLES.maxBytes})`,
        ),
      );
      return;
    }
    this.hash.update(chunk);
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
