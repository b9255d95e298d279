/**
 * DUCC's JSON-lines notification file (`-n file`; ducc.md §9.6, `ducc/notification/notification.go`).
 *
 * Each notification is a Go `map[string]string` marshalled with `json.Marshal` — keys sorted bytewise,
 * every value a string, HTML escaping on — followed by `"\n"` and written with one `write` call to a
 * file opened `O_APPEND|O_CREATE|O_WRONLY` with mode 0660 (so several processes can share it). When
 * the notification has no (or an empty) `time` field, `Notify` adds one, formatted with the Go layout
 * `_2 Jan 2006 - 15:04:05.000` in local time (space-padded day, milliseconds truncated).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { goJsonMarshal, type GoJsonValue } from './ducc-manifest.ts';

/** Field values; numbers are stringified (integers as `%d`, others as Go `%f`, i.e. 6 decimals). */
export type NotificationFields = Readonly<Record<string, string | number>>;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** Go `t.Format("_2 Jan 2006 - 15:04:05.000")` in local time, e.g. `" 5 Mar 2024 - 14:03:02.123"`. */
export function formatNotificationTime(now: Date): string {
  const pad2 = (n: number): string => String(n).padStart(2, '0');
  const day = String(now.getDate()).padStart(2, ' ');
  const year = String(now.getFullYear()).padStart(4, '0');
  const ms = String(now.getMilliseconds()).padStart(3, '0');
  return `${day} ${MONTHS[now.getMonth()]} ${year} - ${pad2(now.getHours())}:${pad2(now.getMinutes())}:${pad2(now.getSeconds())}.${ms}`;
}

/** Go `fmt.Sprintf("%f", seconds)` of a duration in milliseconds — the `time_elapsed_s` value. */
export function formatElapsedSeconds(milliseconds: number): string {
  return goPercentF(milliseconds / 1000);
}

/** One notification line, exactly as DUCC writes it, including the trailing `"\n"`. */
export function formatNotification(fields: NotificationFields, now: Date): string {
  const values = new Map<string, string>();
  for (const [key, value] of Object.entries(fields)) values.set(key, typeof value === 'number' ? goNumberString(value) : value);
  if ((values.get('time') ?? '') === '') values.set('time', formatNotificationTime(now));
  // Go sorts map keys with sort.Strings, i.e. by UTF-8 bytes (differs from UTF-16 order above U+D7FF).
  const keys = [...values.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  const ordered = new Map<string, GoJsonValue>(keys.map((key) => [key, values.get(key) as string]));
  return `${goJsonMarshal(ordered)}\n`;
}

function goNumberString(value: number): string {
  return Number.isSafeInteger(value) ? String(value === 0 ? 0 : value) : goPercentF(value);
}

/**
 * Go `%f` (6 decimals, correctly rounded, ties to even). `toFixed` alone rounds exact ties away from
 * zero (e.g. 0.0078125 → "0.007813" where Go prints "0.007812"), so the rounding is done on the exact
 * decimal expansion (`toFixed(100)` is exact for every double that can tie at the 7th decimal).
 */
function goPercentF(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  const negative = value < 0 || Object.is(value, -0);
  const magnitude = Math.abs(value);
  if (magnitude >= 1e21) return `${negative ? '-' : ''}${BigInt(magnitude).toString()}.000000`;
  const [intPart = '0', fracPart = ''] = magnitude.toFixed(100).split('.');
  let scaled = BigInt(intPart + fracPart.slice(0, 6));
  const next = fracPart[6] ?? '0';
  const rest = fracPart.slice(7);
  if (next > '5' || (next === '5' && (/[1-9]/.test(rest) || scaled % 2n === 1n))) scaled += 1n;
  const digits = scaled.toString().padStart(7, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}

/** Appends notification lines to a file, one `write` per line, in call order. */
export class NotificationWriter {
  #handle: FileHandle | undefined;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(handle: FileHandle | undefined) {
    this.#handle = handle;
  }

  /** Opens (creating, mode 0660 before umask) `path` for appending. */
  static async open(path: string): Promise<NotificationWriter> {
    return new NotificationWriter(await open(path, 'a', 0o660));
  }

  /** A writer that accepts notifications and writes nothing (DUCC without `-n`). */
  static discard(): NotificationWriter {
    return new NotificationWriter(undefined);
  }

  /** Writes one notification (adding `time` when missing); resolves once the line is written. */
  write(fields: NotificationFields, now: Date = new Date()): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('notification writer is closed'));
    const line = Buffer.from(formatNotification(fields, now), 'utf8');
    const handle = this.#handle;
    const result = this.#queue.then(async () => {
      if (handle === undefined) return;
      let offset = 0;
      while (offset < line.length) {
        const { bytesWritten } = await handle.write(line, offset, line.length - offset);
        offset += bytesWritten;
      }
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** Waits for pending writes and closes the file; further writes are rejected. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle !== undefined) await handle.close();
  }
}
