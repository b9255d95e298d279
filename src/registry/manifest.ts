import { DuccError } from '../util/errors.ts';
import { assertValidDigest } from './digest.ts';
import { parseStrictJson, StrictJsonError } from './strict-json.ts';
import { DEFAULT_REGISTRY_SETTINGS, REGISTRY_SETTING_VARIABLES, type RegistrySettings } from './settings.ts';
import {
  INDEX_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPES,
  MEDIA_TYPE_DOCKER_SCHEMA1,
  MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from './types.ts';

/** The caps parseManifestDocument applies; RegistrySettings has them (from DUCC_LIMIT_*). */
export type ManifestLimits = Pick<RegistrySettings, 'maxImageLayers' | 'maxIndexEntries'>;

export type ManifestDocument = { kind: 'manifest'; mediaType: string; manifest: ImageManifest } | { kind: 'index'; mediaType: string; index: ImageIndex };

/** 'application/vnd.oci.image.manifest.v1+json; charset=utf-8' → 'application/vnd.oci.image.manifest.v1+json' */
export function baseContentType(value: string | string[] | undefined): string {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return '';
  return raw.split(';')[0]!.trim().toLowerCase();
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function invalid(what: string, detail: string): DuccError {
  return new DuccError('BOT_ERR_REGISTRY', `invalid ${what}: ${detail}`);
}

function schema1Error(what: string): DuccError {
  return new DuccError(
    'BOT_ERR_MEDIA_TYPE',
    `${what} is a Docker image manifest schema 1, which is deprecated and not supported; push the image again with a current Docker, Podman or skopeo to get a schema 2 or OCI manifest`,
  );
}

function stringRecord(value: unknown, what: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw invalid(what, 'annotations must be an object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw invalid(what, `annotation ${JSON.stringify(k)} is not a string`);
    out[k] = v;
  }
  return out;
}

function parsePlatformField(value: unknown, what: string): Platform | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value) || typeof value['os'] !== 'string' || typeof value['architecture'] !== 'string') {
    throw invalid(what, 'platform needs string "os" and "architecture"');
  }
  const platform: Platform = { os: value['os'], architecture: value['architecture'] };
  if (typeof value['variant'] === 'string' && value['variant'] !== '') platform.variant = value['variant'];
  return platform;
}

/** Checks a descriptor's shape: media type, digest grammar, non-negative integer size. */
export function validateDescriptor(value: unknown, what: string): Descriptor {
  if (!isRecord(value)) throw invalid(what, 'descriptor is not an object');
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(what, 'descriptor has no mediaType');
  assertValidDigest(digest, what);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(what, `descriptor size ${JSON.stringify(size)} is not a non-negative integer`);
  }
  const descriptor: Descriptor = { mediaType, digest, size };
  if (value['urls'] !== undefined && value['urls'] !== null) {
    const urls = value['urls'];
    if (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string')) throw invalid(what, 'urls must be an array of strings');
    descriptor.urls = urls as string[];
  }
  const annotations = stringRecord(value['annotations'], what);
  if (annotations !== undefined) descriptor.annotations = annotations;
  const platform = parsePlatformField(value['platform'], what);
  if (platform !== undefined) descriptor.platform = platform;
  return descriptor;
}

/**
 * Parses and validates a manifest or index as served. The kind comes from the document's own mediaType,
 * else the Content-Type, else its structure (OCI allows omitting mediaType). Schema 1 and unknown
 * types are rejected with BOT_ERR_MEDIA_TYPE. Layer and entry counts are capped by `limits` (the defaults
 * when not given).
 */
export function parseManifestDocument(
  bytes: Buffer,
  contentType: string | string[] | undefined,
  what: string,
  limits: ManifestLimits = DEFAULT_REGISTRY_SETTINGS,
): ManifestDocument {
  const doc = parseJsonObject(bytes, what);
  const declared = typeof doc['mediaType'] === 'string' && doc['mediaType'] !== '' ? doc['mediaType'] : undefined;
  const served = baseContentType(contentType);
  if (
    doc['schemaVersion'] === 1 ||
    declared === MEDIA_TYPE_DOCKER_SCHEMA1 ||
    declared === MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED ||
    (declared === undefined && (served === MEDIA_TYPE_DOCKER_SCHEMA1 || served === MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED))
  ) {
    throw schema1Error(what);
  }
  if (doc['schemaVersion'] !== 2) throw invalid(what, `unsupported schemaVersion ${JSON.stringify(doc['schemaVersion'])}`);
  assertUnambiguous(doc, what);

  const looksLikeIndex = Array.isArray(doc['manifests']);
  const looksLikeManifest = doc['config'] !== undefined && Array.isArray(doc['layers']);
  let kind: 'manifest' | 'index';
  if (declared !== undefined) {
    if (MANIFEST_MEDIA_TYPES.includes(declared)) kind = 'manifest';
    else if (INDEX_MEDIA_TYPES.includes(declared)) kind = 'index';
    else throw new DuccError('BOT_ERR_MEDIA_TYPE', `${what} has unsupported media type ${JSON.stringify(declared)}`);
  } else if (looksLikeIndex && !looksLikeManifest) {
    kind = 'index';
  } else if (looksLikeManifest && !looksLikeIndex) {
    kind = 'manifest';
  } else if (MANIFEST_MEDIA_TYPES.includes(served) || INDEX_MEDIA_TYPES.includes(served)) {
    kind = MANIFEST_MEDIA_TYPES.includes(served) ? 'manifest' : 'index';
  } else {
    throw new DuccError('BOT_ERR_MEDIA_TYPE', `${what} is neither an image manifest nor an index (media type ${JSON.stringify(served)})`);
  }
  const mediaType = declared ?? served;
  // The registry's Content-Type and the document's own mediaType must agree on what it is.
  const servedKind = MANIFEST_MEDIA_TYPES.includes(served) ? 'manifest' : INDEX_MEDIA_TYPES.includes(served) ? 'index' : undefined;
  if (servedKind !== undefined && servedKind !== kind) {
    throw new DuccError('BOT_ERR_MEDIA_TYPE', `${what} is served as ${JSON.stringify(served)} but is an image ${kind} (${JSON.stringify(mediaType)})`);
  }

  if (kind === 'manifest') {
    if (!looksLikeManifest) throw invalid(what, 'image manifest without "config" and "layers"');
    assertWithinLimit(what, doc['layers'] as unknown[], 'layers', limits.maxImageLayers, REGISTRY_SETTING_VARIABLES.maxImageLayers);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      config: validateDescriptor(doc['config'], `${what} config descriptor`),
      layers: (doc['layers'] as unknown[]).map((l, i) => validateDescriptor(l, `${what} layer ${i}`)),
    };
    if (declared !== undefined) manifest.mediaType = declared;
    const annotations = stringRecord(doc['annotations'], what);
    if (annotations !== undefined) manifest.annotations = annotations;
    return { kind, mediaType, manifest };
  }
  if (!looksLikeIndex) throw invalid(what, 'index without a "manifests" array');
  assertWithinLimit(what, doc['manifests'] as unknown[], 'manifests', limits.maxIndexEntries, REGISTRY_SETTING_VARIABLES.maxIndexEntries);
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: (doc['manifests'] as unknown[]).map((m, i) => validateDescriptor(m, `${what} entry ${i}`)),
  };
  if (declared !== undefined) index.mediaType = declared;
  const annotations = stringRecord(doc['annotations'], what);
  if (annotations !== undefined) index.annotations = annotations;
  return { kind, mediaType, index };
}

/** Parses a config blob (already digest-verified). */
export function parseImageConfig(bytes: Buffer, what: string): ImageConfig {
  const doc = parseJsonObject(bytes, what);
  if (doc['config'] !== undefined && doc['config'] !== null && !isRecord(doc['config'])) {
    throw invalid(what, '"config" is not an object');
  }
  for (const field of ['Env', 'Cmd', 'Entrypoint'] as const) {
    const value = isRecord(doc['config']) ? doc['config'][field] : undefined;
    if (value !== undefined && value !== null && (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))) {
      throw invalid(what, `config.${field} is not an array of strings`);
    }
  }
  const rootfs = doc['rootfs'];
  if (rootfs !== undefined && rootfs !== null) {
    if (!isRecord(rootfs) || !Array.isArray(rootfs['diff_ids'])) throw invalid(what, 'rootfs.diff_ids is missing');
    (rootfs['diff_ids'] as unknown[]).forEach((d, i) => assertValidDigest(d, `${what} rootfs.diff_ids[${i}]`));
  }
  if (doc['config'] === null) delete doc['config'];
  return doc as ImageConfig;
}

/** Refuses a manifest's layer list or an index's manifest list longer than its limit (before any of it is used). */
function assertWithinLimit(what: string, list: unknown[], noun: string, limit: number, variable: string): void {
  if (list.length > limit) throw new DuccError('BOT_ERR_LIMIT', `${what} lists ${list.length} ${noun}, more than the limit of ${limit} (${variable})`);
}

/**
 * Refuses a document that is an image manifest and an index at once: one reader would pull its layers,
 * another its platform manifests (CVE-2021-41190; since then the OCI image-spec forbids "manifests" in a
 * manifest and "config"/"layers" in an index, and containerd and distribution refuse both). Checked on
 * the keys present, whatever their values and the declared mediaType, before anything of it is used.
 */
function assertUnambiguous(doc: Record<string, unknown>, what: string): void {
  if (!Object.hasOwn(doc, 'manifests')) return;
  const manifestKeys = ['layers', 'config'].filter((key) => Object.hasOwn(doc, key));
  if (manifestKeys.length === 0) return;
  throw new DuccError(
    'BOT_ERR_MEDIA_TYPE',
    `${what} is ambiguous: it has both "manifests" (an index) and ${manifestKeys.map((key) => `"${key}"`).join(' and ')} (an image manifest); refused before any of it is used`,
  );
}

/**
 * The bytes as a JSON object, read strictly (strict-json.ts: UTF-8 only, no key twice in an object, no
 * lone surrogate escapes); otherwise an "invalid <what>" error saying what is wrong.
 */
function parseJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseStrictJson(bytes);
  } catch (error) {
    if (error instanceof StrictJsonError) throw invalid(what, error.message);
    throw error;
  }
  if (!isRecord(doc)) throw invalid(what, 'not a JSON object');
  return doc;
}
