import { Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import type { Hash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import pLimit, { type LimitFunction } from 'p-limit';
import type { Logger } from 'pino';
import { DuccError, errorMessage } from '../util/errors.ts';
import { parseWwwAuthenticate, TokenCache, type AuthChallenge } from './auth.ts';
import type { Credential, CredentialStore } from './credentials.ts';
import { assertValidDigest, digestAlgorithm, digestOf, hasherFor, isValidDigest, verifyDigest } from './digest.ts';
import { baseContentType, parseImageConfig, parseManifestDocument, type ManifestDocument } from './manifest.ts';
import { assertValidRef, classifyReference, refName } from './names.ts';
import { DEFAULT_PLATFORM, formatPlatform, isIgnoredIndexEntry, selectPlatformEntry } from './platform.ts';
import { backoffDelay, isRetryableStatus, isTransientNetworkError, networkErrorCode, parseRetryAfter, sleep } from './retry.ts';
import { registrySettingsFromEnv, REGISTRY_SETTING_VARIABLES, type RegistrySettings } from './settings.ts';
import { Agent, request } from './undici-parts.ts';
import {
  MANIFEST_ACCEPT,
  MANIFEST_MEDIA_TYPES,
  type Descriptor,
  type ImageConfig,
  type Platform,
  type RepositoryRef,
  type ResolvedImage,
  type ResolvedManifest,
} from './types.ts';

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

export interface ListTagsOptions {
  /** Ask for pages of this many tags (`?n=`); the registry's default page size otherwise. */
  pageSize?: number;
}

type Scope = 'pull' | 'pull,push';
type Method = 'GET' | 'HEAD' | 'POST' | 'PUT';

const MiB = 1024 * 1024;
export const MAX_MANIFEST_BYTES = 4 * MiB;
export const DEFAULT_MAX_BLOB_BYTES = 4 * MiB;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_TOKEN_BODY_BYTES = 1 * MiB;
const MAX_TAG_PAGES = 10_000;
const MAX_TAGS = 100_000;
/** Longest registry error detail quoted in a message (the body itself is read up to 64 KiB). */
const MAX_ERROR_DETAIL_CHARS = 300;
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

let sharedAgent: Agent | undefined;
/** One keep-alive Agent shared by all clients that were not given a dispatcher. */
function defaultDispatcher(): Dispatcher {
  sharedAgent ??= new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connections: 32 });
  return sharedAgent;
}

/** One HTTP exchange as the client sees it. */
interface SendSpec {
  ref: RepositoryRef;
  method: Method;
  /** Path below /v2/<repository>/ ('manifests/latest'), or an absolute URL (upload Location, next page). */
  target: string | URL;
  headers?: Record<string, string>;
  body?: Buffer;
  scope: Scope;
  /** For messages: 'manifest team/app:latest', 'blob sha256:…'. */
  what: string;
  /** Counts towards blobRequestCount. */
  blobGet?: boolean;
}

/** A blob response body positioned at the offset asked for (`skip` bytes of a full answer still to drop). */
interface BlobBody {
  body: Readable;
  skip: number;
}

interface Exchange {
  response: Dispatcher.ResponseData;
  url: URL;
}

/** A failed attempt that may be retried; `error` is what the caller gets when retries are exhausted. */
class RetryableFailure extends Error {
  readonly error: DuccError;
  readonly delayMs: number | undefined;
  constructor(error: DuccError, delayMs?: number) {
    super(error.message);
    this.error = error;
    this.delayMs = delayMs;
  }
}

interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  doc: ManifestDocument;
}

type AuthState = { kind: 'basic' } | { kind: 'bearer'; challenge: AuthChallenge };

export class RegistryClient {
  readonly #credentials: CredentialStore | undefined;
  readonly #dispatcher: Dispatcher;
  readonly #maxRetries: number;
  readonly #retryBaseMs: number;
  readonly #userAgent: string;
  readonly #maxConcurrent: number;
  readonly #timeoutMs: number;
  readonly #settings: RegistrySettings;
  readonly #log: Logger | undefined;
  readonly #limiters = new Map<string, LimitFunction>();
  readonly #tokens = new TokenCache();
  readonly #tokenFetches = new Map<string, Promise<string>>();
  readonly #authStates = new Map<string, AuthState>();
  #blobRequests = 0;

  constructor(options: RegistryClientOptions = {}) {
    const settings = options.settings ?? registrySettingsFromEnv(process.env);
    this.#settings = settings;
    this.#credentials = options.credentials;
    this.#dispatcher = options.dispatcher ?? defaultDispatcher();
    this.#maxRetries = Math.max(0, Math.floor(options.maxRetries ?? settings.maxRetries));
    this.#retryBaseMs = Math.max(0, options.retryBaseMs ?? 500);
    this.#userAgent = options.userAgent ?? 'ducc-gitops/0.1 (registry client)';
    this.#maxConcurrent = Math.max(1, Math.floor(options.maxConcurrentPerRegistry ?? settings.maxConcurrentPerRegistry));
    this.#timeoutMs = Math.max(1, options.timeoutMs ?? settings.timeoutMs);
    this.#log = options.logger?.child({ component: 'registry' });
  }

  /** Count of blob GET requests made by this client (tests use it to assert incremental runs make none). */
  get blobRequestCount(): number {
    return this.#blobRequests;
  }

  // ---------------------------------------------------------------------------------------------------
  // Public operations
  // ---------------------------------------------------------------------------------------------------

  /**
   * Resolves a tag or digest to one image: manifest (picking the platform entry when it is an index;
   * default linux/amd64), verified digests, and the verified, parsed config.
   */
  async resolveImage(ref: RepositoryRef, reference: string, options?: { platform?: Platform }): Promise<ResolvedImage> {
    return this.#withConfig(await this.resolveManifest(ref, reference, options));
  }

  /**
   * resolveImage without the config: only manifest requests are made (no blob request), so an
   * incremental run can decide from the manifest (its config digest) whether anything changed.
   */
  async resolveManifest(ref: RepositoryRef, reference: string, options?: { platform?: Platform }): Promise<ResolvedManifest> {
    assertValidRef(ref);
    classifyReference(reference);
    const wanted = options?.platform ?? DEFAULT_PLATFORM;
    const top = await this.#fetchManifest(ref, reference);
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
    return this.#resolveIndexEntry(ref, reference, top, entry);
  }

  /**
   * Every platform manifest of an index (attestations and non-image entries left out), without configs:
   * manifest requests only. A plain manifest yields one element without a platform.
   */
  async resolveAllManifests(ref: RepositoryRef, reference: string): Promise<ResolvedManifest[]> {
    assertValidRef(ref);
    classifyReference(reference);
    const top = await this.#fetchManifest(ref, reference);
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
    return Promise.all(entries.map((e) => this.#resolveIndexEntry(ref, reference, top, e)));
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
  async headManifest(ref: RepositoryRef, reference: string): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
    assertValidRef(ref);
    const kind = classifyReference(reference);
    const spec: SendSpec = {
      ref,
      method: 'HEAD',
      target: `manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      scope: 'pull',
      what: `manifest ${ref.repository}:${reference}`,
    };
    const head = await this.#withSlot(ref, () =>
      this.#withRetries(spec, async () => {
        const exchange = await this.#sendOnce(spec);
        const { response } = exchange;
        if (response.statusCode === 404) {
          await discard(response);
          return undefined;
        }
        await this.#throwUnlessOk(spec, exchange);
        await discard(response);
        return {
          digest: headerValue(response.headers['docker-content-digest']),
          mediaType: baseContentType(response.headers['content-type']),
          size: Number(headerValue(response.headers['content-length']) ?? NaN),
        };
      }),
    );
    if (head === undefined) return undefined;
    if (head.digest !== undefined && isValidDigest(head.digest) && Number.isSafeInteger(head.size)) {
      if (kind === 'digest' && head.digest !== reference && digestAlgorithm(reference) === digestAlgorithm(head.digest)) {
        throw new DuccError('BOT_ERR_DIGEST_MISMATCH', `registry ${ref.registry} answered digest ${head.digest} for ${refName(ref)}@${reference}`);
      }
      return { digest: kind === 'digest' ? reference : head.digest, mediaType: head.mediaType, size: head.size };
    }
    // No (usable) Docker-Content-Digest: fetch the manifest and hash it ourselves.
    let fetched: { bytes: Buffer; contentType: string } | undefined;
    try {
      fetched = await this.#fetchManifestBytes(ref, reference);
    } catch (error) {
      if (error instanceof DuccError && error.code === 'BOT_ERR_REGISTRY_NOT_FOUND') return undefined;
      throw error;
    }
    const digest = kind === 'digest' ? reference : digestOf(fetched.bytes);
    if (kind === 'digest') verifyDigest(fetched.bytes, reference, `manifest ${refName(ref)}@${reference}`);
    let declared: unknown;
    try {
      declared = (JSON.parse(fetched.bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
    } catch {
      declared = undefined;
    }
    return {
      digest,
      mediaType: typeof declared === 'string' && declared !== '' ? declared : fetched.contentType,
      size: fetched.bytes.length,
    };
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
  async openBlob(ref: RepositoryRef, descriptor: Descriptor): Promise<Readable> {
    assertValidRef(ref);
    assertValidDescriptor(descriptor, 'blob');
    const what = `blob ${descriptor.digest} from ${refName(ref)}`;
    const first = await this.#requestBlob(ref, descriptor, 0, what);
    const verifier = new VerifyingStream(descriptor, what);
    void this.#pumpBlob(ref, descriptor, first, verifier, what);
    return verifier;
  }

  /** GET of a blob from byte `offset` on (a Range request when offset > 0), checked against the descriptor. */
  async #requestBlob(ref: RepositoryRef, descriptor: Descriptor, offset: number, what: string): Promise<BlobBody> {
    const spec = this.#blobSpec(ref, descriptor.digest, offset > 0 ? { range: `bytes=${offset}-` } : {});
    const { response } = await this.#withSlot(ref, () =>
      this.#withRetries(spec, async () => {
        const ex = await this.#sendOnce(spec);
        await this.#throwUnlessOk(spec, ex);
        return ex;
      }),
    );
    const length = headerValue(response.headers['content-length']);
    const announced = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    if (response.statusCode === 206) {
      const header = headerValue(response.headers['content-range']);
      const range = parseContentRange(header);
      if (
        range === undefined ||
        range.start !== offset ||
        range.end < range.start ||
        range.end >= descriptor.size ||
        (range.total !== undefined && range.total !== descriptor.size) ||
        (announced !== undefined && announced !== range.end - range.start + 1)
      ) {
        await discard(response);
        throw new DuccError(
          'BOT_ERR_REGISTRY',
          `${what}: asked for bytes ${offset}-${descriptor.size - 1} of ${descriptor.size} (Content-Length ${length ?? 'none'}), the registry answered range ${JSON.stringify(header ?? 'none')}; a wrong range is never spliced in`,
        );
      }
      return { body: response.body, skip: 0 };
    }
    if (announced !== undefined && announced !== descriptor.size) {
      await discard(response);
      throw new DuccError('BOT_ERR_SIZE_MISMATCH', `${what}: registry announces ${length} bytes, descriptor says ${descriptor.size}`);
    }
    return { body: response.body, skip: offset };
  }

  /** Copies blob bodies into `verifier` with backpressure, resuming broken-off bodies (see openBlob). */
  async #pumpBlob(ref: RepositoryRef, descriptor: Descriptor, first: BlobBody, verifier: VerifyingStream, what: string): Promise<void> {
    let current = first;
    let position = 0;
    let resumes = 0;
    // The consumer gave up: stop reading (and let the connection go).
    verifier.once('close', () => {
      if (!current.body.destroyed && !current.body.readableEnded) current.body.destroy();
    });
    for (;;) {
      let failure: unknown;
      try {
        for await (const chunk of current.body as AsyncIterable<Buffer>) {
          if (verifier.destroyed) break;
          let data = chunk;
          if (current.skip > 0) {
            const dropped = Math.min(current.skip, data.length);
            current.skip -= dropped;
            data = data.subarray(dropped);
            if (data.length === 0) continue;
          }
          position += data.length;
          if (!verifier.write(data)) await drainedOrClosed(verifier);
        }
      } catch (error) {
        failure = error;
      }
      if (verifier.destroyed) {
        if (!current.body.destroyed) current.body.destroy();
        return;
      }
      if (failure === undefined && current.skip === 0 && position >= descriptor.size) {
        verifier.end();
        return;
      }
      if (failure instanceof DuccError) {
        verifier.destroy(failure);
        return;
      }
      const reason = failure === undefined ? `the body ended after ${position} of ${descriptor.size} bytes` : this.#describeNetworkFailure(failure);
      if (resumes >= this.#maxRetries) {
        verifier.destroy(
          new DuccError(
            'BOT_ERR_REGISTRY_UNREACHABLE',
            `reading ${what} failed at byte ${position} of ${descriptor.size}: ${reason}${resumes > 0 ? ` (after ${resumes + 1} attempts)` : ''}`,
            { cause: failure },
          ),
        );
        return;
      }
      const delay = backoffDelay(resumes, this.#retryBaseMs);
      resumes++;
      this.#log?.warn(
        { registry: ref.registry, repository: ref.repository, what, position, size: descriptor.size, attempt: resumes, delayMs: delay, reason },
        'blob download broke off, resuming',
      );
      await sleep(delay);
      if (verifier.destroyed) return;
      try {
        current = await this.#requestBlob(ref, descriptor, position, what);
      } catch (error) {
        verifier.destroy(
          error instanceof DuccError
            ? error
            : new DuccError('BOT_ERR_REGISTRY_UNREACHABLE', `resuming ${what} at byte ${position} failed: ${errorMessage(error)}`, { cause: error }),
        );
        return;
      }
      if (verifier.destroyed) current.body.destroy();
    }
  }

  /** A small blob fully in memory, verified, with a byte cap (default 4 MiB). */
  async fetchBlob(ref: RepositoryRef, descriptor: Descriptor, maxBytes: number = DEFAULT_MAX_BLOB_BYTES): Promise<Buffer> {
    assertValidRef(ref);
    assertValidDescriptor(descriptor, 'blob');
    const what = `blob ${descriptor.digest} from ${refName(ref)}`;
    if (descriptor.size > maxBytes) {
      throw new DuccError('BOT_ERR_LIMIT', `${what} is ${descriptor.size} bytes, more than the ${maxBytes} allowed here`);
    }
    const spec = this.#blobSpec(ref, descriptor.digest);
    const bytes = await this.#withSlot(ref, () =>
      this.#withRetries(spec, async () => {
        const exchange = await this.#sendOnce(spec);
        await this.#throwUnlessOk(spec, exchange);
        return this.#readBody(
          spec,
          exchange.response,
          descriptor.size,
          () => new DuccError('BOT_ERR_SIZE_MISMATCH', `${what}: more than the ${descriptor.size} bytes of its descriptor`),
        );
      }),
    );
    if (bytes.length !== descriptor.size) {
      throw new DuccError('BOT_ERR_SIZE_MISMATCH', `${what}: got ${bytes.length} bytes, descriptor says ${descriptor.size}`);
    }
    verifyDigest(bytes, descriptor.digest, what);
    return bytes;
  }

  /** All tags, following `Link: <...>; rel="next"` pagination. */
  async listTags(ref: RepositoryRef, options?: ListTagsOptions): Promise<string[]> {
    assertValidRef(ref);
    const pageSize = options?.pageSize;
    let target: string | URL = 'tags/list';
    if (pageSize !== undefined) {
      if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw new DuccError('BOT_ERR_CONFIG', `invalid tag page size ${pageSize}`);
      target = `tags/list?n=${pageSize}`;
    }
    const tags: string[] = [];
    const seen = new Set<string>();
    for (let page = 0; page < MAX_TAG_PAGES; page++) {
      const spec: SendSpec = {
        ref,
        method: 'GET',
        target,
        headers: { accept: 'application/json' },
        scope: 'pull',
        what: `tag list of ${ref.repository}`,
      };
      const { bytes, url, link } = await this.#withSlot(ref, () =>
        this.#withRetries(spec, async () => {
          const exchange = await this.#sendOnce(spec);
          if (exchange.response.statusCode === 404) {
            await discard(exchange.response);
            throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `repository ${ref.repository} not found on ${ref.registry}`);
          }
          await this.#throwUnlessOk(spec, exchange);
          const body = await this.#readBody(spec, exchange.response, MAX_MANIFEST_BYTES);
          return { bytes: body, url: exchange.url, link: exchange.response.headers['link'] };
        }),
      );
      seen.add(url.href);
      let doc: unknown;
      try {
        doc = JSON.parse(bytes.toString('utf8'));
      } catch {
        throw new DuccError('BOT_ERR_REGISTRY', `tag list of ${refName(ref)} is not valid JSON`);
      }
      const pageTags = (doc as { tags?: unknown } | null)?.tags;
      if (pageTags !== undefined && pageTags !== null) {
        if (!Array.isArray(pageTags) || pageTags.some((t) => typeof t !== 'string')) {
          throw new DuccError('BOT_ERR_REGISTRY', `tag list of ${refName(ref)}: "tags" is not an array of strings`);
        }
        tags.push(...(pageTags as string[]));
        if (tags.length > MAX_TAGS) throw new DuccError('BOT_ERR_LIMIT', `tag list of ${refName(ref)}: more than ${MAX_TAGS} tags`);
      }
      const next = parseNextLink(link);
      if (next === undefined) return tags;
      const nextUrl = new URL(next, url);
      if (nextUrl.origin !== url.origin) {
        throw new DuccError('BOT_ERR_REGISTRY', `tag list of ${refName(ref)}: next page on another origin (${nextUrl.origin}) refused`);
      }
      if (seen.has(nextUrl.href)) {
        throw new DuccError('BOT_ERR_REGISTRY', `tag list of ${refName(ref)}: pagination loops back to ${nextUrl.pathname}${nextUrl.search}`);
      }
      target = nextUrl;
    }
    throw new DuccError('BOT_ERR_LIMIT', `tag list of ${refName(ref)}: more than ${MAX_TAG_PAGES} pages`);
  }

  async blobExists(ref: RepositoryRef, digest: string): Promise<boolean> {
    assertValidRef(ref);
    assertValidDigest(digest, `blob of ${refName(ref)}`, 'BOT_ERR_REFERENCE');
    return this.#blobExists(ref, digest, 'pull');
  }

  /**
   * Monolithic upload: POST /v2/<repo>/blobs/uploads/ then PUT <Location>?digest=… . Skipped when the
   * blob already exists. The data must hash to `digest`.
   */
  async pushBlob(ref: RepositoryRef, data: Buffer, digest: string): Promise<void> {
    assertValidRef(ref);
    assertValidDigest(digest, `blob to push to ${refName(ref)}`, 'BOT_ERR_REFERENCE');
    verifyDigest(data, digest, `blob to push to ${refName(ref)}`);
    if (await this.#blobExists(ref, digest, 'pull,push')) {
      this.#log?.debug({ registry: ref.registry, repository: ref.repository, digest }, 'blob already present, not pushed');
      return;
    }
    await this.#withSlot(ref, async () => {
      const start: SendSpec = { ref, method: 'POST', target: 'blobs/uploads/', scope: 'pull,push', what: `upload of blob ${digest}` };
      const started = await this.#withRetries(start, async () => {
        const exchange = await this.#sendOnce(start);
        await this.#throwUnlessOk(start, exchange);
        await discard(exchange.response);
        return exchange;
      });
      const location = headerValue(started.response.headers['location']);
      if (location === undefined || location === '') {
        throw new DuccError('BOT_ERR_REGISTRY', `${ref.registry} started an upload for ${ref.repository} without a Location header`);
      }
      const uploadUrl = new URL(location, started.url);
      if (uploadUrl.protocol !== 'https:' && uploadUrl.protocol !== 'http:') {
        throw new DuccError('BOT_ERR_REGISTRY', `${ref.registry} gave an upload location with unsupported scheme ${uploadUrl.protocol}`);
      }
      if (started.url.protocol === 'https:' && uploadUrl.protocol === 'http:') {
        throw new DuccError('BOT_ERR_REGISTRY', `${ref.registry} gave a plain-http upload location for an https registry; refused`);
      }
      uploadUrl.searchParams.set('digest', digest);
      const put: SendSpec = {
        ref,
        method: 'PUT',
        target: uploadUrl,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
        body: data,
        scope: 'pull,push',
        what: `upload of blob ${digest}`,
      };
      await this.#withRetries(put, async () => {
        const exchange = await this.#sendOnce(put);
        await this.#throwUnlessOk(put, exchange);
        await discard(exchange.response);
      });
    });
  }

  /** PUTs a manifest by tag (or digest); returns its digest (sha256 of the bytes). */
  async pushManifest(ref: RepositoryRef, tag: string, bytes: Buffer, mediaType: string): Promise<string> {
    assertValidRef(ref);
    const kind = classifyReference(tag);
    const digest = kind === 'digest' ? tag : digestOf(bytes);
    if (kind === 'digest') verifyDigest(bytes, tag, `manifest to push to ${refName(ref)}`);
    const spec: SendSpec = {
      ref,
      method: 'PUT',
      target: `manifests/${tag}`,
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: bytes,
      scope: 'pull,push',
      what: `manifest ${ref.repository}:${tag}`,
    };
    const answered = await this.#withSlot(ref, () =>
      this.#withRetries(spec, async () => {
        const exchange = await this.#sendOnce(spec);
        await this.#throwUnlessOk(spec, exchange);
        await discard(exchange.response);
        return headerValue(exchange.response.headers['docker-content-digest']);
      }),
    );
    if (answered !== undefined && isValidDigest(answered) && digestAlgorithm(answered) === digestAlgorithm(digest) && answered !== digest) {
      throw new DuccError('BOT_ERR_DIGEST_MISMATCH', `${ref.registry} stored manifest ${ref.repository}:${tag} as ${answered}, expected ${digest}`);
    }
    return digest;
  }

  // ---------------------------------------------------------------------------------------------------
  // Manifests and images
  // ---------------------------------------------------------------------------------------------------

  async #fetchManifestBytes(ref: RepositoryRef, reference: string): Promise<{ bytes: Buffer; contentType: string; announcedDigest: string | undefined }> {
    const spec: SendSpec = {
      ref,
      method: 'GET',
      target: `manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      scope: 'pull',
      what: `manifest ${ref.repository}:${reference}`,
    };
    return this.#withSlot(ref, () =>
      this.#withRetries(spec, async () => {
        const exchange = await this.#sendOnce(spec);
        if (exchange.response.statusCode === 404) {
          await discard(exchange.response);
          throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `manifest ${ref.repository}:${reference} not found on ${ref.registry}`);
        }
        await this.#throwUnlessOk(spec, exchange);
        const bytes = await this.#readBody(spec, exchange.response, MAX_MANIFEST_BYTES);
        return {
          bytes,
          contentType: baseContentType(exchange.response.headers['content-type']),
          announcedDigest: headerValue(exchange.response.headers['docker-content-digest']),
        };
      }),
    );
  }

  /** Fetches and parses a manifest/index; verifies its digest when fetched by digest or named by `expected`. */
  async #fetchManifest(ref: RepositoryRef, reference: string, expected?: Descriptor): Promise<FetchedManifest> {
    const { bytes, contentType, announcedDigest } = await this.#fetchManifestBytes(ref, reference);
    const what = `manifest ${refName(ref)}@${reference}`;
    // A registry (or something between us and it) that announces another digest than the bytes it sent
    // is not trusted, whatever was asked for (containerd fetches by the announced digest and verifies).
    if (announcedDigest !== undefined && isValidDigest(announcedDigest)) {
      const actual = digestOf(bytes, digestAlgorithm(announcedDigest));
      if (actual !== announcedDigest) {
        throw new DuccError(
          'BOT_ERR_DIGEST_MISMATCH',
          `${what}: ${ref.registry} announced Docker-Content-Digest ${announcedDigest}, but the manifest it sent hashes to ${actual}`,
        );
      }
    }
    let digest: string;
    if (isValidDigest(reference)) {
      verifyDigest(bytes, reference, what);
      digest = reference;
    } else {
      digest = digestOf(bytes);
    }
    if (expected !== undefined) {
      if (bytes.length !== expected.size) {
        throw new DuccError('BOT_ERR_SIZE_MISMATCH', `${what}: got ${bytes.length} bytes, the index says ${expected.size}`);
      }
      verifyDigest(bytes, expected.digest, what);
    }
    const doc = parseManifestDocument(bytes, contentType, `manifest ${refName(ref)}:${reference}`, this.#settings);
    return { bytes, digest, doc };
  }

  async #resolveIndexEntry(ref: RepositoryRef, reference: string, index: FetchedManifest, entry: Descriptor): Promise<ResolvedManifest> {
    if (!MANIFEST_MEDIA_TYPES.includes(entry.mediaType)) {
      throw new DuccError(
        'BOT_ERR_MEDIA_TYPE',
        `entry ${entry.digest} of index ${refName(ref)}:${reference} has media type ${JSON.stringify(entry.mediaType)}, not an image manifest`,
      );
    }
    const child = await this.#fetchManifest(ref, entry.digest, entry);
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

  // ---------------------------------------------------------------------------------------------------
  // Blobs
  // ---------------------------------------------------------------------------------------------------

  #blobSpec(ref: RepositoryRef, digest: string, headers: Record<string, string> = {}): SendSpec {
    return { ref, method: 'GET', target: `blobs/${digest}`, headers, scope: 'pull', what: `blob ${digest}`, blobGet: true };
  }

  async #blobExists(ref: RepositoryRef, digest: string, scope: Scope): Promise<boolean> {
    const spec: SendSpec = { ref, method: 'HEAD', target: `blobs/${digest}`, scope, what: `blob ${digest}` };
    return this.#withSlot(ref, () =>
      this.#withRetries(spec, async () => {
        const exchange = await this.#sendOnce(spec);
        if (exchange.response.statusCode === 404) {
          await discard(exchange.response);
          return false;
        }
        await this.#throwUnlessOk(spec, exchange);
        await discard(exchange.response);
        return true;
      }),
    );
  }

  // ---------------------------------------------------------------------------------------------------
  // HTTP machinery: URLs, concurrency, retries, auth, redirects, error mapping
  // ---------------------------------------------------------------------------------------------------

  /** Where requests for `ref` go: the registry itself or its configured pull-through proxy. */
  #endpoint(ref: RepositoryRef): { origin: string; host: string; repositoryPath: string } {
    const proxy = this.#credentials?.proxyFor(ref.registry);
    const host = proxy?.host ?? ref.registry;
    return { origin: `${ref.scheme}://${host}`, host, repositoryPath: `${proxy?.pathPrefix ?? ''}${ref.repository}` };
  }

  #withSlot<T>(ref: RepositoryRef, fn: () => Promise<T>): Promise<T> {
    const host = this.#endpoint(ref).host;
    let limit = this.#limiters.get(host);
    if (limit === undefined) {
      limit = pLimit(this.#maxConcurrent);
      this.#limiters.set(host, limit);
    }
    return limit(fn);
  }

  /** Runs an attempt, retrying RetryableFailures of idempotent requests with backoff. */
  async #withRetries<T>(spec: SendSpec, attempt: () => Promise<T>): Promise<T> {
    const idempotent = spec.method === 'GET' || spec.method === 'HEAD';
    const maxRetries = idempotent ? this.#maxRetries : 0;
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof RetryableFailure)) throw error;
        if (n >= maxRetries) {
          if (n > 0) error.error.message += ` (after ${n + 1} attempts)`;
          throw error.error;
        }
        const delay = error.delayMs ?? backoffDelay(n, this.#retryBaseMs);
        this.#log?.warn(
          { registry: spec.ref.registry, repository: spec.ref.repository, what: spec.what, attempt: n + 1, delayMs: delay, reason: error.message },
          'registry request failed, retrying',
        );
        await sleep(delay);
      }
    }
  }

  /**
   * One attempt: sends the request (answering one 401 challenge), following redirects for GET/HEAD.
   * Retryable outcomes (5xx, 429, resets) are thrown as RetryableFailure with the response drained.
   */
  async #sendOnce(spec: SendSpec): Promise<Exchange> {
    const endpoint = this.#endpoint(spec.ref);
    const url = typeof spec.target === 'string' ? new URL(`/v2/${endpoint.repositoryPath}/${spec.target}`, endpoint.origin) : spec.target;
    const authKey = JSON.stringify([endpoint.origin, endpoint.repositoryPath, spec.scope]);
    const credential = this.#credentials?.lookup(spec.ref.registry);
    let answeredChallenge = false;
    for (;;) {
      const authorization = await this.#authorizationFor(spec, endpoint.repositoryPath, authKey, credential);
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...spec.headers };
      if (authorization !== undefined) headers['authorization'] = authorization;
      if (spec.blobGet) this.#blobRequests++;
      const exchange = await this.#dispatch(spec, url, endpoint.origin, headers);
      const { response } = exchange;
      const status = response.statusCode;
      if (status === 401 && exchange.url.origin === endpoint.origin) {
        const challenges = parseWwwAuthenticate(response.headers['www-authenticate']);
        if (answeredChallenge) {
          const detail = await this.#statusError(spec, exchange);
          if (authorization?.startsWith('Basic ') && credential !== undefined) {
            throw this.#authError(spec, `the credentials for user ${JSON.stringify(credential.username)} were rejected (HTTP 401)`);
          }
          if (authorization?.startsWith('Bearer ')) {
            const who = credential === undefined ? 'anonymous token' : `token for user ${JSON.stringify(credential.username)}`;
            throw this.#authError(spec, `the registry refused the ${who} for ${spec.what} (HTTP 401)`);
          }
          throw detail;
        }
        await discard(response);
        await this.#answerChallenge(spec, endpoint.repositoryPath, authKey, credential, challenges, authorization);
        answeredChallenge = true;
        continue;
      }
      if (isRetryableStatus(status)) {
        const error = await this.#statusError(spec, exchange);
        const retryAfter = status === 429 || status === 503 ? parseRetryAfter(response.headers['retry-after']) : undefined;
        throw new RetryableFailure(error, retryAfter);
      }
      return exchange;
    }
  }

  /** Sends a request, following up to 5 redirects for GET/HEAD without leaking Authorization to other origins. */
  async #dispatch(spec: SendSpec, firstUrl: URL, registryOrigin: string, headers: Record<string, string>): Promise<Exchange> {
    const followRedirects = spec.method === 'GET' || spec.method === 'HEAD';
    let url = firstUrl;
    for (let hop = 0; ; hop++) {
      const hopHeaders = { ...headers };
      if (url.origin !== registryOrigin) delete hopHeaders['authorization'];
      let response: Dispatcher.ResponseData;
      try {
        response = await request(url, {
          dispatcher: this.#dispatcher,
          method: spec.method,
          headers: hopHeaders,
          headersTimeout: this.#timeoutMs,
          bodyTimeout: this.#timeoutMs,
          ...(spec.body === undefined ? {} : { body: spec.body }),
        });
      } catch (error) {
        throw this.#networkError(spec, url, error);
      }
      if (!followRedirects || !REDIRECT_STATUSES.has(response.statusCode)) return { response, url };
      const location = headerValue(response.headers['location']);
      await discard(response);
      if (location === undefined || location === '') {
        throw new DuccError('BOT_ERR_REGISTRY', `${spec.what} on ${spec.ref.registry}: redirect (HTTP ${response.statusCode}) without a Location`);
      }
      if (hop >= MAX_REDIRECTS) {
        throw new DuccError('BOT_ERR_REGISTRY', `${spec.what} on ${spec.ref.registry}: more than ${MAX_REDIRECTS} redirects`);
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new DuccError('BOT_ERR_REGISTRY', `${spec.what} on ${spec.ref.registry}: invalid redirect Location`);
      }
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new DuccError('BOT_ERR_REGISTRY', `${spec.what} on ${spec.ref.registry}: redirect to unsupported scheme ${next.protocol}`);
      }
      if (url.protocol === 'https:' && next.protocol === 'http:') {
        throw new DuccError('BOT_ERR_REGISTRY', `${spec.what} on ${spec.ref.registry}: refusing redirect from https to plain http (${next.origin})`);
      }
      this.#log?.debug({ what: spec.what, from: url.origin, to: next.origin }, 'following redirect');
      url = next;
    }
  }

  #networkError(spec: SendSpec, url: URL, error: unknown): Error {
    if (error instanceof DuccError) return error;
    const where = url.host === spec.ref.registry ? spec.ref.registry : `${spec.ref.registry} (via ${url.host})`;
    const duccError = new DuccError('BOT_ERR_REGISTRY_UNREACHABLE', `registry ${where} unreachable for ${spec.what}: ${this.#describeNetworkFailure(error)}`, {
      cause: error,
    });
    if (isTransientNetworkError(error)) return new RetryableFailure(duccError);
    return duccError;
  }

  /** One line for a network failure; timeouts say how long was waited and which setting decides it. */
  #describeNetworkFailure(error: unknown): string {
    const code = networkErrorCode(error);
    const seconds = `${this.#timeoutMs / 1000} s`;
    const variable = REGISTRY_SETTING_VARIABLES.timeoutMs;
    if (code === 'UND_ERR_HEADERS_TIMEOUT') return `timed out: no response within ${seconds} (${variable})`;
    if (code === 'UND_ERR_BODY_TIMEOUT') return `timed out: no data for ${seconds} (${variable})`;
    const message = errorMessage(error).trim();
    let detail = message === '' ? (code ?? 'network error') : message;
    if (code !== undefined && !detail.includes(code)) detail = `${code}: ${detail}`;
    return detail;
  }

  /** The Authorization header to send before any challenge, from what earlier challenges taught us. */
  async #authorizationFor(spec: SendSpec, repositoryPath: string, authKey: string, credential: Credential | undefined): Promise<string | undefined> {
    const state = this.#authStates.get(authKey);
    if (state === undefined) return undefined;
    if (state.kind === 'basic') return credential === undefined ? undefined : basicAuth(credential);
    return this.#bearerToken(spec, repositoryPath, state.challenge, credential);
  }

  async #answerChallenge(
    spec: SendSpec,
    repositoryPath: string,
    authKey: string,
    credential: Credential | undefined,
    challenges: AuthChallenge[],
    sentAuthorization: string | undefined,
  ): Promise<void> {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params['realm'] !== undefined);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer !== undefined) {
      if (sentAuthorization !== undefined && sentAuthorization.startsWith('Bearer ')) {
        // the token we sent was refused (expired or revoked): forget it and get a fresh one
        this.#tokens.delete(this.#tokenKey(spec, repositoryPath, bearer, credential));
      }
      this.#authStates.set(authKey, { kind: 'bearer', challenge: bearer });
      await this.#bearerToken(spec, repositoryPath, bearer, credential);
      return;
    }
    if (basic !== undefined) {
      if (credential === undefined) {
        throw this.#authError(spec, `the registry requires credentials (Basic authentication) but none are configured for ${spec.ref.registry}`);
      }
      if (sentAuthorization !== undefined && sentAuthorization.startsWith('Basic ')) {
        throw this.#authError(spec, `the credentials for user ${JSON.stringify(credential.username)} were rejected`);
      }
      this.#authStates.set(authKey, { kind: 'basic' });
      return;
    }
    throw this.#authError(spec, 'registry answered 401 without a supported WWW-Authenticate challenge (Bearer or Basic)');
  }

  #authError(spec: SendSpec, detail: string): DuccError {
    return new DuccError('BOT_ERR_REGISTRY_AUTH', `authentication failed for ${refName(spec.ref)}: ${detail}`);
  }

  #scopeFor(challenge: AuthChallenge, repositoryPath: string, scope: Scope): string {
    const offered = challenge.params['scope'];
    return offered !== undefined && offered !== '' ? offered : `repository:${repositoryPath}:${scope}`;
  }

  #tokenKey(spec: SendSpec, repositoryPath: string, challenge: AuthChallenge, credential: Credential | undefined): string {
    return TokenCache.key(
      `${challenge.params['realm'] ?? ''} ${challenge.params['service'] ?? ''} ${spec.ref.registry}`,
      this.#scopeFor(challenge, repositoryPath, spec.scope),
      credential?.username,
    );
  }

  /** A cached or freshly fetched `Bearer <token>` header value; concurrent fetches for one key are shared. */
  async #bearerToken(spec: SendSpec, repositoryPath: string, challenge: AuthChallenge, credential: Credential | undefined): Promise<string> {
    const key = this.#tokenKey(spec, repositoryPath, challenge, credential);
    const cached = this.#tokens.get(key);
    if (cached !== undefined) return cached;
    let pending = this.#tokenFetches.get(key);
    if (pending === undefined) {
      pending = this.#fetchToken(spec, repositoryPath, challenge, credential, key).finally(() => this.#tokenFetches.delete(key));
      this.#tokenFetches.set(key, pending);
    }
    return pending;
  }

  async #fetchToken(spec: SendSpec, repositoryPath: string, challenge: AuthChallenge, credential: Credential | undefined, key: string): Promise<string> {
    let url: URL;
    try {
      url = new URL(challenge.params['realm'] ?? '');
    } catch {
      throw this.#authError(spec, 'the Bearer challenge has an invalid realm URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw this.#authError(spec, `the Bearer challenge's realm has unsupported scheme ${url.protocol}`);
    }
    const service = challenge.params['service'];
    if (service !== undefined && service !== '') url.searchParams.set('service', service);
    for (const s of this.#scopeFor(challenge, repositoryPath, spec.scope).split(' ')) {
      if (s !== '') url.searchParams.append('scope', s);
    }
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, accept: 'application/json' };
    if (credential !== undefined) {
      if (url.protocol === 'http:' && spec.ref.scheme === 'https') {
        throw this.#authError(spec, `refusing to send credentials to a plain-http token service (${url.host}) for an https registry`);
      }
      headers['authorization'] = basicAuth(credential);
    }
    const tokenSpec: SendSpec = { ...spec, method: 'GET', what: `token for ${refName(spec.ref)}` };
    const body = await this.#withRetries(tokenSpec, async () => {
      let response: Dispatcher.ResponseData;
      try {
        response = await request(url, { dispatcher: this.#dispatcher, method: 'GET', headers, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs });
      } catch (error) {
        throw this.#networkError(tokenSpec, url, error);
      }
      const status = response.statusCode;
      if (status === 401 || status === 403) {
        await discard(response);
        throw this.#authError(
          spec,
          `token service ${url.host} answered HTTP ${status}${credential === undefined ? ' (no credentials are configured for this registry)' : ` for user ${JSON.stringify(credential.username)}`}`,
        );
      }
      if (isRetryableStatus(status)) {
        await discard(response);
        throw new RetryableFailure(
          this.#authError(spec, `token service ${url.host} answered HTTP ${status}`),
          status === 429 || status === 503 ? parseRetryAfter(response.headers['retry-after']) : undefined,
        );
      }
      if (status < 200 || status > 299) {
        await discard(response);
        throw this.#authError(spec, `token service ${url.host} answered HTTP ${status}`);
      }
      return readCapped(response, MAX_TOKEN_BODY_BYTES, () =>
        this.#authError(spec, `token service ${url.host} answered more than ${MAX_TOKEN_BODY_BYTES} bytes`),
      );
    });
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown } | null;
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      throw this.#authError(spec, `token service ${url.host} answered something that is not JSON`);
    }
    const token = typeof doc?.token === 'string' && doc.token !== '' ? doc.token : doc?.access_token;
    if (typeof token !== 'string' || token === '') {
      throw this.#authError(spec, `token service ${url.host} answered without a token`);
    }
    const header = `Bearer ${token}`;
    this.#tokens.set(key, header, typeof doc?.expires_in === 'number' ? doc.expires_in : undefined);
    this.#log?.debug({ registry: spec.ref.registry, scope: this.#scopeFor(challenge, repositoryPath, spec.scope) }, 'obtained registry token');
    return header;
  }

  /** Throws the DuccError for a non-2xx answer (the body is drained). */
  async #throwUnlessOk(spec: SendSpec, exchange: Exchange): Promise<void> {
    const status = exchange.response.statusCode;
    if (status >= 200 && status <= 299) return;
    throw await this.#statusError(spec, exchange);
  }

  async #statusError(spec: SendSpec, exchange: Exchange): Promise<DuccError> {
    const { response, url } = exchange;
    const status = response.statusCode;
    let detail: string;
    try {
      const body = await readCapped(response, MAX_ERROR_BODY_BYTES, undefined);
      detail = registryErrorDetail(body);
    } catch {
      detail = '';
    }
    const suffix = detail === '' ? '' : ` (${detail})`;
    const onWhat = url.origin === this.#endpoint(spec.ref).origin ? spec.ref.registry : `${spec.ref.registry} (via ${url.host})`;
    if (status === 401) {
      const hint = this.#credentials?.lookup(spec.ref.registry) === undefined ? '; no credentials are configured for this registry' : '';
      return this.#authError(spec, `${onWhat} answered HTTP 401 for ${spec.what}${suffix}${hint}`);
    }
    if (status === 403) return this.#authError(spec, `access denied: ${onWhat} answered HTTP 403 for ${spec.what}${suffix}`);
    if (status === 404) return new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${spec.what} not found on ${onWhat} (repository ${spec.ref.repository})${suffix}`);
    return new DuccError('BOT_ERR_REGISTRY', `${spec.method} ${spec.what}: ${onWhat} answered HTTP ${status}${suffix}`);
  }

  /** Reads a whole body with a cap; read failures become retryable network errors. */
  async #readBody(spec: SendSpec, response: Dispatcher.ResponseData, cap: number, tooBig?: () => DuccError): Promise<Buffer> {
    try {
      return await readCapped(
        response,
        cap,
        tooBig ?? (() => new DuccError('BOT_ERR_LIMIT', `${spec.what} from ${spec.ref.registry} is larger than ${cap} bytes`)),
      );
    } catch (error) {
      if (error instanceof DuccError) throw error;
      const duccError = new DuccError(
        'BOT_ERR_REGISTRY_UNREACHABLE',
        `reading ${spec.what} from ${spec.ref.registry} failed: ${this.#describeNetworkFailure(error)}`,
        {
          cause: error,
        },
      );
      throw isTransientNetworkError(error) ? new RetryableFailure(duccError) : duccError;
    }
  }
}

// -----------------------------------------------------------------------------------------------------
// Helpers
// -----------------------------------------------------------------------------------------------------

/** Verifies size and digest of a blob stream; errors instead of ending when they do not match. */
class VerifyingStream extends Transform {
  readonly #descriptor: Descriptor;
  readonly #what: string;
  readonly #hash: Hash;
  #received = 0;

  constructor(descriptor: Descriptor, what: string) {
    super();
    this.#descriptor = descriptor;
    this.#what = what;
    this.#hash = hasherFor(descriptor.digest);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#received += chunk.length;
    if (this.#received > this.#descriptor.size) {
      callback(new DuccError('BOT_ERR_SIZE_MISMATCH', `${this.#what}: more than the ${this.#descriptor.size} bytes of its descriptor`));
      return;
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#received !== this.#descriptor.size) {
      callback(new DuccError('BOT_ERR_SIZE_MISMATCH', `${this.#what}: got ${this.#received} bytes, descriptor says ${this.#descriptor.size}`));
      return;
    }
    const actual = `${digestAlgorithm(this.#descriptor.digest)}:${this.#hash.digest('hex')}`;
    if (actual !== this.#descriptor.digest) {
      callback(new DuccError('BOT_ERR_DIGEST_MISMATCH', `digest mismatch for ${this.#what}: got ${actual}`));
      return;
    }
    callback();
  }
}

function assertValidDescriptor(descriptor: Descriptor, what: string): void {
  assertValidDigest(descriptor?.digest, what, 'BOT_ERR_REFERENCE');
  if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
    throw new DuccError('BOT_ERR_SIZE_MISMATCH', `invalid size ${String(descriptor.size)} in descriptor of ${what} ${descriptor.digest}`);
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function basicAuth(credential: Credential): string {
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`, 'utf8').toString('base64')}`;
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

/** Drains (or, if large, aborts) a response body so that the connection can be reused or closed. */
async function discard(response: Dispatcher.ResponseData): Promise<void> {
  try {
    await response.body.dump({ limit: 64 * 1024 });
  } catch {
    // nothing to do: the body is gone either way
  }
}

/**
 * Reads a body up to `cap` bytes. With `tooBig` the excess is an error; without it the body is truncated
 * (used for error bodies).
 */
async function readCapped(response: Dispatcher.ResponseData, cap: number, tooBig: (() => DuccError) | undefined): Promise<Buffer> {
  const body = response.body;
  const announced = Number(headerValue(response.headers['content-length']) ?? NaN);
  if (tooBig !== undefined && Number.isFinite(announced) && announced > cap) {
    body.destroy();
    throw tooBig();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (total + chunk.length > cap) {
      if (tooBig !== undefined) {
        body.destroy();
        throw tooBig();
      }
      chunks.push(chunk.subarray(0, cap - total));
      total = cap;
      body.destroy();
      break;
    }
    chunks.push(chunk);
    total += chunk.length;
  }
  return Buffer.concat(chunks, total);
}

/**
 * "CODE: message" from a distribution error body ({"errors":[{"code","message"}]}), else ''. The
 * registry's text goes into one-line errors and logs: control characters become spaces and it is cut
 * to 300 characters.
 */
function registryErrorDetail(body: Buffer): string {
  const text = body.toString('utf8').trim();
  if (text === '') return '';
  try {
    const doc = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(doc.errors) && doc.errors.length > 0) {
      const detail = doc.errors
        .slice(0, 3)
        .map((e) => [e?.code, e?.message].filter((v) => typeof v === 'string' && v !== '').join(': '))
        .filter((s) => s !== '')
        .join('; ')
        .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
        .trim();
      return detail.length > MAX_ERROR_DETAIL_CHARS ? `${detail.slice(0, MAX_ERROR_DETAIL_CHARS)}…` : detail;
    }
  } catch {
    // not JSON
  }
  return '';
}

/** `bytes <start>-<end>/<total|*>` (RFC 9110), or undefined when it is not one. */
function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const match = value === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim());
  if (match === null) return undefined;
  const [start, end] = [Number(match[1]), Number(match[2])];
  const total = match[3] === '*' ? undefined : Number(match[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || (total !== undefined && !Number.isSafeInteger(total))) return undefined;
  return { start, end, total };
}

/** Resolves once `stream` wants more data, or is gone. */
function drainedOrClosed(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/** The target of `Link: <url>; rel="next"` (RFC 8288), if any. */
export function parseNextLink(header: string | string[] | undefined): string | undefined {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  for (const value of values) {
    const re = /<([^>]*)>\s*((?:;\s*[^;,]*)*)/g;
    for (let m = re.exec(value); m !== null; m = re.exec(value)) {
      const params = m[2] ?? '';
      const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
      const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
      if (rels.includes('next')) return m[1];
    }
  }
  return undefined;
}
