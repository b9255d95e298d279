/**
 * Asking a registry's token service for a Bearer token (the distribution token flow): GET the realm the
 * registry named in its challenge, with its `service` and the scopes wanted, and the pull credentials as
 * Basic auth when there are any. Never to a realm on another scheme than http(s), and no credentials to a
 * plain-http token service of an https registry.
 */
import type { Dispatcher } from 'undici';
import { refName } from '../names.ts';
import type { Credential } from '../credentials.ts';
import { basicAuthorization } from './basic-auth.ts';
import type { AuthChallenge } from './challenge.ts';
import { authError, networkError } from './errors.ts';
import type { SendContext } from './redirects.ts';
import { discard, NO_CONTENT_CODING, readCapped } from './response-body.ts';
import { isRetryableStatus, parseRetryAfter } from './retry.ts';
import { RetryableFailure, withRetries, type RetryPolicy } from './retry-loop.ts';
import { request } from './undici-parts.ts';
import type { RequestSpec } from './types.ts';

/** A token answer is a small JSON document; more than this is refused, not buffered. */
const MAX_TOKEN_BODY_BYTES = 1024 * 1024;

export interface TokenServiceContext extends SendContext {
  userAgent: string;
  retry: RetryPolicy;
}

export interface TokenRequest {
  /** The registry request that needs the token: its registry and repository name the messages. */
  spec: RequestSpec;
  /** The Bearer challenge naming the realm (token service URL) and service. */
  challenge: AuthChallenge;
  /** The scopes wanted, separated by spaces (each becomes one `scope` parameter). */
  scope: string;
  credential: Credential | undefined;
}

export interface Token {
  /** `Bearer <token>`. */
  header: string;
  /** Lifetime the service gave, in seconds, if any. */
  expiresInSeconds: number | undefined;
}

export async function requestToken(wanted: TokenRequest, context: TokenServiceContext): Promise<Token> {
  const { spec, challenge, credential } = wanted;
  let url: URL;
  try {
    url = new URL(challenge.params['realm'] ?? '');
  } catch {
    throw authError(spec.ref, 'the Bearer challenge has an invalid realm URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw authError(spec.ref, `the Bearer challenge's realm has unsupported scheme ${url.protocol}`);
  }
  const service = challenge.params['service'];
  if (service !== undefined && service !== '') url.searchParams.set('service', service);
  for (const s of wanted.scope.split(' ')) {
    if (s !== '') url.searchParams.append('scope', s);
  }
  const headers: Record<string, string> = { 'user-agent': context.userAgent, accept: 'application/json', 'accept-encoding': NO_CONTENT_CODING };
  if (credential !== undefined) {
    if (url.protocol === 'http:' && spec.ref.scheme === 'https') {
      throw authError(spec.ref, `refusing to send credentials to a plain-http token service (${url.host}) for an https registry`);
    }
    headers['authorization'] = basicAuthorization(credential);
  }
  const tokenSpec: RequestSpec = { ...spec, method: 'GET', what: `token for ${refName(spec.ref)}` };
  const body = await withRetries(tokenSpec, context.retry, async () => {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        dispatcher: context.dispatcher,
        method: 'GET',
        headers,
        headersTimeout: context.timeoutMs,
        bodyTimeout: context.timeoutMs,
      });
    } catch (error) {
      throw networkError(tokenSpec, url, error, context.timeoutMs);
    }
    const status = response.statusCode;
    if (status === 401 || status === 403) {
      await discard(response);
      throw authError(
        spec.ref,
        `token service ${url.host} answered HTTP ${status}${credential === undefined ? ' (no credentials are configured for this registry)' : ` for user ${JSON.stringify(credential.username)}`}`,
      );
    }
    if (isRetryableStatus(status)) {
      await discard(response);
      throw new RetryableFailure(
        authError(spec.ref, `token service ${url.host} answered HTTP ${status}`),
        status === 429 || status === 503 ? parseRetryAfter(response.headers['retry-after']) : undefined,
      );
    }
    if (status < 200 || status > 299) {
      await discard(response);
      throw authError(spec.ref, `token service ${url.host} answered HTTP ${status}`);
    }
    return readCapped(response, MAX_TOKEN_BODY_BYTES, () => authError(spec.ref, `token service ${url.host} answered more than ${MAX_TOKEN_BODY_BYTES} bytes`));
  });
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown } | null;
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    throw authError(spec.ref, `token service ${url.host} answered something that is not JSON`);
  }
  const token = typeof doc?.token === 'string' && doc.token !== '' ? doc.token : doc?.access_token;
  if (typeof token !== 'string' || token === '') {
    throw authError(spec.ref, `token service ${url.host} answered without a token`);
  }
  return { header: `Bearer ${token}`, expiresInSeconds: typeof doc?.expires_in === 'number' ? doc.expires_in : undefined };
}
