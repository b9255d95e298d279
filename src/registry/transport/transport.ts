/**
 * The HTTP side of the registry client, as go-containerregistry keeps remote/transport apart from
 * remote: it takes a RequestSpec (which repository, which path, what access it needs) and deals with
 * everything between that and a usable answer — the endpoint (registry or pull-through proxy), a slot of
 * the per-host concurrency limit, the auth challenges and tokens, redirects, timeouts, retries with
 * backoff, and the mapping of failing statuses to DuccErrors. The client on top speaks the distribution
 * API and never sees a 401 or a 503.
 */
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { DuccError } from '../../util/errors.ts';
import type { CredentialStore } from '../credentials.ts';
import { Authenticator } from './authenticator.ts';
import { endpointFor, targetUrl } from './endpoint.ts';
import { describeNetworkFailure, statusError } from './errors.ts';
import { HostSlots } from './host-slots.ts';
import { sendFollowingRedirects, type SendContext } from './redirects.ts';
import { NO_CONTENT_CODING, readCapped } from './response-body.ts';
import { isRetryableStatus, isTransientNetworkError, parseRetryAfter } from './retry.ts';
import { RetryableFailure, withRetries, type RetryPolicy } from './retry-loop.ts';
import { Agent } from './undici-parts.ts';
import type { Exchange, RequestSpec } from './types.ts';
import type { RepositoryRef } from '../types.ts';

export interface TransportOptions {
  credentials: CredentialStore | undefined;
  /** undici dispatcher; one keep-alive Agent shared by all transports when absent. */
  dispatcher: Dispatcher | undefined;
  maxRetries: number;
  retryBaseMs: number;
  timeoutMs: number;
  maxConcurrentPerRegistry: number;
  userAgent: string;
  log: Logger | undefined;
}

let sharedAgent: Agent | undefined;
/** One keep-alive Agent shared by all clients that were not given a dispatcher. */
function defaultDispatcher(): Dispatcher {
  sharedAgent ??= new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connections: 32 });
  return sharedAgent;
}

export class Transport {
  readonly #credentials: CredentialStore | undefined;
  readonly #userAgent: string;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #send: SendContext;
  readonly #slots: HostSlots;
  readonly #auth: Authenticator;

  constructor(options: TransportOptions) {
    this.#credentials = options.credentials;
    this.#userAgent = options.userAgent;
    this.#timeoutMs = options.timeoutMs;
    this.#retry = { maxRetries: options.maxRetries, retryBaseMs: options.retryBaseMs, log: options.log };
    this.#send = { dispatcher: options.dispatcher ?? defaultDispatcher(), timeoutMs: options.timeoutMs, log: options.log };
    this.#slots = new HostSlots(options.maxConcurrentPerRegistry);
    this.#auth = new Authenticator({
      credentials: options.credentials,
      tokenService: { ...this.#send, userAgent: options.userAgent, retry: this.#retry },
      log: options.log,
    });
  }

  /** Retries and backoff base, for callers that resume a broken-off body themselves (blob downloads). */
  get retryPolicy(): Readonly<RetryPolicy> {
    return this.#retry;
  }

  /**
   * Takes a slot of the registry's host, then sends `spec` and hands each answer to `handle`, retrying
   * (GET and HEAD) while the sending or `handle` throws a RetryableFailure. Answers with a retryable
   * status never reach `handle`; other failing statuses do (see ensureOk).
   */
  send<T>(spec: RequestSpec, handle: (exchange: Exchange) => Promise<T>): Promise<T> {
    return this.withHostSlot(spec.ref, () => this.sendHoldingSlot(spec, handle));
  }

  /** send() for a caller that already holds a slot of the host (withHostSlot), e.g. the two steps of an upload. */
  sendHoldingSlot<T>(spec: RequestSpec, handle: (exchange: Exchange) => Promise<T>): Promise<T> {
    return withRetries(spec, this.#retry, async () => handle(await this.#sendOnce(spec)));
  }

  /** Runs `fn` holding one of the slots of the host that requests for `ref` go to. */
  withHostSlot<T>(ref: RepositoryRef, fn: () => Promise<T>): Promise<T> {
    return this.#slots.run(endpointFor(ref, this.#credentials).host, fn);
  }

  /** Throws the DuccError for a non-2xx answer (the body is drained). */
  async ensureOk(spec: RequestSpec, exchange: Exchange): Promise<void> {
    const status = exchange.response.statusCode;
    if (status >= 200 && status <= 299) return;
    throw await this.#statusError(spec, exchange);
  }

  /** Reads a whole body with a cap; read failures become retryable network errors. */
  async readBody(spec: RequestSpec, response: Dispatcher.ResponseData, cap: number, tooBig?: () => DuccError): Promise<Buffer> {
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
        `reading ${spec.what} from ${spec.ref.registry} failed: ${this.describeNetworkFailure(error)}`,
        {
          cause: error,
        },
      );
      throw isTransientNetworkError(error) ? new RetryableFailure(duccError) : duccError;
    }
  }

  /** One line for a network failure (timeouts name DUCC_REGISTRY_TIMEOUT). */
  describeNetworkFailure(error: unknown): string {
    return describeNetworkFailure(error, this.#timeoutMs);
  }

  /**
   * One attempt: sends the request (answering the registry's auth challenge), following redirects for
   * GET/HEAD. Retryable outcomes (5xx, 429, resets) are thrown as RetryableFailure with the response drained.
   */
  async #sendOnce(spec: RequestSpec): Promise<Exchange> {
    const endpoint = endpointFor(spec.ref, this.#credentials);
    const url = targetUrl(endpoint, spec.target);
    const auth = this.#auth.begin(spec, endpoint);
    for (;;) {
      const authorization = await this.#auth.authorization(auth);
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, 'accept-encoding': NO_CONTENT_CODING, ...spec.headers };
      if (authorization !== undefined) headers['authorization'] = authorization;
      spec.onSend?.();
      const exchange = await sendFollowingRedirects(spec, url, endpoint.origin, headers, this.#send);
      const status = exchange.response.statusCode;
      if (status === 401 && exchange.url.origin === endpoint.origin) {
        await this.#auth.unauthorized(auth, exchange);
        continue;
      }
      if (isRetryableStatus(status)) {
        const error = await this.#statusError(spec, exchange);
        const retryAfter = status === 429 || status === 503 ? parseRetryAfter(exchange.response.headers['retry-after']) : undefined;
        throw new RetryableFailure(error, retryAfter);
      }
      return exchange;
    }
  }

  #statusError(spec: RequestSpec, exchange: Exchange): Promise<DuccError> {
    const registryOrigin = endpointFor(spec.ref, this.#credentials).origin;
    return statusError(spec, exchange, { registryOrigin, hasCredentials: this.#credentials?.lookup(spec.ref.registry) !== undefined });
  }
}
