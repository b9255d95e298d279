/**
 * Pushing to a registry (the thin images): blobs by monolithic upload, manifests by PUT. Nothing is sent
 * that does not hash to the digest it is pushed as, and a registry that stores a manifest under another
 * digest is caught.
 */
import type { Logger } from 'pino';
import { DuccError } from '../util/errors.ts';
import { digestAlgorithm, digestOf, isValidDigest, verifyDigest } from './digest.ts';
import { classifyReference, refName } from './names.ts';
import { discard, headerValue } from './transport/response-body.ts';
import type { Transport } from './transport/transport.ts';
import type { RequestSpec, Scope } from './transport/types.ts';
import type { RepositoryRef } from './types.ts';

/** HEAD of a blob: true when the repository has it. */
export async function blobExists(transport: Transport, ref: RepositoryRef, digest: string, scope: Scope): Promise<boolean> {
  const spec: RequestSpec = { ref, method: 'HEAD', target: `blobs/${digest}`, scope, what: `blob ${digest}` };
  return transport.send(spec, async (exchange) => {
    if (exchange.response.statusCode === 404) {
      await discard(exchange.response);
      return false;
    }
    await transport.ensureOk(spec, exchange);
    await discard(exchange.response);
    return true;
  });
}

/**
 * Monolithic upload: POST /v2/<repo>/blobs/uploads/ then PUT <Location>?digest=… . Skipped when the
 * blob already exists. The data must hash to `digest` (checked by the caller).
 */
export async function pushBlob(transport: Transport, log: Logger | undefined, ref: RepositoryRef, data: Buffer, digest: string): Promise<void> {
  if (await blobExists(transport, ref, digest, 'pull,push')) {
    log?.debug({ registry: ref.registry, repository: ref.repository, digest }, 'blob already present, not pushed');
    return;
  }
  // Both steps hold one slot of the host: an upload the registry has started is finished before the slot
  // goes to another request, rather than left open while others queue.
  await transport.withHostSlot(ref, async () => {
    const start: RequestSpec = { ref, method: 'POST', target: 'blobs/uploads/', scope: 'pull,push', what: `upload of blob ${digest}` };
    const started = await transport.sendHoldingSlot(start, async (exchange) => {
      await transport.ensureOk(start, exchange);
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
    const put: RequestSpec = {
      ref,
      method: 'PUT',
      target: uploadUrl,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
      body: data,
      scope: 'pull,push',
      what: `upload of blob ${digest}`,
    };
    await transport.sendHoldingSlot(put, async (exchange) => {
      await transport.ensureOk(put, exchange);
      await discard(exchange.response);
    });
  });
}

/** PUTs a manifest by tag (or digest); returns its digest (of the bytes). */
export async function pushManifest(transport: Transport, ref: RepositoryRef, tag: string, bytes: Buffer, mediaType: string): Promise<string> {
  const kind = classifyReference(tag);
  const digest = kind === 'digest' ? tag : digestOf(bytes);
  if (kind === 'digest') verifyDigest(bytes, tag, `manifest to push to ${refName(ref)}`);
  const spec: RequestSpec = {
    ref,
    method: 'PUT',
    target: `manifests/${tag}`,
    headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
    body: bytes,
    scope: 'pull,push',
    what: `manifest ${ref.repository}:${tag}`,
  };
  const answered = await transport.send(spec, async (exchange) => {
    await transport.ensureOk(spec, exchange);
    await discard(exchange.response);
    return headerValue(exchange.response.headers['docker-content-digest']);
  });
  if (answered !== undefined && isValidDigest(answered) && digestAlgorithm(answered) === digestAlgorithm(digest) && answered !== digest) {
    throw new DuccError('BOT_ERR_DIGEST_MISMATCH', `${ref.registry} stored manifest ${ref.repository}:${tag} as ${answered}, expected ${digest}`);
  }
  return digest;
}
