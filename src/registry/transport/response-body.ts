/** Reading response bodies of a registry, which is not trusted to keep them short. */
import type { Dispatcher } from 'undici';
import type { DuccError } from '../../util/errors.ts';

/**
 * Sent as Accept-Encoding with every request. Nothing here decodes a Content-Encoding (undici's request
 * does not, unlike fetch, and no decompressing interceptor is composed in): digests are checked over the
 * bytes exactly as they arrive, and a layer's own gzip is the converter's to undo. A request without
 * Accept-Encoding lets the server pick any coding (RFC 9110 §12.5.3), and storage behind a redirect
 * that gzips on the fly would then send bytes that hash to nothing; `identity` asks for none. A
 * `Content-Encoding: gzip` label on bytes that are the blob itself (object metadata) is left alone.
 */
export const NO_CONTENT_CODING = 'identity';

/** The first value of a header undici may give as a list. */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Drains (or, if large, aborts) a response body so that the connection can be reused or closed. */
export async function discard(response: Dispatcher.ResponseData): Promise<void> {
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
export async function readCapped(response: Dispatcher.ResponseData, cap: number, tooBig: (() => DuccError) | undefined): Promise<Buffer> {
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
