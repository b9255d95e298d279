import { WEBHOOK_BODIES_MAX_BYTES_VARIABLE } from '../config/settings.ts';
import { locals, replyEarly, RETRY_AFTER_SECONDS, type HookRequest, type HookResponse } from './webhook-common.ts';

/** GitHub caps webhook payloads at 25 MB; nothing we accept is larger. */
export const MAX_WEBHOOK_BODY_BYTES = 25 * 1024 * 1024;

/**
 * Bytes of webhook bodies held right now, over all requests. Capped by the `heldBytesLimit` each read is
 * given (HttpSettings.webhookBodiesMaxBytes): past it a request gets 503 with Retry-After.
 */
let heldBodyBytes = 0;

/** For tests and metrics: body bytes held by requests in progress. */
export function webhookBodyBytesHeld(): number {
  return heldBodyBytes;
}

/** Why a body is refused before it is read. */
interface BodyRejection {
  status: 413 | 415;
  outcome: 'too_large' | 'unsupported_encoding';
  reason: string;
}

/**
 * Checks the headers of a webhook request before any of its body is read: a declared `Content-Length`
 * over the limit (→ 413) and any `Content-Encoding` other than identity (→ 415; no webhook sender we
 * support compresses, and inflating would let a small request become a large body).
 */
function checkBodyHeaders(req: HookRequest): BodyRejection | undefined {
  const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    return { status: 415, outcome: 'unsupported_encoding', reason: 'Content-Encoding is not supported; send the body uncompressed' };
  }
  const length = req.headers['content-length'];
  if (length !== undefined && /^\d+$/.test(length) && Number(length) > MAX_WEBHOOK_BODY_BYTES) {
    return { status: 413, outcome: 'too_large', reason: `body larger than ${MAX_WEBHOOK_BODY_BYTES} bytes` };
  }
  return undefined;
}

/**
 * Answers a request whose headers refuse its body (see checkBodyHeaders) without reading the body: with
 * the refusal's status, or for GitLab (`asIgnored`, see gitlab-hook.ts) with 200 "ignored". Returns
 * whether it answered.
 */
export function refusedByBodyHeaders(req: HookRequest, res: HookResponse, asIgnored = false): boolean {
  const rejection = checkBodyHeaders(req);
  if (rejection === undefined) return false;
  locals(res).reason = rejection.reason;
  if (asIgnored) replyEarly(res, 200, 'ignored', { outcome: 'ignored', reason: rejection.reason });
  else replyEarly(res, rejection.status, rejection.outcome, { error: rejection.reason });
  return true;
}

/** A body-reading error for answerError, shaped like body-parser's (`status`, `type`, a safe message). */
function bodyError(status: number, type: string, message: string): Error {
  return Object.assign(new Error(message), { status, type, expose: true });
}

/**
 * Reads the raw body (any content type). Signatures are checked over these bytes, so no JSON parser may
 * run before.
 *
 * Bodies sent without a declared length (chunked) are cut as soon as they pass the limit: the reader
 * stops keeping chunks and rejects with a 413 at once, whose answer (answerError) closes the connection.
 * (body-parser's `express.raw` would first read off the whole rest of the request, so a sender that
 * keeps going would never get an answer.) A request that ends early (the sender went away) is reported
 * as `request.aborted`.
 */
export function readRawBody(req: HookRequest, res: HookResponse, heldBytesLimit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => readInto(req, res, heldBytesLimit, resolve, reject));
}

function readInto(req: HookRequest, res: HookResponse, limit: number, resolve: (body: Buffer) => void, reject: (error: Error) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  // This request's share of heldBodyBytes, given back once its answer is sent (the handler still
  // holds the body until then) or as soon as the body is dropped.
  let held = 0;
  const release = (): void => {
    heldBodyBytes -= held;
    held = 0;
  };
  res.once('close', release);
  const settle = (error?: Error): void => {
    if (settled) return;
    settled = true;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('close', onClose);
    if (error !== undefined) {
      chunks.length = 0;
      release();
      // Whatever still arrives is dropped, not buffered, until the reply closes the connection.
      req.on('error', () => {});
      req.resume();
      reject(error);
      return;
    }
    resolve(Buffer.concat(chunks, size));
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > MAX_WEBHOOK_BODY_BYTES) {
      settle(bodyError(413, 'entity.too.large', `body larger than ${MAX_WEBHOOK_BODY_BYTES} bytes`));
      return;
    }
    if (heldBodyBytes + chunk.length > limit) {
      res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      settle(bodyError(503, 'bodies.overloaded', `too many webhook bodies are being received at once (${WEBHOOK_BODIES_MAX_BYTES_VARIABLE}); retry later`));
      return;
    }
    heldBodyBytes += chunk.length;
    held += chunk.length;
    chunks.push(chunk);
  };
  const onEnd = (): void => settle();
  const onError = (): void => settle(bodyError(400, 'request.aborted', 'request aborted'));
  const onClose = (): void => {
    if (!req.complete) settle(bodyError(400, 'request.aborted', 'request aborted'));
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
  req.on('close', onClose);
}
