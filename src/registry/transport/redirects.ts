/**
 * Sending one request and following the redirects of GET and HEAD: registries send blob downloads to
 * storage elsewhere (S3, a CDN) with a signed URL. Authorization goes only to the registry's own origin
 * (the signed URL is the storage's credential, and ours must not leak to it), never from https down to
 * plain http, at most 5 hops.
 */
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { DuccError } from '../../util/errors.ts';
import { networkError } from './errors.ts';
import { discard, headerValue } from './response-body.ts';
import { request } from './undici-parts.ts';
import type { Exchange, RequestSpec } from './types.ts';

const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export interface SendContext {
  dispatcher: Dispatcher;
  /** Longest wait for the headers, and between two body chunks (DUCC_REGISTRY_TIMEOUT). */
  timeoutMs: number;
  log: Logger | undefined;
}

/** Sends `spec` to `firstUrl` with `headers`; the answer that is not a redirect (or the redirect of a POST or PUT). */
export async function sendFollowingRedirects(
  spec: RequestSpec,
  firstUrl: URL,
  registryOrigin: string,
  headers: Record<string, string>,
  context: SendContext,
): Promise<Exchange> {
  const followRedirects = spec.method === 'GET' || spec.method === 'HEAD';
  let url = firstUrl;
  for (let hop = 0; ; hop++) {
    const hopHeaders = { ...headers };
    if (url.origin !== registryOrigin) delete hopHeaders['authorization'];
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        dispatcher: context.dispatcher,
        method: spec.method,
        headers: hopHeaders,
        headersTimeout: context.timeoutMs,
        bodyTimeout: context.timeoutMs,
        ...(spec.body === undefined ? {} : { body: spec.body }),
      });
    } catch (error) {
      throw networkError(spec, url, error, context.timeoutMs);
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
    context.log?.debug({ what: spec.what, from: url.origin, to: next.origin }, 'following redirect');
    url = next;
  }
}
