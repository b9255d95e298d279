import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { buffer } from 'node:stream/consumers';
import tarStream from 'tar-stream';
import type { RegistryClient } from '../registry/client.ts';
import { repositoryRef } from '../sources/registry-source.ts';
import type { ImageConfig } from '../registry/types.ts';
import { formatThinJson } from '../metadata/thin-json.ts';
import { DuccError } from '../util/errors.ts';
import { parseImageReference, wholeName, type ImageReference } from '../wishlist/image-reference.ts';

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
/** The media type of a thin image's manifest (Docker schema 2, as DUCC's dockerd push made it). */
export const THIN_MANIFEST_MEDIA_TYPE = DOCKER_MANIFEST;
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

export interface ThinImageInput {
  /** The (expanded) input image: its whole name becomes thin.json's `origin`. */
  image: ImageReference;
  /** `cvmfs_repo` as in the wish list, for the `cvmfs://` layer URLs. */
  cvmfsRepo: string;
  /** Layer digests of the source image, base first (foreign layers included, as DUCC does). */
  layerDigests: string[];
  /** The source image config: ENV, CMD, ENTRYPOINT, WORKDIR, USER and labels are carried over. */
  config: ImageConfig;
}

export interface BuiltThinImage {
  manifest: Buffer;
  manifestDigest: string;
  blobs: { digest: string; data: Buffer }[];
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * Builds DUCC's thin image without a Docker daemon: one gzip layer holding only `thin.json` (mode 0644,
 * owner 0, mtime 0, as DUCC's in-memory tar), a config carrying the source's runtime settings plus
 * `CVMFS_IMAGE=true`, and a Docker schema 2 manifest (what DUCC's dockerd push produced). The bytes are
 * deterministic, so an unchanged image yields the same digest on every run.
 */
export async function buildThinImage(input: ThinImageInput): Promise<BuiltThinImage> {
  const thinJson = formatThinJson(
    wholeName(input.image),
    input.layerDigests.map((digest) => ({ digest })),
    input.cvmfsRepo,
  );
  const pack = tarStream.pack();
  const tarDone = buffer(pack);
  pack.entry({ name: 'thin.json', size: thinJson.length, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), type: 'file' }, thinJson);
  pack.finalize();
  const tar = await tarDone;
  // mtime 0 and no file name in the gzip header keep the blob reproducible.
  const layer = gzipSync(tar, { level: 9 });

  const source = input.config.config ?? {};
  const env = [...(source.Env ?? []).filter((entry) => !entry.startsWith('CVMFS_IMAGE=')), 'CVMFS_IMAGE=true'];
  const runtime: Record<string, unknown> = { Env: env };
  if (source.Cmd) runtime['Cmd'] = source.Cmd;
  if (source.Entrypoint) runtime['Entrypoint'] = source.Entrypoint;
  if (source.WorkingDir) runtime['WorkingDir'] = source.WorkingDir;
  if (source.User) runtime['User'] = source.User;
  if (source.Labels) runtime['Labels'] = source.Labels;
  const config = Buffer.from(
    JSON.stringify({
      architecture: input.config.architecture ?? 'amd64',
      os: input.config.os ?? 'linux',
      ...(input.config['created'] === undefined ? {} : { created: input.config['created'] }),
      config: runtime,
      rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      history: [{ created_by: 'ducc-gitops: thin image', comment: `thin image of ${wholeName(input.image)}` }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, size: config.length, digest: sha256(config) },
      layers: [{ mediaType: DOCKER_LAYER, size: layer.length, digest: sha256(layer) }],
    }),
  );
  return {
    manifest,
    manifestDigest: sha256(manifest),
    blobs: [
      { digest: sha256(layer), data: layer },
      { digest: sha256(config), data: config },
    ],
  };
}

/**
 * Pushes a thin image to `outputName` (from `output_format`): every blob first, the manifest last, so the
 * tag never names an incomplete image.
 */
export async function pushThinImage(client: RegistryClient, outputName: string, built: BuiltThinImage): Promise<{ name: string; digest: string }> {
  const output = parseImageReference(outputName);
  if (output.tag === undefined) throw new DuccError('BOT_ERR_THIN', `thin image name '${outputName}' has no tag to push to`);
  const ref = repositoryRef(output);
  for (const blob of built.blobs) await client.pushBlob(ref, blob.data, blob.digest);
  const digest = await client.pushManifest(ref, output.tag, built.manifest, DOCKER_MANIFEST);
  return { name: outputName, digest };
}
