/**
 * Images of a dogestry remote (`dogestry://REMOTE/NAME:TAG`), in dogestry's portable repository format
 * (github.com/dogestry/dogestry, remote/ and cli/push.go): `repositories/<NAME>/<TAG>` holds the id of the
 * image's top layer, `images/<id>/json` its legacy (v1) image JSON with `parent`, `images/<id>/layer.tar`
 * its layer, an uncompressed tar.
 *
 * Dogestry ids are not content digests, so nothing of the image can be checked against them. The first time
 * an image is seen, each layer.tar is hashed: its sha256 is the layer's diff_id and also its digest (the
 * blob is the uncompressed tar). From the top image's JSON and the diff_ids an OCI config and manifest are
 * made; convert-image then reads and checks every layer against these digests as it does for a registry.
 * The source cache keeps, per remote, the digest and size of each layer id and the manifest of each top id
 * (dogestry never rewrites an image directory): an unchanged tag costs the read of its tag file, and a
 * layer already published is never read again.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { Readable } from 'node:stream';
import { DuccError, errorMessage } from '../util/errors.ts';
import type { ManifestLimits } from '../registry/manifest.ts';
import { MAX_MANIFEST_BYTES } from '../registry/manifest-fetch.ts';
import { REGISTRY_SETTING_VARIABLES } from '../registry/settings.ts';
import { parseStrictJson } from '../registry/strict-json.ts';
import { isValidTag } from '../registry/names.ts';
import type { Descriptor, ImageManifest } from '../registry/types.ts';
import type { SourceCache } from './cache.ts';
import { OCI_LAYER, OCI_MANIFEST } from './docker-archive.ts';
import type { DogestryStore } from './dogestry-store.ts';
import type { ImageSource, SourceManifest, SourceReads } from './image-source.ts';
import { DEFAULT_MAX_DOCUMENT_BYTES } from './oci-layout.ts';
import { assertBlobWithin, sha256Digest, verifyBlob } from './verify.ts';
import { VerifyingStream } from '../registry/verifying-stream.ts';

export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const IMAGE_ID = /^[a-f0-9]{64}$/;
/** A tag file holds a 64-hex id (dogestry writes it without a newline). */
const MAX_TAG_FILE_BYTES = 1024;

/** What the cache keeps of a top image id: its manifest, and the id and digest of each layer. */
interface ImageRecord {
  manifestDigest: string;
  configDigest: string;
  layers: { id: string; digest: string; size: number }[];
}

interface LayerRecord {
  digest: string;
  size: number;
}

/** The legacy image JSON fields used. */
interface LegacyImage {
  id?: unknown;
  parent?: unknown;
  created?: unknown;
  architecture?: unknown;
  os?: unknown;
  config?: unknown;
  container_config?: unknown;
}

export class DogestrySource implements ImageSource {
  readonly #store: DogestryStore;
  readonly #remote: string;
  readonly #name: string;
  /** Cache keys of this remote (its identity, so that two remotes never share records). */
  readonly #cacheKey: string;
  readonly #cache: SourceCache;
  readonly #limits: ManifestLimits;
  readonly #reads: SourceReads;
  /** Layer id of each layer digest handed out. */
  readonly #layerIds = new Map<string, string>();
  readonly description: string;

  constructor(remote: string, store: DogestryStore, name: string, options: { cache: SourceCache; limits: ManifestLimits; reads: SourceReads }) {
    this.#store = store;
    this.#remote = remote;
    this.#name = name;
    this.#cacheKey = createHash('sha256').update(store.description).digest('hex').slice(0, 32);
    this.#cache = options.cache;
    this.#limits = options.limits;
    this.#reads = options.reads;
    this.description = `dogestry://${remote}/${name}`;
  }

  async resolveManifest(reference: string): Promise<SourceManifest> {
    const id = await this.#tagTarget(reference);
    const record = await this.#cache.getRecord<ImageRecord>(`dogestry/${this.#cacheKey}/images/${id}`);
    const manifestBytes = record === undefined ? undefined : await this.#cache.getDocument(record.manifestDigest);
    const configBytes = record === undefined ? undefined : await this.#cache.getDocument(record.configDigest);
    if (record !== undefined && manifestBytes !== undefined && configBytes !== undefined) {
      for (const layer of record.layers) this.#layerIds.set(layer.digest, layer.id);
      return {
        manifestDigest: record.manifestDigest,
        manifestMediaType: OCI_MANIFEST,
        manifestBytes,
        manifest: JSON.parse(manifestBytes.toString('utf8')) as ImageManifest,
      };
    }
    return this.#build(id);
  }

  async resolveAllManifests(reference: string): Promise<SourceManifest[]> {
    return [await this.resolveManifest(reference)];
  }

  async fetchBlob(descriptor: Descriptor, maxBytes = DEFAULT_MAX_DOCUMENT_BYTES): Promise<Buffer> {
    const what = `config ${descriptor.digest} of ${this.description}`;
    assertBlobWithin(descriptor, maxBytes, what);
    const bytes = await this.#cache.getDocument(descriptor.digest);
    if (bytes === undefined) throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${what} is not known (the image must be resolved first)`);
    verifyBlob(bytes, descriptor, what);
    return bytes;
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    const id = this.#layerIds.get(descriptor.digest);
    const what = `layer ${descriptor.digest} of ${this.description}`;
    if (id === undefined) throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${what} is not a layer of an image resolved from this remote`);
    const stream = await this.#store.stream(`images/${id}/layer.tar`, `images/${id}/layer.tar of ${this.description}`);
    this.#reads.layers++;
    const verifier = new VerifyingStream(descriptor, `${what} (images/${id}/layer.tar)`);
    stream.on('error', (error) => verifier.destroy(new DuccError('BOT_ERR_REGISTRY_UNREACHABLE', `reading ${what}: ${errorMessage(error)}`, { cause: error })));
    verifier.on('close', () => stream.destroy());
    return stream.pipe(verifier);
  }

  async listTags(): Promise<string[]> {
    const prefix = `repositories/${this.#name}/`;
    const keys = await this.#store.list(prefix);
    return keys.map((key) => key.slice(prefix.length)).filter((tag) => !tag.includes('/') && !tag.endsWith('.sum') && isValidTag(tag));
  }

  /** The image id a tag names (one small read). */
  async #tagTarget(tag: string): Promise<string> {
    const key = `repositories/${this.#name}/${tag}`;
    const bytes = await this.#store.get(key, MAX_TAG_FILE_BYTES, `${key} of dogestry remote '${this.#remote}'`);
    this.#reads.documents++;
    if (bytes === undefined)
      throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `no tag ${this.#name}:${tag} on dogestry remote '${this.#remote}' (${this.#store.description})`);
    const id = bytes.toString('utf8').trim();
    if (!IMAGE_ID.test(id)) throw new DuccError('BOT_ERR_ARCHIVE', `${key} of dogestry remote '${this.#remote}' does not hold an image id (64 hex digits)`);
    return id;
  }

  /** Walks the image's ancestry, hashes the layers not seen before, and makes its config and manifest. */
  async #build(topId: string): Promise<SourceManifest> {
    const chain: { id: string; json: LegacyImage }[] = [];
    const seen = new Set<string>();
    for (let id: string | undefined = topId; id !== undefined;) {
      if (seen.has(id)) throw new DuccError('BOT_ERR_ARCHIVE', `the ancestry of image ${topId} on ${this.description} loops at ${id}`);
      seen.add(id);
      if (chain.length >= this.#limits.maxImageLayers) {
        throw new DuccError(
          'BOT_ERR_LIMIT',
          `image ${topId} on ${this.description} has more than ${this.#limits.maxImageLayers} layers (${REGISTRY_SETTING_VARIABLES.maxImageLayers})`,
        );
      }
      const json = await this.#imageJson(id);
      chain.push({ id, json });
      const parent = json.parent;
      if (parent !== undefined && parent !== null && parent !== '' && (typeof parent !== 'string' || !IMAGE_ID.test(parent))) {
        throw new DuccError('BOT_ERR_ARCHIVE', `images/${id}/json on ${this.description}: parent is not an image id`);
      }
      id = typeof parent === 'string' && parent !== '' ? parent : undefined;
    }
    chain.reverse(); // base first
    const layers: { id: string; digest: string; size: number }[] = [];
    for (const { id } of chain) layers.push({ id, ...(await this.#layerDigest(id)) });

    const top = chain.at(-1)!.json;
    const config: Record<string, unknown> = {
      architecture: typeof top.architecture === 'string' && top.architecture !== '' ? top.architecture : 'amd64',
      os: typeof top.os === 'string' && top.os !== '' ? top.os : 'linux',
      ...(typeof top.created === 'string' ? { created: top.created } : {}),
      config: isObject(top.config) ? top.config : {},
      rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
      history: chain.map(({ id, json }) => ({
        ...(typeof json.created === 'string' ? { created: json.created } : {}),
        created_by: createdBy(json) ?? `dogestry image ${id}`,
      })),
    };
    const configBytes = Buffer.from(JSON.stringify(config));
    const configDigest = sha256Digest(configBytes);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.length },
      layers: layers.map((layer) => ({ mediaType: OCI_LAYER.none, digest: layer.digest, size: layer.size })),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const manifestDigest = sha256Digest(manifestBytes);
    await this.#cache.putDocument(configDigest, configBytes);
    await this.#cache.putDocument(manifestDigest, manifestBytes);
    await this.#cache.putRecord(`dogestry/${this.#cacheKey}/images/${topId}`, { manifestDigest, configDigest, layers } satisfies ImageRecord);
    for (const layer of layers) this.#layerIds.set(layer.digest, layer.id);
    return { manifestDigest, manifestMediaType: OCI_MANIFEST, manifestBytes, manifest };
  }

  async #imageJson(id: string): Promise<LegacyImage> {
    const what = `images/${id}/json of ${this.description}`;
    const bytes = await this.#store.get(`images/${id}/json`, MAX_MANIFEST_BYTES, what);
    this.#reads.documents++;
    if (bytes === undefined) throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${what} does not exist`);
    let json: unknown;
    try {
      json = parseStrictJson(bytes);
    } catch (error) {
      throw new DuccError('BOT_ERR_ARCHIVE', `invalid ${what}: ${errorMessage(error)}`);
    }
    if (!isObject(json)) throw new DuccError('BOT_ERR_ARCHIVE', `invalid ${what}: not an object`);
    if (json['id'] !== undefined && json['id'] !== id) throw new DuccError('BOT_ERR_ARCHIVE', `${what} says it is image ${String(json['id']).slice(0, 80)}`);
    return json as LegacyImage;
  }

  /** sha256 and size of images/<id>/layer.tar: from the cache, or by reading it once. */
  async #layerDigest(id: string): Promise<LayerRecord> {
    const key = `dogestry/${this.#cacheKey}/layers/${id}`;
    const cached = await this.#cache.getRecord<LayerRecord>(key);
    if (cached !== undefined && typeof cached.digest === 'string' && Number.isSafeInteger(cached.size)) return cached;
    const what = `images/${id}/layer.tar of ${this.description}`;
    const stream = await this.#store.stream(`images/${id}/layer.tar`, what);
    this.#reads.layers++;
    const hash = createHash('sha256');
    let size = 0;
    let head = Buffer.alloc(0);
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
        hash.update(chunk);
        size += chunk.length;
      }
    } catch (error) {
      throw new DuccError('BOT_ERR_REGISTRY_UNREACHABLE', `reading ${what}: ${errorMessage(error)}`, { cause: error });
    }
    if ((head[0] === 0x1f && head[1] === 0x8b) || head.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) {
      throw new DuccError('BOT_ERR_MEDIA_TYPE', `${what} is compressed; dogestry layers are uncompressed tars`);
    }
    const record = { digest: `sha256:${hash.digest('hex')}`, size };
    await this.#cache.putRecord(key, record);
    return record;
  }
}

/** Every repository and tag of a remote (`dogestry list`): the files under `repositories/`, dogestry's `.sum` files left out. */
export async function listDogestryImages(store: DogestryStore): Promise<{ repository: string; tag: string }[]> {
  const images: { repository: string; tag: string }[] = [];
  for (const key of await store.list('repositories/')) {
    if (key.endsWith('.sum')) continue;
    const path = key.slice('repositories/'.length);
    const slash = path.lastIndexOf('/');
    if (slash <= 0) continue;
    images.push({ repository: path.slice(0, slash), tag: path.slice(slash + 1) });
  }
  return images.sort((a, b) => a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function createdBy(json: LegacyImage): string | undefined {
  const cmd = isObject(json.container_config) ? json.container_config['Cmd'] : undefined;
  return Array.isArray(cmd) && cmd.every((part) => typeof part === 'string') ? cmd.join(' ') : undefined;
}

/**
 * Writes an image (a thin image: one gzip layer) into a dogestry remote as `dogestry push` would: the
 * image directory first (json, uncompressed layer.tar, VERSION), the tag file last, so a tag never names
 * an incomplete image. The image id is the hex of the config digest.
 */
export async function writeDogestryImage(
  store: DogestryStore,
  name: string,
  tag: string,
  image: { config: Buffer; layer: Buffer; layerCompressed: boolean },
): Promise<string> {
  const id = sha256Digest(image.config).slice('sha256:'.length);
  const config = JSON.parse(image.config.toString('utf8')) as Record<string, unknown>;
  const json = {
    id,
    ...(config['created'] === undefined ? {} : { created: config['created'] }),
    architecture: config['architecture'],
    os: config['os'],
    config: config['config'],
  };
  const layer = image.layerCompressed ? gunzipSync(image.layer) : image.layer;
  await store.put(`images/${id}/layer.tar`, layer);
  await store.put(`images/${id}/VERSION`, Buffer.from('1.0'));
  await store.put(`images/${id}/json`, Buffer.from(JSON.stringify(json)));
  await store.put(`repositories/${name}/${tag}`, Buffer.from(id));
  return id;
}
