/**
 * What unpacking and flattening produce, as the publishers consume it. Kept here, below the publishers,
 * so that unpack/ never imports from publish/.
 */

/**
 * One entry of a directory tree handed to a publisher (`Transaction.tree`), in parent-before-child order.
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
   * The same file as `source` (an absolute path to a regular file of a published layer, metadata
   * included): hard-linked to it, copied with its metadata, or cloned in the catalog. Only given to
   * publishers whose `hardLinksTreeFiles` is true.
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
