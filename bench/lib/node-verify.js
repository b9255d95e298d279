/**
 * The `node-verify` row of the bench: what any Node.js converter that checks digests must spend at least,
 * for comparison with the decompress|tar floor. It reads the image's layer blobs from disk (no HTTP),
 * hashes each blob (its digest) and its decompressed tar (its diff_id) with sha256, decompresses with
 * Node's own gunzip/zstd, all layers at once, and writes nothing: no tar parsing, no files. Plain
 * JavaScript, started without bin/ducc.js or any package, so its start-up is Node's alone.
 *
 * Usage: node bench/lib/node-verify.js LAYERS.json, where the file holds
 * [{ blobPath, digest, diffId, compression: 'gzip' | 'zstd' }, ...]. Exits non-zero on a digest mismatch.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';

const CHUNK = 1024 * 1024;
const layers = JSON.parse(readFileSync(process.argv[2], 'utf8'));

async function verify({ blobPath, digest, diffId, compression }) {
  const blobHash = createHash('sha256');
  const tarHash = createHash('sha256');
  const blob = createReadStream(blobPath, { highWaterMark: CHUNK });
  blob.on('data', (chunk) => blobHash.update(chunk));
  const decompress = compression === 'gzip' ? createGunzip({ chunkSize: CHUNK }) : createZstdDecompress({ chunkSize: CHUNK });
  await pipeline(blob, decompress, async (tar) => {
    for await (const chunk of tar) tarHash.update(chunk);
  });
  for (const [what, hash, expected] of [
    ['digest', blobHash, digest],
    ['diff_id', tarHash, diffId],
  ]) {
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== expected) throw new Error(`${blobPath}: ${what} ${actual}, expected ${expected}`);
  }
}

await Promise.all(layers.map(verify));
