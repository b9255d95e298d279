/**
 * The conversions of `ducc serve` on a worker thread of their own (conversion-worker.ts), so that the
 * main thread's event loop stays free for webhook requests.
 *
 * A conversion does much of its work synchronously, on purpose: the extractor creates files with
 * synchronous calls and the tar reader hands it entries synchronously (src/unpack), the flat tree is
 * built from synchronous directory reads, and on 2 cores each decompressed MiB holds the thread for
 * tens of milliseconds at a time. On the main thread of `ducc serve` that held the event loop: measured
 * by the bench (50 concurrent signed deliveries during the conversion of 50,000 small files), the
 * acknowledgement p99 went from about 40 ms without a conversion to several hundred. On a thread of its
 * own the conversion runs as fast as before and the main thread only answers webhooks, records state
 * and sets statuses.
 *
 * The thread is started with the first conversion and kept for the next ones (starting it and loading
 * the conversion code costs tens of milliseconds); it never keeps the process alive, and `close()` ends
 * it. It builds its own registry client (pull credentials from the same environment) and image sources, its own
 * publishers (one per publisher configuration and cvmfs_repo, recovered once, as BotContext does) and
 * its own thin-image pusher, from plain data sent with each conversion. Its log records come back to
 * the main thread and are written through the logger of the job that asked for the conversion. Errors
 * come back as DuccErrors with their code and `temporary` flag, so the job worker retries exactly what it
 * retried before.
 */
import type { Server } from 'node:http';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { PublisherConfig } from '../config/publisher-config.ts';
import type { ConvertOptions, ImageOutcome } from '../convert/convert-image.ts';
import { DuccError, type DuccErrorCode } from '../util/errors.ts';
import { YieldGate } from '../util/yield-gate.ts';
import type { ImageReference } from '../wishlist/image-reference.ts';
import type { Wishlist } from '../wishlist/wishlist.ts';
import type { DogestryRemote } from '../sources/dogestry-store.ts';

/** What the thread needs to convert one image: plain data only (it is copied to the thread). */
export interface ConversionRequest {
  publisher: PublisherConfig;
  cvmfsRepo: string;
  /** The registry-less sources of the configuration (src/sources), and where their cache is kept. */
  sources: { dogestryRemotes: DogestryRemote[]; cacheDir: string };
  /** The wish list's thin-image settings; undefined when no thin image is pushed. */
  thin: Pick<Wishlist, 'user' | 'outputFormat' | 'wishes'> | undefined;
  image: ImageReference;
  options: ConvertOptions;
}

/** Messages from the thread. */
export type FromConversionThread =
  | { kind: 'log'; id: number | undefined; line: string }
  | { kind: 'done'; id: number; outcomes: ImageOutcome[] }
  | { kind: 'failed'; id: number; error: SerializedError };

/**
 * After the last request was answered, the gate stays up this long: the deliveries of a burst arrive a
 * few milliseconds apart.
 */
const LOWER_AFTER_MS = 5;
/** A connection that sends no request within this long does not hold the conversion back. */
const CONNECTION_GRACE_MS = 50;

/** Messages to the thread. */
export type ToConversionThread = { kind: 'convert'; id: number; request: ConversionRequest };

export interface SerializedError {
  message: string;
  code?: string;
  status?: number;
  temporary?: boolean;
  stack?: string;
}

const WORKER_URL = new URL(`./conversion-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

interface Pending {
  resolve: (outcomes: ImageOutcome[]) => void;
  reject: (error: unknown) => void;
  log: Logger;
}

/** Threads started and conversions sent to them since the process started (for tests and diagnostics). */
export const conversionThreadStats = { started: 0, conversions: 0 };

export class ConversionThread {
  readonly #env: NodeJS.ProcessEnv;
  readonly #logger: Logger;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  readonly #gate = new YieldGate();
  #requests = 0;
  #lowerTimer: NodeJS.Timeout | undefined;

  constructor(options: { env: NodeJS.ProcessEnv; logger: Logger }) {
    this.#env = options.env;
    this.#logger = options.logger;
  }

  /** Converts one image (one platform, or every platform with options.multiArch) on the thread. */
  convert(request: ConversionRequest, log: Logger): Promise<ImageOutcome[]> {
    if (this.#closed) return Promise.reject(new DuccError('BOT_ERR_PUBLISH', 'the conversion thread is closed (ducc serve is stopping)'));
    const worker = this.#start();
    const id = this.#nextId++;
    return new Promise<ImageOutcome[]>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, log });
      worker.ref();
      worker.postMessage({ kind: 'convert', id, request } satisfies ToConversionThread);
      conversionThreadStats.conversions++;
    });
  }

  /**
   * While `server` has requests to answer (from the moment a connection is accepted), the conversion
   * steps aside (src/util/yield-gate.ts): on 2 cores it would otherwise take CPU time the answers need.
   */
  yieldTo(server: Server): void {
    server.on('connection', () => {
      this.#raise();
      // A connection that sends nothing (or is kept alive, idle) must not hold the conversion back.
      setTimeout(() => this.#maybeLower(), CONNECTION_GRACE_MS).unref();
    });
    server.on('request', (_request, response) => {
      this.#requests++;
      this.#raise();
      response.once('close', () => {
        this.#requests--;
        this.#maybeLower();
      });
    });
  }

  #raise(): void {
    clearTimeout(this.#lowerTimer);
    this.#lowerTimer = undefined;
    this.#gate.raise();
  }

  #maybeLower(): void {
    if (this.#requests > 0 || this.#lowerTimer !== undefined || !this.#gate.raised) return;
    this.#lowerTimer = setTimeout(() => {
      this.#lowerTimer = undefined;
      if (this.#requests === 0) this.#gate.lower();
    }, LOWER_AFTER_MS);
    this.#lowerTimer.unref();
  }

  /** Ends the thread; a conversion still running fails (as it would if the process stopped). */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
    this.#failAll(new DuccError('BOT_ERR_PUBLISH', 'the conversion thread was stopped (ducc serve is stopping)'));
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(WORKER_URL, { workerData: { env: this.#env, level: this.#logger.level, gate: this.#gate.buffer } });
    conversionThreadStats.started++;
    worker.unref();
    worker.on('message', (message: FromConversionThread) => this.#receive(message));
    const gone = (why: string): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      // Temporary: the job is retried later, on a new thread.
      this.#failAll(new DuccError('BOT_ERR_PUBLISH', `the conversion thread stopped: ${why}`, { temporary: true }));
    };
    worker.on('error', (error) => {
      this.#logger.error({ err: error }, 'the conversion thread failed');
      gone(error.message);
    });
    worker.on('exit', (code) => gone(`it exited with code ${code}`));
    this.#worker = worker;
    return worker;
  }

  #receive(message: FromConversionThread): void {
    if (message.kind === 'log') {
      const log = (message.id === undefined ? undefined : this.#pending.get(message.id)?.log) ?? this.#logger;
      relayLog(log, message.line);
      return;
    }
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (this.#pending.size === 0) this.#worker?.unref();
    if (message.kind === 'done') pending.resolve(message.outcomes);
    else pending.reject(deserializeError(message.error));
  }

  #failAll(error: DuccError): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const { reject } of pending) reject(error);
  }
}

/** A pino JSON line from the thread, written again through `log` (its bindings added, its level kept). */
function relayLog(log: Logger, line: string): void {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    log.info(line);
    return;
  }
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = record;
  const method = LEVELS[Number(level)] ?? 'info';
  log[method](fields, typeof msg === 'string' ? msg : '');
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof DuccError) {
    return {
      message: error.message,
      code: error.code,
      ...(error.status === undefined ? {} : { status: error.status }),
      temporary: error.temporary,
      ...(error.stack === undefined ? {} : { stack: error.stack }),
    };
  }
  if (error instanceof Error) return { message: error.message, ...(error.stack === undefined ? {} : { stack: error.stack }) };
  return { message: String(error) };
}

function deserializeError(error: SerializedError): Error {
  if (error.code === undefined) return Object.assign(new Error(error.message), error.stack === undefined ? {} : { stack: error.stack });
  const result = new DuccError(error.code as DuccErrorCode, error.message, {
    ...(error.status === undefined ? {} : { status: error.status }),
    ...(error.temporary === undefined ? {} : { temporary: error.temporary }),
  });
  if (error.stack !== undefined) result.stack = error.stack;
  return result;
}
