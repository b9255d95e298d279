/**
 * Writes OCI image layouts whose layers are streamed: each layer's uncompressed tar comes from a
 * Readable and is hashed (diff_id), compressed (gzip or zstd) and hashed again (blob digest) on its way to
 * disk, so a 1 GiB layer never sits in memory. (test/support/oci-image.ts does the same for small
 * in-memory layers.)
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGzip, createZstdCompress } from 'node:zlib';

export type Compression = 'gzip' | 'zstd';

export interface LayerInfo {
  mediaType: string;
  digest: string;
  size: number;
  diffId: string;
  diffSize: number;
  compression: Compression;
  /** The blob inside the layout. */
  blobPath: string;
}

export interface LayoutInfo {
  dir: string;
  tag: string;
  manifestDigest: string;
  configDigest: string;
  layers: LayerInfo[];
}

export interface ImageConfigSpec {
  Env?: string[];
  Cmd?: string[];
  WorkingDir?: string;
}

const MEDIA_TYPES: Record<Compression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};
const CREATED = '2025-01-01T00:00:00Z';

class HashTap extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function compressor(compression: Compression): Transform {
  // gzip level 6 is what Go's compress/gzip (docker, buildah, skopeo) uses by default; zstd level 3 likewise.
  return compression === 'gzip' ? createGzip({ level: 6 }) : createZstdCompress({ params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 } });
}

/** Streams one uncompressed tar into `blobs/sha256/` of the layout, returning its descriptor. */
export async function writeLayerBlob(layoutDir: string, tar: Readable | AsyncIterable<Buffer>, compression: Compression): Promise<LayerInfo> {
  const blobs = join(layoutDir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const temp = join(blobs, `.incoming-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const uncompressed = new HashTap();
  const compressed = new HashTap();
  try {
    await pipeline(tar, uncompressed, compressor(compression), compressed, createWriteStream(temp));
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const hex = compressed.hash.digest('hex');
  const blobPath = join(blobs, hex);
  await rename(temp, blobPath);
  return {
    mediaType: MEDIA_TYPES[compression],
    digest: `sha256:${hex}`,
    size: compressed.bytes,
    diffId: `sha256:${uncompressed.hash.digest('hex')}`,
    diffSize: uncompressed.bytes,
    compression,
    blobPath,
  };
}

async function writeJsonBlob(layoutDir: string, value: unknown): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(value));
  const hex = createHash('sha256').update(bytes).digest('hex');
  await mkdir(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layoutDir, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** Writes config, manifest, index.json and oci-layout for already written layer blobs (one image, one tag). */
export async function finishLayout(layoutDir: string, tag: string, layers: LayerInfo[], config: ImageConfigSpec): Promise<LayoutInfo> {
  const configBlob = await writeJsonBlob(layoutDir, {
    created: CREATED,
    architecture: 'amd64',
    os: 'linux',
    config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: CREATED, created_by: `bench layer ${i + 1}` })),
  });
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifestBlob = await writeJsonBlob(layoutDir, manifest);
  await writeFile(join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(layoutDir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: manifest.mediaType, ...manifestBlob, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { dir: layoutDir, tag, manifestDigest: manifestBlob.digest, configDigest: configBlob.digest, layers };
}
