/**
 * Getting manifests and indexes (GET/HEAD /v2/<name>/manifests/<reference>) and deciding whether to
 * trust them: the bytes must hash to the digest asked for, to the Docker-Content-Digest the registry
 * announced, and to the digest and size an index named; only then are they parsed.
 */
import { DuccError } from '../util/errors.ts';
import { digestAlgorithm, digestOf, isValidDigest, verifyDigest } from './digest.ts';
import { baseContentType, parseManifestDocument, type ManifestDocument, type ManifestLimits } from './manifest.ts';
import { classifyReference, refName } from './names.ts';
import { discard, headerValue } from './transport/response-body.ts';
import type { Transport } from './transport/transport.ts';
import type { RequestSpec } from './transport/types.ts';
import { MANIFEST_ACCEPT, type Descriptor, type RepositoryRef } from './types.ts';

/** Largest manifest or index read (the distribution registry refuses to store larger ones). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  doc: ManifestDocument;
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

function manifestSpec(ref: RepositoryRef, reference: string, method: 'GET' | 'HEAD'): RequestSpec {
  return {
    ref,
    method,
    target: `manifests/${reference}`,
    headers: { accept: MANIFEST_ACCEPT },
    scope: 'pull',
    what: `manifest ${ref.repository}:${reference}`,
  };
}

/** The manifest's bytes as served, with its Content-Type and announced digest; BOT_ERR_REGISTRY_NOT_FOUND on 404. */
export async function fetchManifestBytes(
  transport: Transport,
  ref: RepositoryRef,
  reference: string,
): Promise<{ bytes: Buffer; contentType: string; announcedDigest: string | undefined }> {
  const fetched = await getManifestBytes(transport, ref, reference, undefined);
  if (fetched === undefined) throw new Error('unreachable: 304 Not Modified without If-None-Match');
  return fetched;
}

/**
 * GET of a manifest; with `ifNoneMatch` (a digest), undefined when the registry answers 304 Not Modified:
 * the reference still names that digest (the distribution registry's ETag is the quoted digest).
 */
async function getManifestBytes(
  transport: Transport,
  ref: RepositoryRef,
  reference: string,
  ifNoneMatch: string | undefined,
): Promise<{ bytes: Buffer; contentType: string; announcedDigest: string | undefined } | undefined> {
  const spec = manifestSpec(ref, reference, 'GET');
  if (ifNoneMatch !== undefined) spec.headers = { ...spec.headers, 'if-none-match': `"${ifNoneMatch}"` };
  return transport.send(spec, async (exchange) => {
    if (exchange.response.statusCode === 404) {
      await discard(exchange.response);
      throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `manifest ${ref.repository}:${reference} not found on ${ref.registry}`);
    }
    if (exchange.response.statusCode === 304 && ifNoneMatch !== undefined) {
      await discard(exchange.response);
      return undefined;
    }
    await transport.ensureOk(spec, exchange);
    const bytes = await transport.readBody(spec, exchange.response, MAX_MANIFEST_BYTES);
    return {
      bytes,
      contentType: baseContentType(exchange.response.headers['content-type']),
      announcedDigest: headerValue(exchange.response.headers['docker-content-digest']),
    };
  });
}

/** Fetches and parses a manifest/index; verifies its digest when fetched by digest or named by `expected`. */
export async function fetchManifest(
  transport: Transport,
  ref: RepositoryRef,
  reference: string,
  limits: ManifestLimits,
  expected?: Descriptor,
): Promise<FetchedManifest> {
  return checkManifest(ref, reference, limits, expected, await fetchManifestBytes(transport, ref, reference));
}

/**
 * fetchManifest of a tag with a conditional GET (If-None-Match: the digest it named last time): undefined
 * when the registry answers 304 Not Modified, the tag still naming `digest`. A registry that ignores the
 * header answers as to any GET: one request either way.
 */
export async function fetchManifestIfChanged(
  transport: Transport,
  ref: RepositoryRef,
  reference: string,
  limits: ManifestLimits,
  digest: string,
): Promise<FetchedManifest | undefined> {
  const fetched = await getManifestBytes(transport, ref, reference, digest);
  return fetched === undefined ? undefined : checkManifest(ref, reference, limits, undefined, fetched);
}

/** The bytes as fetched, checked against every digest they are known by, then parsed. */
function checkManifest(
  ref: RepositoryRef,
  reference: string,
  limits: ManifestLimits,
  expected: Descriptor | undefined,
  { bytes, contentType, announcedDigest }: { bytes: Buffer; contentType: string; announcedDigest: string | undefined },
): FetchedManifest {
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
  const doc = parseManifestDocument(bytes, contentType, `manifest ${refName(ref)}:${reference}`, limits);
  return { bytes, digest, doc };
}

/** HEADs the manifest: Docker-Content-Digest (or GET + sha256 when the header is missing); undefined on 404. */
export async function headManifest(transport: Transport, ref: RepositoryRef, reference: string): Promise<ManifestHead | undefined> {
  const kind = classifyReference(reference);
  const spec = manifestSpec(ref, reference, 'HEAD');
  const head = await transport.send(spec, async (exchange) => {
    const { response } = exchange;
    if (response.statusCode === 404) {
      await discard(response);
      return undefined;
    }
    await transport.ensureOk(spec, exchange);
    await discard(response);
    return {
      digest: headerValue(response.headers['docker-content-digest']),
      mediaType: baseContentType(response.headers['content-type']),
      size: Number(headerValue(response.headers['content-length']) ?? NaN),
    };
  });
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
    fetched = await fetchManifestBytes(transport, ref, reference);
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
