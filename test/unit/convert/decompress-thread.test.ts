/**
 * Large layers are decompressed on a thread of their own (src/convert/decompress-thread.ts): the same
 * bytes and the same errors as Node's zlib on the main thread, bounded queues both ways, and the thread
 * gone whenever the stream ends, fails or is given up.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { DigestingStream, decompressionStages, type LayerCompression } from '../../../src/convert/layer-stream.ts';
import { decompressThreadMinBytes, decompressThreadStats, ThreadedDecompressor } from '../../../src/convert/decompress-thread.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const compress = (data: Buffer, compression: 'gzip' | 'zstd') => (compression === 'gzip' ? gzipSync(data) : zstdCompressSync(data));

/** Runs `blob`, in network-sized pieces, through the decompression stages (threaded or not) and a DigestingStream. */
async function decompress(blob: Buffer, compression: LayerCompression, threaded: boolean, expectedDiffId?: string): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < blob.length; offset += 40_000) pieces.push(blob.subarray(offset, offset + 40_000));
  const digesting = new DigestingStream(expectedDiffId, 'layer sha256:test');
  const out = buffer(digesting);
  const run = pipeline as unknown as (...streams: NodeJS.ReadWriteStream[] | Readable[]) => Promise<void>;
  await Promise.all([run(Readable.from(pieces), ...decompressionStages(compression, 'layer sha256:test', { threaded }), digesting), out]);
  return out;
}

/** Waits until every decompression thread has ended. */
async function threadsGone(): Promise<void> {
  for (let i = 0; i < 200 && decompressThreadStats.running > 0; i++) await sleep(10);
  assert.equal(decompressThreadStats.running, 0, 'a decompression thread is still running');
}

describe('threaded decompression', () => {
  // Half random, half repetitive: chunks of every size come back, full 1 MiB buffers (moved) and partial ones (copied).
  const content = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(5 * MiB, 'layer '), randomBytes(MiB + 12345)]);

  for (const compression of ['gzip', 'zstd'] as const) {
    it(`gives the same bytes and diff_id as the main-thread decompressor (${compression})`, async () => {
      const blob = compress(content, compression);
      const started = decompressThreadStats.started;
      const threaded = await decompress(blob, compression, true, sha256(content));
      assert.equal(decompressThreadStats.started, started + 1);
      assert.ok(threaded.equals(content));
      assert.ok((await decompress(blob, compression, false, sha256(content))).equals(content));
      await threadsGone();
    });

    it(`fails on corrupt and on truncated data as zlib does on the main thread (${compression})`, async () => {
      const blob = compress(content, compression);
      const corrupt = Buffer.from(blob);
      corrupt.fill(0x55, 4096, 8192);
      const truncated = blob.subarray(0, blob.length - 1000);
      for (const bad of [corrupt, truncated]) {
        // (A zstd frame need not carry a checksum: corruption inside it may only show in the diff_id.)
        const inThread = await decompress(bad, compression, false, sha256(content)).then(
          () => undefined,
          (error: NodeJS.ErrnoException) => error,
        );
        const onThread = await decompress(bad, compression, true, sha256(content)).then(
          () => undefined,
          (error: NodeJS.ErrnoException) => error,
        );
        assert.ok(inThread instanceof Error, 'the main-thread decompressor accepted bad data');
        assert.ok(onThread instanceof Error, 'the threaded decompressor accepted bad data');
        assert.deepEqual([onThread.message, onThread.code], [inThread.message, inThread.code]);
      }
      await threadsGone();
    });
  }

  it('keeps at most a few chunks queued when nobody reads, and stops its thread when given up', async () => {
    const decompressor = new ThreadedDecompressor('gzip', 'layer sha256:test');
    // 64 MiB of zeros, 64 KiB compressed: without bounds the thread would hand back all of it at once.
    decompressor.end(gzipSync(Buffer.alloc(64 * MiB)));
    await sleep(300);
    assert.ok(decompressor.readableLength <= 6 * MiB, `${decompressor.readableLength} bytes queued`);
    // Reading drains it all.
    let total = 0;
    await pipeline(
      decompressor,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          total += chunk.length;
          callback();
        },
      }),
    );
    assert.equal(total, 64 * MiB);
    await threadsGone();

    const abandoned = new ThreadedDecompressor('zstd', 'layer sha256:test');
    abandoned.write(zstdCompressSync(randomBytes(2 * MiB)));
    await sleep(50);
    assert.ok(decompressThreadStats.running > 0);
    abandoned.destroy();
    await threadsGone();
  });

  it('is used from DUCC_DECOMPRESS_THREAD_MIN_BYTES compressed bytes on (default 128 MiB); nonsense is a config error', () => {
    assert.equal(decompressThreadMinBytes({}), 128 * MiB);
    assert.equal(decompressThreadMinBytes({ DUCC_DECOMPRESS_THREAD_MIN_BYTES: '0' }), 0);
    assert.equal(decompressThreadMinBytes({ DUCC_DECOMPRESS_THREAD_MIN_BYTES: ' 1048576 ' }), MiB);
    assert.throws(() => decompressThreadMinBytes({ DUCC_DECOMPRESS_THREAD_MIN_BYTES: '1 GiB' }), {
      code: 'BOT_ERR_CONFIG',
      message: /DUCC_DECOMPRESS_THREAD_MIN_BYTES must be a number of bytes/,
    });
  });
});
