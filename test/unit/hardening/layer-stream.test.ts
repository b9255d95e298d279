/**
 * The decompression and digest stages in front of extraction: media type checked against the bytes
 * (however the network splits them), the diff_id checked over the whole decompressed stream.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { DigestingStream, compressionOf, decompressionStages, type LayerCompression } from '../../../src/convert/layer-stream.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Runs `blob`, delivered in chunks of `chunkSize` bytes, through the stages for `compression` and a DigestingStream. */
async function decompress(blob: Buffer, compression: LayerCompression, expectedDiffId: string | undefined, chunkSize = blob.length || 1): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < blob.length; offset += chunkSize) chunks.push(blob.subarray(offset, offset + chunkSize));
  const digesting = new DigestingStream(expectedDiffId, 'layer sha256:test');
  const out = buffer(digesting);
  const run = pipeline as unknown as (...streams: NodeJS.ReadWriteStream[] | Readable[]) => Promise<void>;
  await Promise.all([run(Readable.from(chunks), ...decompressionStages(compression, 'layer sha256:test'), digesting), out]);
  return out;
}

describe('layer stream', () => {
  const tar = Buffer.from('pretend this is a tar archive '.repeat(100));

  it('media-type-checked-on-split-first-bytes: a blob arriving one byte at a time is still recognised', async () => {
    assert.deepEqual(await decompress(gzipSync(tar), 'gzip', sha256(tar), 1), tar);
    assert.deepEqual(await decompress(zstdCompressSync(tar), 'zstd', sha256(tar), 3), tar);
    assert.deepEqual(await decompress(tar, 'none', sha256(tar), 2), tar);
  });

  it('media-type-inconsistent-with-bytes: gzip bytes labelled zstd, plain bytes labelled gzip, are refused', async () => {
    await assert.rejects(decompress(gzipSync(tar), 'zstd', undefined), { code: 'BOT_ERR_MEDIA_TYPE', message: /media type says zstd but the blob is gzip/ });
    await assert.rejects(decompress(tar, 'gzip', undefined, 1), { code: 'BOT_ERR_MEDIA_TYPE', message: /media type says gzip but the blob is not compressed/ });
    await assert.rejects(decompress(Buffer.from([0x1f]), 'gzip', undefined), { code: 'BOT_ERR_MEDIA_TYPE' });
    assert.throws(() => compressionOf('application/vnd.oci.image.layer.v1.tar+bzip2', 'layer x'), { code: 'BOT_ERR_MEDIA_TYPE' });
  });

  it('chunk-taken-on-after-the-write-returns: the decompressor queues its next chunk before this one is hashed and parsed', async () => {
    // Node's zlib writes a chunk downstream and only then queues the next one for its thread pool. If the
    // digest stage did its work inside that write, the pool would sit idle meanwhile.
    const digesting = new DigestingStream(undefined, 'layer sha256:test');
    const seen: number[] = [];
    digesting.on('data', (chunk: Buffer) => seen.push(chunk.length));
    digesting.write(tar);
    assert.equal(digesting.bytes, 0, 'hashed inside write()');
    assert.deepEqual(seen, []);
    await new Promise((resolve) => process.nextTick(resolve));
    assert.equal(digesting.bytes, tar.length);
    assert.deepEqual(seen, [tar.length]);
    // A stream destroyed before its turn drops the chunk quietly.
    digesting.write(tar);
    digesting.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(digesting.bytes, tar.length);
  });

  it('diff-id-over-whole-stream: bytes after the tar end still count; a mismatch fails the stream', async () => {
    const withTrailer = Buffer.concat([tar, Buffer.from('appended after the end')]);
    await assert.rejects(decompress(gzipSync(withTrailer), 'gzip', sha256(tar)), { code: 'BOT_ERR_DIGEST_MISMATCH', message: /image config says/ });
  });
});
