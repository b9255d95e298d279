import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { errorMessage } from '../util/errors.ts';
import type { BotConfig } from '../config/bot-config.ts';
import type { HttpSettings } from '../config/settings.ts';
import type { Delivery } from '../forge/events.ts';
import type { Intake, IntakeResult } from '../jobs/intake.ts';
import type { BotMetrics } from './metrics.ts';

/** What every webhook route needs. */
export interface WebhookContext {
  config: BotConfig;
  settings: HttpSettings;
  intake: Intake;
  logger: Logger;
  metrics: BotMetrics;
}

/**
 * Per-request bookkeeping kept in `res.locals`. Logs name the route PATTERN (never the URL: registry
 * secrets travel in the path), the delivery id and the outcome.
 */
export interface WebhookLocals {
  source: string;
  route: string;
  outcome?: string;
  deliveryId?: string;
  reason?: string;
}

/**
 * A webhook request and its answer: plain node:http objects. The webhook routes do not go through
 * express (see app.ts), which costs more per request than the rest of a delivery's handling.
 */
export type HookRequest = IncomingMessage;
export type HookResponse = ServerResponse<IncomingMessage>;
/** A webhook route: answers the request, or throws (answered by `answerError`). `params`: from the path. */
export type HookHandler = (req: HookRequest, res: HookResponse, params: readonly string[]) => void | Promise<void>;

const localsOf = new WeakMap<HookResponse, WebhookLocals>();

export function locals(res: HookResponse): WebhookLocals {
  let state = localsOf.get(res);
  if (state === undefined) {
    state = { source: 'unknown', route: 'unmatched' };
    localsOf.set(res, state);
  }
  return state;
}

/** Seconds a sender should wait before retrying when the queue is full. */
export const RETRY_AFTER_SECONDS = 60;

/**
 * Runs first for each webhook request: labels it and, once the answer is sent (or the connection
 * dropped), counts it in `ducc_webhooks_total`, times it and writes one log line.
 */
export function track(context: WebhookContext, res: HookResponse, initialSource: string, route: string): void {
  const started = process.hrtime.bigint();
  localsOf.set(res, { source: initialSource, route });
  res.once('close', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const state = locals(res);
    const source = state.source;
    const outcome = state.outcome ?? (res.writableFinished ? outcomeOfStatus(res.statusCode) : 'aborted');
    context.metrics.webhooks.inc({ source, outcome });
    context.metrics.webhookDuration.observe({ source }, seconds);
    const fields = {
      source,
      route,
      status: res.statusCode,
      outcome,
      ms: Math.round(seconds * 1000),
      ...(state.deliveryId !== undefined ? { deliveryId: state.deliveryId } : {}),
      ...(state.reason !== undefined ? { reason: state.reason } : {}),
    };
    if (outcome === 'unauthorized') context.logger.warn(fields, 'webhook refused: bad or missing secret');
    else if (res.statusCode >= 500 || outcome === 'aborted') context.logger.warn(fields, 'webhook not handled');
    else context.logger.info(fields, 'webhook');
  });
}

function outcomeOfStatus(status: number): string {
  if (status === 401) return 'unauthorized';
  if (status === 404) return 'not_found';
  if (status === 413) return 'too_large';
  if (status === 415) return 'unsupported_encoding';
  if (status === 503) return 'overloaded';
  if (status >= 500) return 'error';
  if (status >= 400) return 'invalid';
  return 'ok';
}

/**
 * Answers without reading the rest of the body; with `Connection: close` the connection is closed after
 * the answer instead of draining what the sender still has to send (see lingeringClose).
 */
export function replyEarly(res: HookResponse, status: number, outcome: string, body: Record<string, unknown>): void {
  locals(res).outcome = outcome;
  res.setHeader('Connection', 'close');
  if (!res.req.complete) lingeringClose(res.req.socket);
  sendJson(res, status, body);
}

/** Answers with a JSON body (what express's `res.status(s).json(b)` sends). */
export function sendJson(res: HookResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Longest a sender that keeps sending after an early answer is given before the connection is cut. */
export const LINGER_MAX_MS = 1000;
/** A sender from whom nothing arrived for this long has stopped: the connection is closed. */
const LINGER_IDLE_MS = 50;

/**
 * Closes in stages after an early answer to a request whose body is still coming (RFC 9112 §9.6, "the
 * TCP reset problem"): closing at once, with the sender's bytes still arriving, makes the kernel reset
 * the connection, and a sender still writing then fails on that reset before it has read the answer (a
 * Node client loses the 413 that way). So: the answer and a FIN go out, what still arrives is read and
 * dropped (never buffered), and the connection is destroyed once the sender has been quiet for
 * LINGER_IDLE_MS, or after LINGER_MAX_MS at the latest. Node closes a `Connection: close` answer's
 * socket through `destroySoon()`, which is replaced here for this one socket.
 */
function lingeringClose(socket: Socket): void {
  socket.destroySoon = function lingering(this: Socket): void {
    if (this.writable) this.end();
    const started = Date.now();
    let seen = this.bytesRead;
    const timer = setInterval(() => {
      const read = this.bytesRead;
      if (read === seen || Date.now() - started >= LINGER_MAX_MS) {
        clearInterval(timer);
        this.destroy();
      }
      seen = read;
    }, LINGER_IDLE_MS);
    this.once('close', () => clearInterval(timer));
  };
}

/** Hands the delivery to the intake and maps its result to the reply. */
export async function acceptDelivery(
  context: WebhookContext,
  res: HookResponse,
  delivery: Delivery,
  statuses: { queued: number; other: number },
): Promise<void> {
  const state = locals(res);
  state.deliveryId = delivery.id;
  let result: IntakeResult;
  try {
    result = await context.intake.accept(delivery);
  } catch (error) {
    state.outcome = 'error';
    context.logger.error({ err: error, deliveryId: delivery.id, source: state.source }, 'intake failed');
    sendJson(res, 500, { outcome: 'error' });
    return;
  }
  state.outcome = result.outcome;
  switch (result.outcome) {
    case 'queued':
      sendJson(res, statuses.queued, { outcome: 'queued', jobs: result.jobs });
      return;
    case 'overloaded':
      res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      sendJson(res, 503, { outcome: 'overloaded' });
      return;
    case 'ignored':
      state.reason = result.reason;
      sendJson(res, statuses.other, { outcome: 'ignored', reason: result.reason });
      return;
    case 'duplicate':
      sendJson(res, statuses.other, { outcome: 'duplicate' });
      return;
  }
}

/** Parses a JSON body; undefined when it is not JSON. */
export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Delivery ids from headers go into the state database and logs: well-formed ones are kept, anything
 * else is replaced by its hash.
 */
export function safeDeliveryId(value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  return /^[A-Za-z0-9._:-]{1,128}$/.test(trimmed) ? trimmed : sha256Hex(trimmed);
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A header as one string (Node joins repeated headers for most names; arrays only for a few). */
export function header(req: HookRequest, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The answer to a request whose handling failed: body-reading errors (413 for bodies without a declared
 * length, too many bodies at once, aborted uploads) and thrown bugs. For GitLab, 4xx become 200 (see
 * gitlab-hook.ts). Never logs the URL (it may hold a registry secret), never echoes it.
 */
export function answerError(logger: Logger, res: HookResponse, error: unknown): void {
  const err = error as { status?: unknown; type?: unknown } | null;
  const status = typeof err?.status === 'number' && err.status >= 400 && err.status < 600 ? err.status : 500;
  const state = locals(res);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err?.type === 'request.aborted') {
    state.outcome = 'aborted';
    res.destroy();
    return;
  }
  const overloaded = err?.type === 'bodies.overloaded';
  if (status >= 500 && !overloaded) logger.error({ err: error, route: state.route }, 'request failed');
  const outcome = overloaded ? 'overloaded' : status === 413 ? 'too_large' : status === 415 ? 'unsupported_encoding' : status >= 500 ? 'error' : 'invalid';
  // Body-reading errors (they carry a `type`) have safe messages; others could echo the URL.
  const message = typeof err?.type === 'string' ? errorMessage(error) : status >= 500 ? 'internal error' : 'bad request';
  if (state.source === 'gitlab' && status < 500) {
    state.reason = message;
    replyEarly(res, 200, 'ignored', { outcome: 'ignored', reason: message });
    return;
  }
  replyEarly(res, status, outcome, { error: message });
}
