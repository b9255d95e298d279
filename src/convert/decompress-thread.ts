/**
 * Decompression of a large layer on a thread of its own.
 *
 * Node's zlib decompresses one chunk at a time on libuv's thread pool, and the next chunk is queued only
 * when the main thread runs the completion callback. While the main thread hashes and writes the previous
 * chunk (~2 ms per MiB), that completion waits, and so does the decompressor: on the 1 GiB bench image
 * it was busy only about half of the time. Here the decompressor runs in a worker whose event loop does
 * nothing else, so its completions are taken at once; compressed chunks go to it and decompressed chunks
 * come back by transfer (no copy where a chunk owns its buffer). Measured on the 1 GiB image, layers
 * only, 2 cores: 5.82 s -> 4.97 s (median of 5). For layers of ordinary size the thread's start and the
 * messages cost about what they save on a machine whose cores are already busy (the Debian images, every
 * layer threaded: 2-6% slower, 0.2-0.35 s more CPU), so only layers of at least
 * DUCC_DECOMPRESS_THREAD_MIN_BYTES compressed bytes (default 128 MiB) use it.
 *
 * At most INPUT_IN_FLIGHT compressed chunks are queued in the thread and at most OUTPUT_IN_FLIGHT
 * decompressed chunks are on their way back unacknowledged, so memory stays bounded whatever the speed of
 * either side (the digest stage after this one still enforces the layer's byte limit against
 * decompression bombs).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { DuccError } from '../util/errors.ts';
import { yieldGateBuffer } from '../util/yield-gate.ts';

const DECOMPRESS_THREAD_VARIABLE = 'DUCC_DECOMPRESS_THREAD_MIN_BYTES';
const DEFAULT_MIN_BYTES = 128 * 1024 * 1024;
/** Compressed chunks (1 MiB each) sent to the thread and not yet read by its decompressor, at most. */
const INPUT_IN_FLIGHT = 2;
/** Decompressed chunks (up to 1 MiB each) sent back and not yet taken, at most. */
const OUTPUT_IN_FLIGHT = 4;

/** Compressed size from which a layer is decompressed on its own thread (DUCC_DECOMPRESS_THREAD_MIN_BYTES). */
export function decompressThreadMinBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[DECOMPRESS_THREAD_VARIABLE]?.trim();
  if (raw === undefined || raw === '') return DEFAULT_MIN_BYTES;
  if (!/^\d{1,16}$/.test(raw)) {
    throw new DuccError('BOT_ERR_CONFIG', `${DECOMPRESS_THREAD_VARIABLE} must be a number of bytes (0: every layer), not ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/**
 * The thread: only Node's own modules, so it runs as an inline script (nothing to find next to a bundle).
 * In: an ArrayBuffer of compressed bytes, 'end', or 'ack' (one decompressed chunk taken). Out: 'consumed'
 * (one compressed chunk fully read), an ArrayBuffer of decompressed bytes, 'end', or { error, code }.
 */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const zlib = require('node:zlib');
const { Writable } = require('node:stream');
const chunkSize = 1024 * 1024;
const decompressor = workerData.compression === 'gzip' ? zlib.createGunzip({ chunkSize }) : zlib.createZstdDecompress({ chunkSize });
// In \`ducc serve\`'s conversion thread: step aside while webhooks are answered (src/util/yield-gate.ts).
const gate = workerData.gate === undefined ? undefined : new Int32Array(workerData.gate);
const stepAside = () => {
  if (gate !== undefined && Atomics.load(gate, 0) !== 0) Atomics.wait(gate, 0, 1, 100);
};
let credit = ${OUTPUT_IN_FLIGHT};
let blocked;
parentPort.on('message', (message) => {
  if (message === 'ack') {
    credit++;
    const resume = blocked;
    blocked = undefined;
    resume?.();
  } else if (message === 'end') {
    decompressor.end();
  } else {
    stepAside();
    decompressor.write(Buffer.from(message), () => parentPort.postMessage('consumed'));
  }
});
decompressor.on('error', (error) => parentPort.postMessage({ error: String(error.message), code: error.code }));
decompressor.pipe(new Writable({
  write(chunk, _encoding, callback) {
    const send = () => {
      credit--;
      // zlib never writes again into a buffer it has filled: such a chunk owns its memory and is moved.
      const owns = chunk.byteOffset === 0 && chunk.length === chunk.buffer.byteLength;
      const bytes = owns ? chunk.buffer : chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.length);
      parentPort.postMessage(bytes, [bytes]);
      callback();
    };
    if (credit > 0) send();
    else blocked = send;
  },
  final(callback) {
    parentPort.postMessage('end');
    callback();
  },
}));
`;

/** Threads started since the process started, and those still running (for tests and diagnostics). */
export const decompressThreadStats = { started: 0, running: 0 };

/** A gunzip/zstd Transform whose work runs on a worker thread (see the module comment). */
export class ThreadedDecompressor extends Transform {
  readonly #worker: Worker;
  readonly #label: string;
  #inFlight = 0;
  #waitingInput: TransformCallback | undefined;
  #flushed: TransformCallback | undefined;
  #unacknowledged = 0;
  #ended = false;

  constructor(compression: 'gzip' | 'zstd', label: string) {
    super();
    this.#label = label;
    this.#worker = new Worker(THREAD, { eval: true, workerData: { compression, gate: yieldGateBuffer() } });
    decompressThreadStats.started++;
    decompressThreadStats.running++;
    this.#worker.on('exit', () => {
      decompressThreadStats.running--;
      if (!this.#ended && !this.destroyed) this.destroy(new DuccError('BOT_ERR_PUBLISH', `${this.#label}: the decompression thread stopped`));
    });
    this.#worker.on('error', (error) =>
      this.destroy(new DuccError('BOT_ERR_PUBLISH', `${this.#label}: the decompression thread failed: ${error.message}`, { cause: error })),
    );
    this.#worker.on('message', (message: unknown) => this.#receive(message));
  }

  #receive(message: unknown): void {
    if (this.destroyed) return;
    if (message === 'consumed') {
      this.#inFlight--;
      const next = this.#waitingInput;
      this.#waitingInput = undefined;
      next?.();
    } else if (message === 'end') {
      this.#ended = true;
      void this.#worker.terminate();
      const done = this.#flushed;
      this.#flushed = undefined;
      done?.();
    } else if (message instanceof ArrayBuffer) {
      if (this.push(Buffer.from(message))) this.#worker.postMessage('ack');
      else this.#unacknowledged++;
    } else {
      // The decompressor's own error (corrupt or truncated data), with its message and code as zlib gives them.
      const { error, code } = message as { error: string; code?: string };
      this.destroy(Object.assign(new Error(error), code === undefined ? {} : { code }));
    }
  }

  override _read(size: number): void {
    for (; this.#unacknowledged > 0; this.#unacknowledged--) this.#worker.postMessage('ack');
    super._read(size);
  }

  /**
   * A chunk that owns its whole memory is moved to the thread (it is empty here afterwards): the stage
   * before this one makes a new buffer for every chunk it writes, and nothing else holds it. Other
   * chunks are copied.
   */
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const owns = chunk.byteOffset === 0 && chunk.length === chunk.buffer.byteLength;
    let bytes: ArrayBuffer;
    if (owns) {
      bytes = chunk.buffer as ArrayBuffer;
    } else {
      bytes = new ArrayBuffer(chunk.length);
      new Uint8Array(bytes).set(chunk);
    }
    try {
      this.#worker.postMessage(bytes, [bytes]);
    } catch {
      // A buffer Node will not let go of (from its pool): send a copy.
      const copy = new Uint8Array(chunk);
      this.#worker.postMessage(copy.buffer, [copy.buffer]);
    }
    this.#inFlight++;
    if (this.#inFlight < INPUT_IN_FLIGHT) callback();
    else this.#waitingInput = callback;
  }

  override _flush(callback: TransformCallback): void {
    this.#flushed = callback;
    this.#worker.postMessage('end');
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#ended = true;
    void this.#worker.terminate();
    callback(error);
  }
}
