/**
 * Test support: small OCI images built in memory and pushed to a real registry with plain HTTP requests
 * (monolithic blob uploads, then the manifest), independently of our production registry client. Much
 * faster than skopeo for tests that move tags many times: a tag move is one manifest PUT.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { TestImageSpec } from './oci-image.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface BuiltImage {
  manifest: Buffer;
  mediaType: string;
  digest: string;
  /** Config digest of each platform manifest (one for a plain image). */
  configDigests: string[];
  /** Compressed layer digests of each platform manifest. */
  layerDigests: string[][];
  blobs: Map<string, Buffer>;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function platformManifest(spec: TestImageSpec, blobs: Map<string, Buffer>): { manifest: Buffer; configDigest: string; layers: string[] } {
  const platform = spec.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers = spec.layers.map((tar) => {
    // mtime 0 and no name in the gzip header: the same tar always gives the same blob.
    const blob = gzipSync(tar, { level: 1 });
    blobs.set(sha256(blob), blob);
    return { mediaType: OCI_LAYER, digest: sha256(blob), size: blob.length };
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant === undefined ? {} : { variant: platform.variant }),
      config: { ...(spec.config ?? {}) },
      rootfs: { type: 'layers', diff_ids: spec.layers.map(sha256) },
    }),
  );
  blobs.set(sha256(config), config);
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length }, layers }),
  );
  return { manifest, configDigest: sha256(config), layers: layers.map((layer) => layer.digest) };
}

/** An image (one spec) or an index (several specs, one per platform), in memory. */
export function buildImage(specs: TestImageSpec[]): BuiltImage {
  const blobs = new Map<string, Buffer>();
  const platforms = specs.map((spec) => ({ spec, ...platformManifest(spec, blobs) }));
  if (platforms.length === 1) {
    const only = platforms[0]!;
    return {
      manifest: only.manifest,
      mediaType: OCI_MANIFEST,
      digest: sha256(only.manifest),
      configDigests: [only.configDigest],
      layerDigests: [only.layers],
      blobs,
    };
  }
  for (const platform of platforms) blobs.set(sha256(platform.manifest), platform.manifest);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: platforms.map((platform) => ({
        mediaType: OCI_MANIFEST,
        digest: sha256(platform.manifest),
        size: platform.manifest.length,
        platform: platform.spec.platform ?? { os: 'linux', architecture: 'amd64' },
      })),
    }),
  );
  return {
    manifest: index,
    mediaType: OCI_INDEX,
    digest: sha256(index),
    configDigests: platforms.map((p) => p.configDigest),
    layerDigests: platforms.map((p) => p.layers),
    blobs,
  };
}

/** Pushes `image` to `http://<host>/<repository>:<tag>`: missing blobs, platform manifests, then the tag. */
export async function pushImage(host: string, repository: string, tag: string, image: BuiltImage): Promise<void> {
  const base = `http://${host}/v2/${repository}`;
  const manifests = new Set<string>();
  if (image.mediaType === OCI_INDEX) {
    for (const entry of (JSON.parse(image.manifest.toString('utf8')) as { manifests: { digest: string }[] }).manifests) manifests.add(entry.digest);
  }
  for (const [digest, data] of image.blobs) {
    if (manifests.has(digest)) continue;
    const head = await fetch(`${base}/blobs/${digest}`, { method: 'HEAD' });
    if (head.ok) continue;
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
    await start.arrayBuffer();
    if (start.status !== 202) throw new Error(`starting an upload to ${host}/${repository}: HTTP ${start.status}`);
    const location = new URL(start.headers.get('location')!, `http://${host}`);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
    await put.arrayBuffer();
    if (put.status !== 201) throw new Error(`uploading ${digest} to ${host}/${repository}: HTTP ${put.status}`);
  }
  for (const digest of manifests) await putManifest(base, digest, image.blobs.get(digest)!, OCI_MANIFEST);
  await putManifest(base, tag, image.manifest, image.mediaType);
}

async function putManifest(base: string, reference: string, body: Buffer, mediaType: string): Promise<void> {
  const response = await fetch(`${base}/manifests/${reference}`, { method: 'PUT', body, headers: { 'content-type': mediaType } });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`PUT ${base}/manifests/${reference}: HTTP ${response.status} ${text}`);
}
