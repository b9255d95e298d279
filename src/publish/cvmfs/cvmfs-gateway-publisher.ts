import type { Stats } from 'node:fs';
import { chown, lstat, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { catalogParents } from '../../layout/paths.ts';
import { DuccError, errorMessage } from '../../util/errors.ts';
import type { DirectoryEntry, LayerBatch, Publisher, Transaction } from '../publisher.ts';
import { CvmfsCommandError, CvmfsServer, DEFAULT_LOCK_WAIT_MS } from './cvmfs-server.ts';
import { CATALOG_MARKER, IngestTar } from './ingest-tar.ts';
import { DEFAULT_STAGING_DIR, LayerStaging, type StagedLayer } from './layer-staging.ts';
import {
  ancestors,
  checkNew,
  checkRequirements,
  describeType,
  ifExists,
  isSameOrBelow,
  normalizeRelativePath,
  parentOf,
  readDirectory,
  readLinkIfAny,
} from './paths.ts';
import { writeTree } from './tree-tar.ts';
import { units, visibleAfter, type Expectation, type Operation, type Unit } from './gateway-units.ts';
import type { CvmfsServerPublisherOptions } from './cvmfs-publisher.ts';

const REPOSITORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Waits between two attempts at a lease another publisher holds: doubling from the first to the last. */
const BUSY_RETRY_FIRST_MS = 100;
const BUSY_RETRY_MAX_MS = 5_000;
/** A path nobody publishes, leased for a moment to bring this node's view up to date. */
const REFRESH_LEASE = '.ducc-gitops-refresh';
/** How long a publish may take to show in this node's mount (see #awaitVisible). */
const VISIBLE_WAIT_MS = 120_000;
/** Publishes retried after a lease was lost (expired, or the gateway restarted) before giving up. */
const LOST_LEASE_ATTEMPTS = 3;

/**
 * Publishes into a CernVM-FS repository through its **repository gateway**, from one publisher node of
 * possibly many (`cvmfs_server mkfs -w <stratum 0> -u gw,...`): every publish takes a lease on the path it
 * changes, so publishers on several machines commit disjoint paths of one repository at the same time.
 *
 * - each layer is its own lease and its own ingest, `-b .layers/<xx>/<d>` (layerfs, .metadata, marker);
 * - each flat tree likewise at `.flat/<xx>/<d>`, with the files' content: an ingest sees only its lease, so
 *   it cannot clone files of the layers as the local publisher does (`hardLinksTreeFiles` is false);
 * - the other writes of a transaction are grouped by directory, one lease and one ingest per directory
 *   (`.metadata/<registry>/<repository>:<tag>`, `<registry>/<repository>` for the public name), in the
 *   order of the transaction: the public name is published last, after its tree and metadata;
 * - a lease's parent must exist (the gateway refuses a lease below a missing path, and an ingest below a
 *   missing parent would make it with owner -1): missing parents are made first, by a classic transaction
 *   leasing the highest missing one; no template transactions (they end the lease);
 * - a path another publisher holds ("lease path busy") is waited for, with backoff, up to lockWaitMs; a
 *   publish whose lease was lost (expired, gateway restarted) is aborted and tried again.
 *
 * After a crash, the lease this node held stays until `recover()` aborts the transaction (or until the
 * gateway's lease time runs out, if the node never comes back); the guard of CvmfsServer.ingest makes
 * sure that a cut tar is never committed. Layers' `origin.json` is written when the layer is published
 * (`recordsEveryOrigin` is false): adding every later image would take a lease on each shared layer for
 * every image, and nothing reads it.
 */
export class CvmfsGatewayPublisher implements Publisher {
  readonly description: string;
  readonly hardLinksTreeFiles = false;
  readonly recordsEveryOrigin = false;
  readonly readRoot: string;
  readonly repository: string;
  readonly subdirectory: string;

  readonly #repositoryRoot: string;
  readonly #server: CvmfsServer;
  readonly #staging: LayerStaging;
  readonly #waitMs: number;
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
    this.#log = (options.logger ?? pino()).child({ publisher: 'cvmfs-gateway', repository: this.repository });
    this.#waitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    this.#server = new CvmfsServer({
      repository: this.repository,
      ...(options.cvmfsServer === undefined ? {} : { command: options.cvmfsServer }),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.lockDir === undefined ? {} : { lockDir: options.lockDir }),
      lockWaitMs: this.#waitMs,
      logger: this.#log,
    });
    this.#staging = new LayerStaging(path.join(options.stagingDir ?? DEFAULT_STAGING_DIR, target.replaceAll('/', '_')));
    this.description = `cvmfs repository ${target} through its gateway (${this.#server.command})`;
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
        // Also gives the lease back to the gateway, so that no other publisher waits for it to expire.
        this.#log.warn('repository was left in a transaction (crash?); aborting it with cvmfs_server abort -f, which ends its lease');
        await this.#server.run(['abort', '-f', this.repository]);
      }
    });
    await this.#withLease(REFRESH_LEASE, () => this.#refresh());
    if (this.subdirectory !== '') await this.#ensureDirectory('', []);
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

  /**
   * This node's repository lock. Through a gateway, other nodes go on publishing meanwhile: a garbage
   * collection of a gateway repository is safe only while no other node converts (see the README).
   */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.#server.exclusive(work);
  }

  // ---- Publisher: layers ------------------------------------------------------------------------

  async publishLayers<T>(work: (batch: LayerBatch) => Promise<T>): Promise<T> {
    return this.#staging.run(work, async (staged) => {
      for (const layer of staged) await this.#publishLayer(layer);
      // The flat tree is built from the layers through this node's mount: wait until it shows them.
      await this.#awaitVisible(staged.map((layer) => `${layer.layerDir}/.metadata/layers.json`));
    });
  }

  /** One layer: its parents, then (if another publisher did not finish it meanwhile) one ingest under its own lease. */
  async #publishLayer(layer: StagedLayer): Promise<void> {
    await this.#ensureDirectory(parentOf(layer.layerDir), catalogParents(layer.layerDir));
    await this.#withLease(layer.layerDir, async () => {
      const existing = await this.lstat(layer.layerDir);
      if (existing !== undefined) {
        const complete = (await this.lstat(`${layer.layerDir}/layerfs`)) && (await this.lstat(`${layer.layerDir}/.metadata/layers.json`));
        if (complete && !layer.replace) return;
        if (!existing.isDirectory()) throw new DuccError('BOT_ERR_PUBLISH', `cannot publish layer: ${layer.layerDir} exists and is not a directory`);
        // Removed in a publish of its own: CernVM-FS cannot remove a directory and make it again in one ingest.
        await this.#server.deleteDirectories([this.#serverPath(layer.layerDir)]);
      }
      const owner = await this.#ownerIds();
      await this.#server.ingest({ base: this.#serverPath(layer.layerDir), deletes: [] }, async (tar) => {
        await tar.directory('', { ...owner, mode: 0o755, mtime: new Date() });
        await tar.localTree(path.join(layer.local, 'layerfs'), 'layerfs', {
          marker: true,
          skipped: (name) => this.#log.warn({ entry: `${layer.layerDir}/${name}` }, 'left out of the ingest: a .cvmfscatalog that is not a regular file'),
        });
        await tar.directory('.metadata', { ...owner, mode: 0o755, mtime: new Date() });
        for (const name of (await readdir(path.join(layer.local, '.metadata'))).sort()) {
          await tar.file(`.metadata/${name}`, { ...owner, mode: 0o644, mtime: new Date() }, await readFile(path.join(layer.local, '.metadata', name)));
        }
      });
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
    await this.#server.exclusive(() => checkRequirements(this, requirements));
    const planned = units(operations);
    for (const unit of planned) await this.#publishUnit(unit);
    // Published means visible here too: the next image's decisions read this node's mount.
    await this.#awaitVisible(planned.flatMap(visibleAfter));
    return result;
  }

  /** One publish of a transaction: a tree, the writes into one directory, or one removal. */
  async #publishUnit(unit: Unit): Promise<void> {
    switch (unit.kind) {
      case 'tree': {
        await this.#ensureDirectory(parentOf(unit.path), catalogParents(unit.path));
        // Trees are content-addressed: one published meanwhile by another publisher is kept.
        if ((await this.lstat(unit.path)) !== undefined) return;
        // Its files are read from this node's mount, which the ingest remounts as it starts: the tar is
        // written to local staging first (see CvmfsServer.ingestFile).
        const owner = await this.#ownerIds();
        await this.#staging.withScratch(async (dir) => {
          const file = path.join(dir, 'tree.tar');
          await IngestTar.toFile(file, (tar) => writeTree(tar, '', unit.entries, owner));
          await this.#withLease(unit.path, async () => {
            if ((await this.lstat(unit.path)) !== undefined) return;
            await this.#server.ingestFile({ base: this.#serverPath(unit.path), deletes: [] }, file);
          });
        });
        return;
      }
      case 'directory': {
        await this.#ensureDirectory(unit.path, []);
        if (unit.writes.length === 0) return;
        await this.#withLease(unit.path, async () => {
          for (const write of unit.writes) await this.#checkTarget(write);
          const owner = await this.#ownerIds();
          await this.#server.ingest({ base: this.#serverPath(unit.path), deletes: [] }, async (tar) => {
            for (const write of unit.writes) {
              const name = write.path.slice(unit.path === '' ? 0 : unit.path.length + 1);
              if (write.kind === 'file') await tar.file(name, { ...owner, mode: write.mode, mtime: new Date() }, write.data);
              else await tar.symlink(name, write.target, { ...owner, mtime: new Date() });
            }
          });
        });
        return;
      }
      case 'remove': {
        const existing = await this.lstat(unit.path);
        if (existing === undefined) return;
        if (existing.isDirectory()) {
          await this.#withLease(unit.path, () => this.#server.deleteDirectories([this.#serverPath(unit.path)]));
          return;
        }
        // A file or symlink: an ingest cannot remove it; a classic transaction leasing its directory.
        await this.#withLease(parentOf(unit.path), () =>
          this.#onMount(parentOf(unit.path), async () => {
            await rm(this.#absolute(unit.path), { force: true });
          }),
        );
        return;
      }
    }
  }

  /** Refuses, before the ingest, what the local publisher refuses too. */
  async #checkTarget(write: Extract<Operation, { kind: 'file' | 'symlink' }>): Promise<void> {
    const found = await this.lstat(write.path);
    if (found === undefined) return;
    if (write.kind === 'symlink' && !found.isSymbolicLink()) {
      throw new DuccError('BOT_ERR_PUBLISH', `refusing to replace ${write.path} with a symlink: it exists and is a ${describeType(found)}`);
    }
    if (write.kind === 'file' && !found.isFile())
      throw new DuccError('BOT_ERR_PUBLISH', `refusing to replace ${write.path} with a file: it is a ${describeType(found)}`);
  }

  // ---- leases -----------------------------------------------------------------------------------

  /**
   * Makes `relDir` and its missing parents (0755, repository owner), with catalog markers in those of
   * `markerDirs` that it makes: one classic transaction leasing the highest missing directory (the
   * gateway needs a lease's parent to exist). Another publisher making the same directories meanwhile is
   * waited for, and then they exist.
   */
  async #ensureDirectory(relDir: string, markerDirs: string[]): Promise<void> {
    for (;;) {
      if ((await this.lstat(relDir)) !== undefined) {
        const missingMarkers: string[] = [];
        for (const dir of markerDirs) if ((await this.lstat(`${dir}/${CATALOG_MARKER}`)) === undefined) missingMarkers.push(dir);
        if (missingMarkers.length === 0) return;
        // A directory DUCC makes a catalog, without its marker (made by another tool): lease it and add one.
        const top = missingMarkers[0]!;
        await this.#withLease(top, () => this.#onMount(top, () => this.#writeMarkers(missingMarkers)));
        continue;
      }
      let top = relDir;
      for (const ancestor of ancestors(relDir)) {
        if ((await this.lstat(ancestor)) === undefined) {
          top = ancestor;
          break;
        }
      }
      await this.#withLease(top, () =>
        this.#onMount(top, async () => {
          if ((await this.lstat(relDir)) !== undefined) return;
          const owner = await this.#ownerIds();
          for (const dir of [...ancestors(relDir), relDir].filter((d) => isSameOrBelow(d, top))) {
            const abs = this.#absolute(dir);
            if ((await ifExists(stat(abs))) !== undefined) continue;
            await mkdir(abs, { mode: 0o755 });
            await chown(abs, owner.uid, owner.gid).catch(() => {});
          }
          await this.#writeMarkers(markerDirs.filter((dir) => isSameOrBelow(dir, top)));
        }),
      );
    }
  }

  async #writeMarkers(dirs: string[]): Promise<void> {
    const owner = await this.#ownerIds();
    for (const dir of dirs) {
      const marker = this.#absolute(`${dir}/${CATALOG_MARKER}`);
      if ((await ifExists(lstat(marker))) !== undefined) continue;
      await writeFile(marker, '', { mode: 0o644 });
      await chown(marker, owner.uid, owner.gid).catch(() => {});
    }
  }

  /** A classic transaction leasing `leasePath`: `cvmfs_server transaction <repo>/<path>`, `work` on the mount, `publish`. */
  async #onMount(leasePath: string, work: () => Promise<void>): Promise<void> {
    await this.#server.run(['transaction', this.#leaseArgument(leasePath)]);
    try {
      await work();
      try {
        await this.#server.run(['publish', this.repository]);
      } catch (error) {
        // cvmfs_server publish refuses while it sees read-only file descriptors on the mount (lsof). Its
        // remount is safe for the few directories written here; with several publisher nodes on one
        // machine (mount namespaces) it also sees the other nodes' cvmfs2 cache files.
        if (!(error instanceof CvmfsCommandError && /open read-only file descriptors/.test(error.output))) throw error;
        this.#log.warn({ path: leasePath }, 'read-only file descriptors open on the mount; publishing with a forced remount (publish -f)');
        await this.#server.run(['publish', '-f', this.repository]);
      }
    } catch (error) {
      await this.#server.abortLeftoverTransaction();
      throw error;
    }
  }

  /**
   * Runs one publish under this node's lock, again while another publisher holds the lease (backoff up to
   * lockWaitMs), and again (a few times) when the lease was lost. `publish` re-checks what it needs: a
   * busy wait may end with the other publisher having done the same work.
   */
  async #withLease(leasePath: string, publish: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + this.#waitMs;
    const parentDeadline = Date.now() + VISIBLE_WAIT_MS;
    let delay = BUSY_RETRY_FIRST_MS;
    let lost = 0;
    let logged = false;
    for (;;) {
      try {
        await this.#server.exclusive(publish);
        return;
      } catch (error) {
        if (error instanceof CvmfsCommandError && error.leaseBusy) {
          if (Date.now() + delay > deadline) {
            throw new DuccError(
              'BOT_ERR_CVMFS',
              `${leasePath || '/'} of ${this.repository} stayed leased by another publisher for ${Math.round(this.#waitMs / 1000)} s`,
              {
                cause: error,
              },
            );
          }
          if (!logged) this.#log.info({ path: leasePath }, 'path leased by another publisher; waiting');
          logged = true;
          await sleep(delay * (0.5 + Math.random() / 2));
          delay = Math.min(delay * 2, BUSY_RETRY_MAX_MS);
          // The other publisher may have published this very path (a layer both images share): decide
          // again on a view that shows its commit.
          if (leasePath !== REFRESH_LEASE) await this.#withLease(REFRESH_LEASE, () => this.#refresh());
          continue;
        }
        // The gateway checks a lease's parent against the newest signed revision, which can lag a moment
        // behind a commit another publisher (or this one) just made: the parent shows shortly.
        if (error instanceof CvmfsCommandError && /cannot open transaction on non-existing path/.test(error.output) && Date.now() < parentDeadline) {
          await sleep(delay);
          delay = Math.min(delay * 2, BUSY_RETRY_MAX_MS);
          continue;
        }
        // A commit the gateway's receiver could not merge (another publisher changed the same paths since
        // this node's view was taken: "Lease end request - error reply"), or a lease lost (expired, gateway
        // restarted): the view is brought up to date, and `publish` decides again on it.
        if (error instanceof CvmfsCommandError && /Lease end request|lease|Synchronization failed/i.test(error.output) && ++lost < LOST_LEASE_ATTEMPTS) {
          this.#log.warn({ path: leasePath, err: errorMessage(error) }, 'publish refused by the gateway; bringing the view up to date and trying again');
          await this.#server.exclusive(() => this.#server.abortLeftoverTransaction());
          if (leasePath !== REFRESH_LEASE) await this.#withLease(REFRESH_LEASE, () => this.#refresh());
          continue;
        }
        throw error;
      }
    }
  }

  /**
   * Brings this node's view of the repository up to date. A publisher node's mount shows only its own
   * publishes until it starts a transaction, which remounts the latest revision (checked on 2.12): so a
   * transaction leasing a path nobody uses, given up at once. Decisions taken outside a lease on a view
   * that is out of date cost at most a redundant publish of the same content; those that matter are
   * taken again inside the lease (see #ensureDirectory).
   */
  async #refresh(): Promise<void> {
    await this.#server.run(['transaction', this.#leaseArgument(REFRESH_LEASE)]);
    await this.#server.run(['abort', '-f', this.repository]);
  }

  /**
   * Waits until this node's mount shows `paths`. A publish through the gateway returns once the gateway
   * accepted it; the new revision is signed a moment later (after the commits queued before it), and a
   * remount before that shows the previous one (seen on 2.12 with two publishers committing at once).
   */
  async #awaitVisible(paths: (string | Expectation)[]): Promise<void> {
    if (paths.length === 0) return;
    const deadline = Date.now() + VISIBLE_WAIT_MS;
    let delay = BUSY_RETRY_FIRST_MS;
    for (;;) {
      const missing: string[] = [];
      for (const expected of paths) {
        const { path: relPath, check } = typeof expected === 'string' ? { path: expected, check: undefined } : expected;
        const found = await this.lstat(relPath);
        if (found === undefined || (check !== undefined && !(await check(found, this.#absolute(relPath))))) missing.push(relPath);
      }
      if (missing.length === 0) return;
      if (Date.now() > deadline) {
        throw new DuccError('BOT_ERR_CVMFS', `published ${missing[0]} through the gateway, but this node does not see it after ${VISIBLE_WAIT_MS / 1000} s`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, BUSY_RETRY_MAX_MS);
      await this.#withLease(REFRESH_LEASE, () => this.#refresh());
    }
  }

  // ---- helpers ----------------------------------------------------------------------------------

  /** `<repo>/<path>` as `cvmfs_server transaction` takes a lease path. */
  #leaseArgument(relPath: string): string {
    const server = this.#serverPath(relPath);
    return server === '' ? this.repository : `${this.repository}/${server}`;
  }

  async #ownerIds(): Promise<{ uid: number; gid: number }> {
    if (this.#owner === undefined) {
      const root = await stat(this.#repositoryRoot);
      this.#owner = { uid: root.uid, gid: root.gid };
    }
    return this.#owner;
  }

  #serverPath(rel: string): string {
    if (this.subdirectory === '') return rel;
    return rel === '' ? this.subdirectory : `${this.subdirectory}/${rel}`;
  }

  #absolute(relPath: string): string {
    const rel = normalizeRelativePath(relPath, 'BOT_ERR_PUBLISH');
    return rel === '' ? this.readRoot : path.join(this.readRoot, rel);
  }
}
