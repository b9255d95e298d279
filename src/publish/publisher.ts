import type { Readable } from 'node:stream';
import type { Stats } from 'node:fs';
import type { LayerUnpackResult, TreeEntry } from '../unpack/tree-types.ts';

/** Builds the `.metadata/` files of an unpacked layer (file name → bytes) from what unpacking found. */
export type LayerMetadata = (result: LayerUnpackResult) => Record<string, Buffer>;

/** Layers being unpacked for one image; see {@link Publisher.publishLayers}. */
export interface LayerBatch {
  /**
   * Unpacks an uncompressed layer tar into `<layerDir>/layerfs` (whiteouts kept verbatim as `.wh.*`
   * files) with `metadata(result)` in `<layerDir>/.metadata/`, and makes `layerDir` a nested catalog
   * (`.layers` and `.layers/<xx>` too, as DUCC does). All or nothing: if the stream errors (for example a
   * digest check failing at its end) nothing of this layer is published. `replace` removes what is at
   * `layerDir` (an incomplete or outdated layer) in the same step; without it `layerDir` must not exist.
   * Calls may run concurrently.
   */
  add(layerDir: string, tar: Readable, metadata: LayerMetadata, options?: { replace?: boolean }): Promise<LayerUnpackResult>;
}

/**
 * Writes grouped into one unit: the cvmfs publisher makes one `cvmfs_server ingest` (or, for removals of
 * files and symlinks, one transaction) of them, so they are published together or not at all. Paths are
 * created with their parents (directories 0755, owned by the repository owner).
 */
export interface Transaction {
  /** Writes a file (replacing any existing file). */
  writeFile(relPath: string, data: Buffer | string, mode?: number): Promise<void>;
  /** Creates or replaces a symlink; refuses to replace anything that is not a symlink. */
  symlink(relPath: string, target: string): Promise<void>;
  /** Creates a directory and its parents; no error if it exists. */
  mkdir(relPath: string): Promise<void>;
  /** Removes a file, symlink or whole directory; no error if it is absent. */
  remove(relPath: string): Promise<void>;
  /**
   * Makes the whole transaction depend on `relPath` existing when it is published: checked under the
   * repository lock (the one {@link Publisher.exclusive} takes), so a garbage collection cannot remove
   * what the transaction is about to reference between the check and the publish. If `relPath` is gone,
   * nothing of the transaction is published and it fails with a temporary BOT_ERR_PUBLISH. Call it
   * before the writes that depend on it.
   */
  requires(relPath: string): Promise<void>;
  /**
   * Publishes a complete directory tree at `relDir` and makes it a nested catalog (`.flat` too, as DUCC
   * does). Trees are content-addressed: if `relDir` exists by the time the transaction is published
   * (another process published the same tree meanwhile), the existing one is kept. The entries may be
   * consumed after this call returns, while the transaction commits: an iterable that fails then fails
   * the whole transaction.
   */
  tree(relDir: string, entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry>): Promise<void>;
}

/**
 * Where converted images go: a CVMFS repository (through `cvmfs_server`) or a plain directory standing in
 * for it. All paths are relative to the repository root (for a `cvmfs_repo` with a subdirectory, to that
 * subdirectory) and use POSIX separators.
 *
 * Contract shared by every implementation: nothing appears under a final name unless it is complete. A
 * failed or interrupted call leaves at most staging state that {@link Publisher.recover} removes.
 */
export interface Publisher {
  /** Human-readable description for logs, e.g. `directory /srv/cvmfs/unpacked.cern.ch`. */
  readonly description: string;
  /** Absolute path under which the published repository can be read on this machine. */
  readonly readRoot: string;
  /**
   * Whether trees take regular files of the layers as `link` entries: the publisher links them (a hard
   * link, or a catalog clone), so their metadata goes along and the flat tree need not read it (one lstat
   * per file saved). When false, every file comes as a `file` entry with its metadata, and files sharing
   * an inode as `hardlink` entries.
   */
  readonly hardLinksTreeFiles: boolean;
  /**
   * Whether a layer's `origin.json` gets every image that uses the layer (as DUCC does), false when it
   * only names the images that published it (the gateway publisher: an update would lease every shared
   * layer for every image). Absent means true.
   */
  readonly recordsEveryOrigin?: boolean;

  /** Removes staging left by a crash and closes transactions left open; call once before converting. */
  recover(): Promise<void>;
  /** lstat of a published path, or undefined when absent. */
  lstat(relPath: string): Promise<Stats | undefined>;
  /** Contents of a published file, or undefined when absent. */
  readFile(relPath: string): Promise<Buffer | undefined>;
  /** Entries of a published directory with their types (no stat per entry), or undefined when absent. */
  readdir(relPath: string): Promise<DirectoryEntry[] | undefined>;
  /** Target of a published symlink, or undefined when absent or not a symlink. */
  readlink(relPath: string): Promise<string | undefined>;
  /**
   * Staging directories (absolute paths) left by processes that are gone: what {@link recover} would
   * remove. Listing only; nothing is removed.
   */
  staleStaging(): Promise<string[]>;

  /**
   * Unpacks the layers that `work` adds and publishes them, at the latest when `work` settles: the
   * directory publisher moves each into place as soon as it is unpacked, the cvmfs publisher ingests all
   * of them at once (one publish per image). Layers unpacked completely are published even when `work`
   * fails (another layer failed), so that a retry does not fetch them again; then work's error is thrown.
   */
  publishLayers<T>(work: (batch: LayerBatch) => Promise<T>): Promise<T>;

  /** Runs writes as one unit (see {@link Transaction}); if `work` throws, nothing of it is published. */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;

  /**
   * Runs `work` holding the repository lock exclusively: no transaction of any process publishes
   * meanwhile (every transaction takes the same lock when it publishes, and checks its
   * {@link Transaction.requires} under it). Transactions run inside `work` publish without waiting for
   * the lock they are already under. Garbage collection decides and removes inside such a section.
   */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
}

/** One entry of {@link Publisher.readdir}. */
export interface DirectoryEntry {
  name: string;
  type: 'directory' | 'file' | 'symlink' | 'other';
}
