import express, { type Request, type RequestHandler } from 'express';

/** GitHub caps webhook payloads at 25 MB; nothing we accept is larger. */
export const MAX_WEBHOOK_BODY_BYTES = 25 * 1024 * 1024;

/** Why a body is refused before it is read. */
export interface BodyRejection {
  status: 413 | 415;
  outcome: 'too_large' | 'unsupported_encoding';
  reason: string;
}

/**
 * Checks the headers of a webhook request before any of its body is read: a declared `Content-Length`
 * over the limit (→ 413) and any `Content-Encoding` other than identity (→ 415; no webhook sender we
 * support compresses, and inflating would let a small request become a large body).
 */
export function checkBodyHeaders(req: Request): BodyRejection | undefined {
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
 * Reads the raw body as a Buffer (any content type; bodies sent without a declared length are cut at
 * the same limit, with a 413 error for the error handler). Signatures are checked over these bytes, so
 * no JSON parser may run before.
 */
export const readRawBody: RequestHandler = express.raw({ type: () => true, limit: MAX_WEBHOOK_BODY_BYTES, inflate: false });

/** The body read by `readRawBody`, or an empty buffer when the request had none. */
export function rawBodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}
