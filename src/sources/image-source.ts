/**
 * Where images come from. convert-image asks an ImageSource for what it needs — the manifest a tag
 * resolves to, the config, a stream of each layer — whatever the image is stored in: a registry (the
 * registry client), an OCI image layout, a `docker save` or OCI archive, a dogestry remote (a directory or
 * an S3 bucket). One file per kind of source (go-containerregistry's sources: remote, layout, tarball).
 *
 * Every source gives the same guarantees as the registry client: every byte handed out is checked against
 * the digest and size of its descriptor before the stream ends (an error instead of the end otherwise),
 * documents are parsed strictly and capped (MAX_MANIFEST_BYTES, DUCC_LIMIT_IMAGE_LAYERS,
 * DUCC_LIMIT_INDEX_ENTRIES), and an unchanged tag costs one small read.
 */
import type { Readable } from 'node:stream';
import type { Descriptor, Platform, ResolvedManifest } from '../registry/types.ts';
import type { ImageReference } from '../wishlist/image-reference.ts';

/** What resolving a tag gives: the registry client's ResolvedManifest without the registry repository. */
export type SourceManifest = Omit<ResolvedManifest, 'ref'>;

/** One repository (or layout, archive, dogestry repository) of images, addressed by tag. */
export interface ImageSource {
  /** e.g. `oci:/srv/layouts/app`, `dogestry://central/myorg/app`, for messages. */
  readonly description: string;
  /**
   * The image manifest a tag resolves to (the platform's entry of an index, default linux/amd64), its
   * digest verified. Reads documents only, never a layer.
   */
  resolveManifest(reference: string, options?: { platform?: Platform }): Promise<SourceManifest>;
  /** Every platform manifest of an index (a plain manifest: one element without platform). */
  resolveAllManifests(reference: string): Promise<SourceManifest[]>;
  /** A small blob (a config) in memory, verified against the descriptor, at most `maxBytes`. */
  fetchBlob(descriptor: Descriptor, maxBytes?: number): Promise<Buffer>;
  /**
   * A layer blob as a stream that errors (BOT_ERR_DIGEST_MISMATCH / BOT_ERR_SIZE_MISMATCH) instead of
   * ending when the bytes do not match the descriptor. Destroy it to abort.
   */
  openBlob(descriptor: Descriptor): Promise<Readable>;
  /** Every tag (for wildcard wishes). */
  listTags(): Promise<string[]>;
}

/** Finds the source of each image reference. */
export interface ImageSources {
  forImage(image: ImageReference): ImageSource;
}

/**
 * Reads counted per source kind: `documents` (index.json, manifests, configs, dogestry tags and json),
 * `layers` (layer blobs, layer.tar), for tests and logs that show what an incremental run read.
 */
export interface SourceReads {
  documents: number;
  layers: number;
}
