import type { ImageSources } from '../sources/image-source.ts';
import type { Publisher } from '../publish/publisher.ts';
import { layerDir } from '../layout/paths.ts';
import { isForeignLayer } from '../convert/layer-stream.ts';
import { expandWish } from '../convert/convert-wishlist.ts';
import { isWildcard, manifestReference, parseImageReference, wholeName, type ImageReference } from '../wishlist/image-reference.ts';
import { bytesFreedByRemoving, nameOf, type PublishedName } from '../gc/images.ts';
import { scanRepository } from '../gc/scan.ts';
import type { Wish, Wishlist } from '../wishlist/wishlist.ts';
import type { PublishedImage } from '../state/types.ts';
import { errorMessage } from '../util/errors.ts';

/** One line of a merge-request plan. */
export interface PlanEntry {
  action: 'add' | 'update' | 'unchanged' | 'remove' | 'error';
  /** The wish-list entry, as written. */
  input: string;
  /** Line in the wish list (0 for removals). */
  line: number;
  /** Images the entry stands for (wildcards expand to several). */
  images: string[];
  newLayers: number;
  reusedLayers: number;
  /** Compressed bytes to download for the new layers. */
  downloadBytes: number;
  /** A removal: the bytes a gc reclaims once the grace period has passed (layers only its images keep). */
  reclaimBytes?: number;
  error?: string;
}

export interface Plan {
  entries: PlanEntry[];
  /** All removals together: the bytes a gc reclaims after the grace period (a layer only they share counts once). */
  reclaimBytes?: number;
  /** Problems of the wish-list file itself (syntax, invalid entries), with lines. */
  problems: Wishlist['problems'];
}

/**
 * What merging a wish list would do, checked against the registries and the published repository:
 * which entries are added, changed or removed compared with `base` (the target branch's wish list),
 * and for each changed one, whether it resolves, how many tags a wildcard gives, which layers are new
 * and how many bytes they weigh. Only changed entries are resolved, so someone else's broken image
 * does not fail this merge request.
 */
export async function planWishlist(
  head: Wishlist,
  base: Wishlist | undefined,
  deps: { sources: ImageSources; publisher?: Publisher; published: PublishedImage[] },
): Promise<Plan> {
  const baseInputs = new Set((base?.wishes ?? []).map((wish) => wholeName(wish.image)));
  const headInputs = new Set(head.wishes.map((wish) => wholeName(wish.image)));
  const entries: PlanEntry[] = [];
  for (const wish of head.wishes) {
    if (base && baseInputs.has(wholeName(wish.image))) {
      entries.push({ action: 'unchanged', input: wish.input, line: wish.source.line, images: [], newLayers: 0, reusedLayers: 0, downloadBytes: 0 });
      continue;
    }
    entries.push(await planWish(wish, deps));
  }
  const removals: { entry: PlanEntry; names: PublishedName[] }[] = [];
  for (const wish of base?.wishes ?? []) {
    if (!headInputs.has(wholeName(wish.image))) {
      const entry: PlanEntry = {
        action: 'remove',
        input: wish.input,
        line: 0,
        images: [wholeName(wish.image)],
        newLayers: 0,
        reusedLayers: 0,
        downloadBytes: 0,
      };
      entries.push(entry);
      removals.push({ entry, names: publishedNamesOf(wish, deps.published) });
    }
  }
  if (removals.length === 0 || deps.publisher === undefined) return { entries, problems: head.problems };
  // What a gc will reclaim once the removed entries' names are gone and the grace period has passed.
  const scan = await scanRepository(deps.publisher);
  for (const removal of removals) removal.entry.reclaimBytes = await bytesFreedByRemoving(deps.publisher, removal.names, scan);
  const reclaimBytes = await bytesFreedByRemoving(
    deps.publisher,
    removals.flatMap((removal) => removal.names),
    scan,
  );
  return { entries, problems: head.problems, reclaimBytes };
}

/** The published images of a wish: those the bot recorded for it, or its own name (not for a wildcard). */
function publishedNamesOf(wish: Wish, published: PublishedImage[]): PublishedName[] {
  const recorded = published.filter((record) => record.input === wish.input).map((record) => nameOf(parseImageReference(record.image)));
  if (recorded.length > 0 || isWildcard(wish.image)) return recorded;
  return [nameOf(wish.image)];
}

async function planWish(wish: Wish, deps: { sources: ImageSources; publisher?: Publisher; published: PublishedImage[] }): Promise<PlanEntry> {
  const entry: PlanEntry = { action: 'add', input: wish.input, line: wish.source.line, images: [], newLayers: 0, reusedLayers: 0, downloadBytes: 0 };
  try {
    const images: ImageReference[] = await expandWish(deps.sources, wish);
    const seenLayers = new Set<string>();
    let anyChange = false;
    for (const image of images) {
      entry.images.push(wholeName(image));
      const resolved = await deps.sources.forImage(image).resolveManifest(manifestReference(image));
      const published = deps.published.find((record) => record.image === wholeName(image));
      if (published?.configDigest !== resolved.manifest.config.digest) anyChange = true;
      if (published) entry.action = 'update';
      for (const layer of resolved.manifest.layers) {
        if (isForeignLayer(layer.mediaType) || seenLayers.has(layer.digest)) continue;
        seenLayers.add(layer.digest);
        const present = deps.publisher ? await deps.publisher.lstat(`${layerDir(layer.digest)}/layerfs`) : undefined;
        if (present) entry.reusedLayers++;
        else {
          entry.newLayers++;
          entry.downloadBytes += layer.size;
        }
      }
    }
    if (entry.action === 'update' && !anyChange) entry.action = 'unchanged';
  } catch (error) {
    entry.action = 'error';
    entry.error = errorMessage(error);
  }
  return entry;
}
