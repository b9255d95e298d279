import type { Readable } from 'node:stream';
import type { Stats } from 'node:fs';

/**
 * One entry of a directory tree handed to {@link Publisher.publishTree}, in parent-before-child order.
 * `path` is relative to the tree's root, POSIX separators, never containing `..`. The only entry with an
 * empty path is an optional first `directory` entry carrying the metadata of the tree's root itself.
 */
export type TreeEntry =
  | { type: 'directory'; path: string; mode: number; uid: number; gid: number; mtime: Date }
  | {
      type: 'file';
      path: string;
      mode: number;
      uid: number;
      gid: number;
      mtime: Date;
      size: number;
      /** Exactly one of source (an existing file to copy or hard-link) or content (bytes) is set. */
      source?: string;
      content?: Buffer;
    }
  | { type: 'symlink'; path: string; target: string; uid: number; gid: number; mtime: Date }
  /** A hard link to an earlier entry of the same tree (`target` is a tree-relative path). */
  | { type: 'hardlink'; path: string; target: string }
  /**
   * The same file as `source` (a regular file of an unpacked layer, metadata included): hard-linked to it,
   * or where that fails copied with its mode, owner and times. Only given to publishers whose
   * `hardLinksTreeFiles` is true.
   */
  | { type: 'link'; path: string; source: string };

/** What unpacking one layer produced, as measured on the uncompressed tar stream. */
export interface LayerUnpackResult {
  /** Entries skipped on purpose (device nodes, FIFOs, ...), one human-readable line each. */
  warnings: string[];
  /**
   * Hard links whose target is not in this layer (it lives in a lower layer). They are stored in the
   * layer dir as empty regular files, and the flattener resolves them against the lower layers.
   */
  externalHardlinks: { path: string; target: string }[];
  /**
   * Directories created only because an entry lies below them (the tar has no entry of their own).
   * The flattener keeps the lower layers' metadata for them, as unpacking onto a rootfs does.
   */
  implicitDirectories?: string[];
}

/** Small writes grouped so that the cvmfs publisher does them in a single transaction. */
export interface Transaction {
  /** Writes a file atomically (replacing any existing file), creating parent directories (0755). */
  writeFile(relPath: string, data: Buffer | string, mode?: number): Promise<void>;
  /** Creates or atomically replaces a symlink; refuses to replace anything that is not a symlink. */
  symlink(relPath: string, target: string): Promise<void>;
  /** Creates a directory and its parents (0755); no error if it exists. */
  mkdir(relPath: string): Promise<void>;
  /** Removes a file, symlink or whole directory; no error if it is absent. */
  remove(relPath: string): Promise<void>;
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

  /** Removes staging left by a crash and closes transactions left open; call once before converting. */
  recover(): Promise<void>;
  /** lstat of a published path, or undefined when absent. */
  lstat(relPath: string): Promise<Stats | undefined>;
  /** Contents of a published file, or undefined when absent. */
  readFile(relPath: string): Promise<Buffer | undefined>;

  /**
   * Unpacks an uncompressed layer tar into `<layerDir>/layerfs` (whiteouts kept verbatim as `.wh.*`
   * files) and then writes `metadata(result)` (file name → bytes) into `<layerDir>/.metadata/`. All or
   * nothing: if the stream errors (for example a digest check failing at its end) nothing is published.
   * `layerDir` must not exist yet.
   */
  publishLayer(layerDir: string, tar: Readable, metadata: (result: LayerUnpackResult) => Record<string, Buffer>): Promise<LayerUnpackResult>;

  /**
   * Whether publishTree takes regular files of the layers as `link` entries: it hard-links them, so their
   * metadata goes along with the inode and the flat tree need not read it (one lstat per file saved).
   * When false, every file comes as a `file` entry with its metadata, and files sharing an inode as
   * `hardlink` entries.
   */
  readonly hardLinksTreeFiles: boolean;

  /** Publishes a complete directory tree at `relDir` (which must not exist yet), all or nothing. */
  publishTree(relDir: string, entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry>): Promise<void>;

  /** Runs small writes as one unit (one CVMFS transaction); on error everything done in it is aborted. */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
}
