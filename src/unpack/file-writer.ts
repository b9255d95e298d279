/**
 * Hands the small regular files of a layer to a file-writer thread (file-writer-worker.ts), so that
 * creating them — open, write, futimes, close, the kernel work that dominates a layer of many small
 * files — runs on another core while the main thread goes on parsing the archive and hashing it.
 *
 * The extractor stays in charge of order and safety. A file goes to the writer only when its name is new
 * in the layer and its parent is a real directory; the extractor waits for the writer (`settle`) before
 * anything that could observe or disturb a file in flight: looking up or creating something at the
 * same path, removing anything, or applying directory metadata at the end. Waiting is synchronous
 * (Atomics.wait on a shared counter, failures read with receiveMessageOnPort), so the extractor's
 * synchronous path resolution can wait wherever it needs to.
 *
 * The directory publisher uses the same sessions for the hard links of a flat tree (`link`): it hands
 * every other run of links over and makes the rest itself.
 *
 * The number of writer threads comes from the settings (DUCC_WRITER_THREADS, 0: write everything on the
 * main thread); the pool is started with the first session that has a thread to use.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { DuccError } from '../util/errors.ts';
import { JOB_FIELDS, packJob, type BatchDone, type FileJob, type WriterMessage } from './file-writer-protocol.ts';
import { unpackSettingsFromEnv, type UnpackSettings } from './settings.ts';
import { yieldGateBuffer } from '../util/yield-gate.ts';

/** Content bytes per batch. */
const BATCH_BYTES = 1024 * 1024;
/**
 * Larger files are written by the extractor itself: for them the per-file calls matter less than the
 * bytes, and handing them over would add a copy into the batch.
 */
const HANDED_OVER_MAX_BYTES = 64 * 1024;
/** Files per batch: keeps batches small enough that the writer starts early. */
const BATCH_FILES = 256;
/**
 * Batches of one layer sent and not yet written; beyond this the extractor waits. Enough for the writer
 * not to run dry while the extractor is held up (waiting for the next decompressed chunk, hashing, a
 * garbage collection): 16 MiB, some 4,000 small files. Measured, 50,000 small files, layers only, median
 * of 10 interleaved runs: 4 batches 1.22 s, 8 1.15 s, 16 1.15 s, 32 1.10 s.
 */
const MAX_IN_FLIGHT = 16;
/**
 * A writer that finishes no batch for this long is taken for dead: a liveness backstop for a thread that
 * stopped without running its exit handler (killed for memory), not a limit.
 */
const STALL_MS = 5 * 60_000;

const WORKER_URL = new URL(`./file-writer-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/**
 * A writer thread starts as these few lines, which then import the module. They report the thread's
 * end in shared memory (a flag, and the error's message if there was one), whatever ends it: an error
 * in the module, or the module failing to load at all, when nothing of it runs. A session blocked in
 * Atomics.wait cannot receive the 'error' event; it reads this between waits.
 */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
const flag = new Int32Array(workerData.report, 0, 2);
const text = new Uint8Array(workerData.report, 8);
process.on('uncaughtExceptionMonitor', (error) => {
  if (Atomics.load(flag, 1) === 0) Atomics.store(flag, 1, new TextEncoder().encodeInto(String(error?.message ?? error), text).written);
});
process.on('exit', () => Atomics.store(flag, 0, 1));
import(workerData.module);
`;
/** Bytes of a stopped thread's error message kept in its report. */
const REPORT_TEXT_BYTES = 1024;

interface WriterThread {
  worker: Worker;
  /** [0]: 1 once the thread has stopped; [1]: bytes of the error message that follow at byte 8. */
  report: Int32Array;
}

/** Why the thread stopped, or undefined while it runs. */
function stoppedBecause(thread: WriterThread): string | undefined {
  if (Atomics.load(thread.report, 0) === 0) return undefined;
  const length = Atomics.load(thread.report, 1);
  return length === 0 ? 'it ended' : Buffer.from(thread.report.buffer, 8, Math.min(length, REPORT_TEXT_BYTES)).toString('utf8');
}

/** Files and hard links handed to writer threads since the process started (for tests and diagnostics). */
export const fileWriterStats = { filesHandedOver: 0, linksHandedOver: 0 };

/** Makes every writer thread throw, as a bug in it would (tests only). */
export function failWriterThreadsForTest(): void {
  for (const { worker } of pool ?? []) worker.postMessage({ kind: 'fail-for-test' } satisfies WriterMessage);
}

/**
 * Batch buffers the writer gave back, for the next batches: a layer of 50,000 small files would otherwise
 * leave ~160 MiB of spent buffers for the garbage collector, which frees them late (they are outside
 * the JavaScript heap). At most MAX_IN_FLIGHT + 1 are ever in use at once.
 */
const spareBuffers: ArrayBuffer[] = [];

let pool: WriterThread[] | undefined;
let nextWorker = 0;
let nextSession = 0;
/** Sessions bound to a thread and not closed yet. */
let openSessions = 0;

/**
 * Ends the writer threads and drops the spare batch buffers, unless a session is open: each thread is
 * ~25-35 MB of memory (a JavaScript engine of its own), the buffers up to 17 MiB. The cvmfs publisher
 * calls it once an image's layers are unpacked in its staging: the ingests and the flat tree that follow
 * need no writer thread, and that is where a conversion's memory peaks (50,000 small files: 233 -> 209 MB).
 * The next session starts the threads again.
 */
export async function releaseIdleWriters(): Promise<void> {
  if (openSessions > 0 || pool === undefined) return;
  const threads = pool;
  pool = undefined;
  spareBuffers.length = 0;
  await Promise.all(threads.map(({ worker }) => worker.terminate()));
}

/**
 * The writer threads, `count` of them started on first use (the first session's settings size the pool);
 * they never keep the process alive.
 */
function writers(count: number): WriterThread[] {
  if (pool === undefined) {
    pool = [];
    for (let i = 0; i < count; i++) {
      const report = new SharedArrayBuffer(8 + REPORT_TEXT_BYTES);
      const worker = new Worker(BOOTSTRAP, { eval: true, workerData: { module: WORKER_URL.href, report, gate: yieldGateBuffer() } });
      worker.unref();
      const thread: WriterThread = { worker, report: new Int32Array(report, 0, 2) };
      // Sessions bound to a stopped thread learn it from its report; new sessions do not use it. The
      // 'error' listener is also what keeps the thread's error from being thrown in this process.
      const forget = (): void => {
        pool = pool?.filter((t) => t !== thread);
      };
      worker.on('error', forget);
      worker.on('exit', forget);
      pool.push(thread);
    }
  }
  // A thread may have stopped before its 'exit' event has come through.
  return pool.filter((thread) => stoppedBecause(thread) === undefined);
}

interface Batch {
  buffer: Buffer;
  used: number;
  paths: string[];
  numbers: Float64Array;
  /** `where` of each file, for errors. */
  labels: string[];
}

interface Links {
  sources: string[];
  paths: string[];
  labels: string[];
}

/**
 * One layer's stream of small files to a writer thread. Usage per file: `accepts(size)`, then `begin`,
 * `write` for each chunk of content, `end`; per hard link of a flat tree: `acceptsLinks()`, then `link`.
 * `settle()` waits until everything handed over is on disk and throws the first failure; `close()`
 * waits without throwing and ends the session.
 */
export class FileWriterSession {
  /**
   * undefined when there are no writer threads: the extractor writes everything itself. The threads
   * start with the first file handed over, so a layer without small files never pays for them.
   */
  static open(settings: Pick<UnpackSettings, 'writerThreads'> = unpackSettingsFromEnv(process.env)): FileWriterSession | undefined {
    return settings.writerThreads === 0 ? undefined : new FileWriterSession(settings.writerThreads);
  }

  /** Bound to one thread on first use. */
  private thread: WriterThread | undefined;
  private readonly session = nextSession++;
  private readonly progress = new Int32Array(new SharedArrayBuffer(4));
  private port: MessagePort | undefined;
  /** Batches sent, and the entry labels of those not yet known to be written (by send order). */
  private sent = 0;
  private readonly labelsInFlight = new Map<number, string[]>();
  private batch: Batch | undefined;
  private links: Links | undefined;
  private current: { path: string; offset: number; size: number; cursor: number } | undefined;
  /** Files handed over so far; `begin` numbers them 1, 2, ... (their tickets). */
  private handedOver = 0;
  /** Files known to be on disk: every ticket up to this one (updated by settle). */
  private settledThrough = 0;
  private failure: DuccError | undefined;
  private closed = false;

  /** Threads in the pool, should this session be the one to start it. */
  private readonly threads: number;

  private constructor(threads: number) {
    this.threads = threads;
  }

  /** Whether a file of this size can be handed over. */
  accepts(size: number): boolean {
    return size <= HANDED_OVER_MAX_BYTES && this.acceptsLinks();
  }

  /** Whether hard links (and so anything) can be handed over: the session is open and has a thread. */
  acceptsLinks(): boolean {
    return !this.closed && (this.thread !== undefined || writers(this.threads).length > 0);
  }

  private start(): void {
    const available = writers(this.threads);
    this.thread = available[nextWorker++ % available.length]!;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    openSessions++;
    this.post({ kind: 'open', session: this.session, port: port2, progress: this.progress.buffer as SharedArrayBuffer }, [port2]);
  }

  /**
   * Whether the file with this ticket (from `begin`) may not be on disk yet: settle before looking at
   * it. A ticket instead of a set of paths: the extractor already keeps every name of the layer, and
   * stores the ticket with it.
   */
  isPending(ticket: number): boolean {
    return ticket > this.settledThrough;
  }

  /** Hands over one file; returns its ticket (1, 2, ... in this session). */
  begin(job: Omit<FileJob, 'offset'>, where: string): number {
    this.throwIfFailed();
    if (this.thread === undefined) this.start();
    if (this.links !== undefined) this.sendLinks();
    if (this.batch !== undefined && (this.batch.used + job.size > BATCH_BYTES || this.batch.paths.length >= BATCH_FILES)) this.send();
    if (this.batch === undefined) {
      this.collectReplies();
      const spare = spareBuffers.pop();
      this.batch = {
        buffer: spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(BATCH_BYTES),
        used: 0,
        paths: [],
        numbers: new Float64Array(BATCH_FILES * JOB_FIELDS),
        labels: [],
      };
    }
    const batch = this.batch;
    const offset = batch.used;
    packJob(batch.numbers, batch.paths.length, offset, job);
    batch.used += job.size;
    batch.paths.push(job.path);
    batch.labels.push(where);
    fileWriterStats.filesHandedOver++;
    this.current = { path: job.path, offset, size: job.size, cursor: 0 };
    return ++this.handedOver;
  }

  /**
   * Hands over a hard link of `source` at `path` (a copy with its metadata where the filesystem refuses a
   * link; see link-file.ts). `path` must not exist and its parent must, until settle.
   */
  link(source: string, path: string, where: string): void {
    this.throwIfFailed();
    if (this.thread === undefined) this.start();
    if (this.batch !== undefined) this.send();
    if (this.links !== undefined && this.links.paths.length >= BATCH_FILES) this.sendLinks();
    this.links ??= { sources: [], paths: [], labels: [] };
    this.links.sources.push(source);
    this.links.paths.push(path);
    this.links.labels.push(where);
    fileWriterStats.linksHandedOver++;
  }

  /** Adds `chunk[start..end)` to the current file's content. */
  write(chunk: Buffer, start: number, end: number): void {
    const current = this.current!;
    const length = end - start;
    if (current.cursor + length > current.size) throw new Error(`${current.path}: more content than the size announced`);
    chunk.copy(this.batch!.buffer, current.offset + current.cursor, start, end);
    current.cursor += length;
  }

  end(): void {
    const current = this.current!;
    this.current = undefined;
    if (current.cursor !== current.size) throw new Error(`${current.path}: ${current.cursor} bytes of content, ${current.size} announced`);
  }

  /** Sends what is batched, waits until every file handed over is written, throws the first failure. */
  settle(): void {
    if (this.thread === undefined) return;
    if (this.batch !== undefined) this.send();
    if (this.links !== undefined) this.sendLinks();
    this.waitUntilDone(this.sent);
    this.settledThrough = this.handedOver;
    this.throwIfFailed();
  }

  /** Waits for the batches already sent (the unsent one is dropped) and ends the session. Never throws. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.batch = undefined;
    this.links = undefined;
    if (this.thread === undefined) return;
    try {
      this.waitUntilDone(this.sent);
    } catch {
      // a dead writer: nothing more will be written
    }
    this.post({ kind: 'close', session: this.session });
    this.port!.close();
    openSessions--;
  }

  private send(): void {
    const batch = this.batch!;
    this.batch = undefined;
    const buffer = batch.buffer.buffer as ArrayBuffer;
    const numbers = batch.numbers.subarray(0, batch.paths.length * JOB_FIELDS).slice();
    this.dispatch(batch.labels, (seq) => ({ kind: 'batch', session: this.session, seq, buffer, paths: batch.paths, numbers }), [
      buffer,
      numbers.buffer as ArrayBuffer,
    ]);
  }

  private sendLinks(): void {
    const links = this.links!;
    this.links = undefined;
    this.dispatch(links.labels, (seq) => ({ kind: 'links', session: this.session, seq, sources: links.sources, paths: links.paths }));
  }

  /** Posts the next batch in send order, keeping its labels for errors. */
  private dispatch(labels: string[], message: (seq: number) => WriterMessage, transfer: ArrayBuffer[] = []): void {
    // Never more than MAX_IN_FLIGHT batches queued: bounded memory, and failures surface early.
    this.waitUntilDone(this.sent - MAX_IN_FLIGHT + 1);
    const seq = this.sent++;
    this.labelsInFlight.set(seq, labels);
    this.post(message(seq), transfer);
  }

  private post(message: WriterMessage, transfer: (ArrayBuffer | MessagePort)[] = []): void {
    this.thread!.worker.postMessage(message, transfer);
  }

  /** Blocks until at least `count` batches are written, collecting failures. */
  private waitUntilDone(count: number): void {
    let done = Atomics.load(this.progress, 0);
    let lastProgress = Date.now();
    while (done < count) {
      const stopped = stoppedBecause(this.thread!);
      if (stopped !== undefined) throw new DuccError('BOT_ERR_PUBLISH', `the file-writer thread stopped with files of this layer not yet written: ${stopped}`);
      // Short waits: a thread that stopped says so in its report, which is not a wake-up.
      const result = Atomics.wait(this.progress, 0, done, 100);
      const now = Atomics.load(this.progress, 0);
      if (now !== done) lastProgress = Date.now();
      else if (result === 'timed-out' && Date.now() - lastProgress > STALL_MS) {
        throw new DuccError('BOT_ERR_PUBLISH', `the file-writer thread wrote nothing for ${STALL_MS / 1000} s`);
      }
      done = now;
    }
    this.collectReplies();
  }

  /** Reads the writer's answers so far: buffers to reuse, and the first failure. */
  private collectReplies(): void {
    for (let received = receiveMessageOnPort(this.port!); received !== undefined; received = receiveMessageOnPort(this.port!)) {
      const done = received.message as BatchDone;
      if (done.buffer !== undefined && spareBuffers.length <= MAX_IN_FLIGHT) spareBuffers.push(done.buffer);
      const labels = this.labelsInFlight.get(done.seq);
      this.labelsInFlight.delete(done.seq);
      if (done.failure === undefined || this.failure !== undefined) continue;
      const where = labels?.[done.failure.index] ?? 'a file of the layer';
      const cause = Object.assign(new Error(done.failure.message), { code: done.failure.code, syscall: done.failure.syscall });
      this.failure = new DuccError('BOT_ERR_PUBLISH', `${where}: ${done.failure.message}`, { cause });
    }
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}
