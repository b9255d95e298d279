/**
 * What is published of an image, read before converting it: whether its DUCC manifest, layers, flat tree
 * (with the Apptainer files) and public name are all in place. convertImage asks before converting; a
 * conversion run asks for many images ahead of the one it converts (checkImage, see convert-wishlist.ts).
 */
import type { Descriptor } from '../registry/types.ts';
import type { SourceManifest } from '../sources/image-source.ts';
import type { Publisher } from '../publish/publisher.ts';
import { hasApptainerFiles } from '../apptainer/apptainer-files.ts';
import { parseDuccManifest } from '../metadata/ducc-manifest.ts';
import { flatDir, layerDir, metadataDir, multiarchMetadataDir, multiarchPublicPath, publicPath } from '../layout/paths.ts';
import { manifestReference, wholeName, type ImageReference } from '../wishlist/image-reference.ts';
import { isForeignLayer } from './layer-stream.ts';
import type { ConvertContext, ConvertOptions, ConvertTarget, ImageOutcome } from './convert-image.ts';

/**
 * What is published of an image whose manifest is known: its DUCC manifest.json, whether everything the
 * manifest implies is in place (`published`), and whether that makes it up to date (its thin image too,
 * when one is wanted). Reads only. With `cache` (one conversion run, see checkImage), the presence of
 * layers and flat trees is looked at once per digest.
 */
export async function publishedState(
  ctx: ConvertContext,
  image: ImageReference,
  options: ConvertOptions,
  manifestInfo: SourceManifest,
  target: ConvertTarget,
  cache?: PublishedStateCache,
) {
  const manifest = manifestInfo.manifest;
  const configDigest = manifest.config.digest;
  const publicName = target.platformDir ? multiarchPublicPath(target.platformDir, image) : publicPath(image);
  const flat = flatDir(configDigest);
  const manifestPath = `${target.platformDir ? multiarchMetadataDir(target.platformDir, image) : metadataDir(image)}/manifest.json`;
  const layers = manifest.layers.filter((layer) => !isForeignLayer(layer.mediaType));
  const distinct = layers.filter((layer, index) => layers.findIndex((other) => other.digest === layer.digest) === index);
  const base = {
    image: wholeName(image),
    manifestDigest: manifestInfo.manifestDigest,
    configDigest,
    publicPath: publicName,
    flatDir: flat,
    layers: distinct.length,
    layerBytes: distinct.reduce((sum, layer) => sum + layer.size, 0),
  };
  const existing = parseDuccManifest((await ctx.publisher.readFile(manifestPath)) ?? Buffer.alloc(0));
  const wantsThin = ctx.pushThinImage !== undefined && !options.skipThinImage;
  const published =
    !options.convertAgain && existing?.configDigest === configDigest && (await isComplete(ctx.publisher, layers, flat, publicName, options, cache));
  const upToDate = published && (!wantsThin || !ctx.thinImageExists || (await ctx.thinImageExists(image)));
  return { existing, published, upToDate, configDigest, publicName, flat, manifestPath, layers, base };
}

/**
 * Presence of layers and flat trees found during one conversion run, by digest: a reconcile of many tags
 * of few images looks at each once. Only a conversion run's first look (checkImage) uses it; convertImage
 * looks again for itself before it converts anything.
 */
export class PublishedStateCache {
  readonly layers = new Map<string, Promise<boolean>>();
  readonly flats = new Map<string, Promise<boolean>>();
}

/**
 * The first, read-only step of convertImage, which a conversion run can take for many images at once:
 * resolves the manifest and looks at what is published. Returns the image's outcome when it is up to
 * date, else its manifest, to be passed to convertImage as `target.resolved`.
 */
export async function checkImage(
  ctx: ConvertContext,
  image: ImageReference,
  options: ConvertOptions,
  cache: PublishedStateCache,
): Promise<{ upToDate: ImageOutcome } | { resolved: SourceManifest }> {
  const resolved = await ctx.sources.forImage(image).resolveManifest(manifestReference(image), options.platform ? { platform: options.platform } : {});
  const state = await publishedState(ctx, image, options, resolved, {}, cache);
  if (!state.upToDate) return { resolved };
  return { upToDate: { status: 'up-to-date', ...state.base, newLayers: 0, newLayerBytes: 0, warnings: [] } };
}

/** Everything an up-to-date image implies is present: its layers, its flat tree (Apptainer files included) and its public symlink. */
async function isComplete(
  publisher: Publisher,
  layers: Descriptor[],
  flat: string,
  publicName: string,
  options: ConvertOptions,
  cache?: PublishedStateCache,
): Promise<boolean> {
  const remembered = (map: Map<string, Promise<boolean>> | undefined, key: string, look: () => Promise<boolean>): Promise<boolean> => {
    if (map === undefined) return look();
    let found = map.get(key);
    if (found === undefined) {
      found = look();
      map.set(key, found);
      found.catch(() => map.delete(key));
    }
    return found;
  };
  if (!options.skipLayers) {
    for (const layer of layers) {
      const dir = `${layerDir(layer.digest)}/layerfs`;
      if (!(await remembered(cache?.layers, dir, async () => (await publisher.lstat(dir)) !== undefined))) return false;
    }
  }
  if (!options.skipFlat) {
    if (!(await remembered(cache?.flats, flat, () => hasFlatTree(publisher, flat)))) return false;
    const link = await publisher.lstat(publicName);
    if (!link?.isSymbolicLink()) return false;
  }
  return true;
}

/** The flat tree is there, with the Apptainer files every flat tree gets. */
export async function hasFlatTree(publisher: Publisher, flat: string): Promise<boolean> {
  return (await publisher.lstat(flat)) !== undefined && (await hasApptainerFiles((path) => publisher.lstat(`${flat}/${path}`)));
}
