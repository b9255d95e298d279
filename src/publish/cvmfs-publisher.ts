import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Stats } from 'node:fs';
import { access, chmod, constants as fsConstants, lstat, mkdir, readFile, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { Logger } from 'pino';
import lockfile from 'proper-lockfile';
import tarStream from 'tar-stream';
import type { Extract, Header, Pack } from 'tar-stream';
import { DuccError, errorMessage } from '../util/errors.ts';
import type { LayerUnpackResult, Publisher, Transaction, TreeEntry } from './publisher.ts';

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
  /**
   * Ingest layers with `-k` (keep the tar's uid/gid); default true. The flattener takes the flat image's
   * ownership from the files under `layerfs`, so without it every flat image would belong to the
   * repository owner. `false` gives DUCC's exact argv (DUCC never passes `-k`).
   */
  keepLayerOwnership?: boolean;
  logger?: Logger;
}

/** Bytes of stdout and of stderr kept from each `cvmfs_server` call, for error messages and logs. */
const MAX_CAPTURED_OUTPUT_BYTES = 64 * 1024;
/** A lock not refreshed for this long belongs to a dead process and is taken over (proper-lockfile `stale`). */
const LOCK_STALE_MS = 20_000;
const LOCK_RETRY_MIN_MS = 50;
const LOCK_RETRY_MAX_MS = 2_000;
const DEFAULT_LOCK_WAIT_MS = 60 * 60 * 1000;
/** Lines of stderr quoted in the message of a failed `cvmfs_server` call. */
const QUOTED_STDERR_LINES = 3;

const REPOSITORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Publishes into a CernVM-FS repository through `cvmfs_server` on a stratum 0 (publisher) node.
 *
 * Layers and directory trees go in with `cvmfs_server ingest` (tar on stdin); small writes happen in a
 * `cvmfs_server transaction` directly on the writable mount. One repository lock (a proper-lockfile lock
 * in `lockDir`, plus an in-process queue) serialises every transaction and ingest of this repository, so
 * two ducc-gitops processes never publish to one repository at the same time. The lock is not DUCC's
 * fcntl lock on `/tmp/DUCC.lock`: do not run upstream `cvmfs_ducc` against the same repository at once.
 */
export class CvmfsServerPublisher implements Publisher {
  readonly description: string;
  /** The tree is packed into a tar for `cvmfs_server ingest`: every file needs its metadata, shared inodes become tar hard links. */
  readonly hardLinksTreeFiles = false;
  readonly readRoot: string;
  readonly repository: string;
  readonly subdirectory: string;

  readonly #repositoryRoot: string;
  readonly #command: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #configuredLockDir: string | undefined;
  readonly #lockWaitMs: number;
  readonly #keepLayerOwnership: boolean;
  readonly #log: Logger;
  #lockDir: Promise<string> | undefined;
  /** Tail of the in-process queue: every exclusive section chains on it. */
  #queue: Promise<void> = Promise.resolve();

  constructor(options: CvmfsServerPublisherOptions) {
    if (!REPOSITORY_NAME.test(options.repository)) {
      throw new DuccError('BOT_ERR_CONFIG', `invalid CVMFS repository name '${options.repository}'`);
    }
    this.repository = options.repository;
    this.subdirectory = options.subdirectory === undefined ? '' : normalizeRelativePath(options.subdirectory, 'BOT_ERR_CONFIG');
    this.#repositoryRoot = path.join(options.mountRoot ?? '/cvmfs', this.repository);
    this.readRoot = this.subdirectory === '' ? this.#repositoryRoot : path.join(this.#repositoryRoot, this.subdirectory);
    this.#command = options.cvmfsServer ?? 'cvmfs_server';
    this.#env = { ...process.env, ...options.env };
    this.#configuredLockDir = options.lockDir;
    this.#lockWaitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    this.#keepLayerOwnership = options.keepLayerOwnership ?? true;
    const target = this.subdirectory === '' ? this.repository : `${this.repository}/${this.subdirectory}`;
    this.description = `cvmfs repository ${target} (${this.#command})`;
    this.#log = (options.logger ?? pino()).child({ publisher: 'cvmfs', repository: this.repository });
  }

  // ---- Publisher ------------------------------------------------------------------------------

  async recover(): Promise<void> {
    await this.#exclusive(async () => {
      const entry = await this.#listEntry();
      if (entry === undefined) {
        throw new DuccError('BOT_ERR_CVMFS', `repository ${this.repository} is not served by this machine (cvmfs_server list)`);
      }
      if (entry.inTransaction) {
        this.#log.warn('repository was left in a transaction (crash?); aborting it with cvmfs_server abort -f');
        await this.#run(['abort', '-f', this.repository]);
      }
    });
  }

  async lstat(relPath: string): Promise<Stats | undefined> {
    return ifExists(lstat(this.#absolute(relPath, true)));
  }

  async readFile(relPath: string): Promise<Buffer | undefined> {
    return ifExists(readFile(this.#absolute(relPath, true)));
  }

  async publishLayer(layerDir: string, tar: Readable, metadata: (result: LayerUnpackResult) => Record<string, Buffer>): Promise<LayerUnpackResult> {
    let rel: string;
    try {
      rel = this.#checkNew(layerDir);
    } catch (error) {
      tar.destroy();
      throw error;
    }
    return this.#exclusive(async () => {
      if ((await this.lstat(rel)) !== undefined) {
        tar.destroy();
        throw new DuccError('BOT_ERR_PUBLISH', `cannot publish layer: ${rel} already exists in ${this.description}`);
      }
      const serverDir = this.#serverPath(rel);
      let result: LayerUnpackResult;
      try {
        result = await this.#ingest(`${serverDir}/layerfs`, this.#keepLayerOwnership, (onFailure) => filterLayerTar(tar, onFailure));
      } catch (error) {
        await this.#discard(serverDir);
        throw error;
      }
      try {
        const files = metadata(result);
        await this.#transactionLocked(async (tx) => {
          for (const [name, bytes] of Object.entries(files)) {
            if (name === '' || name === '.' || name === '..' || name.includes('/')) {
              throw new DuccError('BOT_ERR_PUBLISH', `invalid layer metadata file name '${name}'`);
            }
            await tx.writeFile(`${rel}/.metadata/${name}`, bytes);
          }
        });
      } catch (error) {
        await this.#discard(serverDir);
        throw error;
      }
      return result;
    });
  }

  async publishTree(relDir: string, entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry>): Promise<void> {
    const rel = this.#checkNew(relDir);
    await this.#exclusive(async () => {
      if ((await this.lstat(rel)) !== undefined) {
        throw new DuccError('BOT_ERR_PUBLISH', `cannot publish tree: ${rel} already exists in ${this.description}`);
      }
      const serverDir = this.#serverPath(rel);
      try {
        await this.#ingest(serverDir, true, (onFailure) => packTree(entries, onFailure));
      } catch (error) {
        await this.#discard(serverDir);
        throw error;
      }
    });
  }

  async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.#exclusive(() => this.#transactionLocked(work));
  }

  // ---- transactions ---------------------------------------------------------------------------

  async #transactionLocked<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    await this.#run(['transaction', this.repository]);
    const session = { open: true };
    try {
      const result = await work(this.#transactionHandle(session));
      session.open = false;
      await this.#run(['publish', this.repository]);
      return result;
    } catch (error) {
      session.open = false;
      this.#log.warn({ err: error }, 'transaction failed; aborting it');
      try {
        await this.#run(['abort', '-f', this.repository]);
      } catch (abortError) {
        this.#log.error({ err: abortError }, 'cvmfs_server abort -f failed after a failed transaction');
      }
      throw error;
    }
  }

  #transactionHandle(session: { open: boolean }): Transaction {
    const checkOpen = (): void => {
      if (!session.open) throw new DuccError('BOT_ERR_PUBLISH', `transaction on ${this.repository} is already closed`);
    };
    const writable = async (relPath: string): Promise<string> => {
      checkOpen();
      const abs = this.#absolute(relPath, false);
      await this.#ensureDirectory(path.dirname(abs), relPath);
      return abs;
    };
    return {
      writeFile: async (relPath, data, mode = 0o644) => {
        const abs = await writable(relPath);
        const temporary = temporarySibling(abs);
        try {
          await writeFile(temporary, data, { mode, flag: 'wx' });
          await chmod(temporary, mode);
          await rename(temporary, abs);
        } catch (error) {
          await rm(temporary, { force: true });
          throw error;
        }
      },
      symlink: async (relPath, target) => {
        const abs = await writable(relPath);
        const existing = await ifExists(lstat(abs));
        if (existing !== undefined && !existing.isSymbolicLink()) {
          throw new DuccError('BOT_ERR_PUBLISH', `refusing to replace ${relPath} with a symlink: it exists and is a ${describeType(existing)}`);
        }
        const temporary = temporarySibling(abs);
        try {
          await symlink(target, temporary);
          await rename(temporary, abs);
        } catch (error) {
          await rm(temporary, { force: true });
          throw error;
        }
      },
      mkdir: async (relPath) => {
        checkOpen();
        await this.#ensureDirectory(this.#absolute(relPath, true), relPath);
      },
      remove: async (relPath) => {
        const abs = await writable(relPath);
        await rm(abs, { recursive: true, force: true });
      },
    };
  }

  /**
   * Creates `directory` and its parents (0755), after checking that its nearest existing ancestor
   * resolves inside the repository: a symlink in the published tree must not redirect our writes.
   */
  async #ensureDirectory(directory: string, relPath: string): Promise<void> {
    let probe = directory;
    for (;;) {
      try {
        await stat(probe);
        break;
      } catch (error) {
        if (!isMissing(error) || probe === path.dirname(probe)) throw error;
        probe = path.dirname(probe);
      }
    }
    const [resolved, root] = await Promise.all([realpath(probe), realpath(this.#repositoryRoot)]);
    if (resolved !== root && !resolved.startsWith(root + path.sep)) {
      throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `${relPath} resolves outside ${this.#repositoryRoot} (through ${resolved})`);
    }
    await mkdir(directory, { recursive: true, mode: 0o755 });
  }

  // ---- ingest ---------------------------------------------------------------------------------

  /**
   * Runs `cvmfs_server ingest --catalog -t - -b <baseDir> [-k] <repo>` with the producer's tar on stdin.
   * The producer calls `onFailure` synchronously on its first failure, before its output is destroyed,
   * so the ingest is killed before it could see a clean end of input. The producer's own errors (a
   * failing source stream, an unsafe entry) are what the caller gets; when the ingest fails first, a
   * BOT_ERR_CVMFS error with its stderr.
   */
  async #ingest<T>(baseDir: string, keepOwnership: boolean, produce: (onFailure: () => void) => TarProducer<T>): Promise<T> {
    const args = ['ingest', '--catalog', '-t', '-', '-b', baseDir, ...(keepOwnership ? ['-k'] : []), this.repository];
    const command = this.#start(args, true);
    const { child } = command;
    const stdin = child.stdin;
    if (stdin === null) throw new Error('cvmfs_server was started without a stdin pipe'); // cannot happen: stdio 'pipe'
    let killed = false;
    const producer = produce(() => {
      if (child.exitCode === null && child.signalCode === null) {
        this.#log.warn({ baseDir }, 'tar input failed; terminating cvmfs_server ingest');
        killed = child.kill('SIGTERM');
      }
    });
    const [produced, fed, exited] = await Promise.allSettled([producer.result, pipeline(producer.output, stdin), command.result]);
    // An ingest that fails by itself aborts its own transaction; a killed one leaves it open.
    if (killed) await this.#abortLeftoverTransaction();
    if (produced.status === 'rejected' && !(produced.reason instanceof TarOutputClosedError)) {
      throw produced.reason;
    }
    if (exited.status === 'rejected') throw exited.reason;
    this.#check(args, exited.value);
    if (produced.status === 'rejected') {
      throw new DuccError('BOT_ERR_CVMFS', `cvmfs_server ingest ${this.repository} stopped reading its input: ${errorMessage(produced.reason)}`, {
        cause: produced.reason,
      });
    }
    if (fed.status === 'rejected') {
      throw new DuccError('BOT_ERR_CVMFS', `cvmfs_server ingest ${this.repository} stopped reading its input: ${errorMessage(fed.reason)}`, {
        cause: fed.reason,
      });
    }
    return produced.value;
  }

  /** After killing an ingest (we hold the repository lock): aborts the transaction it left open. Never throws. */
  async #abortLeftoverTransaction(): Promise<void> {
    try {
      const entry = await this.#listEntry();
      if (entry?.inTransaction === true) {
        this.#log.warn('the terminated ingest left the repository in a transaction; aborting it');
        await this.#run(['abort', '-f', this.repository]);
      }
    } catch (error) {
      this.#log.error({ err: error }, 'cannot check or abort the transaction after terminating an ingest');
    }
  }

  /**
   * Removes what a failed ingest or layer publication may have published (`cvmfs_server ingest --delete`).
   * Failures are logged, never thrown, so that the caller reports the original error.
   */
  async #discard(serverPath: string): Promise<void> {
    try {
      await this.#run(['ingest', '--delete', serverPath, this.repository]);
    } catch (error) {
      this.#log.error({ err: error, path: serverPath }, 'cvmfs_server ingest --delete failed after a failed ingest');
    }
  }

  // ---- cvmfs_server ---------------------------------------------------------------------------

  async #listEntry(): Promise<ServerListEntry | undefined> {
    const output = await this.#run(['list']);
    return parseServerList(output).find((entry) => entry.name === this.repository);
  }

  /** Runs a `cvmfs_server` subcommand without input; returns its stdout, throws BOT_ERR_CVMFS on failure. */
  async #run(args: string[]): Promise<string> {
    const result = await this.#start(args, false).result;
    this.#check(args, result);
    return result.stdout;
  }

  #start(args: string[], withStdin: boolean): { child: ChildProcess; result: Promise<CommandResult> } {
    this.#log.debug({ argv: [this.#command, ...args] }, 'executing');
    const child = spawn(this.#command, args, {
      stdio: [withStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: this.#env,
    });
    const stdout = new OutputTail();
    const stderr = new OutputTail();
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    const result = new Promise<CommandResult>((resolve, reject) => {
      child.once('error', (error) =>
        reject(new DuccError('BOT_ERR_CVMFS', `cannot run ${this.#command} ${args[0] ?? ''}: ${error.message}`, { cause: error })),
      );
      child.once('close', (code, signal) => resolve({ code, signal, stdout: stdout.text(), stderr: stderr.text() }));
    });
    return { child, result };
  }

  #check(args: string[], result: CommandResult): void {
    if (result.code === 0) return;
    const subcommand = args[0] ?? '';
    const status = result.code === null ? `signal ${result.signal ?? 'unknown'}` : `exit ${result.code}`;
    this.#log.error({ argv: [this.#command, ...args], status, stdout: result.stdout, stderr: result.stderr }, 'cvmfs_server failed');
    throw new DuccError('BOT_ERR_CVMFS', `cvmfs_server ${subcommand} ${this.repository} failed (${status}): ${lastLines(result.stderr, result.stdout)}`);
  }

  // ---- locking --------------------------------------------------------------------------------

  /** Runs `section` under the in-process queue and the cross-process repository lock. */
  async #exclusive<T>(section: () => Promise<T>): Promise<T> {
    const previous = this.#queue;
    let done!: () => void;
    this.#queue = new Promise<void>((resolve) => (done = resolve));
    await previous;
    try {
      return await this.#withFileLock(section);
    } finally {
      done();
    }
  }

  async #withFileLock<T>(section: () => Promise<T>): Promise<T> {
    const lockDir = await this.#resolveLockDir();
    const lockfilePath = path.join(lockDir, `ducc-gitops-${this.repository}.lock`);
    const release = await this.#acquire(lockfilePath);
    try {
      return await section();
    } finally {
      try {
        await release();
      } catch (error) {
        this.#log.error({ err: error, lockfilePath }, 'cannot release the repository lock');
      }
    }
  }

  async #acquire(lockfilePath: string): Promise<() => Promise<void>> {
    const deadline = Date.now() + this.#lockWaitMs;
    let delay = LOCK_RETRY_MIN_MS;
    let logged = false;
    for (;;) {
      try {
        return await lockfile.lock(lockfilePath.replace(/\.lock$/, ''), {
          lockfilePath,
          realpath: false,
          stale: LOCK_STALE_MS,
          retries: 0,
          onCompromised: (error) => {
            // The default throws from a timer and kills the process. cvmfs_server itself refuses a
            // second transaction, so the damage is bounded: report loudly and carry on.
            this.#log.error({ err: error, lockfilePath }, 'repository lock compromised (another process may publish concurrently)');
          },
        });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') {
          throw new DuccError('BOT_ERR_CVMFS', `cannot take repository lock ${lockfilePath}: ${errorMessage(error)}`, { cause: error });
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          throw new DuccError(
            'BOT_ERR_CVMFS',
            `timed out after ${Math.round(this.#lockWaitMs / 1000)} s waiting for repository lock ${lockfilePath} (another process is publishing to ${this.repository})`,
            { cause: error },
          );
        }
        if (!logged) {
          this.#log.info({ lockfilePath }, 'waiting for the repository lock held by another process');
          logged = true;
        }
        await sleep(Math.min(delay, remaining));
        delay = Math.min(delay * 2, LOCK_RETRY_MAX_MS);
      }
    }
  }

  async #resolveLockDir(): Promise<string> {
    this.#lockDir ??= (async () => {
      if (this.#configuredLockDir !== undefined) return this.#configuredLockDir;
      try {
        await access('/var/lock', fsConstants.W_OK);
        return '/var/lock';
      } catch {
        return tmpdir();
      }
    })();
    return this.#lockDir;
  }

  // ---- paths ----------------------------------------------------------------------------------

  #absolute(relPath: string, allowRoot: boolean): string {
    const rel = normalizeRelativePath(relPath, 'BOT_ERR_PUBLISH');
    if (rel === '' && !allowRoot) throw new DuccError('BOT_ERR_PUBLISH', 'path must not be the publisher root');
    return rel === '' ? this.readRoot : path.join(this.readRoot, rel);
  }

  /** Validates the target of publishLayer/publishTree (never the root). */
  #checkNew(relDir: string): string {
    const rel = normalizeRelativePath(relDir, 'BOT_ERR_PUBLISH');
    if (rel === '') throw new DuccError('BOT_ERR_PUBLISH', 'cannot publish into the publisher root itself');
    return rel;
  }

  /** A readRoot-relative path as cvmfs_server wants it: relative to the repository root. */
  #serverPath(rel: string): string {
    return this.subdirectory === '' ? rel : `${this.subdirectory}/${rel}`;
  }
}

// ---- cvmfs_server list ------------------------------------------------------------------------

export interface ServerListEntry {
  name: string;
  inTransaction: boolean;
}

/**
 * Parses `cvmfs_server list`. Each repository line is `<name> (<type> / <storage>[ - in transaction][ - …]) …`
 * (cvmfs/server/cvmfs_server_list.sh); other lines (`Warning: …`) are skipped. Names are whole first
 * fields, never substrings (DUCC Classic matched substrings of the whole output).
 */
export function parseServerList(output: string): ServerListEntry[] {
  const entries: ServerListEntry[] = [];
  for (const line of output.split('\n')) {
    const match = /^(\S+)(?:\s+\(([^)]*)\))?/.exec(line.trim());
    if (match === null || match[1] === undefined || match[1].endsWith(':')) continue;
    entries.push({ name: match[1], inTransaction: /(?:^|\s)-\s+in transaction(?:\s|$)/.test(match[2] ?? '') });
  }
  return entries;
}

// ---- tar producers ----------------------------------------------------------------------------

/** A tar stream fed to `cvmfs_server ingest`, and what producing it yields. */
export interface TarProducer<T> {
  output: Readable;
  result: Promise<T>;
}

/** The tar output was closed by its consumer (the ingest died or stopped reading) before the end. */
export class TarOutputClosedError extends Error {
  constructor(cause?: unknown) {
    super(`tar output closed early${cause === undefined ? '' : `: ${errorMessage(cause)}`}`, { cause });
    this.name = 'TarOutputClosedError';
  }
}

type TarPack = Pack;
type TarHeader = Partial<Header> & Pick<Header, 'name'>;
type Sink = ReturnType<Pack['entry']>;
type TarSource = Extract extends AsyncIterable<infer S> ? S : never;

/** Shared failure handling of the two producers: first failure wins, `onFailure` runs before teardown. */
function producerState(pack: TarPack, onFailure: (() => void) | undefined) {
  const state = {
    failure: undefined as unknown,
    failed: false,
    completed: false,
    fail(error: unknown, also?: { destroy(error?: Error): unknown }) {
      if (state.failed) return;
      state.failed = true;
      // Only fail() destroys the pack on our side: if it is already going, its consumer closed it.
      state.failure = pack.destroying && !(error instanceof TarOutputClosedError) ? new TarOutputClosedError(error) : error;
      onFailure?.();
      const asError = error instanceof Error ? error : new Error(errorMessage(error));
      also?.destroy(asError);
      pack.destroy(asError);
    },
  };
  let packError: unknown;
  pack.on('error', (error: unknown) => (packError = error));
  pack.on('close', () => {
    if (!state.completed) state.fail(new TarOutputClosedError(packError));
  });
  return state;
}

/**
 * Re-packs an uncompressed layer tar for `cvmfs_server ingest`, entry by entry with backpressure:
 *
 * - device nodes and FIFOs are dropped, with a warning each (as are hard links to them);
 * - hard links whose target is not an earlier entry of this tar become empty regular files with the
 *   link's mode, owner and mtime (cvmfs ingest panics on them), reported in `externalHardlinks`;
 * - entries with a `..` component are refused (BOT_ERR_UNSAFE_ENTRY); leading `/` are stripped;
 * - parents that have no directory entry of their own are reported in `implicitDirectories`.
 *
 * Whiteouts (`.wh.*`) pass through verbatim. A failing source destroys the output with the source's
 * error, and `result` rejects with that same error.
 *
 * Header-only entries (directories, symlinks, links) are not individually throttled, so a stalled
 * consumer can make the output buffer at most the header bytes the source has delivered meanwhile.
 */
export function filterLayerTar(source: Readable, onFailure?: () => void): TarProducer<LayerUnpackResult> {
  const extract = tarStream.extract();
  const pack = tarStream.pack();
  const state = producerState(pack, onFailure);
  // Attached before pipeline() attaches its own, so a source error is recorded as the first failure.
  source.on('error', (error) => state.fail(error, extract));

  const warnings: string[] = [];
  /** Placeholder path → the lower-layer path it stands for. */
  const external = new Map<string, string>();
  /** Normalized path → member name as written, for non-directory entries passed through. */
  const written = new Map<string, string>();
  const dropped = new Set<string>();
  /** Directories with an entry of their own, and directories only implied as parents of entries. */
  const explicitDirectories = new Set<string>();
  const impliedDirectories = new Set<string>();

  const drop = (name: string, warning: string): void => {
    warnings.push(warning);
    forget(name);
    dropped.add(name);
  };

  const handle = async (entry: TarSource): Promise<void> => {
    const header = entry.header;
    const name = normalizeEntryPath(header.name);
    const memberName = header.name.replace(/^\/+/, '') || './';
    // tar-stream reports typeflags it does not know (GNU sparse, volume labels, ...) as null.
    const type: string = header.type ?? 'unknown';
    if (header.type === 'directory') explicitDirectories.add(name);
    switch (header.type) {
      case 'character-device':
      case 'block-device':
      case 'fifo':
        drop(name, `${name}: skipped ${type} entry (device nodes and FIFOs are not published)`);
        return;
      case 'link': {
        const target = normalizeEntryPath(header.linkname ?? '');
        if (target === '.') throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `tar entry '${header.name}' is a hard link to the layer root`);
        if (dropped.has(target)) {
          drop(name, `${name}: skipped hard link to ${target}, which was skipped`);
          return;
        }
        const targetMember = written.get(target);
        if (targetMember === undefined || external.has(target)) {
          // The target lives in a lower layer (or is itself such a placeholder): an empty regular file.
          const lower = external.get(target) ?? target;
          forget(name);
          external.set(name, lower);
          await packEntry(pack, {
            ...ownership(header),
            name: memberName,
            type: 'file',
            size: 0,
            mode: header.mode ?? 0o644,
            ...paxWithout(header.pax, ['path', 'linkpath', 'size']),
          });
          written.set(name, memberName);
          return;
        }
        forget(name);
        await packEntry(pack, {
          ...ownership(header),
          name: memberName,
          type: 'link',
          linkname: targetMember,
          mode: header.mode ?? 0o644,
          ...paxWithout(header.pax, ['path', 'linkpath', 'size']),
        });
        written.set(name, memberName);
        return;
      }
      case 'file':
      case 'contiguous-file':
        forget(name);
        await packEntry(
          pack,
          { ...ownership(header), name: memberName, type: 'file', size: header.size ?? 0, mode: header.mode ?? 0o644, ...paxWithout(header.pax, ['path']) },
          entry as unknown as AsyncIterable<Buffer>,
        );
        written.set(name, memberName);
        return;
      case 'symlink':
        forget(name);
        await packEntry(pack, {
          ...ownership(header),
          name: memberName,
          type: 'symlink',
          linkname: header.linkname ?? '',
          mode: header.mode ?? 0o777,
          ...paxWithout(header.pax, ['path']),
        });
        written.set(name, memberName);
        return;
      case 'directory':
        forget(name);
        await packEntry(pack, { ...ownership(header), name: memberName, type: 'directory', mode: header.mode ?? 0o755, ...paxWithout(header.pax, ['path']) });
        return;
      default:
        drop(name, `${name}: skipped entry of unsupported type ${type}`);
        return;
    }
  };

  const walk = async (): Promise<LayerUnpackResult> => {
    for await (const entry of extract) {
      try {
        await handle(entry);
        entry.resume(); // bodies of skipped entries (none for well-formed links and devices)
        const name = normalizeEntryPath(entry.header.name);
        if (!dropped.has(name)) imply(name);
      } catch (error) {
        // Recorded before leaving the loop: the iterator's return() destroys the extract, and that
        // premature close must not be mistaken for the first failure.
        state.fail(error, extract);
        throw error;
      }
    }
    state.completed = true;
    pack.finalize();
    return {
      warnings,
      externalHardlinks: [...external].map(([path, target]) => ({ path, target })),
      implicitDirectories: [...impliedDirectories].filter((dir) => !explicitDirectories.has(dir)).sort(),
    };
  };

  /** Records the parents of a written entry (the ingest creates them if the tar has no entry for them). */
  const imply = (name: string): void => {
    for (let slash = name.lastIndexOf('/'); slash > 0; slash = name.lastIndexOf('/', slash - 1)) {
      const parent = name.slice(0, slash);
      if (impliedDirectories.has(parent)) return; // its ancestors are there already
      impliedDirectories.add(parent);
    }
  };

  /** A name written again replaces what was there before. */
  const forget = (name: string): void => {
    external.delete(name);
    written.delete(name);
    dropped.delete(name);
  };

  const fed = pipeline(source, extract).catch((error: unknown) => {
    state.fail(error, extract);
    throw error;
  });
  const walked = walk().catch((error: unknown) => {
    state.fail(error, extract);
    throw error;
  });
  const result = Promise.all([fed, walked]).then(
    ([, value]) => value,
    () => Promise.reject(state.failure),
  );
  return { output: pack as unknown as Readable, result };
}

/**
 * Packs a directory tree as a tar for `cvmfs_server ingest -k`: modes, uid/gid and mtimes kept, file
 * bodies taken from `content` or streamed from `source`, hard links as tar hard links to the target path.
 */
export function packTree(entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry>, onFailure?: () => void): TarProducer<void> {
  const pack = tarStream.pack();
  const state = producerState(pack, onFailure);
  const files = new Set<string>();

  const walk = async (): Promise<void> => {
    for await (const entry of entries) {
      if (state.failed) break;
      const name = normalizeEntryPath(entry.path);
      if (name === '.' && entry.type !== 'directory') {
        throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `tree ${entry.type} entry with an empty path`);
      }
      switch (entry.type) {
        case 'directory':
          // An empty path is the tree's root itself, packed as `./`.
          await packEntry(pack, {
            name: name === '.' ? './' : name,
            type: 'directory',
            mode: entry.mode & 0o7777,
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
          });
          files.delete(name);
          break;
        case 'symlink':
          await packEntry(pack, { name, type: 'symlink', linkname: entry.target, mode: 0o777, uid: entry.uid, gid: entry.gid, mtime: entry.mtime });
          files.add(name);
          break;
        case 'file': {
          const header: TarHeader = { name, type: 'file', mode: entry.mode & 0o7777, uid: entry.uid, gid: entry.gid, mtime: entry.mtime };
          if (entry.content !== undefined) {
            await packEntry(pack, { ...header, size: entry.content.length }, entry.content);
          } else if (entry.source !== undefined) {
            await packEntry(pack, { ...header, size: entry.size }, createReadStream(entry.source) as AsyncIterable<Buffer>);
          } else {
            throw new DuccError('BOT_ERR_PUBLISH', `tree file entry ${name} has neither content nor source`);
          }
          files.add(name);
          break;
        }
        case 'hardlink': {
          const target = normalizeEntryPath(entry.target);
          if (!files.has(target)) {
            throw new DuccError('BOT_ERR_PUBLISH', `tree hard link ${name} -> ${target}: the target is not an earlier file of the tree`);
          }
          await packEntry(pack, { name, type: 'link', linkname: target, mode: 0o644 });
          files.add(name);
          break;
        }
        case 'link':
          // Never built for this publisher (hardLinksTreeFiles is false): a caller bug, not bad input.
          throw new DuccError('BOT_ERR_PUBLISH', `tree entry ${name}: a 'link' entry, but this publisher needs file entries with their metadata`);
      }
    }
    if (state.failed) return;
    state.completed = true;
    pack.finalize();
  };

  const result = walk().catch((error: unknown) => {
    state.fail(error);
    return Promise.reject(state.failure);
  });
  return { output: pack as unknown as Readable, result };
}

/** Writes one entry and resolves once it is in the pack (for bodies: once the pack accepted all bytes). */
/**
 * Writes one entry and resolves once the pack holds it. A streamed body is copied chunk by chunk with
 * backpressure, and its length checked here: an error of the body or a wrong length is thrown before it
 * reaches the pack, so that it is reported as what it is (tar-stream would destroy the whole pack).
 */
async function packEntry(pack: TarPack, header: TarHeader, body?: AsyncIterable<Buffer> | Buffer): Promise<void> {
  // A file entry without a body would wait for one: give empty files an empty buffer.
  if (body === undefined && header.type === 'file') body = Buffer.alloc(0);
  let sink: Sink | undefined;
  const written = new Promise<void>((resolve, reject) => {
    const callback = (error?: Error | null) => (error ? reject(error) : resolve());
    sink = Buffer.isBuffer(body) ? pack.entry(header, body, callback) : pack.entry(header, callback);
  });
  // Errors reach us through the entry callback; an 'error' event without listener would crash the process.
  sink?.on('error', () => {});
  if (sink === undefined || body === undefined || Buffer.isBuffer(body)) {
    await written;
    return;
  }
  written.catch(() => {}); // awaited below; on a body error the pack is torn down by the caller
  const size = header.size ?? 0;
  let copied = 0;
  for await (const chunk of body) {
    copied += chunk.length;
    if (copied > size) throw new DuccError('BOT_ERR_PUBLISH', `${header.name}: more than the announced ${size} bytes`);
    if (!sink.write(chunk)) await drained(sink);
  }
  if (copied !== size) throw new DuccError('BOT_ERR_PUBLISH', `${header.name}: ${copied} bytes instead of the announced ${size}`);
  sink.end(undefined);
  await written;
}

function drained(sink: Sink): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      sink.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      sink.off('drain', onDrain);
      reject(new TarOutputClosedError());
    };
    sink.once('drain', onDrain);
    sink.once('close', onClose);
  });
}

function ownership(header: TarHeader): Partial<Header> {
  return {
    uid: header.uid ?? 0,
    gid: header.gid ?? 0,
    ...(header.uname === undefined ? {} : { uname: header.uname }),
    ...(header.gname === undefined ? {} : { gname: header.gname }),
    ...(header.mtime === undefined ? {} : { mtime: header.mtime }),
  };
}

/** PAX records to carry over, minus those that the new header states itself. */
function paxWithout(pax: unknown, drop: string[]): { pax?: Record<string, string> } {
  if (pax === undefined || pax === null || typeof pax !== 'object') return {};
  const kept = Object.fromEntries(Object.entries(pax as Record<string, string>).filter(([key]) => !drop.includes(key)));
  return Object.keys(kept).length === 0 ? {} : { pax: kept };
}

// ---- helpers ----------------------------------------------------------------------------------

/**
 * A tar member name as a root-relative path: leading `/` and `./` removed, no trailing `/`; `.` for the
 * root. A `..` component is refused.
 */
export function normalizeEntryPath(name: string): string {
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) {
    throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `tar entry '${name}' has a '..' component`);
  }
  return parts.length === 0 ? '.' : parts.join('/');
}

/** A publisher-relative path, normalized; '' for the root. Absolute paths and `..` are refused. */
function normalizeRelativePath(relPath: string, code: 'BOT_ERR_PUBLISH' | 'BOT_ERR_CONFIG'): string {
  if (relPath.startsWith('/')) throw new DuccError(code, `path '${relPath}' must be relative`);
  const parts = relPath.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new DuccError(code, `path '${relPath}' must not contain '..'`);
  return parts.join('/');
}

function temporarySibling(abs: string): string {
  return path.join(path.dirname(abs), `.${path.basename(abs)}.ducc-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function describeType(stats: Stats): string {
  if (stats.isDirectory()) return 'directory';
  if (stats.isFile()) return 'regular file';
  return 'special file';
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function ifExists<T>(operation: Promise<T>): Promise<T | undefined> {
  try {
    return await operation;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Keeps the last MAX_CAPTURED_OUTPUT_BYTES of a stream. */
class OutputTail {
  #chunks: Buffer[] = [];
  #size = 0;

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#chunks.length > 1 && this.#size - (this.#chunks[0]?.length ?? 0) >= MAX_CAPTURED_OUTPUT_BYTES) {
      this.#size -= this.#chunks.shift()?.length ?? 0;
    }
  }

  text(): string {
    const all = Buffer.concat(this.#chunks);
    return all.subarray(Math.max(0, all.length - MAX_CAPTURED_OUTPUT_BYTES)).toString('utf8');
  }
}

function lastLines(stderr: string, stdout: string): string {
  for (const text of [stderr, stdout]) {
    const lines = text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '');
    if (lines.length > 0) return lines.slice(-QUOTED_STDERR_LINES).join(' / ');
  }
  return 'no output';
}
