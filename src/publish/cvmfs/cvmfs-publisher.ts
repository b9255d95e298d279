// About 500 lines: the Publisher interface for a local stratum 0; commands, tars, staging and paths live in
// the files beside it (cvmfs-server.ts, ingest-tar.ts, layer-staging.ts, paths.ts).
import type { Stats } from 'node:fs';
import { chown, lstat, mkdir, readdir, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { catalogParents } from '../../layout/paths.ts';
import type { TreeEntry } from '../../unpack/tree-types.ts';
import { collectGarbage } from '../../util/collect-garbage.ts';
import { DuccError } from '../../util/errors.ts';
import type { DirectoryEntry, LayerBatch, Publisher, Transaction } from '../publisher.ts';
import { CvmfsServer } from './cvmfs-server.ts';
import { CATALOG_MARKER, type IngestTar } from './ingest-tar.ts';
import { DEFAULT_STAGING_DIR, LayerStaging, type StagedLayer } from './layer-staging.ts';
import {
  ancestors,
  checkNew,
  checkRequirements,
  describeType,
  ifExists,
  isMissing,
  isSameOrBelow,
  normalizeRelativePath,
  readDirectory,
  readLinkIfAny,
} from './paths.ts';
import { writeTree } from './tree-tar.ts';

export interface CvmfsServerPublisherOptions {
  /** Fully qualified repository name, e.g. `unpacked.cern.ch`. */
  repository: string;
  /** For a `cvmfs_repo` of the form `repo/sub`: every path of the Publisher interface is under `sub`. */
  subdirectory?: string;
  /** Where repositories are mounted; default `/cvmfs`. */
  mountRoot?: string;
  /** The `cvmfs_server` command (name looked up on PATH, or a path); default `cvmfs_server`. */
  cvmfsServer?: string;
  /** Extra environment variables for `cvmfs_server`, on top of this process's environment. */
  env?: Record<string, string | undefined>;
  /** Directory of the per-repository lock; default `/var/lock` if writable, else the OS temp dir. */
  lockDir?: string;
  /** How long to wait for another process holding the repository lock; default one hour. */
  lockWaitMs?: number;
  /** Local directory where layers are unpacked before their ingest; default `/var/tmp/ducc-gitops`. */
  stagingDir?: string;
  logger?: Logger;
}

export { DEFAULT_STAGING_DIR };

const REPOSITORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** One write of a transaction, applied when the transaction commits. */
type Operation =
  | { kind: 'file'; path: string; data: Buffer; mode: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'mkdir'; path: string }
  | { kind: 'remove'; path: string }
  | { kind: 'tree'; path: string; entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry> };

/**
 * Publishes into a CernVM-FS repository on its stratum 0 (release manager) through `cvmfs_server`:
 *
 * - `publishLayers`: every layer is unpacked by the same extractor as the directory publisher's (so both
 *   apply the same entry rules) into local staging, then all the layers of one image go in with **one**
 *   `cvmfs_server ingest`, with their `.metadata/` and nested-catalog markers;
 * - `transaction`: the flat tree, the metadata files and the public symlink of an image go in with **one**
 *   more ingest. The flat tree's files are tar hard links to the published layer files, which the ingest
 *   turns into catalog clones: no file content is read or written again. Only a transaction that removes
 *   files or symlinks (a `cvmfs_server ingest -d` removes directories only) runs as a classic
 *   `cvmfs_server transaction` / `publish` on the writable mount.
 *
 * So a new image costs at most two publishes, an image whose layers are all published one. Ingests keep
 * the tar's owners (`-k`): files of the image keep the image's owners and modes, and every directory and
 * file the publisher makes itself is 0755/0644 and owned by the repository owner (the owner of
 * `/cvmfs/<repo>`), so later transactions can write into it and every client can read it.
 *
 * One repository lock (see CvmfsServer) serialises every publish of this repository across processes.
 */
export class CvmfsServerPublisher implements Publisher {
  readonly description: string;
  readonly hardLinksTreeFiles = true;
  readonly readRoot: string;
  readonly repository: string;
  readonly subdirectory: string;

  readonly #repositoryRoot: string;
  readonly #server: CvmfsServer;
  readonly #staging: LayerStaging;
  readonly #log: Logger;
  #owner: { uid: number; gid: number } | undefined;

  constructor(options: CvmfsServerPublisherOptions) {
    if (!REPOSITORY_NAME.test(options.repository)) {
      throw new DuccError('BOT_ERR_CONFIG', `invalid CVMFS repository name '${options.repository}'`);
    }
    this.repository = options.repository;
    this.subdirectory = options.subdirectory === undefined ? '' : normalizeRelativePath(options.subdirectory, 'BOT_ERR_CONFIG');
    this.#repositoryRoot = path.join(options.mountRoot ?? '/cvmfs', this.repository);
    this.readRoot = this.subdirectory === '' ? this.#repositoryRoot : path.join(this.#repositoryRoot, this.subdirectory);
    const target = this.subdirectory === '' ? this.repository : `${this.repository}/${this.subdirectory}`;
    this.#log = (options.logger ?? pino()).child({ publisher: 'cvmfs', repository: this.repository });
    this.#server = new CvmfsServer({
      repository: this.repository,
      ...(options.cvmfsServer === undefined ? {} : { command: options.cvmfsServer }),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.lockDir === undefined ? {} : { lockDir: options.lockDir }),
      ...(options.lockWaitMs === undefined ? {} : { lockWaitMs: options.lockWaitMs }),
      logger: this.#log,
    });
    this.#staging = new LayerStaging(path.join(options.stagingDir ?? DEFAULT_STAGING_DIR, target.replaceAll('/', '_')));
    this.description = `cvmfs repository ${target} (${this.#server.command})`;
  }

  // ---- Publisher: reading and recovery ----------------------------------------------------------

  async recover(): Promise<void> {
    await this.#server.exclusive(async () => {
      await this.#server.waitForPublishing();
      const entry = await this.#server.listEntry();
      if (entry === undefined) {
        throw new DuccError('BOT_ERR_CVMFS', `repository ${this.repository} is not served by this machine (cvmfs_server list)`);
      }
      if (entry.inTransaction) {
        this.#log.warn('repository was left in a transaction (crash?); aborting it with cvmfs_server abort -f');
        await this.#server.run(['abort', '-f', this.repository]);
      }
      if (this.subdirectory !== '' && (await ifExists(lstat(this.readRoot))) === undefined) {
        // Ingests below the subdirectory need it to exist (an ingest would make it with owner -1).
        await this.#commitOnMount([{ kind: 'mkdir', path: '' }]);
      }
    });
    await this.#staging.removeStale();
  }

  async lstat(relPath: string): Promise<Stats | undefined> {
    return ifExists(lstat(this.#absolute(relPath)));
  }

  async readFile(relPath: string): Promise<Buffer | undefined> {
    return ifExists(readFile(this.#absolute(relPath)));
  }

  async readdir(relPath: string): Promise<DirectoryEntry[] | undefined> {
    return readDirectory(this.#absolute(relPath));
  }

  async readlink(relPath: string): Promise<string | undefined> {
    return readLinkIfAny(this.#absolute(relPath));
  }

  async staleStaging(): Promise<string[]> {
    return this.#staging.stale();
  }

  /** Under the repository lock of every ducc-gitops process (see CvmfsServer.exclusive); transactions inside publish without waiting. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.#server.exclusive(work);
  }

  /**
   * `cvmfs_server gc -f [-r <keepRevisions>] <repo>` under the repository lock: frees the backend storage
   * of objects no revision it keeps references (by default cvmfs_server keeps the revisions of the last
   * 3 days; `keepRevisions: 0` keeps only the newest). Needs CVMFS_GARBAGE_COLLECTION=true (mkfs -z);
   * named tags keep their revisions, and so their objects — automatic tags, and always `trunk-previous`,
   * the revision before the newest (checked on 2.12). So with `keepRevisions`, one empty revision is
   * published first: what the last publish removed is then freed now, not after the next publish.
   * Returns cvmfs_server's output.
   */
  async collectBackendGarbage(options: { keepRevisions?: number } = {}): Promise<string> {
    const keep = options.keepRevisions === undefined ? [] : ['-r', String(options.keepRevisions)];
    return this.#server.exclusive(async () => {
      try {
        if (options.keepRevisions !== undefined) await this.#commitOnMount([]);
        return await this.#server.run(['gc', '-f', ...keep, this.repository]);
      } catch (error) {
        if (/not enabled/i.test((error as Error).message)) {
          throw new DuccError(
            'BOT_ERR_CVMFS',
            `cvmfs_server gc refuses ${this.repository}: garbage collection is not enabled for it (set CVMFS_GARBAGE_COLLECTION=true in /etc/cvmfs/repositories.d/${this.repository}/server.conf, or make the repository with mkfs -z)`,
            { cause: error, temporary: false },
          );
        }
        throw error;
      }
    });
  }

  // ---- Publisher: layers ------------------------------------------------------------------------

  async publishLayers<T>(work: (batch: LayerBatch) => Promise<T>): Promise<T> {
    return this.#staging.run(work, (staged) => this.#server.exclusive(() => this.#ingestLayers(staged)));
  }

  /** One ingest of every staged layer (under the repository lock). */
  async #ingestLayers(staged: StagedLayer[]): Promise<void> {
    const layers: StagedLayer[] = [];
    const deletes: string[] = [];
    for (const layer of staged) {
      const existing = await this.lstat(layer.layerDir);
      if (existing !== undefined) {
        const complete = (await this.lstat(`${layer.layerDir}/layerfs`)) && (await this.lstat(`${layer.layerDir}/.metadata/layers.json`));
        // Completed meanwhile by another process: keep theirs. Otherwise what is there goes first.
        if (complete && !layer.replace) continue;
        if (!existing.isDirectory()) throw new DuccError('BOT_ERR_PUBLISH', `cannot publish layer: ${layer.layerDir} exists and is not a directory`);
        deletes.push(layer.layerDir);
      }
      layers.push(layer);
    }
    if (layers.length === 0) return;
    // Replaced layers are written again below the removed directory: removed in a publish of their own.
    await this.#server.deleteDirectories(deletes.map((dir) => this.#serverPath(dir)));
    const writer = await this.#treeWriter([]);
    await this.#server.ingest({ base: this.#ingestBase(), deletes: [] }, async (tar) => {
      writer.attach(tar);
      for (const layer of layers) {
        for (const dir of catalogParents(layer.layerDir)) await writer.markedDirectory(dir);
        await writer.parents(layer.layerDir);
        await writer.ownDirectory(layer.layerDir);
        await tar.localTree(path.join(layer.local, 'layerfs'), `${layer.layerDir}/layerfs`, {
          marker: true,
          skipped: (name) => this.#log.warn({ entry: name }, 'left out of the ingest: a .cvmfscatalog that is not a regular file'),
        });
        await writer.ownDirectory(`${layer.layerDir}/.metadata`);
        for (const name of (await readdir(path.join(layer.local, '.metadata'))).sort()) {
          await writer.ownFile(`${layer.layerDir}/.metadata/${name}`, await readFile(path.join(layer.local, '.metadata', name)), 0o644);
        }
      }
    });
  }

  // ---- Publisher: transactions ------------------------------------------------------------------

  async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    const operations: Operation[] = [];
    const requirements: string[] = [];
    const session = { open: true };
    const record = (operation: Operation): Promise<void> => {
      if (!session.open) return Promise.reject(new DuccError('BOT_ERR_PUBLISH', `transaction on ${this.repository} is already closed`));
      operations.push(operation);
      return Promise.resolve();
    };
    const tx: Transaction = {
      writeFile: (relPath, data, mode = 0o644) => record({ kind: 'file', path: checkNew(relPath), data: Buffer.from(data), mode }),
      symlink: (relPath, target) => record({ kind: 'symlink', path: checkNew(relPath), target }),
      mkdir: (relPath) => record({ kind: 'mkdir', path: normalizeRelativePath(relPath, 'BOT_ERR_PUBLISH') }),
      remove: (relPath) => record({ kind: 'remove', path: checkNew(relPath) }),
      tree: (relDir, entries) => record({ kind: 'tree', path: checkNew(relDir), entries }),
      requires: (relPath) => {
        if (!session.open) return Promise.reject(new DuccError('BOT_ERR_PUBLISH', `transaction on ${this.repository} is already closed`));
        requirements.push(checkNew(relPath));
        return Promise.resolve();
      },
    };
    let result: T;
    try {
      result = await work(tx);
    } finally {
      session.open = false;
    }
    // What built the operations (a flat tree's building) is garbage now; the ingest comes on top.
    if (operations.some((operation) => operation.kind === 'tree')) collectGarbage();
    if (operations.length > 0) {
      await this.#server.exclusive(async () => {
        await checkRequirements(this, requirements);
        await this.#commit(operations);
      });
    }
    return result;
  }

  /**
   * Publishes a transaction's operations (under the repository lock): as one ingest when every removal
   * is of a directory, else as a classic transaction on the writable mount.
   */
  async #commit(all: Operation[]): Promise<void> {
    let operations = all;
    const removals: string[] = [];
    let needsMount = false;
    for (const [index, operation] of operations.entries()) {
      if (operation.kind !== 'remove') continue;
      const existing = await this.lstat(operation.path);
      if (existing === undefined) continue;
      // A removal after a write below it, or of a file or symlink, needs the order of a real filesystem.
      const writtenBefore = operations.slice(0, index).some((earlier) => earlier.kind !== 'remove' && isSameOrBelow(earlier.path, operation.path));
      if (!existing.isDirectory() || writtenBefore) needsMount = true;
      removals.push(operation.path);
    }
    // A tree published meanwhile by another process (same content address) is kept as it is.
    const published = new Set<Operation>();
    for (const operation of operations) if (operation.kind === 'tree' && (await this.lstat(operation.path)) !== undefined) published.add(operation);
    operations = operations.filter((operation) => !published.has(operation));
    if (needsMount) return this.#commitOnMount(operations);
    // A directory removed and written below again is removed in a publish of its own first (see
    // CvmfsServer.deleteDirectories); the others go with the ingest of the writes.
    const rewritten = removals.filter((dir) => operations.some((op) => op.kind !== 'remove' && isSameOrBelow(op.path, dir)));
    await this.#server.deleteDirectories(rewritten.map((dir) => this.#serverPath(dir)));
    const sameIngest = removals.filter((dir) => !rewritten.includes(dir));
    const writer = await this.#treeWriter(sameIngest);
    for (const operation of operations) {
      if (operation.kind === 'remove') continue;
      await writer.checkTarget(operation);
    }
    if (operations.every((op) => op.kind === 'remove')) return this.#server.deleteDirectories(sameIngest.map((dir) => this.#serverPath(dir)));
    await this.#server.ingest({ base: this.#ingestBase(), deletes: sameIngest.map((dir) => this.#serverPath(dir)) }, async (tar) => {
      writer.attach(tar);
      for (const operation of operations) {
        switch (operation.kind) {
          case 'file':
            await writer.parents(operation.path);
            await writer.ownFile(operation.path, operation.data, operation.mode);
            break;
          case 'symlink':
            await writer.parents(operation.path);
            await tar.symlink(operation.path, operation.target, { ...(await this.#ownerIds()), mtime: new Date() });
            break;
          case 'mkdir':
            await writer.parents(operation.path);
            await writer.ownDirectory(operation.path);
            break;
          case 'tree':
            for (const dir of catalogParents(operation.path)) await writer.markedDirectory(dir);
            await writer.parents(operation.path);
            await writeTree(tar, operation.path, operation.entries, await this.#ownerIds(), (source, entryPath) => this.#publishedPath(source, entryPath));
            break;
          case 'remove':
            break;
        }
      }
    });
  }

  /** A classic transaction: `cvmfs_server transaction`, the writes on the mount, `publish` (or `abort -f`). */
  async #commitOnMount(operations: Operation[]): Promise<void> {
    await this.#server.run(['transaction', this.repository]);
    try {
      const owner = await this.#ownerIds();
      for (const operation of operations) {
        const abs = operation.path === '' ? this.readRoot : path.join(this.readRoot, operation.path);
        switch (operation.kind) {
          case 'remove':
            await rm(abs, { recursive: true, force: true });
            break;
          case 'mkdir':
            await this.#ensureDirectory(abs, operation.path, owner);
            break;
          case 'file': {
            await this.#ensureDirectory(path.dirname(abs), operation.path, owner);
            await rm(abs, { force: true });
            await writeFile(abs, operation.data, { mode: operation.mode, flag: 'wx' });
            await chown(abs, owner.uid, owner.gid).catch(() => {});
            break;
          }
          case 'symlink': {
            await this.#ensureDirectory(path.dirname(abs), operation.path, owner);
            const existing = await ifExists(lstat(abs));
            if (existing !== undefined && !existing.isSymbolicLink()) {
              throw new DuccError('BOT_ERR_PUBLISH', `refusing to replace ${operation.path} with a symlink: it exists and is a ${describeType(existing)}`);
            }
            await rm(abs, { force: true });
            await symlink(operation.target, abs);
            break;
          }
          case 'tree':
            // Trees always go in with an ingest; only a caller mixing them with file removals gets here.
            throw new DuccError('BOT_ERR_PUBLISH', `a transaction that removes files cannot also publish the tree ${operation.path}`);
        }
      }
      await this.#server.run(['publish', this.repository]);
    } catch (error) {
      this.#log.warn({ err: error }, 'transaction failed; aborting it');
      await this.#server.abortLeftoverTransaction();
      throw error;
    }
  }

  /**
   * Creates `directory` and its parents (0755, owned by the repository owner), after checking that its
   * nearest existing ancestor resolves inside the repository: a symlink in the published tree must not
   * redirect our writes.
   */
  async #ensureDirectory(directory: string, relPath: string, owner: { uid: number; gid: number }): Promise<void> {
    let probe = directory;
    const missing: string[] = [];
    for (;;) {
      try {
        await stat(probe);
        break;
      } catch (error) {
        if (!isMissing(error) || probe === path.dirname(probe)) throw error;
        missing.unshift(probe);
        probe = path.dirname(probe);
      }
    }
    const [resolved, root] = await Promise.all([realpath(probe), realpath(this.#repositoryRoot)]);
    if (resolved !== root && !resolved.startsWith(root + path.sep)) {
      throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `${relPath} resolves outside ${this.#repositoryRoot} (through ${resolved})`);
    }
    for (const dir of missing) {
      await mkdir(dir, { mode: 0o755 });
      await chown(dir, owner.uid, owner.gid).catch(() => {});
    }
  }

  // ---- helpers ----------------------------------------------------------------------------------

  /**
   * Writes the directories and files the publisher makes itself into an ingest tar: parents only where
   * the repository lacks them (an ingest would make a missing parent with owner -1, which later
   * transactions cannot write into), each once, 0755 and owned by the repository owner.
   */
  async #treeWriter(deleted: string[]) {
    const owner = await this.#ownerIds();
    const made = new Set<string>();
    let tar: IngestTar | undefined;
    const exists = async (relPath: string): Promise<boolean> => {
      if (made.has(relPath)) return true;
      if (deleted.some((dir) => isSameOrBelow(relPath, dir))) return false;
      return (await this.lstat(relPath)) !== undefined;
    };
    const out = (): IngestTar => tar ?? fail('ingest tar not attached');
    const writer = {
      attach(target: IngestTar): void {
        tar = target;
      },
      /** Checks, before the ingest starts, that an operation's target may be written. */
      checkTarget: async (operation: Exclude<Operation, { kind: 'remove' }>): Promise<void> => {
        for (const parent of ancestors(operation.path)) {
          const found = deleted.some((dir) => isSameOrBelow(parent, dir)) ? undefined : await this.lstat(parent);
          if (found !== undefined && !found.isDirectory()) {
            throw new DuccError('BOT_ERR_PUBLISH', `cannot write ${operation.path}: its parent ${parent} is a ${describeType(found)} in ${this.description}`);
          }
        }
        const found = deleted.some((dir) => isSameOrBelow(operation.path, dir)) ? undefined : await this.lstat(operation.path);
        if (found === undefined) return;
        if (operation.kind === 'tree') throw new DuccError('BOT_ERR_PUBLISH', `cannot publish tree: ${operation.path} already exists in ${this.description}`);
        if (operation.kind === 'mkdir' && !found.isDirectory())
          throw new DuccError('BOT_ERR_PUBLISH', `cannot make directory ${operation.path}: it is a ${describeType(found)}`);
        if (operation.kind === 'symlink' && !found.isSymbolicLink()) {
          throw new DuccError('BOT_ERR_PUBLISH', `refusing to replace ${operation.path} with a symlink: it exists and is a ${describeType(found)}`);
        }
        if (operation.kind === 'file' && !found.isFile())
          throw new DuccError('BOT_ERR_PUBLISH', `refusing to replace ${operation.path} with a file: it is a ${describeType(found)}`);
      },
      /** Every missing ancestor of `relPath` (not `relPath` itself). */
      parents: async (relPath: string): Promise<void> => {
        for (const parent of ancestors(relPath)) await writer.ownDirectory(parent);
      },
      /** `relPath` as a directory of ours, unless it exists. */
      ownDirectory: async (relPath: string): Promise<void> => {
        if (await exists(relPath)) return;
        await out().directory(relPath, { ...owner, mode: 0o755, mtime: new Date() });
        made.add(relPath);
      },
      /** A directory of ours that DUCC makes a nested catalog, with its marker unless it has one. */
      markedDirectory: async (relPath: string): Promise<void> => {
        await writer.parents(relPath);
        await writer.ownDirectory(relPath);
        const marker = `${relPath}/${CATALOG_MARKER}`;
        if (!(await exists(marker))) await writer.ownFile(marker, Buffer.alloc(0), 0o644);
      },
      ownFile: async (relPath: string, data: Buffer, mode: number): Promise<void> => {
        await out().file(relPath, { ...owner, mode, mtime: new Date() }, data);
        made.add(relPath);
      },
    };
    return writer;
  }

  /** The repository owner's uid and gid: those of `/cvmfs/<repo>`, which cvmfs_server mkfs gives to the owner. */
  async #ownerIds(): Promise<{ uid: number; gid: number }> {
    if (this.#owner === undefined) {
      const root = await stat(this.#repositoryRoot);
      this.#owner = { uid: root.uid, gid: root.gid };
    }
    return this.#owner;
  }

  /** A file of a published layer named by its absolute path under readRoot, as an ingest-relative path. */
  #publishedPath(source: string, entryPath: string): string {
    const prefix = `${this.readRoot}/`;
    if (!source.startsWith(prefix)) {
      throw new DuccError('BOT_ERR_PUBLISH', `tree entry ${entryPath}: ${source} is not a published file of ${this.description}`);
    }
    return normalizeRelativePath(source.slice(prefix.length), 'BOT_ERR_PUBLISH');
  }

  /** `-b` of our ingests: the repository root, or the subdirectory every path is relative to. */
  #ingestBase(): string {
    return this.subdirectory === '' ? '/' : this.subdirectory;
  }

  /** A readRoot-relative path as cvmfs_server wants it: relative to the repository root. */
  #serverPath(rel: string): string {
    return this.subdirectory === '' ? rel : `${this.subdirectory}/${rel}`;
  }

  #absolute(relPath: string): string {
    const rel = normalizeRelativePath(relPath, 'BOT_ERR_PUBLISH');
    return rel === '' ? this.readRoot : path.join(this.readRoot, rel);
  }
}

function fail(message: string): never {
  throw new Error(message);
}
