import {
  chmodSync,
  chownSync,
  constants as fsConstants,
  copyFileSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, open, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { extractLayer } from '../unpack/extract-layer.ts';
import { FileWriterSession } from '../unpack/file-writer.ts';
import { linkOrCopy, tryLink } from '../unpack/link-file.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { catalogParents } from '../layout/paths.ts';
import type { LayerUnpackResult, TreeEntry } from '../unpack/tree-types.ts';
import { FileLock } from './file-lock.ts';
import { removeTree } from './remove-tree.ts';
import type { DirectoryEntry, LayerBatch, LayerMetadata, Publisher, Transaction } from './publisher.ts';
import { stepAside } from '../util/yield-gate.ts';
import { staleStaging } from './stale-staging.ts';

const IS_ROOT = process.getuid?.() === 0;

/**
 * The embedded default publisher: a plain directory standing in for `/cvmfs`, holding
 * `<root>/<cvmfs_repo>/...` in exactly the layout DUCC writes into a CVMFS repository.
 *
 * Everything is built in a staging directory on the same filesystem (`<root>/.ducc-staging/`) and made
 * visible with a single rename, so a crash never leaves a half-written layer, flat tree, symlink or
 * metadata file under its final name. Each process stages under its own `<pid>-*` directory; `recover()`
 * removes those of processes that are gone. Files of the flat tree are hard links to the unpacked layer
 * files (same bytes, same metadata) so each file's content is written once; across filesystems they are
 * copied (reflinked where the filesystem can).
 *
 * Durability (`sync`, default on): before a staged layer or tree gets its final name, its filesystem is
 * flushed (`sync --file-system`, i.e. syncfs(2): one call for thousands of files; not on a tmpfs or ramfs,
 * which has nothing to flush), and each small metadata file is fdatasync-ed before its rename. So even a power failure cannot leave a final name
 * whose content was never written; at worst the rename itself is lost and the next run redoes the work.
 * A crash of the process alone loses nothing either way (the kernel has the data).
 *
 * Locking: transactions hold the repository lock (`<root>/.ducc-staging/<repo>.lock`, flock(1)) shared,
 * so conversions publish side by side; `exclusive()` (garbage collection) holds it alone. Layers are
 * published without it: a transaction that references a layer checks it with `requires` under the lock.
 */
export class DirectoryPublisher implements Publisher {
  readonly description: string;
  readonly hardLinksTreeFiles = true;
  readonly readRoot: string;
  private readonly stagingRoot: string;
  private readonly sync: boolean;
  private readonly lock: FileLock;

  constructor(options: { root: string; repository: string; sync?: boolean; lockWaitMs?: number }) {
    this.sync = options.sync ?? true;
    this.readRoot = join(options.root, options.repository);
    this.stagingRoot = join(options.root, '.ducc-staging', options.repository.replaceAll('/', '_'));
    this.description = `directory ${this.readRoot}`;
    this.lock = new FileLock(`${this.stagingRoot}.lock`, { waitMs: options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS });
  }

  async recover(): Promise<void> {
    await makeDirectories(this.readRoot);
    for (const dir of await staleStaging(this.stagingRoot)) await removeTree(dir);
  }

  staleStaging(): Promise<string[]> {
    return staleStaging(this.stagingRoot);
  }

  async readdir(relPath: string): Promise<DirectoryEntry[] | undefined> {
    try {
      const entries = await readdir(join(this.readRoot, relPath), { withFileTypes: true });
      return entries.map((entry) => ({
        name: entry.name,
        type: entry.isDirectory() ? 'directory' : entry.isSymbolicLink() ? 'symlink' : entry.isFile() ? 'file' : 'other',
      }));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async readlink(relPath: string): Promise<string | undefined> {
    try {
      return await readlink(join(this.readRoot, relPath));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (isMissing(error) || code === 'EINVAL') return undefined;
      throw error;
    }
  }

  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.lock.run('exclusive', work);
  }

  // lstat and readFile are synchronous inside (the interface stays a promise): they look at one name or
  // read one small metadata file, ~3 µs done directly against ~40 µs of thread-pool round trip for an
  // awaited call, and a reconcile makes a few of them per image (a flat tree's Apptainer files alone are
  // about twenty).
  lstat(relPath: string): Promise<Stats | undefined> {
    try {
      return Promise.resolve(lstatSync(join(this.readRoot, relPath)));
    } catch (error) {
      if (isMissing(error)) return Promise.resolve(undefined);
      return Promise.reject(error);
    }
  }

  readFile(relPath: string): Promise<Buffer | undefined> {
    try {
      return Promise.resolve(readFileSync(join(this.readRoot, relPath)));
    } catch (error) {
      if (isMissing(error)) return Promise.resolve(undefined);
      return Promise.reject(error);
    }
  }

  async publishLayers<T>(work: (batch: LayerBatch) => Promise<T>): Promise<T> {
    return work({ add: (layerDir, tar, metadata, options) => this.publishLayer(layerDir, tar, metadata, options?.replace ?? false) });
  }

  /** One layer, staged and renamed into place on its own: a layer is visible as soon as it is complete. */
  async publishLayer(layerDir: string, tar: Readable, metadata: LayerMetadata, replace = false): Promise<LayerUnpackResult> {
    const stage = await this.makeStage();
    try {
      // The staging directory becomes `.layers/<xx>/<d>/`: readable by all, as is what we make in it
      // (a `./` entry of the layer then gives layerfs the image's mode).
      await chmod(stage, 0o755);
      const layerfs = join(stage, 'layerfs');
      await mkdir(layerfs);
      await chmod(layerfs, 0o755);
      // Errors name the layer by its digest (`.layers/<xx>/<hex>` is the sha256 of the compressed blob).
      const result = await extractLayer(tar, layerfs, { label: `layer sha256:${layerDir.split('/').at(-1)}` });
      // `cvmfs_server ingest --catalog` makes layerfs a nested catalog; mirror its marker. The layer may
      // hold its own `.cvmfscatalog` — a symlink out of the tree, or a hard link to one of its files —
      // so whatever is there is removed first and the marker created fresh (O_EXCL), never written through.
      await rm(join(layerfs, '.cvmfscatalog'), { recursive: true, force: true });
      await writeFile(join(layerfs, '.cvmfscatalog'), '', { flag: 'wx', mode: 0o644 });
      await chmod(join(layerfs, '.cvmfscatalog'), 0o644);
      await mkdir(join(stage, '.metadata'));
      await chmod(join(stage, '.metadata'), 0o755);
      for (const [name, bytes] of Object.entries(metadata(result))) {
        await writeFile(join(stage, '.metadata', name), bytes, { mode: 0o644 });
        await chmod(join(stage, '.metadata', name), 0o644);
      }
      await this.writeCatalogMarkers(catalogParents(layerDir));
      await this.moveIntoPlace(stage, layerDir, replace);
      return result;
    } finally {
      await removeTree(stage);
    }
  }

  /** Builds a tree in staging and renames it into place (the `tree` call of a transaction). */
  async publishTree(relDir: string, entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry>): Promise<void> {
    const stage = await this.makeStage();
    // Every other run of LINK_RUN hard links goes to a file-writer thread, the rest are made here: link(2)
    // is kernel work, and two threads linking into different directories take about half the time.
    const writer = FileWriterSession.open();
    let links = 0;
    try {
      const tree = join(stage, 'tree');
      await mkdir(tree, { mode: 0o700 });
      // Without an entry for the tree's root (path ''), the root is ours: 0755.
      await chmod(tree, 0o755);
      const directories: { path: string; mode: number; uid: number; gid: number; mtime: Date }[] = [];
      // Synchronous filesystem calls on purpose: a flat tree can hold tens of thousands of entries and an
      // awaited call costs ~50 µs of thread-pool round trip against ~3 µs done directly. Entry paths are
      // tree-relative and normalised (FlatTree's names come from directory listings), so they are joined
      // by hand: path.join's normalising was ~40 ms per 50,000 entries.
      const place = (entry: TreeEntry): void => {
        const path = entry.path === '' ? tree : `${tree}/${entry.path}`;
        switch (entry.type) {
          case 'directory':
            stepAside(); // in `ducc serve`'s conversion thread, while webhooks are answered (yield-gate.ts)
            if (entry.path !== '') mkdirSync(path, { mode: 0o700 });
            directories.push({ path, mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime });
            break;
          case 'file':
            if (entry.source !== undefined && tryLink(entry.source, path)) break;
            if (entry.source !== undefined) copyFileSync(entry.source, path, fsConstants.COPYFILE_FICLONE);
            else writeFileSync(path, entry.content ?? Buffer.alloc(0), { flag: 'wx', mode: 0o600 });
            if (IS_ROOT) chownSync(path, entry.uid, entry.gid);
            chmodSync(path, entry.mode);
            utimesSync(path, entry.mtime, entry.mtime);
            break;
          case 'symlink':
            symlinkSync(entry.target, path);
            if (IS_ROOT) lchownSync(path, entry.uid, entry.gid);
            lutimesSync(path, entry.mtime, entry.mtime);
            break;
          case 'hardlink':
            writer?.settle(); // the target may be a link still in flight
            linkSync(`${tree}/${entry.target}`, path);
            break;
          case 'link':
            if (writer !== undefined && (links++ & LINK_RUN) !== 0 && writer.acceptsLinks()) writer.link(entry.source, path, `flat tree entry '${entry.path}'`);
            else linkOrCopy(entry.source, path);
            break;
        }
      };
      if (Symbol.iterator in entries) for (const entry of entries) place(entry);
      else for await (const entry of entries) place(entry);
      // Every link is in place before the catalog marker and the directory times (a link changes its
      // directory's mtime).
      writer?.settle();
      // As `cvmfs_server ingest --catalog` would, make the tree a nested catalog.
      // (Removed first: the name may be a hard link into a layer, which must never be written through.)
      rmSync(join(tree, '.cvmfscatalog'), { force: true });
      writeFileSync(join(tree, '.cvmfscatalog'), '', { flag: 'wx', mode: 0o644 });
      chmodSync(join(tree, '.cvmfscatalog'), 0o644);
      for (const dir of directories.reverse()) {
        if (IS_ROOT) chownSync(dir.path, dir.uid, dir.gid);
        chmodSync(dir.path, dir.mode);
        utimesSync(dir.path, dir.mtime, dir.mtime);
      }
      await this.writeCatalogMarkers(catalogParents(relDir));
      await this.moveIntoPlace(tree, relDir, false);
    } finally {
      // The writer thread is done with the stage before it is removed.
      writer?.close();
      await removeTree(stage);
    }
  }

  async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.lock.run('shared', () => this.transactionLocked(work));
  }

  private async transactionLocked<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    const stage = await this.makeStage();
    let counter = 0;
    const temp = () => join(stage, `t${counter++}`);
    const final = (relPath: string) => join(this.readRoot, relPath);
    const tx: Transaction = {
      writeFile: async (relPath, data, mode = 0o644) => {
        const path = temp();
        const handle = await open(path, 'wx', mode);
        try {
          await handle.writeFile(data);
          if (this.sync) await handle.datasync();
        } finally {
          await handle.close();
        }
        await chmod(path, mode);
        await makeDirectories(dirname(final(relPath)));
        await rename(path, final(relPath));
      },
      symlink: async (relPath, target) => {
        const existing = await this.lstat(relPath);
        if (existing && !existing.isSymbolicLink()) {
          throw new DuccError('BOT_ERR_PUBLISH', `${relPath} exists and is not a symlink; refusing to replace it`);
        }
        const path = temp();
        await symlink(target, path);
        await makeDirectories(dirname(final(relPath)));
        await rename(path, final(relPath));
      },
      mkdir: async (relPath) => {
        await makeDirectories(final(relPath));
      },
      tree: (relDir, entries) => this.publishTree(relDir, entries),
      requires: async (relPath) => {
        // Under the shared lock: no garbage collection removes anything until this transaction ends.
        if ((await this.lstat(relPath)) === undefined) {
          throw new DuccError('BOT_ERR_PUBLISH', `${relPath} is gone from ${this.description} (removed by a garbage collection?); try again`, {
            temporary: true,
          });
        }
      },
      remove: async (relPath) => {
        // Rename away first so the name disappears at once, then delete at leisure.
        try {
          await rename(final(relPath), temp());
        } catch (error) {
          if (isMissing(error)) return;
          throw error;
        }
      },
    };
    try {
      return await work(tx);
    } finally {
      // What was removed was renamed into the stage: deleting it need not keep others waiting for the lock.
      await this.lock.afterRelease(() => removeTree(stage));
    }
  }

  private async makeStage(): Promise<string> {
    await mkdir(this.stagingRoot, { recursive: true });
    return mkdtemp(join(this.stagingRoot, `${process.pid}-`));
  }

  /**
   * Renames a finished staging directory to its final name; if another process got there first, keeps
   * theirs. With `replace`, what is there is first renamed away (into the stage, removed with it).
   */
  private async moveIntoPlace(staged: string, relDir: string, replace: boolean): Promise<void> {
    const target = join(this.readRoot, relDir);
    await this.flushToDisk(staged);
    await makeDirectories(dirname(target));
    if (replace) {
      try {
        await rename(target, `${staged}.replaced`);
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
      await removeTree(`${staged}.replaced`);
    }
    try {
      await rename(staged, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return; // identical content published concurrently
      throw error;
    }
  }

  /** Empty `.cvmfscatalog` files in these directories (created 0755 if missing), where there is none yet. */
  private async writeCatalogMarkers(dirs: string[]): Promise<void> {
    for (const dir of dirs) {
      const marker = join(this.readRoot, dir, '.cvmfscatalog');
      if (await this.lstat(`${dir}/.cvmfscatalog`)) continue;
      await makeDirectories(dirname(marker));
      await writeFile(marker, '', { flag: 'w', mode: 0o644 });
      await chmod(marker, 0o644); // whatever the umask
    }
  }

  /**
   * syncfs(2) of the filesystem holding `path`, through coreutils' `sync --file-system` (no shell); not
   * on a filesystem in memory (tmpfs, ramfs), where there is nothing to flush and starting the process is
   * all it would cost (~15 ms of this process's time per layer).
   */
  private async flushToDisk(path: string): Promise<void> {
    if (!this.sync) return;
    if (IN_MEMORY_FILESYSTEMS.has(statfsSync(path).type)) return;
    try {
      await execFileAsync('sync', ['--file-system', path]);
    } catch (error) {
      throw new DuccError(
        'BOT_ERR_PUBLISH',
        `cannot flush ${path} to disk with 'sync --file-system' (coreutils): ${errorMessage(error)}; set publisher.sync: false in the config to publish without flushing`,
        { cause: error },
      );
    }
  }
}

const execFileAsync = promisify(execFile);
/** statfs(2) magic numbers of tmpfs and ramfs. */
const IN_MEMORY_FILESYSTEMS = new Set([0x01021994, 0x858458f6]);

/**
 * `mkdir -p` whose new directories are all 0755 whatever the umask: everything the publisher makes in the
 * repository is read by others (CVMFS clients, Apptainer, thin images), only image content keeps the
 * image's modes.
 */
async function makeDirectories(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: 0o755 });
  if (first === undefined) return;
  for (let dir = path; ; dir = dirname(dir)) {
    await chmod(dir, 0o755);
    if (dir === first || dir === dirname(dir)) break;
  }
}

/** How long a transaction or a garbage collection waits for the repository lock: one hour. */
const DEFAULT_LOCK_WAIT_MS = 60 * 60 * 1000;

/** Hard links per run handed alike (to the writer thread, or made here): one writer batch; a power of two (used as a bit mask). */
const LINK_RUN = 256;

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
