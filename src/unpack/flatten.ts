import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import type { TreeEntry } from './tree-types.ts';
import { DuccError } from '../util/errors.ts';
import { classifyName, isWhiteoutName } from './entry-path.ts';
import { stepAside } from '../util/yield-gate.ts';

/** One unpacked layer as input to {@link buildFlatTree}, base layer first. */
export interface FlatLayerInput {
  /** Absolute path of the layer's unpacked tree (`.layers/<xx>/<d>/layerfs`). */
  dir: string;
  /** Names the layer in errors and warnings; default `layer sha256:<d>` taken from `dir`, else `layer <n>`. */
  label?: string;
  /** Hard links of this layer whose targets live in lower layers (stored as empty files in `dir`). */
  externalHardlinks: { path: string; target: string }[];
  /** Directories that exist in `dir` only as parents of entries; they do not override lower metadata. */
  implicitDirectories?: string[];
}

/** Metadata kept per merged entry: only what the flat tree needs, to keep big images small in memory. */
interface Meta {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

type DirNode = MergedNode & { kind: 'dir' };

type MergedNode =
  | ({ kind: 'dir'; children: Map<string, MergedNode> } & Meta)
  | ({ kind: 'file'; size: number; source?: string; content?: Buffer; identity?: string } & Meta)
  /** A regular file of a layer whose metadata was not read: the publisher hard-links it (see FlatTreeOptions). */
  | { kind: 'linked'; source: string }
  | ({ kind: 'symlink'; target: string } & Meta);

export interface FlatTreeOptions {
  /**
   * Read each regular file's metadata (default true). False for a publisher that hard-links tree files
   * (Publisher.hardLinksTreeFiles): files then come out as `link` entries, and the tree is built from
   * the directory listings' file types with one lstat per directory and symlink only.
   */
  fileMetadata?: boolean;
}

const MAX_SYMLINK_HOPS = 40;
/** CVMFS control files are never taken from layers (as `cvmfs_server overlay` does); the flat tree gets its own. */
const CVMFS_CONTROL_FILES = new Set(['.cvmfscatalog', '.cvmfsdirtab', '.cvmfsautocatalog']);

/**
 * The merged view of an image's layers, built from the unpacked layer trees on disk with OCI whiteout
 * semantics: `.wh.<name>` removes `<name>` from lower layers, `.wh..wh..opq` hides everything lower in its
 * directory (whatever the order of entries in the tar), and no `.wh.*` name reaches the result. Entries
 * of a higher layer replace lower ones; directories merge and take the higher layer's metadata.
 */
export class FlatTree {
  readonly root: MergedNode & { kind: 'dir' };
  readonly warnings: string[] = [];

  private readonly fileMetadata: boolean;
  /** The layer being merged, for messages. */
  private label = '';
  /**
   * Nodes the layer being merged has put in place (or merged into): its whiteouts never remove them,
   * even when they reach a directory by another path, through a symlink, after the layer's own entries
   * did (umoci keeps the same set, its "upper paths").
   */
  private added = new Set<MergedNode>();

  private constructor(root: MergedNode & { kind: 'dir' }, fileMetadata: boolean) {
    this.root = root;
    this.fileMetadata = fileMetadata;
  }

  static async build(layers: readonly FlatLayerInput[], options: FlatTreeOptions = {}): Promise<FlatTree> {
    const tree = new FlatTree({ kind: 'dir', children: new Map(), mode: 0o755, uid: 0, gid: 0, mtime: new Date(0) }, options.fileMetadata ?? true);
    for (const [index, layer] of layers.entries()) {
      // Normalised once (no trailing slash): entry paths below are joined by hand, not with path.join.
      const dir = resolve(layer.dir);
      Object.assign(tree.root, metaOf(lstatSync(dir)));
      tree.label = layer.label ?? layerLabel(dir, index);
      tree.added = new Set();
      tree.mergeDirectory(dir, tree.root, '', new Set(layer.implicitDirectories ?? []), []);
      for (const link of layer.externalHardlinks) tree.resolveExternalHardlink(link, tree.label);
    }
    tree.added = new Set();
    return tree;
  }

  /**
   * Merges the layer directory `dir` (`prefix` below the layer root) into `merged`, the directory of the
   * tree at `mergedPath` (its real path: not the same as `prefix` once a symlink was followed).
   *
   * Synchronous on purpose: one awaited lstat costs ~50 µs of thread-pool round trip, ~3 µs done directly.
   * Each name is classified once and each node built in one literal: on the 50,000-file bench image the
   * tree took 0.39 s instead of 0.52 s alone (median of 12), 0.31 s instead of 0.39 s within a conversion.
   */
  private mergeDirectory(dir: string, merged: DirNode, prefix: string, implicit: ReadonlySet<string>, mergedPath: readonly string[]): void {
    stepAside();
    const dirents = readdirSync(dir, { withFileTypes: true }).sort(byName);
    const names = dirents.map((dirent) => dirent.name);
    const kinds = names.map(classifyName);
    // Whiteouts first: they only ever affect lower layers, never entries of this same layer.
    if (kinds.some((kind) => kind.kind === 'opaque')) {
      for (const [name, child] of merged.children) if (!this.added.has(child)) merged.children.delete(name);
    }
    for (const kind of kinds) {
      if (kind.kind !== 'whiteout') continue;
      const child = merged.children.get(kind.target);
      if (child !== undefined && !this.added.has(child)) merged.children.delete(kind.target);
    }
    for (let index = 0; index < names.length; index++) {
      const name = names[index]!;
      if (kinds[index]!.kind !== 'plain' || CVMFS_CONTROL_FILES.has(name)) continue;
      const path = `${dir}/${name}`;
      if (!this.fileMetadata && dirents[index]!.isFile()) {
        this.place(merged, name, { kind: 'linked', source: path });
        continue;
      }
      const stat = lstatSync(path);
      const mode = stat.mode & 0o7777;
      if (stat.isFile()) {
        this.place(merged, name, {
          kind: 'file',
          size: stat.size,
          source: path,
          identity: `${stat.dev}:${stat.ino}`,
          mode,
          uid: stat.uid,
          gid: stat.gid,
          mtime: stat.mtime,
        });
      } else if (stat.isDirectory()) {
        const rel = prefix === '' ? name : `${prefix}/${name}`;
        const existing = merged.children.get(name);
        if (existing?.kind === 'symlink' && implicit.has(rel)) {
          // No directory entry of its own: the entries below go where the lower symlink leads, as
          // unpacking onto the lower layers would put them (containerd, umoci: lib/x with lib -> usr/lib
          // is usr/lib/x, and lib stays a symlink). A directory entry of its own replaces the symlink.
          this.mergeThroughSymlink(path, rel, implicit, [...mergedPath, name], stat);
          continue;
        }
        let node: DirNode;
        if (existing?.kind === 'dir') node = implicit.has(rel) ? existing : Object.assign(existing, metaOf(stat));
        else node = { kind: 'dir', children: new Map(), mode, uid: stat.uid, gid: stat.gid, mtime: stat.mtime };
        this.place(merged, name, node);
        this.mergeDirectory(path, node, rel, implicit, [...mergedPath, name]);
        // A new directory with no entry of its own that received nothing (it held only whiteouts) is not
        // made, as unpacking does not make it: what a lower layer had there stays.
        if (node !== existing && node.children.size === 0 && implicit.has(rel)) {
          if (existing === undefined) merged.children.delete(name);
          else merged.children.set(name, existing);
        }
      } else if (stat.isSymbolicLink()) {
        this.place(merged, name, { kind: 'symlink', target: readlinkSync(path), mode, uid: stat.uid, gid: stat.gid, mtime: stat.mtime });
      } else {
        this.warnings.push(`${path}: not a file, directory or symlink; left out of the flat image`);
      }
    }
  }

  /** Puts a node of the layer being merged in place, replacing what lower layers had there. */
  private place(dir: DirNode, name: string, node: MergedNode): void {
    dir.children.set(name, node);
    this.added.add(node);
  }

  /**
   * Merges the layer directory `dir` (`rel`, which the layer has no entry for) into the directory that the
   * symlink at `linkPath` in the tree leads to, resolved as securejoin does: rooted in the image (an
   * absolute target starts at its root, `..` stops there), at most MAX_SYMLINK_HOPS symlinks. Directories
   * missing on the way are made (0755, root), as unpacking through the link would make them, and removed
   * again if nothing lands in them (whiteouts alone make nothing). A loop, or a component that is not a
   * directory, fails the image, as it fails umoci.
   */
  private mergeThroughSymlink(dir: string, rel: string, implicit: ReadonlySet<string>, linkPath: string[], stat: Stats): void {
    const fail = (why: string) =>
      new DuccError('BOT_ERR_UNSAFE_ENTRY', `${this.label}, entries below '${rel}/': '${rel}' is a symlink in a lower layer ${why}`);
    const pending = [...linkPath];
    const stack: DirNode[] = [this.root];
    const path: string[] = [];
    const created: [DirNode, string, DirNode][] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (stack.length > 1) {
          stack.pop();
          path.pop();
        }
        continue;
      }
      const parent = stack.at(-1)!;
      let node = parent.children.get(part);
      if (node?.kind === 'symlink') {
        if (++hops > MAX_SYMLINK_HOPS) throw fail(`whose target cannot be resolved (more than ${MAX_SYMLINK_HOPS} symlinks)`);
        if (node.target.startsWith('/')) {
          stack.length = 1;
          path.length = 0;
        }
        pending.unshift(...node.target.split('/'));
        continue;
      }
      if (node === undefined) {
        if (isWhiteoutName(part)) throw fail(`leading to '${[...path, part].join('/')}', a whiteout name`);
        node = { kind: 'dir', children: new Map(), mode: 0o755, uid: 0, gid: 0, mtime: stat.mtime };
        this.place(parent, part, node);
        created.push([parent, part, node]);
      } else if (node.kind !== 'dir') {
        throw fail(`leading to '${[...path, part].join('/')}', which is not a directory`);
      }
      this.added.add(node);
      stack.push(node);
      path.push(part);
    }
    this.mergeDirectory(dir, stack.at(-1)!, rel, implicit, path);
    for (const [parent, name, node] of created.reverse()) {
      if (node.children.size > 0) break;
      parent.children.delete(name);
    }
  }

  /**
   * Points a hard link stored as an empty placeholder at what it names in the layers below, found as
   * link(2) would find it in the merged root (parent directories through symlinks, rooted in the image;
   * the last component not followed, so a link to a symlink is that symlink). A target that no layer
   * holds fails the image, as umoci fails it: the link cannot be made, and an empty file is not what the
   * image says.
   */
  private resolveExternalHardlink(link: { path: string; target: string }, label: string): void {
    const where = `${label}, entry '${link.path}'`;
    const target = this.lookup(link.target.split('/'), false);
    if (target === undefined) throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `${where}: hard link to '${link.target}', which no layer of the image holds`);
    if (target.kind === 'dir') throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `${where}: hard link to a directory '${link.target}'`);
    const components = link.path.split('/');
    const parent = this.lookup(components.slice(0, -1), true);
    const name = components.at(-1)!;
    const placeholder = parent?.kind === 'dir' ? parent.children.get(name) : undefined;
    if (placeholder?.kind !== 'file' && placeholder?.kind !== 'linked') {
      // Only with layer notes not written by this version (the extractor forgets replaced placeholders).
      this.warnings.push(`${where}: the placeholder of a hard link to '${link.target}' is no longer there; nothing linked`);
      return;
    }
    (parent as DirNode).children.set(name, { ...target });
  }

  /**
   * Finds the node at a path, following symlinks in directory components as if the tree were `/`
   * (never leaving it); the last component is not followed. With `parentOnly`, returns the directory.
   */
  lookup(components: string[], parentOnly: boolean): MergedNode | undefined {
    const pending = components.filter((c) => c !== '' && c !== '.');
    const last = parentOnly ? undefined : pending.pop();
    const stack: (MergedNode & { kind: 'dir' })[] = [this.root];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const node = stack.at(-1)!.children.get(part);
      if (node === undefined) return undefined;
      if (node.kind === 'symlink') {
        if (++hops > MAX_SYMLINK_HOPS) return undefined;
        if (node.target.startsWith('/')) stack.length = 1;
        pending.unshift(...node.target.split('/').filter((c) => c !== '' && c !== '.'));
        continue;
      }
      if (node.kind !== 'dir') return undefined;
      stack.push(node);
    }
    if (last === undefined) return stack.at(-1);
    return stack.at(-1)!.children.get(last);
  }

  /** True when the path resolves to something, following every symlink (like stat(2)). */
  resolves(path: string): boolean {
    let components = path.split('/');
    for (let hops = 0; hops <= MAX_SYMLINK_HOPS; hops++) {
      const node = this.lookup(components, false);
      if (node === undefined) return false;
      if (node.kind !== 'symlink') return true;
      const parent = components.slice(0, -1);
      components = node.target.startsWith('/') ? node.target.split('/') : [...parent, ...node.target.split('/')];
    }
    return false;
  }

  /** Adds or replaces an entry generated by us (Apptainer files); missing parents are created 0755. */
  add(
    entry:
      | { type: 'directory'; path: string; mode: number }
      | { type: 'file'; path: string; mode: number; content: Buffer }
      | { type: 'symlink'; path: string; target: string },
    mtime: Date,
  ): void {
    const components = entry.path.split('/');
    let dir: MergedNode & { kind: 'dir' } = this.root;
    for (const [index, part] of components.slice(0, -1).entries()) {
      let next = dir.children.get(part);
      // A symlinked parent (e.g. /etc → /usr/etc) is followed inside the tree, as writing a file would.
      if (next?.kind === 'symlink') next = this.lookup(components.slice(0, index + 1), true);
      if (next?.kind !== 'dir') {
        next = { kind: 'dir', children: new Map(), mode: 0o755, uid: 0, gid: 0, mtime };
        dir.children.set(part, next);
      }
      dir = next;
    }
    const name = components.at(-1)!;
    const meta = { uid: 0, gid: 0, mtime };
    if (entry.type === 'directory') {
      if (dir.children.get(name)?.kind !== 'dir') dir.children.set(name, { kind: 'dir', children: new Map(), mode: entry.mode, ...meta });
    } else if (entry.type === 'file') {
      dir.children.set(name, { kind: 'file', size: entry.content.length, content: entry.content, mode: entry.mode, ...meta });
    } else {
      dir.children.set(name, { kind: 'symlink', target: entry.target, mode: 0o777, ...meta });
    }
  }

  /**
   * The tree as publisher entries (the root first, as path ''), parents first, names sorted; files sharing
   * an inode become hard links. A plain generator: nothing here waits, and an async one costs a promise
   * per entry.
   */
  *entries(): Generator<TreeEntry> {
    const firstPathOf = new Map<string, string>();
    yield { type: 'directory', path: '', mode: this.root.mode, uid: this.root.uid, gid: this.root.gid, mtime: this.root.mtime };
    const stack: [string, MergedNode & { kind: 'dir' }][] = [['', this.root]];
    while (stack.length > 0) {
      const [prefix, dir] = stack.pop()!;
      const subdirs: [string, MergedNode & { kind: 'dir' }][] = [];
      for (const name of [...dir.children.keys()].sort()) {
        const node = dir.children.get(name)!;
        const path = prefix === '' ? name : `${prefix}/${name}`;
        if (node.kind === 'dir') {
          yield { type: 'directory', path, mode: node.mode, uid: node.uid, gid: node.gid, mtime: node.mtime };
          subdirs.push([path, node]);
        } else if (node.kind === 'symlink') {
          yield { type: 'symlink', path, target: node.target, uid: node.uid, gid: node.gid, mtime: node.mtime };
        } else if (node.kind === 'linked') {
          yield { type: 'link', path, source: node.source };
        } else {
          const first = node.identity === undefined ? undefined : firstPathOf.get(node.identity);
          if (first !== undefined) {
            yield { type: 'hardlink', path, target: first };
            continue;
          }
          if (node.identity !== undefined) firstPathOf.set(node.identity, path);
          yield {
            type: 'file',
            path,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime,
            size: node.size,
            ...(node.content === undefined ? { source: node.source! } : { content: node.content }),
          };
        }
      }
      stack.push(...subdirs.reverse());
    }
  }

  /** Metadata of the root directory (the top layer's `./` entry). */
  rootMeta(): Meta {
    return { mode: this.root.mode, uid: this.root.uid, gid: this.root.gid, mtime: this.root.mtime };
  }
}

/** `layer sha256:<d>` for a layer directory of the DUCC layout (`.layers/<xx>/<d>/layerfs`), else `layer <n>` (1 for the base). */
function layerLabel(dir: string, index: number): string {
  const digest = /\/\.layers\/[0-9a-f]{2}\/([0-9a-f]{64})\/layerfs$/.exec(dir)?.[1];
  return digest === undefined ? `layer ${index + 1}` : `layer sha256:${digest}`;
}

/** Code-unit order, as Array.prototype.sort orders plain strings. */
function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function metaOf(stat: { mode: number; uid: number; gid: number; mtime: Date }): Meta {
  return { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtime: stat.mtime };
}
