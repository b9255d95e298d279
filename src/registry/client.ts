/**
 * The registry client: the OCI distribution API as the converter needs it — resolve a tag or digest to
 * an image (picking a platform from an index), read blobs, list tags, push blobs and manifests. It speaks
 * in repositories, references and descriptors; the HTTP underneath (endpoints, concurrency per host,
 * auth challenges and tokens, redirects, retries, status errors) is the Transport's (./transport/), as in
 * go-containerregistry's remote and remote/transport. Each operation lives in its own file: manifests in
 * manifest-fetch.ts, blobs in blob-reader.ts, tags in tag-list.ts, pushes in upload.ts.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { DuccError } from '../util/errors.ts';
import { BlobReader } from './blob-reader.ts';
import type { CredentialStore } from './credentials.ts';
import { assertValidDigest, verifyDigest } from './digest.ts';
import { parseImageConfig } from './manifest.ts';
import { headManifest, MAX_MANIFEST_BYTES, type FetchedManifest, type ManifestHead } from './manifest-fetch.ts';
import { fetchEntryDocument, fetchTopDocument, type ManifestCache } from './manifest-cache.ts';
import { assertValidRef, classifyReference, refName } from './names.ts';
import { DEFAULT_PLATFORM, formatPlatform, isIgnoredIndexEntry, selectPlatformEntry } from './platform.ts';
import { registrySettingsFromEnv, type RegistrySettings } from './settings.ts';
import { listTags, type ListTagsOptions } from './tag-list.ts';
import { Transport } from './transport/transport.ts';
import { blobExists, pushBlob, pushManifest } from './upload.ts';
import {
  MANIFEST_MEDIA_TYPES,
  type Descriptor,
  type ImageConfig,
  type Platform,
  type RepositoryRef,
  type ResolvedImage,
  type ResolvedManifest,
} from './types.ts';

export type { ListTagsOptions } from './tag-list.ts';
export { MAX_MANIFEST_BYTES } from './manifest-fetch.ts';

export interface RegistryClientOptions {
  credentials?: CredentialStore;
  dispatcher?: Dispatcher;
  /**
   * Retries, timeout, concurrency and manifest limits. When absent, the constructor reads them once with
   * registrySettingsFromEnv(process.env); the three options below override single values.
   */
  settings?: RegistrySettings;
  /** Overrides settings.maxRetries. */
  maxRetries?: number;
  /** Base of the exponential backoff in ms (default 500). */
  retryBaseMs?: number;
  userAgent?: string;
  /** Overrides settings.maxConcurrentPerRegistry. */
  maxConcurrentPerRegistry?: number;
  /** Overrides settings.timeoutMs. */
  timeoutMs?: number;
  logger?: Logger;
}

/** Default cap of fetchBlob, which holds the whole blob in memory. */
export const DEFAULT_MAX_BLOB_BYTES = 4 * 1024 * 1024;

export class RegistryClient {
  readonly #settings: RegistrySettings;
  readonly #log: Logger | undefined;
  readonly #transport: Transport;
  readonly #blobs: BlobReader;
  #blobRequests = 0;

  constructor(options: RegistryClientOptions = {}) {
    const settings = options.settings ?? registrySettingsFromEnv(process.env);
    this.#settings = settings;
    this.#log = options.logger?.child({ component: 'registry' });
    this.#transport = new Transport({
      credentials: options.credentials,
      dispatcher: options.dispatcher,
      maxRetries: Math.max(0, Math.floor(options.maxRetries ?? settings.maxRetries)),
      retryBaseMs: Math.max(0, options.retryBaseMs ?? 500),
      timeoutMs: Math.max(1, options.timeoutMs ?? settings.timeoutMs),
      maxConcurrentPerRegistry: Math.max(1, Math.floor(options.maxConcurrentPerRegistry ?? settings.maxConcurrentPerRegistry)),
      userAgent: options.userAgent ?? 'ducc-gitops/0.1 (registry client)',
      log: this.#log,
    });
    this.#blobs = new BlobReader(this.#transport, this.#log, () => this.#blobRequests++);
  }

  /** Count of blob GET requests made by this client (tests use it to assert incremental runs make none). */
  get blobRequestCount(): number {
    return this.#blobRequests;
  }

  /**
   * Resolves a tag or digest to one image: manifest (picking the platform entry when it is an index;
   * default linux/amd64), verified digests, and the verified, parsed config.
   */
  async resolveImage(ref: RepositoryRef, reference: string, options?: { platform?: Platform }): Promise<ResolvedImage> {
    return this.#withConfig(await this.resolveManifest(ref, reference, options));
  }

  /**
   * resolveImage without the config: only manifest requests are made (no blob request), so an
   * incremental run can decide from the manifest (its config digest) whether anything changed. With
   * `cache`, a tag seen before costs a conditional GET, answered 304 without a body when unchanged, and
   * held platform manifests no request (manifest-cache.ts).
   */
  async resolveManifest(ref: RepositoryRef, reference: string, options?: { platform?: Platform; cache?: ManifestCache }): Promise<ResolvedManifest> {
    assertValidRef(ref);
    classifyReference(reference);
    const wanted = options?.platform ?? DEFAULT_PLATFORM;
    const cache = options?.cache;
    const top = await fetchTopDocument(this.#transport, ref, reference, this.#settings, cache);
    if (top.doc.kind === 'manifest') return resolvedManifest(ref, top, undefined, undefined);

    const entries = top.doc.index.manifests;
    let entry = selectPlatformEntry(entries, wanted);
    if (entry === undefined) {
      // An index with a single platform-less image manifest (seen in some OCI layouts): take it.
      const usable = entries.filter((e) => !isIgnoredIndexEntry(e) && MANIFEST_MEDIA_TYPES.includes(e.mediaType));
      if (usable.length === 1 && usable[0]!.platform === undefined) entry = usable[0];
    }
    if (entry === undefined) {
      const available = entries.filter((e) => !isIgnoredIndexEntry(e) && e.platform !== undefined).map((e) => formatPlatform(e.platform!));
      throw new DuccError(
        'BOT_ERR_PLATFORM',
        `no ${formatPlatform(wanted)} image in ${refName(ref)}:${reference} (index ${top.digest}; available: ${available.length > 0 ? available.join(', ') : 'none'})`,
      );
    }
    return this.#resolveIndexEntry(ref, reference, top, entry, cache);
  }

  /**
   * Every platform manifest of an index (attestations and non-image entries left out), without configs:
   * manifest requests only. A plain manifest yields one element without a platform. `cache` as for
   * resolveManifest.
   */
  async resolveAllManifests(ref: RepositoryRef, reference: string, options?: { cache?: ManifestCache }): Promise<ResolvedManifest[]> {
    assertValidRef(ref);
    classifyReference(reference);
    const cache = options?.cache;
    const top = await fetchTopDocument(this.#transport, ref, reference, this.#settings, cache);
    if (top.doc.kind === 'manifest') return [resolvedManifest(ref, top, undefined, undefined)];
    const entries = top.doc.index.manifests.filter((e) => {
      if (isIgnoredIndexEntry(e)) return false;
      if (MANIFEST_MEDIA_TYPES.includes(e.mediaType)) return true;
      this.#log?.warn({ digest: e.digest, mediaType: e.mediaType }, 'skipping index entry that is not an image manifest');
      return false;
    });
    if (entries.length === 0) {
      throw new DuccError('BOT_ERR_PLATFORM', `index ${top.digest} of ${refName(ref)}:${reference} lists no image manifests`);
    }
    return Promise.all(entries.map((e) => this.#resolveIndexEntry(ref, reference, top, e, cache)));
  }

  /** Like resolveImage but for every platform of an index; a plain manifest yields one element (platform from its config). */
  async resolveAllPlatforms(ref: RepositoryRef, reference: string): Promise<ResolvedImage[]> {
    const manifests = await this.resolveAllManifests(ref, reference);
    const images = await Promise.all(manifests.map((m) => this.#withConfig(m)));
    for (const image of images) {
      if (image.platform === undefined) {
        const platform = platformFromConfig(image.config);
        if (platform !== undefined) image.platform = platform;
      }
    }
    return images;
  }

  /** HEADs the manifest: Docker-Content-Digest (or GET + sha256 when the header is missing); undefined on 404. */
  async headManifest(ref: RepositoryRef, reference: string): Promise<ManifestHead | undefined> {
    assertValidRef(ref);
    return headManifest(this.#transport, ref, reference);
  }

  /**
   * Streams a blob. The stream errors (BOT_ERR_DIGEST_MISMATCH / BOT_ERR_SIZE_MISMATCH) before its end if
   * the bytes do not match the descriptor: treat data as untrusted until it ends without error.
   * The request is retried up to its response headers. A body that breaks off (connection reset,
   * truncation, no data within the timeout) is resumed where it stopped with `Range: bytes=<n>-`, up to
   * maxRetries times: a 206 answer must start exactly at <n> (else the stream fails; a wrong range is
   * never spliced in), a 200 answer (Range ignored) is skipped forward to <n>; digest and size are
   * checked over the whole. Open streams do not hold a per-registry slot (only their requests do), so a
   * caller may open several blobs before reading them without deadlocking. Destroy the stream to abort.
   */
  openBlob(ref: RepositoryRef, descriptor: Descriptor): Promise<Readable> {
    return this.#blobs.open(ref, descriptor);
  }

  /** A small blob fully in memory, verified, with a byte cap (default 4 MiB). */
  fetchBlob(ref: RepositoryRef, descriptor: Descriptor, maxBytes: number = DEFAULT_MAX_BLOB_BYTES): Promise<Buffer> {
    return this.#blobs.fetch(ref, descriptor, maxBytes);
  }

  /** All tags, following `Link: <...>; rel="next"` pagination. */
  async listTags(ref: RepositoryRef, options?: ListTagsOptions): Promise<string[]> {
    assertValidRef(ref);
    return listTags(this.#transport, ref, options);
  }

  async blobExists(ref: RepositoryRef, digest: string): Promise<boolean> {
    assertValidRef(ref);
    assertValidDigest(digest, `blob of ${refName(ref)}`, 'BOT_ERR_REFERENCE');
    return blobExists(this.#transport, ref, digest, 'pull');
  }

  /**
   * Monolithic upload: POST /v2/<repo>/blobs/uploads/ then PUT <Location>?digest=… . Skipped when the
   * blob already exists. The data must hash to `digest`.
   */
  async pushBlob(ref: RepositoryRef, data: Buffer, digest: string): Promise<void> {
    assertValidRef(ref);
    assertValidDigest(digest, `blob to push to ${refName(ref)}`, 'BOT_ERR_REFERENCE');
    verifyDigest(data, digest, `blob to push to ${refName(ref)}`);
    await pushBlob(this.#transport, this.#log, ref, data, digest);
  }

  /** PUTs a manifest by tag (or digest); returns its digest (sha256 of the bytes). */
  async pushManifest(ref: RepositoryRef, tag: string, bytes: Buffer, mediaType: string): Promise<string> {
    assertValidRef(ref);
    return pushManifest(this.#transport, ref, tag, bytes, mediaType);
  }

  async #resolveIndexEntry(
    ref: RepositoryRef,
    reference: string,
    index: FetchedManifest,
    entry: Descriptor,
    cache: ManifestCache | undefined,
  ): Promise<ResolvedManifest> {
    if (!MANIFEST_MEDIA_TYPES.includes(entry.mediaType)) {
      throw new DuccError(
        'BOT_ERR_MEDIA_TYPE',
        `entry ${entry.digest} of index ${refName(ref)}:${reference} has media type ${JSON.stringify(entry.mediaType)}, not an image manifest`,
      );
    }
    const child = await fetchEntryDocument(this.#transport, ref, entry, this.#settings, cache);
    if (child.doc.kind !== 'manifest') {
      throw new DuccError(
        'BOT_ERR_MEDIA_TYPE',
        `entry ${entry.digest} of index ${refName(ref)}:${reference} is itself an index (nested indexes are not supported)`,
      );
    }
    return resolvedManifest(ref, child, index.digest, entry.platform);
  }

  /** Adds the fetched, verified and parsed config blob. */
  async #withConfig(resolved: ResolvedManifest): Promise<ResolvedImage> {
    const { ref, manifest } = resolved;
    const configBytes = await this.fetchBlob(ref, manifest.config, MAX_MANIFEST_BYTES);
    const config = parseImageConfig(configBytes, `config ${manifest.config.digest} of ${refName(ref)}`);
    const image: ResolvedImage = {
      ref: resolved.ref,
      manifestDigest: resolved.manifestDigest,
      manifestMediaType: resolved.manifestMediaType,
      manifestBytes: resolved.manifestBytes,
      manifest,
      config,
      configBytes,
    };
    if (resolved.indexDigest !== undefined) image.indexDigest = resolved.indexDigest;
    if (resolved.platform !== undefined) image.platform = resolved.platform;
    return image;
  }
}

function resolvedManifest(ref: RepositoryRef, fetched: FetchedManifest, indexDigest: string | undefined, platform: Platform | undefined): ResolvedManifest {
  if (fetched.doc.kind !== 'manifest') throw new Error('unreachable: not an image manifest');
  const resolved: ResolvedManifest = {
    ref: { scheme: ref.scheme, registry: ref.registry, repository: ref.repository },
    manifestDigest: fetched.digest,
    manifestMediaType: fetched.doc.mediaType,
    manifestBytes: fetched.bytes,
    manifest: fetched.doc.manifest,
  };
  if (indexDigest !== undefined) resolved.indexDigest = indexDigest;
  if (platform !== undefined) resolved.platform = { ...platform };
  return resolved;
}

function platformFromConfig(config: ImageConfig): Platform | undefined {
  if (typeof config.os !== 'string' || typeof config.architecture !== 'string') return undefined;
  const platform: Platform = { os: config.os, architecture: config.architecture };
  if (typeof config.variant === 'string' && config.variant !== '') platform.variant = config.variant;
  return platform;
}
