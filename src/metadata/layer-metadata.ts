/**
 * Per-layer metadata and the remove schedule, byte for byte as DUCC writes them (ducc.md §3.7, §3.9):
 *
 * - `.layers/xx/<d>/.metadata/layers.json` — `StoreLayerInfo`: `json.MarshalIndent([]LayerInfo{…}, "", " ")`
 *   of the podman-style struct (`ducc/lib/podman_store.go`), every field `omitempty`, so `parent` and
 *   `compressed-size` never appear; no trailing newline.
 * - `.layers/xx/<d>/.metadata/origin.json` — `SaveLayersBacklink`: `json.Marshal(Backlink{Origin})`,
 *   `{"origin":["sha256:<config>",…]}`, the config digest appended without de-duplication.
 * - `.metadata/remove-schedule.json` — `AddManifestToRemoveScheduler`: `json.Marshal([]Manifest)`.
 */
import { DuccError } from '../util/errors.ts';
import { digestHex } from '../layout/paths.ts';
import {
  decodeDuccManifestValue,
  decodeGoString,
  duccManifestToGoJson,
  goFieldFor,
  goJsonMarshal,
  goJsonMarshalIndent,
  goJsonParse,
  GoJsonTypeError,
  isJsonObject,
  normaliseManifest,
  type DuccManifest,
  type DuccManifestInput,
  type GoJsonValue,
} from './ducc-manifest.ts';

export interface LayerInfoInput {
  /** `sha256:<hex>` of the uncompressed tar stream DUCC fed to `cvmfs_server ingest` (the diffID). */
  diffId: string;
  /** `sha256:<hex>` of the compressed blob (the digest the layer directory is named after). */
  compressedDigest: string;
  /** Bytes of the uncompressed stream; omitted from the file when 0 (Go `omitempty`). */
  diffSize: number;
  /** Go `time.Now()` at the end of the ingest; printed in the machine's local time zone. */
  created: Date;
  /**
   * Optional nanosecond-of-second (0…999 999 999) to print instead of `created`'s milliseconds, for
   * callers that have a finer clock (Go prints up to 9 digits). Must agree with `created`'s second.
   */
  createdNanosecond?: number | undefined;
}

/**
 * The exact bytes of `layers.json`:
 *
 *     [
 *      {
 *       "id": "<diffID hex>",
 *       "created": "2024-10-18T10:01:07.123+02:00",
 *       "compressed-diff-digest": "sha256:<d>",
 *       "diff-digest": "sha256:<diffID hex>",
 *       "diff-size": 74157056
 *      }
 *     ]
 */
export function formatLayersJson(info: LayerInfoInput): Buffer {
  const diffHex = digestHex(info.diffId);
  const compressedHex = digestHex(info.compressedDigest);
  if (!Number.isSafeInteger(info.diffSize) || info.diffSize < 0) {
    throw new DuccError('BOT_ERR_SIZE_MISMATCH', `layer diff size is not a byte count: ${String(info.diffSize)}`);
  }
  const entry = new Map<string, GoJsonValue>([
    ['id', diffHex],
    ['created', formatGoRFC3339Nano(info.created, info.createdNanosecond)],
    ['compressed-diff-digest', `sha256:${compressedHex}`],
    ['diff-digest', `sha256:${diffHex}`],
  ]);
  if (info.diffSize !== 0) entry.set('diff-size', info.diffSize);
  return Buffer.from(goJsonMarshalIndent([entry], '', ' '), 'utf8');
}

/**
 * Go's `time.RFC3339Nano` (`2006-01-02T15:04:05.999999999Z07:00`) of `date` in the local time zone, as
 * `time.Time.MarshalJSON` writes it: the fraction with trailing zeros removed (and no dot when it is
 * zero), `Z` when the zone offset is zero, otherwise `±hh:mm`.
 */
export function formatGoRFC3339Nano(date: Date, nanosecond?: number): string {
  if (Number.isNaN(date.getTime())) throw new DuccError('BOT_ERR_CONFIG', 'invalid date');
  const year = date.getFullYear();
  if (year < 0 || year > 9999) throw new DuccError('BOT_ERR_CONFIG', `year ${year} outside the range Go's MarshalJSON accepts`);
  const nanos = nanosecond ?? date.getMilliseconds() * 1_000_000;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) throw new DuccError('BOT_ERR_CONFIG', `bad nanosecond ${nanos}`);
  const fraction = nanos === 0 ? '' : `.${String(nanos).padStart(9, '0').replace(/0+$/, '')}`;
  const offsetMinutes = Math.round(-date.getTimezoneOffset());
  let zone = 'Z';
  if (offsetMinutes !== 0) {
    const abs = Math.abs(offsetMinutes);
    zone = `${offsetMinutes < 0 ? '-' : '+'}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
  }
  return `${String(year).padStart(4, '0')}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}T${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}${fraction}${zone}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** The exact bytes of `origin.json`: `{"origin":[…]}`, compact, no trailing newline. */
export function formatOriginJson(origins: readonly string[]): Buffer {
  return Buffer.from(goJsonMarshal(new Map<string, GoJsonValue>([['origin', [...origins]]])), 'utf8');
}

/**
 * `origin.json` after appending `configDigest` to the existing file, without de-duplication (as DUCC).
 * The existing file is read with Go `Unmarshal` semantics (key `origin` matched case-insensitively,
 * other keys dropped, `null` entries become `""`). A missing file, or one Go cannot decode, starts a
 * fresh list. (DUCC itself, on an undecodable file, logs an error and leaves that layer's file alone.)
 */
export function appendOrigin(existing: Buffer | undefined, configDigest: string): Buffer {
  return formatOriginJson([...readOrigins(existing), configDigest]);
}

function readOrigins(existing: Buffer | undefined): string[] {
  if (existing === undefined) return [];
  try {
    const value = goJsonParse(existing);
    if (value === null) return [];
    if (!isJsonObject(value)) return [];
    let origins: string[] = [];
    for (const [key, item] of Object.entries(value)) {
      if (goFieldFor(key, ['origin'] as const) !== 'origin') continue;
      if (item === null) {
        origins = [];
      } else if (Array.isArray(item)) {
        origins = item.map((entry, index) => decodeGoString(entry, '', `origin[${index}]`));
      } else {
        return [];
      }
    }
    return origins;
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof GoJsonTypeError) return [];
    throw error;
  }
}

/**
 * `.metadata/remove-schedule.json` after scheduling `manifest`: the existing array (decoded and
 * re-encoded the Go way, so unknown keys vanish and key spelling becomes DUCC's) plus `manifest` unless
 * an entry with the same `Config.Digest` is already there; compact, no trailing newline.
 *
 * Which manifest to pass: the Classic code (`convertInputOutput`) passes the manifest it just fetched
 * from the registry — the NEW one — not the stored old one, although ducc.md §3.6 describes the intent
 * as "the old manifest". Pass the new one to be byte-compatible with DUCC.
 *
 * An existing file that Go cannot decode (including an empty one) makes DUCC fail the operation without
 * touching the file; we throw `BOT_ERR_PUBLISH` so the caller can do the same.
 */
export function formatRemoveSchedule(existing: Buffer | undefined, manifest: DuccManifestInput): Buffer {
  const schedule: DuccManifest[] = existing === undefined ? [] : readSchedule(existing);
  const added = normaliseManifest(manifest);
  if (!schedule.some((entry) => entry.config.digest === added.config.digest)) schedule.push(added);
  return Buffer.from(goJsonMarshal(schedule.map(duccManifestToGoJson)), 'utf8');
}

function readSchedule(existing: Buffer): DuccManifest[] {
  let value: unknown;
  try {
    value = goJsonParse(existing);
    if (value === null) return [];
    if (!Array.isArray(value)) throw new GoJsonTypeError('remove schedule: not an array');
    return value.map((entry, index) => decodeDuccManifestValue(entry, `remove schedule[${index}]`));
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof GoJsonTypeError) {
      throw new DuccError('BOT_ERR_PUBLISH', `cannot decode the existing remove-schedule.json: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
