/**
 * Conversions step aside while `ducc serve` answers webhooks.
 *
 * With conversions on a thread of their own (src/bot/conversion-thread.ts) the main thread's event loop is
 * free, but on a machine of 2 cores it still competes for them: the conversion thread, its file-writer and
 * decompression threads and libuv's pool keep both cores busy, and the main thread gets its share of CPU
 * late. A burst of 50 deliveries, ~25 ms of work on an idle core, then took several times as long.
 *
 * So the main thread raises a flag in shared memory while it has webhook requests to answer
 * (`YieldGate.raise` / `lower`), and the threads of a conversion look at it at safe points between pieces
 * of work (`stepAside`: per decompressed chunk, per batch of files, per directory of a flat tree) and wait
 * while it is up, at most MAX_PAUSE_MS each time, so a flood of requests slows conversions down but never
 * stops them. Looking costs one atomic load. Outside worker threads, and in processes without a gate (the
 * CLI), `stepAside` does nothing.
 */
import { isMainThread } from 'node:worker_threads';

/** The longest one `stepAside` waits, whatever the main thread says. */
const MAX_PAUSE_MS = 100;

let flag: Int32Array | undefined;

/** The main thread's end: raise while requests are being answered, lower when none are. */
export class YieldGate {
  readonly buffer = new SharedArrayBuffer(4);
  readonly #flag = new Int32Array(this.buffer);

  raise(): void {
    if (Atomics.exchange(this.#flag, 0, 1) === 0) Atomics.notify(this.#flag, 0);
  }

  lower(): void {
    if (Atomics.exchange(this.#flag, 0, 0) === 1) Atomics.notify(this.#flag, 0);
  }

  get raised(): boolean {
    return Atomics.load(this.#flag, 0) === 1;
  }
}

/** In a conversion thread (and the threads it starts): the gate to look at. */
export function installYieldGate(buffer: SharedArrayBuffer | undefined): void {
  flag = buffer === undefined ? undefined : new Int32Array(buffer);
}

/** The gate of this thread, to hand on to the threads it starts. */
export function yieldGateBuffer(): SharedArrayBuffer | undefined {
  return flag?.buffer as SharedArrayBuffer | undefined;
}

/** Waits while the main thread answers requests (at most MAX_PAUSE_MS); returns at once otherwise. */
export function stepAside(): void {
  if (flag === undefined || isMainThread || Atomics.load(flag, 0) === 0) return;
  // Woken by lower() at once, or gives up after MAX_PAUSE_MS.
  Atomics.wait(flag, 0, 1, MAX_PAUSE_MS);
}
