/**
 * `.metadata/<simple-name>/manifest.json` exactly as DUCC writes it (ducc.md §3.6), plus the small Go
 * `encoding/json` emulation that every DUCC metadata file needs.
 *
 * DUCC does not store the registry's manifest. It decodes it into its own struct
 * (`ducc/docker-api/util.go`):
 *
 *     type Manifest struct { SchemaVersion int; MediaType string; Config ConfigType; Layers []Layer }
 *     type ConfigType/Layer struct { MediaType string; Size int; Digest string }
 *
 * (no JSON tags, so the keys are the Go field names) and writes `json.Marshal(manifest)` with
 * `ioutil.WriteFile` — compact, no trailing newline. `Layers` is `null` only when the registry
 * manifest had no `layers` key (or `"layers": null`); an empty JSON array stays `[]`.
 */
import { DuccError } from '../util/errors.ts';

// ---------------------------------------------------------------------------------------------------
// Go encoding/json emulation
// ---------------------------------------------------------------------------------------------------

/**
 * A value Go's `json.Marshal` can produce here. Objects are `Map`s so that key order is exactly the
 * insertion order (Go struct field order, or sorted keys for Go maps); numbers must be safe integers
 * (every number DUCC writes is a Go `int`/`int64`).
 */
export type GoJsonValue = null | boolean | string | number | readonly GoJsonValue[] | GoJsonObject;
export type GoJsonObject = ReadonlyMap<string, GoJsonValue>;

const HEX = '0123456789abcdef';

/**
 * A JSON string literal exactly as Go's `json.Marshal` writes it (`encodeState.string` with
 * `escapeHTML` on): `"` and `\` backslash-escaped; `\b \f \n \r \t` short escapes (`\b` and `\f` since
 * Go 1.22; older Go wrote `\u0008` / `\u000c`); other control characters and the HTML-sensitive
 * `<`, `>`, `&` as `\u00xx` (lowercase hex); U+2028/U+2029 as `\u2028`/`\u2029`; DEL and every other
 * character raw (UTF-8). A lone UTF-16 surrogate — which in JS can only come from a decoded `\udxxx`
 * escape, which Go decodes to U+FFFD — is written as a raw U+FFFD.
 */
export function goJsonQuote(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let escaped: string | undefined;
    if (c < 0x80) {
      if (c >= 0x20 && c !== 0x22 && c !== 0x5c && c !== 0x3c && c !== 0x3e && c !== 0x26) continue;
      switch (c) {
        case 0x22:
          escaped = '\\"';
          break;
        case 0x5c:
          escaped = '\\\\';
          break;
        case 0x08:
          escaped = '\\b';
          break;
        case 0x0c:
          escaped = '\\f';
          break;
        case 0x0a:
          escaped = '\\n';
          break;
        case 0x0d:
          escaped = '\\r';
          break;
        case 0x09:
          escaped = '\\t';
          break;
        default:
          escaped = `\\u00${HEX[c >> 4]}${HEX[c & 0xf]}`;
      }
    } else if (c === 0x2028 || c === 0x2029) {
      escaped = `\\u202${HEX[c & 0xf]}`;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      escaped = '\ufffd';
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      escaped = '\ufffd';
    } else {
      continue;
    }
    out += s.slice(start, i) + escaped;
    start = i + 1;
  }
  return `${out}${s.slice(start)}"`;
}

/** Go `json.Marshal`: compact, no trailing newline. */
export function goJsonMarshal(value: GoJsonValue): string {
  return encode(value, undefined, '', 0);
}

/** Go `json.MarshalIndent(v, prefix, indent)`: no trailing newline; empty arrays/objects stay `[]`/`{}`. */
export function goJsonMarshalIndent(value: GoJsonValue, prefix: string, indent: string): string {
  return encode(value, indent, prefix, 0);
}

function encode(value: GoJsonValue, indent: string | undefined, prefix: string, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return goJsonQuote(value);
    case 'number':
      if (!Number.isSafeInteger(value)) throw new TypeError(`Go integer expected, got ${value}`);
      return Object.is(value, -0) ? '0' : String(value);
    default:
      break;
  }
  const items: string[] = [];
  let open: string;
  let close: string;
  if (value instanceof Map) {
    open = '{';
    close = '}';
    for (const [key, item] of value as GoJsonObject) {
      items.push(`${goJsonQuote(key)}${indent === undefined ? ':' : ': '}${encode(item, indent, prefix, depth + 1)}`);
    }
  } else {
    open = '[';
    close = ']';
    for (const item of value as readonly GoJsonValue[]) items.push(encode(item, indent, prefix, depth + 1));
  }
  if (items.length === 0) return open + close;
  if (indent === undefined) return open + items.join(',') + close;
  const inner = `\n${prefix}${indent.repeat(depth + 1)}`;
  return `${open}${inner}${items.join(`,${inner}`)}\n${prefix}${indent.repeat(depth)}${close}`;
}

/** A JSON number as written in the source text (so integer-ness can be judged the way Go does). */
export class GoJsonNumber {
  readonly source: string;
  readonly value: number;
  constructor(source: string, value: number) {
    this.source = source;
    this.value = value;
  }
}

/** Thrown internally when a JSON value does not fit the Go type it is decoded into (Go: `UnmarshalTypeError`). */
export class GoJsonTypeError extends Error {
  override name = 'GoJsonTypeError';
}

/**
 * `JSON.parse` of the UTF-8 text (invalid sequences become U+FFFD, as in Go), keeping each number's
 * source text as a `GoJsonNumber`. Throws `SyntaxError` on malformed JSON.
 */
export function goJsonParse(bytes: Buffer | string): unknown {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  return JSON.parse(text, function reviver(_key: string, value: unknown, context?: { source?: string }) {
    if (typeof value === 'number') return new GoJsonNumber(context?.source ?? String(value), value);
    return value;
  });
}

/**
 * Decodes a parsed JSON value into a Go `int` (64-bit): the literal must be an integer literal
 * (`strconv.ParseInt`, so `1.0` and `1e3` are type errors). `null` keeps `current` (Go leaves the
 * field alone). Values beyond ±2^53 cannot be held exactly in JS and are rejected as well.
 */
export function decodeGoInt(value: unknown, current: number, what: string): number {
  if (value === null) return current;
  if (!(value instanceof GoJsonNumber) || !/^-?(?:0|[1-9]\d*)$/.test(value.source) || !Number.isSafeInteger(value.value)) {
    throw new GoJsonTypeError(`${what}: cannot decode ${describeJson(value)} into a Go int`);
  }
  return value.value === 0 ? 0 : value.value;
}

/** Decodes a parsed JSON value into a Go `string`; `null` keeps `current`. */
export function decodeGoString(value: unknown, current: string, what: string): string {
  if (value === null) return current;
  if (typeof value !== 'string') throw new GoJsonTypeError(`${what}: cannot decode ${describeJson(value)} into a Go string`);
  return value;
}

/** True for a decoded JSON object (not an array, not a number wrapper). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof GoJsonNumber);
}

/**
 * Go's struct-field lookup for a JSON key: the field whose name equals the key, else the one equal
 * under Go's case folding (ASCII case, plus U+017F ſ ~ s and U+212A K ~ k, which fold onto ASCII).
 */
export function goFieldFor<F extends string>(key: string, fields: readonly F[]): F | undefined {
  for (const field of fields) if (field === key) return field;
  const folded = goFold(key);
  for (const field of fields) if (goFold(field) === folded) return field;
  return undefined;
}

function goFold(name: string): string {
  return name.replace(/[a-z\u017f\u212a]/g, (c) => (c === '\u017f' ? 'S' : c === '\u212a' ? 'K' : c.toUpperCase()));
}

function describeJson(value: unknown): string {
  if (value instanceof GoJsonNumber) return `number ${value.source}`;
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  return typeof value;
}

// ---------------------------------------------------------------------------------------------------
// DUCC manifest
// ---------------------------------------------------------------------------------------------------

/** One descriptor (`config` or a layer) as the caller knows it from the registry manifest. */
export interface DuccDescriptorInput {
  mediaType?: string | undefined;
  size: number;
  digest: string;
}

/** What `formatDuccManifest` needs: the resolved platform manifest, in registry (lower-case) spelling. */
export interface DuccManifestInput {
  /** Absent when the registry omitted it (allowed for OCI); written as `""`. */
  mediaType?: string | undefined;
  config: DuccDescriptorInput;
  /** `null` when the registry manifest had no `layers` (written as `null`); `[]` stays `[]`. */
  layers: readonly DuccDescriptorInput[] | null;
  /** Go `SchemaVersion`; `formatDuccManifest`'s second argument wins when both are given. */
  schemaVersion?: number | undefined;
}

/** A DUCC manifest as Go holds it after decoding (every field present, Go zero values). */
export interface DuccManifest {
  schemaVersion: number;
  mediaType: string;
  config: { mediaType: string; size: number; digest: string };
  layers: { mediaType: string; size: number; digest: string }[] | null;
}

/** What `parseDuccManifest` returns. */
export interface ParsedDuccManifest {
  /** `Config.Digest`, `""` when absent (Go compares it with the fresh config digest). */
  configDigest: string;
  /** The layers in order (`[]` when `Layers` is null or absent). */
  layers: { digest: string; size: number; mediaType: string }[];
  /** The whole decoded manifest, e.g. to hand to `formatRemoveSchedule`. */
  manifest: DuccManifest;
}

/**
 * The exact bytes of `.metadata/<name>/manifest.json`: Go `json.Marshal` of DUCC's `Manifest` struct,
 * e.g. `{"SchemaVersion":2,"MediaType":"…","Config":{"MediaType":"…","Size":7631,"Digest":"sha256:…"},"Layers":[…]}`.
 * Throws `BOT_ERR_REGISTRY` when a size is not an integer (Go could not have decoded that manifest).
 */
export function formatDuccManifest(manifest: DuccManifestInput, schemaVersion: number = manifest.schemaVersion ?? 2): Buffer {
  return Buffer.from(goJsonMarshal(duccManifestToGoJson(normaliseManifest(manifest, schemaVersion))), 'utf8');
}

/**
 * Tolerant reader of a stored `manifest.json` for the "already converted" check, with Go's
 * `json.Unmarshal` semantics (`AlreadyConverted`): keys matched case-insensitively, unknown keys
 * ignored, missing fields left at their zero value. Returns `undefined` where Go's `Unmarshal` fails
 * (malformed JSON, a non-object document, a value of the wrong type) — DUCC then treats the image as
 * not converted. Note that `null` or `{}` decode fine in Go, giving `configDigest: ""` (DUCC's
 * "converted, but a different config" case).
 */
export function parseDuccManifest(bytes: Buffer): ParsedDuccManifest | undefined {
  let manifest: DuccManifest;
  try {
    manifest = decodeDuccManifestValue(goJsonParse(bytes), 'manifest');
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof GoJsonTypeError) return undefined;
    throw error;
  }
  return {
    configDigest: manifest.config.digest,
    layers: (manifest.layers ?? []).map((layer) => ({ digest: layer.digest, size: layer.size, mediaType: layer.mediaType })),
    manifest,
  };
}

/** A zero-valued Go `Manifest`. */
export function emptyDuccManifest(): DuccManifest {
  return { schemaVersion: 0, mediaType: '', config: { mediaType: '', size: 0, digest: '' }, layers: null };
}

const MANIFEST_FIELDS = ['SchemaVersion', 'MediaType', 'Config', 'Layers'] as const;
const DESCRIPTOR_FIELDS = ['MediaType', 'Size', 'Digest'] as const;

/**
 * Go `json.Unmarshal(value, &manifest)` on an already parsed value (see `goJsonParse`). Throws
 * `GoJsonTypeError` where Go's `Unmarshal` would return an error.
 */
export function decodeDuccManifestValue(value: unknown, what: string, into: DuccManifest = emptyDuccManifest()): DuccManifest {
  if (value === null) return into;
  if (!isJsonObject(value)) throw new GoJsonTypeError(`${what}: cannot decode ${describeJson(value)} into a Go struct`);
  for (const [key, item] of Object.entries(value)) {
    switch (goFieldFor(key, MANIFEST_FIELDS)) {
      case 'SchemaVersion':
        into.schemaVersion = decodeGoInt(item, into.schemaVersion, `${what}.SchemaVersion`);
        break;
      case 'MediaType':
        into.mediaType = decodeGoString(item, into.mediaType, `${what}.MediaType`);
        break;
      case 'Config':
        decodeDescriptor(item, into.config, `${what}.Config`);
        break;
      case 'Layers':
        if (item === null) {
          into.layers = null;
        } else if (Array.isArray(item)) {
          into.layers = item.map((layer, index) => decodeDescriptor(layer, { mediaType: '', size: 0, digest: '' }, `${what}.Layers[${index}]`));
        } else {
          throw new GoJsonTypeError(`${what}.Layers: cannot decode ${describeJson(item)} into a Go slice`);
        }
        break;
      default:
        break;
    }
  }
  return into;
}

function decodeDescriptor(value: unknown, into: DuccManifest['config'], what: string): DuccManifest['config'] {
  if (value === null) return into;
  if (!isJsonObject(value)) throw new GoJsonTypeError(`${what}: cannot decode ${describeJson(value)} into a Go struct`);
  for (const [key, item] of Object.entries(value)) {
    switch (goFieldFor(key, DESCRIPTOR_FIELDS)) {
      case 'MediaType':
        into.mediaType = decodeGoString(item, into.mediaType, `${what}.MediaType`);
        break;
      case 'Size':
        into.size = decodeGoInt(item, into.size, `${what}.Size`);
        break;
      case 'Digest':
        into.digest = decodeGoString(item, into.digest, `${what}.Digest`);
        break;
      default:
        break;
    }
  }
  return into;
}

/** The Go-ordered JSON object of a DUCC manifest (key order = Go struct field order). */
export function duccManifestToGoJson(manifest: DuccManifest): GoJsonObject {
  const descriptor = (d: DuccManifest['config']): GoJsonObject =>
    new Map<string, GoJsonValue>([
      ['MediaType', d.mediaType],
      ['Size', d.size],
      ['Digest', d.digest],
    ]);
  return new Map<string, GoJsonValue>([
    ['SchemaVersion', manifest.schemaVersion],
    ['MediaType', manifest.mediaType],
    ['Config', descriptor(manifest.config)],
    ['Layers', manifest.layers === null ? null : manifest.layers.map(descriptor)],
  ]);
}

/** Input manifest → Go value, validating the integers. */
export function normaliseManifest(manifest: DuccManifestInput, schemaVersion: number = manifest.schemaVersion ?? 2): DuccManifest {
  const descriptor = (d: DuccDescriptorInput, what: string): DuccManifest['config'] => ({
    mediaType: d.mediaType ?? '',
    size: checkedInt(d.size, `${what} size`),
    digest: d.digest,
  });
  return {
    schemaVersion: checkedInt(schemaVersion, 'schemaVersion'),
    mediaType: manifest.mediaType ?? '',
    config: descriptor(manifest.config, 'config'),
    layers: manifest.layers === null ? null : manifest.layers.map((layer, index) => descriptor(layer, `layer ${index}`)),
  };
}

function checkedInt(value: number, what: string): number {
  if (!Number.isSafeInteger(value)) throw new DuccError('BOT_ERR_REGISTRY', `manifest ${what} is not an integer: ${String(value)}`);
  return value === 0 ? 0 : value;
}
