import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { access, constants as fsConstants, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import lockfile from 'proper-lockfile';
import { DuccError, errorMessage } from '../../util/errors.ts';
import { GUARD_SOURCE } from './ingest-guard.ts';
import { IngestTar } from './ingest-tar.ts';

/** Bytes of stdout and of stderr kept from each `cvmfs_server` call, for error messages and logs. */
const MAX_CAPTURED_OUTPUT_BYTES = 64 * 1024;
/** A lock not refreshed for this long belongs to a dead process and is taken over (proper-lockfile `stale`). */
const LOCK_STALE_MS = 20_000;
const LOCK_RETRY_MIN_MS = 50;
const LOCK_RETRY_MAX_MS = 2_000;
export const DEFAULT_LOCK_WAIT_MS = 60 * 60 * 1000;
/** Tries of `cvmfs_server list` while another repository of the machine is being made or removed. */
const LIST_ATTEMPTS = 5;
const LIST_RETRY_MS = 300;
/** Lines of stderr quoted in the message of a failed `cvmfs_server` call. */
const QUOTED_STDERR_LINES = 3;

export interface CvmfsServerOptions {
  repository: string;
  /** The `cvmfs_server` command (name looked up on PATH, or a path); default `cvmfs_server`. */
  command?: string;
  /** Extra environment variables for `cvmfs_server`, on top of this process's environment. */
  env?: Record<string, string | undefined>;
  /** Directory of the per-repository lock; default `/var/lock` if writable, else the OS temp dir. */
  lockDir?: string;
  /** How long to wait for another process holding the repository lock; default one hour. */
  lockWaitMs?: number;
  logger: Logger;
}

export interface ServerListEntry {
  name: string;
  inTransaction: boolean;
}

/** What one ingest does besides its tar: directories deleted first, in the same publish. */
export interface IngestSpec {
  /** `-b`: where the tar's names start, repository-relative; `/` for the repository root. */
  base: string;
  /** `-d`: repository-relative directories removed before the tar is read (the real tool ignores non-directories). */
  deletes: string[];
}

/**
 * Runs `cvmfs_server` for one repository: every call with an argv array (never a shell), its output
 * kept for error messages, one exclusive section at a time per repository across processes (a
 * proper-lockfile lock in `lockDir` plus an in-process queue), and ingests behind the guard of
 * ingest-guard.ts so that a tar cut short is never published.
 */
export class CvmfsServer {
  readonly repository: string;
  readonly command: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #configuredLockDir: string | undefined;
  readonly #lockWaitMs: number;
  readonly #log: Logger;
  #lockDir: Promise<string> | undefined;
  /** Tail of the in-process queue: every exclusive section chains on it. */
  #queue: Promise<void> = Promise.resolve();
  /** True inside an exclusive section of this repository (per async context). */
  readonly #inside = new AsyncLocalStorage<boolean>();

  constructor(options: CvmfsServerOptions) {
    this.repository = options.repository;
    this.command = options.command ?? 'cvmfs_server';
    this.#env = { ...process.env, ...options.env };
    this.#configuredLockDir = options.lockDir;
    this.#lockWaitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    this.#log = options.logger;
  }

  // ---- simple commands ------------------------------------------------------------------------

  /** This repository's line of `cvmfs_server list`, or undefined when this machine does not serve it. */
  async listEntry(): Promise<ServerListEntry | undefined> {
    // `cvmfs_server list` reads every repository's configuration, and fails while another repository is
    // being made or removed on this machine (its files half there): a moment later it answers.
    for (let attempt = 1; ; attempt++) {
      try {
        const output = await this.run(['list']);
        return parseServerList(output).find((entry) => entry.name === this.repository);
      } catch (error) {
        const otherRepository = error instanceof CvmfsCommandError && /\/etc\/cvmfs\/repositories\.d\/([^/\s]+)\//.exec(error.output)?.[1];
        if (!otherRepository || otherRepository === this.repository || attempt >= LIST_ATTEMPTS) throw error;
        await sleep(LIST_RETRY_MS * attempt);
      }
    }
  }

  /**
   * Waits until no publish of this repository is running (cvmfs_server holds an flock on
   * `<spool>/is_publishing.lock` while it publishes). A publish left running by a process of ours that
   * died — its tar was complete — must finish before anyone looks at the repository's state.
   */
  async waitForPublishing(): Promise<void> {
    const lock = path.join(await this.#spoolDir(), 'is_publishing.lock');
    try {
      await access(lock);
    } catch {
      return;
    }
    const seconds = String(Math.max(1, Math.round(this.#lockWaitMs / 1000)));
    const { code, stderr } = await this.#start('flock', ['-w', seconds, lock, 'true'], false).result;
    if (code !== 0) {
      throw new DuccError(
        'BOT_ERR_CVMFS',
        `a publish of ${this.repository} is still running after ${seconds} s (flock ${lock}): ${stderr.trim() || `exit ${code}`}`,
      );
    }
  }

  /** `CVMFS_SPOOL_DIR` of the repository's server.conf, or cvmfs_server's default. */
  async #spoolDir(): Promise<string> {
    const fallback = `/var/spool/cvmfs/${this.repository}`;
    try {
      const conf = await readFile(`/etc/cvmfs/repositories.d/${this.repository}/server.conf`, 'utf8');
      return /^CVMFS_SPOOL_DIR=(.+)$/m.exec(conf)?.[1]?.trim() || fallback;
    } catch {
      return fallback;
    }
  }

  /** Runs a `cvmfs_server` subcommand without input; returns its stdout, throws BOT_ERR_CVMFS on failure. */
  async run(args: string[]): Promise<string> {
    const result = await this.#start(this.command, args, false).result;
    this.#check(args, result);
    return result.stdout;
  }

  /** After a killed ingest or a failed transaction (under the lock): aborts the transaction left open. Never throws. */
  async abortLeftoverTransaction(): Promise<void> {
    try {
      const entry = await this.listEntry();
      if (entry?.inTransaction === true) {
        this.#log.warn('the repository was left in a transaction; aborting it');
        await this.run(['abort', '-f', this.repository]);
      }
    } catch (error) {
      this.#log.error({ err: error }, 'cannot check or abort the transaction left open');
    }
  }

  // ---- ingest ---------------------------------------------------------------------------------

  /**
   * `cvmfs_server ingest -t - -b <base> -k [-d <dir>]... <repo>` with the tar that `produce` writes,
   * through the guard. `-k` keeps the tar's owners: image files keep the image's, and our own
   * directories and files carry the repository owner's (the writer sets them). The tar is committed
   * only when `produce` resolved and every byte reached the ingest; if `produce` fails, the ingest is
   * killed before it sees an end of input, its transaction aborted, and `produce`'s error thrown.
   */
  async ingest(spec: IngestSpec, produce: (tar: IngestTar) => Promise<void>): Promise<void> {
    return this.#ingest(spec, async (stdin) => {
      // A socket: each write calls back once its bytes are in the kernel, as IngestTar needs.
      const tar = new IngestTar(stdin);
      try {
        await produce(tar);
        await tar.finish();
      } catch (error) {
        tar.destroy(error);
        throw error;
      }
    });
  }

  /**
   * The same with a tar written beforehand to a local file (`IngestTar.toFile`): for trees whose files
   * are read from this node's mount of the repository, which an ingest through a gateway remounts when it
   * starts its transaction — reading from it while the ingest starts would wait for each other.
   */
  async ingestFile(spec: IngestSpec, file: string): Promise<void> {
    return this.#ingest(spec, (stdin) => pipeline(createReadStream(file), stdin));
  }

  /** Runs the ingest with `feed` writing its tar to the ingest's standard input (and ending it). */
  async #ingest(spec: IngestSpec, feed: (stdin: Writable) => Promise<void>): Promise<void> {
    const args = ['ingest', '-t', '-', '-b', spec.base, '-k', ...spec.deletes.flatMap((dir) => ['-d', dir]), this.repository];
    this.#log.debug({ argv: [this.command, ...args] }, 'executing through the ingest guard');
    const { child, result } = this.#start(process.execPath, ['-e', GUARD_SOURCE, '--', this.command, ...args], true);
    const stdin = child.stdin!;
    const control = child.stdio[3] as Writable;
    control.on('error', () => {}); // the guard may be gone; its exit status says why
    let produced: unknown;
    let ok = false;
    try {
      await feed(stdin);
      ok = true;
    } catch (error) {
      produced = error;
      stdin.destroy();
    }
    if (ok) control.end('commit\n');
    else control.destroy();
    const exited = await result;
    if (ok) {
      this.#check(args, exited);
      return;
    }
    // Nothing was published. Killed by the guard, the ingest left its transaction open: abort it. Failed
    // by itself, it cleaned up after itself (and may have refused to start because someone else holds a
    // transaction, which must be left alone); its own message then explains our broken pipe.
    if (exited.code === null) await this.abortLeftoverTransaction();
    else if (exited.code !== 0 && !(produced instanceof DuccError)) this.#check(args, exited);
    throw produced;
  }

  /**
   * `cvmfs_server ingest -d <dir>... <repo>`: removes directories in one publish. Needed apart from the
   * ingest of a tar whenever that tar writes below a removed directory: CernVM-FS 2.12 panics on
   * `-d X` with a tar that makes `X` again ("catalog for file 'X/...' cannot be found").
   */
  async deleteDirectories(dirs: string[]): Promise<void> {
    if (dirs.length === 0) return;
    await this.run(['ingest', ...dirs.flatMap((dir) => ['-d', dir]), this.repository]);
  }

  // ---- processes ------------------------------------------------------------------------------

  #start(command: string, args: string[], guarded: boolean): { child: ChildProcess; result: Promise<CommandResult> } {
    const child = spawn(command, args, {
      stdio: guarded ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
      env: this.#env,
      // The guard leads a process group of its own, so that it can kill the ingest (and nothing else).
      detached: guarded,
    });
    const stdout = new OutputTail();
    const stderr = new OutputTail();
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    const result = new Promise<CommandResult>((resolve, reject) => {
      child.once('error', (error) => reject(new DuccError('BOT_ERR_CVMFS', `cannot run ${command} ${args[0] ?? ''}: ${error.message}`, { cause: error })));
      child.once('close', (code, signal) => resolve({ code, signal, stdout: stdout.text(), stderr: stderr.text() }));
    });
    return { child, result };
  }

  #check(args: string[], result: CommandResult): void {
    if (result.code === 0) return;
    const subcommand = args[0] ?? '';
    const status = result.code === null ? `signal ${result.signal ?? 'unknown'}` : `exit ${result.code}`;
    // Through a repository gateway, a path leased by another publisher: "lease path busy" (exit 16 for a
    // transaction, 1 for an ingest). A temporary condition: the lease ends with its holder's publish.
    const leaseBusy = /lease path busy|^Path busy/m.test(`${result.stderr}\n${result.stdout}`);
    this.#log[leaseBusy ? 'debug' : 'error']({ argv: [this.command, ...args], status, stdout: result.stdout, stderr: result.stderr }, 'cvmfs_server failed');
    throw new CvmfsCommandError(
      `cvmfs_server ${subcommand} ${this.repository} failed (${status}): ${lastLines(result.stderr, result.stdout)}`,
      leaseBusy,
      `${result.stdout}\n${result.stderr}`,
    );
  }

  // ---- locking --------------------------------------------------------------------------------

  /**
   * Runs `section` under the in-process queue and the cross-process repository lock. A section entered
   * from inside another one of the same async context (a garbage collection's transactions) runs at
   * once: it already holds the lock.
   */
  async exclusive<T>(section: () => Promise<T>): Promise<T> {
    if (this.#inside.getStore() === true) return section();
    const previous = this.#queue;
    let done!: () => void;
    this.#queue = new Promise<void>((resolve) => (done = resolve));
    await previous;
    try {
      return await this.#withFileLock(() => this.#inside.run(true, section));
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
}

/** A `cvmfs_server` call that failed; `leaseBusy` when a gateway refused a lease held by another publisher. */
export class CvmfsCommandError extends DuccError {
  readonly leaseBusy: boolean;
  /** What the command printed (the kept tail of stdout, then of stderr), for callers that tell failures apart. */
  readonly output: string;
  constructor(message: string, leaseBusy: boolean, output: string) {
    super('BOT_ERR_CVMFS', message);
    this.leaseBusy = leaseBusy;
    this.output = output;
  }
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
