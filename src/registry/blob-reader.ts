/**
 * Downloading blobs: whole small ones into memory (configs), and streams of layers that survive broken
 * connections. Every byte is counted and hashed before the stream ends: a blob that does not match its
 * descriptor makes the stream error, so its data must be treated as untrusted until the stream ends.
 */
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { DuccError, errorMessage } from '../util/errors.ts';
import { assertValidDigest, verifyDigest } from './digest.ts';
import { VerifyingStream } from './verifying-stream.ts';
import { assertValidRef, refName } from './names.ts';
import { discard, headerValue } from './transport/response-body.ts';
import { backoffDelay, sleep } from './transport/retry.ts';
import type { Transport } from './transport/transport.ts';
import type { RequestSpec } from './transport/types.ts';
import type { Descriptor, RepositoryRef } from './types.ts';

/** A blob response body positioned at the offset asked for (`skip` bytes of a full answer still to drop). */
interface BlobBody {
  body: Readable;
  skip: number;
}

export class BlobReader {
  readonly #transport: Transport;
  readonly #log: Logger | undefined;
  readonly #onBlobRequest: () => void;

  /** `onBlobRequest` is called for each blob GET sent (the client counts them). */
  constructor(transport: Transport, log: Logger | undefined, onBlobRequest: () => void) {
    this.#transport = transport;
    this.#log = log;
    this.#onBlobRequest = onBlobRequest;
  }

  /**
   * Streams a blob (see RegistryClient.openBlob): the request is retried up to its response headers, a
   * body that breaks off is resumed with a Range request, and size and digest are checked over the whole.
   */
  async open(ref: RepositoryRef, descriptor: Descriptor): Promise<Readable> {
    assertValidRef(ref);
    assertValidDescriptor(descriptor, 'blob');
    const what = `blob ${descriptor.digest} from ${refName(ref)}`;
    const first = await this.#request(ref, descriptor, 0, what);
    const verifier = new VerifyingStream(descriptor, what);
    void this.#pump(ref, descriptor, first, verifier, what);
    return verifier;
  }

  /** A small blob fully in memory, verified, with a byte cap. */
  async fetch(ref: RepositoryRef, descriptor: Descriptor, maxBytes: number): Promise<Buffer> {
    assertValidRef(ref);
    assertValidDescriptor(descriptor, 'blob');
    const what = `blob ${descriptor.digest} from ${refName(ref)}`;
    if (descriptor.size > maxBytes) {
      throw new DuccError('BOT_ERR_LIMIT', `${what} is ${descriptor.size} bytes, more than the ${maxBytes} allowed here`);
    }
    const spec = this.#spec(ref, descriptor.digest);
    const bytes = await this.#transport.send(spec, async (exchange) => {
      await this.#transport.ensureOk(spec, exchange);
      return this.#transport.readBody(
        spec,
        exchange.response,
        descriptor.size,
        () => new DuccError('BOT_ERR_SIZE_MISMATCH', `${what}: more than the ${descriptor.size} bytes of its descriptor`),
      );
    });
    if (bytes.length !== descriptor.size) {
      throw new DuccError('BOT_ERR_SIZE_MISMATCH', `${what}: got ${bytes.length} bytes, descriptor says ${descriptor.size}`);
    }
    verifyDigest(bytes, descriptor.digest, what);
    return bytes;
  }

  #spec(ref: RepositoryRef, digest: string, headers: Record<string, string> = {}): RequestSpec {
    return { ref, method: 'GET', target: `blobs/${digest}`, headers, scope: 'pull', what: `blob ${digest}`, onSend: this.#onBlobRequest };
  }

  /** GET of a blob from byte `offset` on (a Range request when offset > 0), checked against the descriptor. */
  async #request(ref: RepositoryRef, descriptor: Descriptor, offset: number, what: string): Promise<BlobBody> {
    const spec = this.#spec(ref, descriptor.digest, offset > 0 ? { range: `bytes=${offset}-` } : {});
    const { response } = await this.#transport.send(spec, async (exchange) => {
      await this.#transport.ensureOk(spec, exchange);
      return exchange;
    });
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

  /** Copies blob bodies into `verifier` with backpressure, resuming broken-off bodies (see open). */
  async #pump(ref: RepositoryRef, descriptor: Descriptor, first: BlobBody, verifier: VerifyingStream, what: string): Promise<void> {
    const { maxRetries, retryBaseMs } = this.#transport.retryPolicy;
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
      const reason = failure === undefined ? `the body ended after ${position} of ${descriptor.size} bytes` : this.#transport.describeNetworkFailure(failure);
      if (resumes >= maxRetries) {
        verifier.destroy(
          new DuccError(
            'BOT_ERR_REGISTRY_UNREACHABLE',
            `reading ${what} failed at byte ${position} of ${descriptor.size}: ${reason}${resumes > 0 ? ` (after ${resumes + 1} attempts)` : ''}`,
            { cause: failure },
          ),
        );
        return;
      }
      const delay = backoffDelay(resumes, retryBaseMs);
      resumes++;
      this.#log?.warn(
        { registry: ref.registry, repository: ref.repository, what, position, size: descriptor.size, attempt: resumes, delayMs: delay, reason },
        'blob download broke off, resuming',
      );
      await sleep(delay);
      if (verifier.destroyed) return;
      try {
        current = await this.#request(ref, descriptor, position, what);
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
}

function assertValidDescriptor(descriptor: Descriptor, what: string): void {
  assertValidDigest(descriptor?.digest, what, 'BOT_ERR_REFERENCE');
  if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
    throw new DuccError('BOT_ERR_SIZE_MISMATCH', `invalid size ${String(descriptor.size)} in descriptor of ${what} ${descriptor.digest}`);
  }
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
