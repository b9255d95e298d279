/**
 * What a repository holds and what of it is reachable, read from directory listings, symlinks and the
 * small metadata files only (never a file of an image).
 *
 * Reachable (the roots and what they keep):
 * - every public name: each symlink outside the top-level dot-directories, and under `.multiarch/`
 *   (per-platform names; the aliases such as `x86_64` are symlinks to platform directories and are
 *   followed), keeps the flat tree or layer it resolves to. Resolution is lexical, inside the
 *   repository; a CVMFS variant component `$(CVMFS_ARCH:-amd64)` stands for every entry of its directory,
 *   since any client may choose any of them;
 * - every `manifest.json` under `.metadata/` (a published image, with or without a public name: an
 *   image converted with `--skip-flat` has none) keeps the layers it lists and the flat tree of its
 *   config. Thin images are kept through these manifests: a thin image is pushed by the conversion that
 *   writes its image's manifest, its thin.json names exactly that manifest's layers (it is a function of
 *   the manifest), and ducc-gitops gives up a thin image only with that manifest (delete-image, prune,
 *   the bot's removals).
 *
 * Everything else of DUCC's layout is garbage: `.flat/<xx>/<digest>` and `.layers/<xx>/<digest>`
 * directories nothing keeps, and directories under `.metadata/` with no manifest.json below them. Names
 * that are not of DUCC's layout are never touched.
 */
import { parseDuccManifest } from '../metadata/ducc-manifest.ts';
import { FLAT_DIR, LAYERS_DIR, METADATA_DIR, MULTIARCH_DIR, REMOVE_SCHEDULE_PATH, layerDir } from '../layout/paths.ts';
import type { DirectoryEntry, Publisher } from '../publish/publisher.ts';
import { errorMessage } from '../util/errors.ts';

/** `.metadata/gc-schedule.json`: when gc first found each garbage item (see schedule.ts). */
export const GC_SCHEDULE_PATH = `${METADATA_DIR}/gc-schedule.json`;

/** Symlinks followed for one name at most (as the kernel's ELOOP limit). */
const MAX_HOPS = 40;
const FANOUT = /^[0-9a-f]{2}$/;
const HEX64 = /^[0-9a-f]{64}$/;

export interface PublicName {
  /** Repository-relative path of the symlink. */
  path: string;
  /** Flat trees and layers (`.flat/<xx>/<d>`, `.layers/<xx>/<d>`) it resolves to; empty when dangling. */
  keeps: string[];
}

export interface PublishedManifest {
  /** The directory holding manifest.json, e.g. `.metadata/registry.example.org/lib/app:1`. */
  dir: string;
  /** Layer directories it lists (`.layers/<xx>/<d>`), and `.flat/<xx>/<config>`; empty when unreadable. */
  keeps: string[];
  configDigest?: string;
  /** Why the file could not be read; then what it references is unknown. */
  problem?: string;
}

export interface RepositoryScan {
  publicNames: PublicName[];
  manifests: PublishedManifest[];
  /** `.flat/<xx>/<d>` directories present. */
  flats: string[];
  /** `.layers/<xx>/<d>` directories present. */
  layers: string[];
  /** The topmost directories under `.metadata/` with no manifest.json anywhere below them. */
  metadataWithoutManifest: string[];
  /** Flat trees and layers something keeps. */
  reachable: Set<string>;
  /**
   * Why layers cannot be collected in this run, when some manifest.json is unreadable: what it lists is
   * unknown, so no layer is taken for garbage.
   */
  layersBlocked?: string;
}

/** Options of a scan: names under which absolute symlink targets point into the repository. */
export interface ScanOptions {
  /** e.g. `/cvmfs/unpacked.cern.ch` (DUCC's prototype wrote absolute links); `publisher.readRoot` is always one. */
  absoluteRoots?: string[];
}

/** Reads the whole repository: see the module comment for what is reachable. */
export async function scanRepository(publisher: Publisher, options: ScanOptions = {}): Promise<RepositoryScan> {
  const reader = new CachedReader(publisher, [publisher.readRoot, ...(options.absoluteRoots ?? [])]);
  const [links, flats, layers, metadata] = await Promise.all([
    findPublicLinks(reader),
    contentDirectories(reader, FLAT_DIR),
    contentDirectories(reader, LAYERS_DIR),
    walkMetadata(reader),
  ]);
  const reachable = new Set<string>();
  const publicNames: PublicName[] = [];
  for (const link of links) {
    const keeps = await reader.resolve(link);
    for (const item of keeps) reachable.add(item);
    publicNames.push({ path: link, keeps });
  }
  const problems: string[] = [];
  for (const manifest of metadata.manifests) {
    for (const item of manifest.keeps) reachable.add(item);
    if (manifest.problem !== undefined) problems.push(`${manifest.dir}/manifest.json: ${manifest.problem}`);
  }
  return {
    publicNames,
    manifests: metadata.manifests,
    flats,
    layers,
    metadataWithoutManifest: metadata.withoutManifest,
    reachable,
    ...(problems.length > 0 ? { layersBlocked: `unreadable metadata, so which layers are needed is unknown: ${problems.join('; ')}` } : {}),
  };
}

/** Every symlink of the public tree: outside the top-level dot-directories, and under `.multiarch/<platform>/`. */
async function findPublicLinks(reader: CachedReader): Promise<string[]> {
  const links: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of (await reader.readdir(dir)) ?? []) {
      const path = `${dir}/${entry.name}`;
      if (entry.type === 'symlink') links.push(path);
      else if (entry.type === 'directory') await walk(path);
    }
  };
  for (const entry of (await reader.readdir('')) ?? []) {
    if (entry.name.startsWith('.')) continue;
    if (entry.type === 'symlink') links.push(entry.name);
    else if (entry.type === 'directory') await walk(entry.name);
  }
  // Platform directories only: the aliases (x86_64 -> amd64) are symlinks to them, walked once.
  for (const entry of (await reader.readdir(MULTIARCH_DIR)) ?? []) {
    if (entry.type === 'directory') await walk(`${MULTIARCH_DIR}/${entry.name}`);
  }
  return links.sort();
}

/** `<top>/<xx>/<64 hex>` directories (DUCC's sharding); anything else there is not ours to judge. */
async function contentDirectories(reader: CachedReader, top: string): Promise<string[]> {
  const found: string[] = [];
  for (const fanout of (await reader.readdir(top)) ?? []) {
    if (fanout.type !== 'directory' || !FANOUT.test(fanout.name)) continue;
    for (const entry of (await reader.readdir(`${top}/${fanout.name}`)) ?? []) {
      if (entry.type === 'directory' && HEX64.test(entry.name) && entry.name.startsWith(fanout.name)) found.push(`${top}/${fanout.name}/${entry.name}`);
    }
  }
  return found.sort();
}

/**
 * Every manifest.json under `.metadata/`, at any depth (a digest-only image's metadata directory
 * `.metadata/<registry>/<repository>` may hold those of longer repository names below it, so the walk
 * does not stop at the first manifest as DUCC's does), and the directories with none below them.
 */
async function walkMetadata(reader: CachedReader): Promise<{ manifests: PublishedManifest[]; withoutManifest: string[] }> {
  const manifests: PublishedManifest[] = [];
  const withoutManifest: string[] = [];
  /** Whether `dir` holds a manifest.json at any depth; collects the topmost directories that hold none. */
  const walk = async (dir: string): Promise<boolean> => {
    const entries = (await reader.readdir(dir)) ?? [];
    let holds = false;
    const empty: string[] = [];
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      if (entry.type === 'directory') {
        if (await walk(path)) holds = true;
        else empty.push(path);
      } else if (entry.name === 'manifest.json' && entry.type === 'file') {
        holds = true;
        manifests.push(await readManifest(reader, dir));
      }
    }
    // A directory with nothing below is garbage as a whole; else only its empty subdirectories are.
    if (holds) withoutManifest.push(...empty);
    return holds;
  };
  const top = (await reader.readdir(METADATA_DIR)) ?? [];
  for (const entry of top) {
    if (entry.type !== 'directory') continue; // remove-schedule.json, gc-schedule.json
    const path = `${METADATA_DIR}/${entry.name}`;
    if (!(await walk(path))) withoutManifest.push(path);
  }
  return { manifests: manifests.sort((a, b) => a.dir.localeCompare(b.dir)), withoutManifest: withoutManifest.sort() };
}

async function readManifest(reader: CachedReader, dir: string): Promise<PublishedManifest> {
  let bytes: Buffer | undefined;
  try {
    bytes = await reader.publisher.readFile(`${dir}/manifest.json`);
  } catch (error) {
    return { dir, keeps: [], problem: errorMessage(error) };
  }
  if (bytes === undefined) return { dir, keeps: [] }; // removed since the listing: nothing to keep
  const parsed = parseDuccManifest(bytes);
  if (parsed === undefined) return { dir, keeps: [], problem: 'not a DUCC manifest' };
  const keeps: string[] = [];
  const add = (digest: string) => {
    try {
      keeps.push(layerDir(digest));
    } catch {
      // not a sha256 digest: names no directory of ours
    }
  };
  for (const layer of parsed.layers) add(layer.digest);
  if (parsed.configDigest !== '') {
    const hex = /^sha256:([0-9a-f]{64})$/.exec(parsed.configDigest)?.[1];
    if (hex !== undefined) keeps.push(`${FLAT_DIR}/${hex.slice(0, 2)}/${hex}`);
  }
  return { dir, keeps, ...(parsed.configDigest === '' ? {} : { configDigest: parsed.configDigest }) };
}

/** Listings, lstat and readlink of one scan, each asked of the publisher once. */
class CachedReader {
  readonly publisher: Publisher;
  readonly #absoluteRoots: string[];
  readonly #types = new Map<string, Promise<DirectoryEntry['type'] | undefined>>();
  readonly #listings = new Map<string, Promise<DirectoryEntry[] | undefined>>();

  constructor(publisher: Publisher, absoluteRoots: string[]) {
    this.publisher = publisher;
    this.#absoluteRoots = absoluteRoots.map((root) => root.replace(/\/+$/, ''));
  }

  readdir(dir: string): Promise<DirectoryEntry[] | undefined> {
    let listing = this.#listings.get(dir);
    if (listing === undefined) {
      listing = this.publisher.readdir(dir);
      this.#listings.set(dir, listing);
    }
    return listing;
  }

  type(path: string): Promise<DirectoryEntry['type'] | undefined> {
    let type = this.#types.get(path);
    if (type === undefined) {
      type = this.publisher.lstat(path).then((stats) => {
        if (stats === undefined) return undefined;
        return stats.isDirectory() ? 'directory' : stats.isSymbolicLink() ? 'symlink' : stats.isFile() ? 'file' : 'other';
      });
      this.#types.set(path, type);
    }
    return type;
  }

  /**
   * The flat trees and layers a symlink resolves to, following symlinks lexically inside the repository
   * (as a client resolves them below the repository root). Stops at `.flat/<xx>/<d>` or
   * `.layers/<xx>/<d>`: what is inside an image is never looked at.
   */
  async resolve(link: string): Promise<string[]> {
    const found = new Set<string>();
    // [resolved components, components still to resolve, symlinks followed]
    const work: [string[], string[], number][] = [[[], link.split('/'), 0]];
    while (work.length > 0) {
      const [done, rest, hops] = work.pop()!;
      const item = contentItem(done);
      if (item !== undefined) {
        found.add(item);
        continue;
      }
      if (rest.length === 0) continue;
      const [next, ...after] = rest as [string, ...string[]];
      if (next === '' || next === '.') {
        work.push([done, after, hops]);
        continue;
      }
      if (next === '..') {
        if (done.length > 0) work.push([done.slice(0, -1), after, hops]); // above the root: outside
        continue;
      }
      if (next.includes('$(')) {
        // A CVMFS variant: any entry of the directory, whichever the client picks.
        for (const entry of (await this.readdir(done.join('/'))) ?? []) work.push([done, [entry.name, ...after], hops]);
        continue;
      }
      const path = [...done, next].join('/');
      const type = await this.type(path);
      if (type === undefined) continue; // dangling
      if (type !== 'symlink') {
        work.push([[...done, next], after, hops]);
        continue;
      }
      if (hops >= MAX_HOPS) continue;
      const target = await this.publisher.readlink(path);
      if (target === undefined) continue;
      if (target.startsWith('/')) {
        const inside = this.#insideRepository(target);
        if (inside !== undefined) work.push([[], [...inside.split('/'), ...after], hops + 1]);
        continue;
      }
      work.push([done, [...target.split('/'), ...after], hops + 1]);
    }
    return [...found].sort();
  }

  /** An absolute symlink target as a repository-relative path, when it points into the repository. */
  #insideRepository(target: string): string | undefined {
    for (const root of this.#absoluteRoots) {
      if (target === root) return '';
      if (target.startsWith(`${root}/`)) return target.slice(root.length + 1);
    }
    return undefined;
  }
}

/** `.flat/<xx>/<d>` or `.layers/<xx>/<d>` when `components` are (or lie below) one of them. */
function contentItem(components: string[]): string | undefined {
  if (components.length < 3) return undefined;
  const [top, fanout, name] = components as [string, string, string];
  if ((top === FLAT_DIR || top === LAYERS_DIR) && FANOUT.test(fanout) && HEX64.test(name)) return `${top}/${fanout}/${name}`;
  return undefined;
}

/** Paths of files gc itself keeps in `.metadata/` (not images). */
export const GC_OWN_FILES = [GC_SCHEDULE_PATH, REMOVE_SCHEDULE_PATH];
