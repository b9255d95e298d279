/**
 * Resolving a tag inside an OCI image layout (a directory, or a tar of one): index.json names the image by
 * its `org.opencontainers.image.ref.name` annotation, as `skopeo copy ... oci:DIR:TAG` writes it; the entry
 * is an image manifest, or an index whose platform entry is taken as the registry client does.
 */
import { DuccError } from '../util/errors.ts';
import { parseManifestDocument, type ManifestLimits } from '../registry/manifest.ts';
import { MAX_MANIFEST_BYTES } from '../registry/manifest-fetch.ts';
import { DEFAULT_PLATFORM, formatPlatform, isIgnoredIndexEntry, selectPlatformEntry } from '../registry/platform.ts';
import { isValidTag } from '../registry/names.ts';
import { MANIFEST_MEDIA_TYPES, type Descriptor, type ImageIndex, type Platform } from '../registry/types.ts';
import type { SourceManifest } from './image-source.ts';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** Reads a blob of the layout, verified against the descriptor and capped. */
export type ReadDocument = (descriptor: Descriptor, maxBytes: number) => Promise<Buffer>;

/** index.json, parsed and capped like an index from a registry. */
export function parseLayoutIndex(bytes: Buffer, what: string, limits: ManifestLimits): ImageIndex {
  const doc = parseManifestDocument(bytes, undefined, what, limits);
  if (doc.kind !== 'index') throw new DuccError('BOT_ERR_REGISTRY', `${what} is not an OCI image index`);
  return doc.index;
}

/** The tags of a layout: the ref.name annotations of index.json that are tags. */
export function layoutTags(index: ImageIndex): string[] {
  const tags = index.manifests
    .map((entry) => entry.annotations?.[REF_NAME_ANNOTATION])
    .filter((name): name is string => name !== undefined && isValidTag(name));
  return [...new Set(tags)];
}

/** The index.json entry named `tag`. */
export function layoutEntry(index: ImageIndex, tag: string, where: string): Descriptor {
  const entries = index.manifests.filter((entry) => entry.annotations?.[REF_NAME_ANNOTATION] === tag);
  if (entries.length === 0) {
    const tags = layoutTags(index);
    const shown = tags.length === 0 ? 'none' : tags.slice(0, 10).join(', ') + (tags.length > 10 ? `, ... (${tags.length})` : '');
    throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `no image tagged '${tag}' in ${where} (tags: ${shown})`);
  }
  if (entries.length > 1 && new Set(entries.map((entry) => entry.digest)).size > 1) {
    throw new DuccError('BOT_ERR_REGISTRY', `${where} tags ${entries.length} different images '${tag}'; refused as ambiguous`);
  }
  return entries[0]!;
}

/** The platform's image manifest (default linux/amd64) of the image an index.json entry names. */
export async function resolveEntry(
  read: ReadDocument,
  entry: Descriptor,
  where: string,
  limits: ManifestLimits,
  platform: Platform | undefined,
): Promise<SourceManifest> {
  const top = await fetchDocument(read, entry, where, limits);
  if (top.kind === 'manifest') return top.resolved;
  const entries = top.index.manifests;
  let chosen = selectPlatformEntry(entries, platform ?? DEFAULT_PLATFORM);
  if (chosen === undefined) {
    const usable = entries.filter((e) => !isIgnoredIndexEntry(e) && MANIFEST_MEDIA_TYPES.includes(e.mediaType));
    if (usable.length === 1 && usable[0]!.platform === undefined) chosen = usable[0];
  }
  if (chosen === undefined) {
    const available = entries.filter((e) => !isIgnoredIndexEntry(e) && e.platform !== undefined).map((e) => formatPlatform(e.platform!));
    throw new DuccError(
      'BOT_ERR_PLATFORM',
      `no ${formatPlatform(platform ?? DEFAULT_PLATFORM)} image in ${where} (index ${entry.digest}; available: ${available.length > 0 ? available.join(', ') : 'none'})`,
    );
  }
  return resolveChild(read, chosen, entry.digest, where, limits);
}

/** Every platform manifest of the image an index.json entry names (one without platform for a plain manifest). */
export async function resolveAllEntries(read: ReadDocument, entry: Descriptor, where: string, limits: ManifestLimits): Promise<SourceManifest[]> {
  const top = await fetchDocument(read, entry, where, limits);
  if (top.kind === 'manifest') return [top.resolved];
  const entries = top.index.manifests.filter((e) => !isIgnoredIndexEntry(e) && MANIFEST_MEDIA_TYPES.includes(e.mediaType));
  if (entries.length === 0) throw new DuccError('BOT_ERR_PLATFORM', `index ${entry.digest} in ${where} lists no image manifests`);
  return Promise.all(entries.map((child) => resolveChild(read, child, entry.digest, where, limits)));
}

async function resolveChild(read: ReadDocument, child: Descriptor, indexDigest: string, where: string, limits: ManifestLimits): Promise<SourceManifest> {
  if (!MANIFEST_MEDIA_TYPES.includes(child.mediaType)) {
    throw new DuccError(
      'BOT_ERR_MEDIA_TYPE',
      `entry ${child.digest} of index ${indexDigest} in ${where} has media type ${JSON.stringify(child.mediaType)}, not an image manifest`,
    );
  }
  const doc = await fetchDocument(read, child, where, limits);
  if (doc.kind !== 'manifest')
    throw new DuccError(
      'BOT_ERR_MEDIA_TYPE',
      `entry ${child.digest} of index ${indexDigest} in ${where} is itself an index (nested indexes are not supported)`,
    );
  return { ...doc.resolved, indexDigest, ...(child.platform === undefined ? {} : { platform: { ...child.platform } }) };
}

type Fetched = { kind: 'manifest'; resolved: SourceManifest } | { kind: 'index'; index: ImageIndex };

async function fetchDocument(read: ReadDocument, descriptor: Descriptor, where: string, limits: ManifestLimits): Promise<Fetched> {
  const bytes = await read(descriptor, MAX_MANIFEST_BYTES);
  const doc = parseManifestDocument(bytes, descriptor.mediaType, `manifest ${descriptor.digest} in ${where}`, limits);
  if (doc.kind === 'index') return { kind: 'index', index: doc.index };
  return { kind: 'manifest', resolved: { manifestDigest: descriptor.digest, manifestMediaType: doc.mediaType, manifestBytes: bytes, manifest: doc.manifest } };
}
