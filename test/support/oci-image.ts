/**
 * Test support: builds OCI image layouts independently of our production code and pushes them to a
 * registry with skopeo.
 *
 * skopeo 1.9 notes (checked against distribution 2.8):
 * - `copy --all` from an OCI layout copies an index as an index, and zstd layers stay zstd.
 * - but without `--preserve-digests` it gzips *uncompressed* layers on the way to a registry (and so
 *   rewrites the manifest); pushOciLayout therefore passes `--preserve-digests` for OCI pushes, which
 *   makes the digests written here the digests in the registry (or makes skopeo fail).
 * - `--format v2s2` converts to Docker media types (manifest list / schema 2 manifest / config and
 *   rootfs.diff.tar.gzip layers), so manifest and config digests change; gzip layer blobs are reused
 *   as they are. zstd layers cannot be expressed in v2s2 and make skopeo fail.
 * - it has no way to read the destination password except argv (`--dest-creds`): acceptable for the
 *   throwaway test credentials used here.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as zlib from 'node:zlib';

export interface TestImageSpec {
  /** uncompressed tars, base first */
  layers: Buffer[];
  config?: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; User?: string; Labels?: Record<string, string> };
  platform?: { os: string; architecture: string; variant?: string };
}

export interface WrittenImage {
  digest: string;
  configDigest: string;
  layerDigests: string[];
  diffIds: string[];
}

export type LayerCompression = 'gzip' | 'zstd' | 'none';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER_MEDIA_TYPES: Record<LayerCompression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar',
};
const REF_NAME = 'org.opencontainers.image.ref.name';
const CREATED = '2024-01-02T03:04:05Z';

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function compress(data: Buffer, compression: LayerCompression): Buffer {
  if (compression === 'none') return data;
  if (compression === 'gzip') return zlib.gzipSync(data);
  const zstd = (zlib as unknown as { zstdCompressSync?: (buf: Buffer) => Buffer }).zstdCompressSync;
  if (zstd === undefined) throw new Error('this Node.js has no zlib.zstdCompressSync (needs Node >= 22.15)');
  return zstd(data);
}

async function writeBlob(dir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), data);
  return { digest, size: data.length };
}

/**
 * Writes an OCI image layout in `dir` (oci-layout, index.json, blobs/sha256/...) with the image(s) under
 * `tag`. With several specs, an OCI index listing one manifest per platform is written and tagged.
 * An existing layout in `dir` is kept: other tags stay, an entry with the same tag is replaced.
 */
export async function writeOciLayout(
  dir: string,
  tag: string,
  images: TestImageSpec[],
  options: { compression?: LayerCompression } = {},
): Promise<{ indexDigest?: string; manifests: WrittenImage[] }> {
  if (images.length === 0) throw new Error('writeOciLayout needs at least one image');
  const compression = options.compression ?? 'gzip';
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  const written: WrittenImage[] = [];
  const descriptors: Record<string, unknown>[] = [];
  for (const spec of images) {
    const platform = spec.platform ?? { os: 'linux', architecture: 'amd64' };
    const layerDescriptors: { mediaType: string; digest: string; size: number }[] = [];
    const diffIds: string[] = [];
    for (const tar of spec.layers) {
      diffIds.push(sha256(tar));
      const blob = await writeBlob(dir, compress(tar, compression));
      layerDescriptors.push({ mediaType: LAYER_MEDIA_TYPES[compression], ...blob });
    }
    const config = {
      created: CREATED,
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant === undefined ? {} : { variant: platform.variant }),
      config: { ...(spec.config ?? {}) },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: spec.layers.map((_, i) => ({ created: CREATED, created_by: `test layer ${i}` })),
    };
    const configBlob = await writeBlob(dir, Buffer.from(JSON.stringify(config)));
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, ...configBlob },
      layers: layerDescriptors,
    };
    const manifestBlob = await writeBlob(dir, Buffer.from(JSON.stringify(manifest)));
    written.push({ ...manifestBlob, configDigest: configBlob.digest, layerDigests: layerDescriptors.map((l) => l.digest), diffIds });
    descriptors.push({ mediaType: OCI_MANIFEST, ...manifestBlob, platform });
  }

  let top: Record<string, unknown>;
  let indexDigest: string | undefined;
  if (images.length === 1) {
    top = { ...descriptors[0]! };
  } else {
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: descriptors };
    const indexBlob = await writeBlob(dir, Buffer.from(JSON.stringify(index)));
    indexDigest = indexBlob.digest;
    top = { mediaType: OCI_INDEX, ...indexBlob };
  }
  top['annotations'] = { [REF_NAME]: tag };

  const indexPath = join(dir, 'index.json');
  let existing: { manifests?: { annotations?: Record<string, string> }[] } = {};
  try {
    existing = JSON.parse(await readFile(indexPath, 'utf8')) as typeof existing;
  } catch {
    existing = {};
  }
  const kept = (existing.manifests ?? []).filter((m) => m.annotations?.[REF_NAME] !== tag);
  await writeFile(indexPath, JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...kept, top] }));

  const result: { indexDigest?: string; manifests: WrittenImage[] } = { manifests: written };
  if (indexDigest !== undefined) result.indexDigest = indexDigest;
  return result;
}

/**
 * `skopeo copy --all oci:<dir>:<tag> docker://<host>/<repository>:<tag>` to a plain-http registry
 * (`--format v2s2` for format 'docker', `--dest-creds` when creds are given). Throws with skopeo's
 * stderr on failure.
 */
export async function pushOciLayout(
  dir: string,
  tag: string,
  target: { host: string; repository: string; tag: string; format?: 'oci' | 'docker'; creds?: { username: string; password: string } },
): Promise<void> {
  const args = ['copy', '--all', '--quiet', '--dest-tls-verify=false'];
  // Without --preserve-digests skopeo gzips uncompressed layers on the way to a registry (rewriting the
  // manifest); with it, OCI pushes are byte-for-byte or fail. Docker format needs conversion, so not there.
  if (target.format === 'docker') args.push('--format', 'v2s2');
  else args.push('--preserve-digests');
  if (target.creds !== undefined) args.push('--dest-creds', `${target.creds.username}:${target.creds.password}`);
  else args.push('--dest-no-creds');
  args.push(`oci:${dir}:${tag}`, `docker://${target.host}/${target.repository}:${target.tag}`);
  await runSkopeo(args);
}

/** Runs skopeo with the given arguments (no shell); resolves with stdout, rejects with its stderr. */
export function runSkopeo(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { maxBuffer: 16 * 1024 * 1024, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) {
        const shown = args.map((a, i) => (args[i - 1] === '--dest-creds' || args[i - 1] === '--creds' ? '<credentials>' : a));
        reject(new Error(`skopeo ${shown.join(' ')} failed: ${stderr.trim() || error.message}`));
      } else {
        resolve(stdout);
      }
    });
  });
}
