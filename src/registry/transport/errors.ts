/**
 * From HTTP statuses and network failures to DuccErrors: one line each, naming the registry, the
 * repository and what was asked for, with the registry's own error code when it sent one. The registry's
 * words are untrusted: read with a cap, stripped of control characters, cut short.
 */
import { DuccError, errorMessage } from '../../util/errors.ts';
import { refName } from '../names.ts';
import { REGISTRY_SETTING_VARIABLES } from '../settings.ts';
import type { RepositoryRef } from '../types.ts';
import { isTransientNetworkError, networkErrorCode } from './retry.ts';
import { readCapped } from './response-body.ts';
import { RetryableFailure } from './retry-loop.ts';
import type { Exchange, RequestSpec } from './types.ts';

/** How much of an error body is read (go-containerregistry reads as much). */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** Longest registry error detail quoted in a message. */
const MAX_ERROR_DETAIL_CHARS = 300;

export function authError(ref: RepositoryRef, detail: string): DuccError {
  return new DuccError('BOT_ERR_REGISTRY_AUTH', `authentication failed for ${refName(ref)}: ${detail}`);
}

export interface StatusErrorContext {
  /** The origin the request was meant for: an answer from elsewhere (a redirect) says "via <host>". */
  registryOrigin: string;
  /** Whether credentials are configured for the registry (a 401 without them says so). */
  hasCredentials: boolean;
}

/** The DuccError for a non-2xx answer; its body is read (capped) for the registry's error detail. */
export async function statusError(spec: RequestSpec, exchange: Exchange, context: StatusErrorContext): Promise<DuccError> {
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
  const onWhat = url.origin === context.registryOrigin ? spec.ref.registry : `${spec.ref.registry} (via ${url.host})`;
  if (status === 401) {
    const hint = context.hasCredentials ? '' : '; no credentials are configured for this registry';
    return authError(spec.ref, `${onWhat} answered HTTP 401 for ${spec.what}${suffix}${hint}`);
  }
  if (status === 403) return authError(spec.ref, `access denied: ${onWhat} answered HTTP 403 for ${spec.what}${suffix}`);
  if (status === 404) return new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${spec.what} not found on ${onWhat} (repository ${spec.ref.repository})${suffix}`);
  return new DuccError('BOT_ERR_REGISTRY', `${spec.method} ${spec.what}: ${onWhat} answered HTTP ${status}${suffix}`);
}

/**
 * "CODE: message" from a distribution error body ({"errors":[{"code","message"}]}), else ''. The
 * registry's text goes into one-line errors and logs: control characters become spaces and it is cut
 * to 300 characters.
 */
export function registryErrorDetail(body: Buffer): string {
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

/** One line for a network failure; timeouts say how long was waited and which setting decides it. */
export function describeNetworkFailure(error: unknown, timeoutMs: number): string {
  const code = networkErrorCode(error);
  const seconds = `${timeoutMs / 1000} s`;
  const variable = REGISTRY_SETTING_VARIABLES.timeoutMs;
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return `timed out: no response within ${seconds} (${variable})`;
  if (code === 'UND_ERR_BODY_TIMEOUT') return `timed out: no data for ${seconds} (${variable})`;
  const message = errorMessage(error).trim();
  let detail = message === '' ? (code ?? 'network error') : message;
  if (code !== undefined && !detail.includes(code)) detail = `${code}: ${detail}`;
  return detail;
}

/** A request that got no answer: BOT_ERR_REGISTRY_UNREACHABLE, wrapped as retryable when a retry may help. */
export function networkError(spec: RequestSpec, url: URL, error: unknown, timeoutMs: number): Error {
  if (error instanceof DuccError) return error;
  const where = url.host === spec.ref.registry ? spec.ref.registry : `${spec.ref.registry} (via ${url.host})`;
  const duccError = new DuccError(
    'BOT_ERR_REGISTRY_UNREACHABLE',
    `registry ${where} unreachable for ${spec.what}: ${describeNetworkFailure(error, timeoutMs)}`,
    {
      cause: error,
    },
  );
  if (isTransientNetworkError(error)) return new RetryableFailure(duccError);
  return duccError;
}
