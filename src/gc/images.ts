/**
 * Published images by name: which images a repository publishes (from its public names and manifests),
 * the paths that make one up, removing them (`ducc delete-image`, `ducc prune`, the bot's removals), and
 * the bytes a later gc would reclaim once they are gone. Content (flat trees, layers) is never removed
 * here: it waits for `ducc gc` and its grace period.
 */
import { parseDuccManifest } from '../metadata/ducc-manifest.ts';
import { matchWildcardTags } from '../wishlist/wildcard.ts';
import type { ImageReference } from '../wishlist/image-reference.ts';
import { METADATA_DIR, MULTIARCH_DIR, metadataDir, publicPath, type ImageLocation } from '../layout/paths.ts';
import type { Publisher } from '../publish/publisher.ts';
import { DuccError } from '../util/errors.ts';
import { scanRepository, type RepositoryScan } from './scan.ts';
import { layerBytes } from './sizes.ts';

/** An image a repository publishes, as its paths name it (no scheme: DUCC's paths have none). */
export interface PublishedName {
  registry: string;
  repository: string;
  tag?: string;
  /** `sha256:…` for a digest-only public name. */
  digest?: string;
  /**
   * A digest-only image known only from its metadata (`.metadata/<registry>/<repository>/manifest.json`,
   * which DUCC names without the digest): some digest of the repository.
   */
  someDigest?: boolean;
}

/** `registry/repository:tag`, `registry/repository@sha256:…`, or `registry/repository@<digest>` when unknown. */
export function publishedNameKey(name: PublishedName): string {
  if (name.tag !== undefined) return `${name.registry}/${name.repository}:${name.tag}`;
  return `${name.registry}/${name.repository}@${name.digest ?? '<digest>'}`;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const TAG = /^[\w][\w.-]{0,127}$/;

/**
 * `registry/repo/…/name:ref` (a public path, without `.multiarch/<platform>/`) as an image name, or
 * undefined for a path that is not one (a symlink someone else put there).
 */
export function parsePublicPath(path: string): PublishedName | undefined {
  const parts = path.split('/');
  if (parts.length < 2) return undefined;
  const last = parts.at(-1)!;
  const colon = last.indexOf(':');
  if (colon <= 0) return undefined;
  const registry = parts[0]!;
  const repository = [...parts.slice(1, -1), last.slice(0, colon)].join('/');
  const reference = last.slice(colon + 1);
  if (DIGEST.test(reference)) return { registry, repository, digest: reference };
  if (TAG.test(reference)) return { registry, repository, tag: reference };
  return undefined;
}

/** `registry/repo[:tag]` below `.metadata/` (or `.metadata/.multiarch/<platform>/`) as an image name. */
export function parseMetadataPath(path: string): PublishedName | undefined {
  const last = path.split('/').at(-1)!;
  if (last.includes(':')) return parsePublicPath(path);
  const parts = path.split('/');
  if (parts.length < 2) return undefined;
  return { registry: parts[0]!, repository: parts.slice(1).join('/'), someDigest: true };
}

/** Every image the repository publishes: by its public names and by its manifests (sorted by key, each once). */
export function publishedNames(scan: RepositoryScan): PublishedName[] {
  const found = new Map<string, PublishedName>();
  const add = (name: PublishedName | undefined) => {
    if (name !== undefined && !found.has(publishedNameKey(name))) found.set(publishedNameKey(name), name);
  };
  for (const name of scan.publicNames) add(parsePublicPath(withoutPlatform(name.path, MULTIARCH_DIR)));
  for (const manifest of scan.manifests) add(parseMetadataPath(withoutPlatform(manifest.dir.slice(METADATA_DIR.length + 1), MULTIARCH_DIR)));
  return [...found.values()].sort((a, b) => publishedNameKey(a).localeCompare(publishedNameKey(b)));
}

/** `.multiarch/<platform>/rest` → `rest`. */
function withoutPlatform(path: string, top: string): string {
  return path.startsWith(`${top}/`) ? path.split('/').slice(2).join('/') : path;
}

/** Whether a wish (an entry of a wish list) names a published image: same registry and repository, and its tag (a wildcard matches) or digest. */
export function wishNames(wish: ImageReference, name: PublishedName): boolean {
  if (wish.registry !== name.registry || wish.repository !== name.repository) return false;
  if (name.tag !== undefined) return wish.tag !== undefined && (wish.tag === name.tag || matchWildcardTags(wish.tag, [name.tag]).length === 1);
  if (wish.tag !== undefined || wish.digest === undefined) return false;
  return name.someDigest === true || wish.digest === name.digest;
}

/**
 * The paths that make up a published image, as DUCC 2026's delete-image removes them: its public name,
 * its metadata directory, and its per-platform names and metadata under `.multiarch/` and
 * `.metadata/.multiarch/` (platform directories only, not their alias symlinks). For a digest-only image,
 * whose metadata directory `.metadata/<registry>/<repository>` is shared by every digest of the
 * repository (and may hold the metadata of longer repository names below it), only its manifest.json,
 * and only when it describes this image (the config of the flat tree its public name points at).
 */
export async function imagePaths(publisher: Publisher, name: PublishedName): Promise<string[]> {
  const location: ImageLocation = {
    registry: name.registry,
    repository: name.repository,
    ...(name.tag ? { tag: name.tag } : {}),
    ...(name.digest ? { digest: name.digest } : {}),
  };
  const paths: string[] = [];
  const present = async (path: string) => (await publisher.lstat(path)) !== undefined;
  const platforms = async (dir: string) => ((await publisher.readdir(dir)) ?? []).filter((entry) => entry.type === 'directory').map((entry) => entry.name);
  if (name.tag !== undefined || name.digest !== undefined) {
    const pub = publicPath(location);
    if (await present(pub)) paths.push(pub);
    for (const platform of await platforms(MULTIARCH_DIR))
      if (await present(`${MULTIARCH_DIR}/${platform}/${pub}`)) paths.push(`${MULTIARCH_DIR}/${platform}/${pub}`);
  }
  if (name.tag !== undefined) {
    const meta = metadataDir(location);
    if (await present(meta)) paths.push(meta);
    const rest = meta.slice(METADATA_DIR.length + 1);
    for (const platform of await platforms(`${METADATA_DIR}/${MULTIARCH_DIR}`)) {
      const path = `${METADATA_DIR}/${MULTIARCH_DIR}/${platform}/${rest}`;
      if (await present(path)) paths.push(path);
    }
  } else if (name.digest !== undefined) {
    const manifest = `${metadataDir(location)}/manifest.json`;
    const target = await publisher.readlink(publicPath(location));
    const bytes = await publisher.readFile(manifest);
    const config = bytes === undefined ? undefined : parseDuccManifest(bytes)?.configDigest.slice('sha256:'.length);
    if (config && target !== undefined && target.endsWith(`/${config}`)) paths.push(manifest);
  } else if (name.someDigest) {
    const manifest = `${metadataDir(location)}/manifest.json`;
    if (await present(manifest)) paths.push(manifest);
  }
  return paths;
}

export interface DeletedImage {
  name: string;
  paths: string[];
}

/** Images removed per transaction (one publish on CernVM-FS), as DUCC 2026's prune-images. */
export const DELETE_BATCH = 50;

/**
 * Removes the public names and metadata of `names` (their content stays for `ducc gc`), in one
 * transaction per DELETE_BATCH images; with `dryRun`, only says what would go. An image with nothing
 * left to remove is skipped.
 */
export async function deleteImages(publisher: Publisher, names: readonly PublishedName[], options: { dryRun?: boolean } = {}): Promise<DeletedImage[]> {
  const deleted: DeletedImage[] = [];
  for (let start = 0; start < names.length; start += DELETE_BATCH) {
    const batch: DeletedImage[] = [];
    for (const name of names.slice(start, start + DELETE_BATCH)) {
      const paths = await imagePaths(publisher, name);
      if (paths.length > 0) batch.push({ name: publishedNameKey(name), paths });
    }
    if (batch.length > 0 && !options.dryRun) {
      await publisher.transaction(async (tx) => {
        for (const image of batch) for (const path of image.paths) await tx.remove(path);
      });
    }
    deleted.push(...batch);
  }
  return deleted;
}

/** The name of an image reference as its paths give it. */
export function nameOf(image: ImageReference): PublishedName {
  if (image.tag?.includes('*'))
    throw new DuccError('BOT_ERR_REFERENCE', `a wildcard tag names no single image: ${image.registry}/${image.repository}:${image.tag}`);
  return { registry: image.registry, repository: image.repository, ...(image.tag ? { tag: image.tag } : image.digest ? { digest: image.digest } : {}) };
}

export interface PruneResult {
  /** Removed (or, with dryRun, to remove), at most `max`. */
  removed: DeletedImage[];
  /** Unnamed images left for a later run by `max`. */
  deferred: string[];
  /** Images the wish lists still name. */
  kept: number;
}

/**
 * `ducc prune`: removes every image of the repository that no wish names (`wishes` from all the wish
 * lists publishing into it), at most `max` per run (0: no limit). Decided on names alone, without
 * asking any registry: a registry being down never makes an image look unwanted.
 */
export async function pruneImages(publisher: Publisher, wishes: readonly ImageReference[], options: { max: number; dryRun?: boolean }): Promise<PruneResult> {
  const all = publishedNames(await scanRepository(publisher));
  const unnamed = all.filter((name) => !wishes.some((wish) => wishNames(wish, name)));
  const now = options.max > 0 ? unnamed.slice(0, options.max) : unnamed;
  const removed = await deleteImages(publisher, now, options.dryRun ? { dryRun: true } : {});
  return { removed, deferred: unnamed.slice(now.length).map(publishedNameKey), kept: all.length - unnamed.length };
}

/**
 * The bytes a gc would reclaim (after its grace period) once `names` are removed: the layers that only
 * they keep (a layer's recorded size; flat trees count 0, as in `ducc gc`). What is garbage already is not
 * counted.
 */
export async function bytesFreedByRemoving(publisher: Publisher, names: readonly PublishedName[], scan?: RepositoryScan): Promise<number> {
  const current = scan ?? (await scanRepository(publisher));
  const removed = new Set<string>();
  for (const name of names) for (const path of await imagePaths(publisher, name)) removed.add(path);
  const gone = (path: string) => removed.has(path) || [...removed].some((dir) => path.startsWith(`${dir}/`));
  const stillKept = new Set<string>();
  for (const name of current.publicNames) if (!gone(name.path)) for (const item of name.keeps) stillKept.add(item);
  for (const manifest of current.manifests) if (!gone(`${manifest.dir}/manifest.json`)) for (const item of manifest.keeps) stillKept.add(item);
  const freed = current.layers.filter((layer) => current.reachable.has(layer) && !stillKept.has(layer));
  let total = 0;
  for (const size of (await layerBytes(publisher, freed)).values()) total += size;
  return total;
}
