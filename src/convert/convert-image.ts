import { randomUUID } from 'node:crypto';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import pLimit from 'p-limit';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../registry/types.ts';
import type { ImageSource, ImageSources, SourceManifest } from '../sources/image-source.ts';
import type { LayerBatch, Publisher } from '../publish/publisher.ts';
import { FlatTree, type FlatLayerInput } from '../unpack/flatten.ts';
import { apptainerEntries } from '../apptainer/apptainer-files.ts';
import { formatDuccManifest } from '../metadata/ducc-manifest.ts';
import { appendOrigin, formatLayersJson, formatRemoveSchedule } from '../metadata/layer-metadata.ts';
import { formatElapsedSeconds, type NotificationWriter } from '../metadata/notifications.ts';
import {
  layerDir,
  multiarchVariantSymlinkTarget,
  MULTIARCH_DIR,
  platformDirName,
  publicPath,
  relativeSymlinkTarget,
  REMOVE_SCHEDULE_PATH,
  digestHex,
} from '../layout/paths.ts';
import { manifestReference, wholeName, type ImageReference } from '../wishlist/image-reference.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { DigestingStream, compressionOf, decompressionStages, isForeignLayer } from './layer-stream.ts';
import { decompressThreadMinBytes } from './decompress-thread.ts';
import { hasFlatTree, publishedState } from './published-state.ts';

/** DUCC's conversion switches (`convert` flags), all off by default. */
export interface ConvertOptions {
  /** `-d`: do not unpack layers (unless the flat tree, which is built from them, needs them). */
  skipLayers: boolean;
  /** `-s`: do not build `.flat` nor the public symlink. */
  skipFlat: boolean;
  /** `-i`: do not push a thin image. */
  skipThinImage: boolean;
  /** `-g`: convert even when `.metadata` says the image is up to date. */
  convertAgain: boolean;
  /** `-f`: unpack layers again even when present. */
  overwriteLayers: boolean;
  /** Platform chosen from an image index (default linux/amd64). */
  platform?: Platform;
  /** Layers downloaded at once per image. */
  maxConcurrentDownloads: number;
  /** `-m`: publish every platform of an index under `.multiarch/` with a CVMFS variant symlink. */
  multiArch?: boolean;
}

export const DEFAULT_CONVERT_OPTIONS: ConvertOptions = {
  skipLayers: false,
  skipFlat: false,
  skipThinImage: false,
  convertAgain: false,
  overwriteLayers: false,
  maxConcurrentDownloads: 3,
};

/** What converting one image needs; shared by the CLI and the bot. */
export interface ConvertContext {
  /** Where images are read from: registries, OCI layouts, archives, dogestry remotes. */
  sources: ImageSources;
  publisher: Publisher;
  /** `cvmfs_repo` as written in the wish list (used in thin.json URLs). */
  cvmfsRepo: string;
  notifications: NotificationWriter;
  logger: Logger;
  /** Pushes the thin image of a converted image; absent when thin images are skipped. */
  pushThinImage?: (image: ConvertedImage) => Promise<{ name: string; digest: string }>;
  /**
   * Whether the thin image of an input is in its registry (one manifest HEAD): an image whose files are
   * all published but whose thin push was interrupted is not up to date.
   */
  thinImageExists?: (image: ImageReference) => Promise<boolean>;
  /** Progress callback for terminals. */
  onProgress?: (event: ProgressEvent) => void;
}

export type ProgressEvent =
  | { kind: 'layer-start'; image: string; layer: string; index: number; total: number; size: number }
  | { kind: 'layer-bytes'; image: string; layer: string; bytes: number }
  | { kind: 'layer-done'; image: string; layer: string; skipped: boolean }
  | { kind: 'flat'; image: string };

/** An image whose manifest and config are known, ready to publish or to describe. */
export interface ConvertedImage {
  image: ImageReference;
  manifestDigest: string;
  manifest: ImageManifest;
  config: ImageConfig;
  configDigest: string;
}

export interface ImageOutcome {
  status: 'converted' | 'up-to-date';
  image: string;
  manifestDigest: string;
  configDigest: string;
  publicPath: string;
  flatDir: string;
  /** Layers unpacked in this run (the rest were already published). */
  newLayers: number;
  /** Their compressed size, as the manifest gives it. */
  newLayerBytes: number;
  /** Every distinct layer of the image and their compressed size: `layers - newLayers` were reused. */
  layers: number;
  layerBytes: number;
  thinImage?: { name: string; digest: string };
  warnings: string[];
}

/**
 * Converts one image (a wish, or one tag of a wildcard wish) into the repository: layers, flat root
 * filesystem with the Apptainer files, `.metadata` manifest and public symlink, then the thin image.
 * Incremental: if `.metadata` already records this config digest and everything it implies is in place,
 * nothing is downloaded or written (only the manifest is asked for).
 */
export async function convertImage(ctx: ConvertContext, image: ImageReference, options: ConvertOptions, target: ConvertTarget = {}): Promise<ImageOutcome> {
  const name = wholeName(image);
  const source = ctx.sources.forImage(image);
  const log = ctx.logger.child({ image: name, ...(target.platformDir ? { platform: target.platformDir } : {}) });
  const manifestInfo = target.resolved ?? (await source.resolveManifest(manifestReference(image), options.platform ? { platform: options.platform } : {}));
  const manifest = manifestInfo.manifest;
  const { existing, published, upToDate, configDigest, publicName, flat, manifestPath, layers, base } = await publishedState(
    ctx,
    image,
    options,
    manifestInfo,
    target,
  );
  if (upToDate) {
    log.debug('already converted');
    return { status: 'up-to-date', ...base, newLayers: 0, newLayerBytes: 0, warnings: [] };
  }

  const configBytes = await source.fetchBlob(manifest.config);
  if (published) {
    // Everything is on disk but the thin image is missing (its push was interrupted): push only that.
    const config = parseConfig(configBytes, name);
    const thinImage = await ctx.pushThinImage!({ image, manifestDigest: manifestInfo.manifestDigest, manifest, config, configDigest });
    // Not known to have been pushed before: its registry did not have it (a run with -i, or a push cut short).
    log.info({ thinImage: thinImage.name }, 'thin image pushed (the image was already published)');
    return { status: 'converted', ...base, newLayers: 0, newLayerBytes: 0, thinImage, warnings: [] };
  }
  const config = parseConfig(configBytes, name);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new DuccError('BOT_ERR_REGISTRY', `${name}: the config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }
  const warnings: string[] = [];

  // 1. Layers, downloaded in parallel (bounded) and unpacked as they arrive; present ones are skipped
  //    before any byte is requested.
  const limit = pLimit(Math.max(1, options.maxConcurrentDownloads));
  let newLayers = 0;
  let newLayerBytes = 0;
  // With --skip-layers the layers are still unpacked when the flat tree needs them (it is built from them).
  const needLayers = !options.skipLayers || !options.skipFlat;
  // Once a layer failed the image has failed: no further layer is started, and the ones running are
  // waited for, so that no work of this image goes on behind the caller's back (e.g. during the next image).
  let layerFailed = false;
  const layerTask = (work: () => Promise<void>) =>
    limit(async () => {
      if (layerFailed) return;
      try {
        await work();
      } catch (error) {
        layerFailed = true;
        throw error;
      }
    });
  // Layers whose unpacking succeeded; they are published when publishLayers returns (the cvmfs publisher
  // ingests them together), and only then announced as published.
  const unpacked: string[] = [];
  const layerTasks = await ctx.publisher.publishLayers((batch) =>
    Promise.allSettled(
      (needLayers ? manifest.layers : []).map((layer, index) =>
        layerTask(async () => {
          if (isForeignLayer(layer.mediaType)) return;
          // A digest listed twice (old Docker images repeat the empty layer) is one layer directory: unpack it once.
          if (manifest.layers.findIndex((other) => other.digest === layer.digest) !== index) return;
          const dir = layerDir(layer.digest);
          const present = (await ctx.publisher.lstat(`${dir}/layerfs`)) && (await ctx.publisher.lstat(`${dir}/.metadata/layers.json`));
          if (present && !options.overwriteLayers) {
            ctx.onProgress?.({ kind: 'layer-done', image: name, layer: layer.digest, skipped: true });
            return;
          }
          // Unpacked again (-f), or left incomplete by a crash: replaced, but its origin.json is kept: its
          // backlinks name the other images using the layer.
          const replace = present !== undefined || (await ctx.publisher.lstat(dir)) !== undefined;
          const keptOrigin = replace ? await ctx.publisher.readFile(`${dir}/.metadata/origin.json`) : undefined;
          ctx.onProgress?.({ kind: 'layer-start', image: name, layer: layer.digest, index, total: manifest.layers.length, size: layer.size });
          const started = Date.now();
          // As DUCC: start and end share an `id`; the end carries elapsed time, status and size either way.
          const notice = { image: publicName, layer: digestHex(layer.digest), id: randomUUID() };
          await ctx.notifications.write({ action: 'start_layer_conversion', ...notice });
          try {
            const result = await unpackLayer(ctx, batch, source, name, layer, diffIds[index]!, { replace, keptOrigin, configDigest });
            warnings.push(...result);
            newLayers++;
            newLayerBytes += layer.size;
            unpacked.push(layer.digest);
            await ctx.notifications.write({
              action: 'end_layer_conversion',
              ...notice,
              status: 'ok',
              size_bytes: layer.size,
              time_elapsed_s: formatElapsedSeconds(Date.now() - started),
            });
          } catch (error) {
            await ctx.notifications.write({
              action: 'end_layer_conversion',
              ...notice,
              status: 'error',
              error: errorMessage(error),
              size_bytes: layer.size,
              time_elapsed_s: formatElapsedSeconds(Date.now() - started),
            });
            throw error;
          }
          ctx.onProgress?.({ kind: 'layer-done', image: name, layer: layer.digest, skipped: false });
        }),
      ),
    ),
  );
  for (const digest of unpacked) await ctx.notifications.write({ action: 'publish_layer', image: publicName, layer_digest: digestHex(digest) });
  const failedLayer = layerTasks.find((task): task is PromiseRejectedResult => task.status === 'rejected');
  if (failedLayer) throw failedLayer.reason;

  // 2. One transaction (one publish on CVMFS): the flat root filesystem if it is new — content-addressed
  //    by the config digest, built once and shared by tags — then origins, the DUCC manifest and the
  //    public symlink.
  const buildFlat = !options.skipFlat && !(await hasFlatTree(ctx.publisher, flat));
  // One that lost its Apptainer files is published again (DUCC PR 4208): removed first, as trees are
  // published whole and one that exists is kept.
  if (buildFlat && (await ctx.publisher.lstat(flat))) await ctx.publisher.transaction((tx) => tx.remove(flat));
  const flatNotice = { image_request: name, id: randomUUID() };
  const flatStarted = Date.now();
  const duccManifest = formatDuccManifest({
    ...(manifest.mediaType === undefined ? {} : { mediaType: manifest.mediaType }),
    config: manifest.config,
    layers: manifest.layers,
  });
  try {
    await ctx.publisher.transaction(async (tx) => {
      // Checked under the repository lock: a garbage collection may have removed an unreferenced layer or
      // flat tree since it was found present; then nothing is published and the next run redoes it.
      if (needLayers) for (const digest of new Set(layers.map((l) => l.digest))) await tx.requires(`${layerDir(digest)}/layerfs`);
      if (!options.skipFlat && !buildFlat) await tx.requires(flat);
      if (buildFlat) {
        ctx.onProgress?.({ kind: 'flat', image: name });
        await ctx.notifications.write({ action: 'start_flat_conversion', ...flatNotice });
        const inputs: FlatLayerInput[] = [];
        for (const layer of layers) {
          const notesFile = await ctx.publisher.readFile(`${layerDir(layer.digest)}/.metadata/${UNPACK_NOTES_FILE}`);
          const notes: UnpackNotes = notesFile ? (JSON.parse(notesFile.toString('utf8')) as UnpackNotes) : { externalHardlinks: [] };
          inputs.push({ dir: join(ctx.publisher.readRoot, layerDir(layer.digest), 'layerfs'), ...notes });
        }
        const tree = await FlatTree.build(inputs, { fileMetadata: !ctx.publisher.hardLinksTreeFiles });
        warnings.push(...tree.warnings);
        const now = new Date();
        for (const entry of apptainerEntries(config.config ?? {}, (path) => tree.resolves(path))) tree.add(entry, now);
        await tx.tree(flat, tree.entries());
      }
      // Once per layer directory. DUCC appends even when the image is already listed; we do not, so that a
      // rerun after a crash, or two processes converting one image, leave the same backlinks as one run
      // (nothing reads origin.json, and an image listed once says everything a repeat would).
      for (const digest of new Set(layers.map((l) => l.digest))) {
        if (ctx.publisher.recordsEveryOrigin === false) break;
        const origin = `${layerDir(digest)}/.metadata/origin.json`;
        const current = await ctx.publisher.readFile(origin);
        if (current !== undefined && listsOrigin(current, configDigest)) continue;
        await tx.writeFile(origin, appendOrigin(current, configDigest));
      }
      if (existing && existing.configDigest !== configDigest) {
        // The tag moved: schedule the old image for a later garbage collection, as DUCC does.
        const schedule = formatRemoveSchedule(await ctx.publisher.readFile(REMOVE_SCHEDULE_PATH), existing.manifest);
        await tx.writeFile(REMOVE_SCHEDULE_PATH, schedule);
      }
      await tx.writeFile(manifestPath, duccManifest);
      if (!options.skipFlat) await tx.symlink(publicName, relativeSymlinkTarget(publicName, flat));
    });
  } catch (error) {
    if (buildFlat) {
      await ctx.notifications.write({
        action: 'end_flat_conversion',
        ...flatNotice,
        status: 'error',
        error: errorMessage(error),
        time_elapsed_s: formatElapsedSeconds(Date.now() - flatStarted),
      });
    }
    throw error;
  }
  if (buildFlat) {
    await ctx.notifications.write({
      action: 'end_flat_conversion',
      ...flatNotice,
      status: 'ok',
      time_elapsed_s: formatElapsedSeconds(Date.now() - flatStarted),
    });
  }
  // Only once the symlink is published (an aborted transaction publishes nothing).
  if (!options.skipFlat) await ctx.notifications.write({ action: 'publish_flat_image', image_request: name, public_path: publicName, private_path: flat });

  const outcome: ImageOutcome = { status: 'converted', ...base, newLayers, newLayerBytes, warnings };
  if (ctx.pushThinImage && !options.skipThinImage) {
    outcome.thinImage = await ctx.pushThinImage({ image, manifestDigest: manifestInfo.manifestDigest, manifest, config, configDigest });
  }
  log.info({ newLayers, configDigest }, 'converted');
  return outcome;
}

/** For `--multi-arch`: an already resolved platform manifest, published under `.multiarch/<platformDir>/`. */
export interface ConvertTarget {
  resolved?: SourceManifest;
  platformDir?: string;
}

/**
 * `--multi-arch` (DUCC 2026): every platform of an index is converted and linked from
 * `.multiarch/<arch>[:<variant>]/<public name>`, with its metadata under `.metadata/.multiarch/...`; the
 * public name becomes a CVMFS variant symlink choosing the platform by the client's `CVMFS_ARCH`
 * (default amd64), and architecture aliases (x86_64, aarch64, ...) point at the published directories.
 * A plain manifest (no index) is converted as without `--multi-arch`.
 */
export async function convertMultiArch(ctx: ConvertContext, image: ImageReference, options: ConvertOptions): Promise<ImageOutcome[]> {
  const manifests = await ctx.sources.forImage(image).resolveAllManifests(manifestReference(image));
  if (manifests.length === 1 && manifests[0]!.platform === undefined) {
    return [await convertImage(ctx, image, options, { resolved: manifests[0]! })];
  }
  const outcomes: ImageOutcome[] = [];
  for (const resolved of manifests) {
    if (resolved.platform === undefined) continue;
    outcomes.push(await convertImage(ctx, image, options, { resolved, platformDir: platformDirName(resolved.platform) }));
  }
  const publicName = publicPath(image);
  const variantTarget = multiarchVariantSymlinkTarget(image, DEFAULT_VARIANT_ARCH);
  const current = await ctx.publisher.lstat(publicName);
  const aliases = await missingArchAliases(ctx.publisher);
  if (current?.isSymbolicLink() && (await readlinkIn(ctx.publisher, publicName)) === variantTarget && aliases.length === 0) return outcomes;
  await ctx.publisher.transaction(async (tx) => {
    await tx.symlink(publicName, variantTarget);
    for (const [alias, target] of aliases) await tx.symlink(`${MULTIARCH_DIR}/${alias}`, target);
  });
  return outcomes;
}

/** The architecture a CVMFS client without `CVMFS_ARCH` gets from a variant symlink. */
export const DEFAULT_VARIANT_ARCH = 'amd64';

/** DUCC 2026's alias names under `.multiarch/`, each with the platform directories it may stand for, in order. */
const ARCH_ALIASES: [string, string[]][] = [
  ['aarch64', ['arm64', 'arm64:v8']],
  ['arm64', ['arm64:v8']],
  ['armhf', ['arm']],
  ['armel', ['arm:v6']],
  ['i386', ['386']],
  ['x86_64', ['amd64']],
  ['x86-64', ['amd64']],
];

/** Aliases to (re)create: the target directory exists and the alias is absent or a symlink pointing elsewhere. */
async function missingArchAliases(publisher: Publisher): Promise<[string, string][]> {
  const result: [string, string][] = [];
  for (const [alias, candidates] of ARCH_ALIASES) {
    const aliasStat = await publisher.lstat(`${MULTIARCH_DIR}/${alias}`);
    if (aliasStat && !aliasStat.isSymbolicLink()) continue; // a real platform directory wins
    for (const candidate of candidates) {
      const stat = await publisher.lstat(`${MULTIARCH_DIR}/${candidate}`);
      if (!stat?.isDirectory()) continue;
      if (!aliasStat || (await readlinkIn(publisher, `${MULTIARCH_DIR}/${alias}`)) !== candidate) result.push([alias, candidate]);
      break;
    }
  }
  return result;
}

async function readlinkIn(publisher: Publisher, relPath: string): Promise<string | undefined> {
  return readlink(join(publisher.readRoot, relPath)).catch(() => undefined);
}

/**
 * Our addition to a layer's `.metadata/` (DUCC consumers ignore it): what the flattener must know beyond
 * the unpacked tree — hard links into lower layers, and directories that had no tar entry of their own.
 */
export const UNPACK_NOTES_FILE = 'unpack-notes.json';
type UnpackNotes = Pick<FlatLayerInput, 'externalHardlinks' | 'implicitDirectories'>;

async function unpackLayer(
  ctx: ConvertContext,
  batch: LayerBatch,
  source: ImageSource,
  imageName: string,
  layer: Descriptor,
  diffId: string,
  { replace, keptOrigin, configDigest }: { replace: boolean; keptOrigin: Buffer | undefined; configDigest: string },
): Promise<string[]> {
  const label = `${imageName}: layer ${layer.digest}`;
  const compression = compressionOf(layer.mediaType, label);
  const blob = await source.openBlob(layer);
  const threaded = layer.size >= decompressThreadMinBytes();
  const stages = [...decompressionStages(compression, label, { threaded }), new DigestingStream(diffId, label)];
  const digesting = stages.at(-1) as DigestingStream;
  // Chain by hand so that an error anywhere (download, digest, decompression) reaches the consumer of
  // the last stage: the publisher then discards its staging instead of publishing.
  const all: Readable[] = [blob, ...stages];
  for (let i = 0; i < all.length - 1; i++) {
    all[i]!.on('error', (error) => digesting.destroy(error));
    all[i]!.pipe(stages[i]!);
  }
  let downloaded = 0;
  blob.on('data', (chunk: Buffer) => {
    downloaded += chunk.length;
    ctx.onProgress?.({ kind: 'layer-bytes', image: imageName, layer: layer.digest, bytes: downloaded });
  });
  try {
    const result = await batch.add(
      layerDir(layer.digest),
      digesting,
      (unpacked) => {
        const files: Record<string, Buffer> = {
          'layers.json': formatLayersJson({ diffId: digesting.digest, compressedDigest: layer.digest, diffSize: digesting.bytes, created: new Date() }),
        };
        const notes: UnpackNotes = { externalHardlinks: unpacked.externalHardlinks, implicitDirectories: unpacked.implicitDirectories ?? [] };
        if (notes.externalHardlinks.length > 0 || notes.implicitDirectories!.length > 0) files[UNPACK_NOTES_FILE] = Buffer.from(JSON.stringify(notes));
        // Born listing this image (and, for a layer unpacked again, the images it listed before).
        files['origin.json'] = keptOrigin !== undefined && listsOrigin(keptOrigin, configDigest) ? keptOrigin : appendOrigin(keptOrigin, configDigest);
        return files;
      },
      { replace },
    );
    return result.warnings;
  } catch (error) {
    for (const stream of all) stream.destroy();
    if (error instanceof DuccError) throw error;
    throw new DuccError('BOT_ERR_PUBLISH', `${label}: ${errorMessage(error)}`, { cause: error });
  }
}

/** Whether an origin.json already names an image config. */
function listsOrigin(bytes: Buffer, configDigest: string): boolean {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { origin?: unknown };
    return Array.isArray(parsed.origin) && parsed.origin.includes(configDigest);
  } catch {
    return false;
  }
}

function parseConfig(bytes: Buffer, name: string): ImageConfig {
  try {
    return JSON.parse(bytes.toString('utf8')) as ImageConfig;
  } catch (error) {
    throw new DuccError('BOT_ERR_REGISTRY', `${name}: image config is not JSON: ${errorMessage(error)}`);
  }
}
