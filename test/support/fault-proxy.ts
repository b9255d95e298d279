/**
 * Test support: a fault-injecting HTTP proxy in front of a real registry (node:http on 127.0.0.1, port 0).
 *
 * By default every request is forwarded unchanged — method, path, headers (the Host header included, so
 * that the registry builds upload Locations and redirects pointing back at the proxy) and body — and the
 * answer comes back unchanged. Rules, matched in order by method and a regular expression on the path
 * (with its query), change that; a rule with `times` applies to its first N matches only, after which
 * the next matching rule (or plain forwarding) takes over. Rules that change an answer (truncate, stall
 * after some bytes, corrupt, headers, replace-body) only act on 2xx answers, and the range rules only on
 * requests with a Range header: other requests (the registry's 401 challenge first of all) pass
 * unchanged and do not count. Every request is recorded.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';

export type FaultAction =
  /** Forward, send the headers and the first `afterBytes` bytes of the body, then destroy the connection. */
  | { kind: 'truncate'; afterBytes: number }
  /** Hold the answer for `ms` (before the headers, or after `afterBytes` bytes of the body), then go on. */
  | { kind: 'stall'; ms: number; afterBytes?: number }
  /** Answer with this status (and headers, body) without asking the registry. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string | Buffer }
  /** Destroy the connection as soon as the request arrives. */
  | { kind: 'reset' }
  /** Forward, but flip one byte of the body at `offset` (default: the last byte). */
  | { kind: 'corrupt'; offset?: number }
  /** Forward, but set (or, with undefined, remove) response headers. */
  | { kind: 'headers'; set: Record<string, string | undefined> }
  /** Redirect to `location` (a function gets the request's path). */
  | { kind: 'redirect'; status?: number; location: string | ((path: string) => string) }
  /** Forward a Range request with its start moved by `by` bytes (the registry's Content-Range tells). */
  | { kind: 'shift-range'; by: number }
  /** Forward without the Range header (the answer is the whole blob, 200). */
  | { kind: 'ignore-range' }
  /** Forward, then replace the body (Content-Length adjusted) and set (undefined: remove) headers. */
  | { kind: 'replace-body'; body: Buffer | ((original: Buffer) => Buffer); headers?: Record<string, string | undefined> };

export interface FaultRule {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Matched against the request's path and query. */
  path: RegExp;
  /** Only the first N matching requests (unlimited when absent). */
  times?: number;
  action: FaultAction;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Kind of the rule applied, if any. */
  fault?: FaultAction['kind'];
  /** Status sent back (undefined if the connection was cut before headers). */
  status?: number;
  /** Body bytes sent back. */
  bytesSent: number;
  /** Requests in flight when this one arrived (this one included). */
  concurrent: number;
}

export interface FaultProxy {
  /** 127.0.0.1:PORT */
  host: string;
  requests: RecordedRequest[];
  /** Replaces the rules (counts start again). */
  setRules(rules: FaultRule[]): void;
  /** Requests whose path matches. */
  matching(path: RegExp, method?: string): RecordedRequest[];
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Headers added to every request forwarded upstream (e.g. credentials the client must not send here). */
  upstreamHeaders?: Record<string, string>;
}

/** Starts a proxy in front of `upstream` (host:port of a plain-http registry); closed when the test ends. */
export async function startFaultProxy(
  t: Pick<TestContext, 'after'>,
  upstream: string,
  rules: FaultRule[] = [],
  options: FaultProxyOptions = {},
): Promise<FaultProxy> {
  const [upstreamHost, upstreamPort] = splitHost(upstream);
  let active = rules.map((rule) => ({ rule, left: rule.times ?? Infinity }));
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  const server = createServer((req, res) => {
    inFlight++;
    res.on('close', () => inFlight--);
    const path = req.url ?? '/';
    const recorded: RecordedRequest = { method: req.method ?? '', path, headers: { ...req.headers }, bytesSent: 0, concurrent: inFlight };
    requests.push(recorded);
    const match = active.find((entry) => entry.left > 0 && (entry.rule.method === undefined || entry.rule.method === req.method) && entry.rule.path.test(path));
    if (match !== undefined) {
      match.left--;
      recorded.fault = match.rule.action.kind;
    }
    const refund = () => {
      if (match !== undefined) match.left++;
      delete recorded.fault;
    };
    handle(req, res, recorded, match?.rule.action, refund).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(599).end(String(error));
      else res.destroy();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    recorded: RecordedRequest,
    matched: FaultAction | undefined,
    refund: () => void,
  ): Promise<void> {
    const body = await readAll(req);
    let action = matched;
    if ((action?.kind === 'shift-range' || action?.kind === 'ignore-range') && req.headers.range === undefined) {
      refund();
      action = undefined;
    }
    switch (action?.kind) {
      case 'reset':
        req.socket.destroy();
        return;
      case 'status': {
        const payload = action.body === undefined ? Buffer.alloc(0) : Buffer.from(action.body);
        recorded.status = action.status;
        recorded.bytesSent = payload.length;
        res.writeHead(action.status, { 'content-length': String(payload.length), ...action.headers }).end(payload);
        return;
      }
      case 'redirect': {
        const location = typeof action.location === 'string' ? action.location : action.location(recorded.path);
        recorded.status = action.status ?? 307;
        res.writeHead(recorded.status, { location, 'content-length': '0' }).end();
        return;
      }
      case 'stall':
        if (action.afterBytes === undefined) await wait(action.ms);
        break;
      default:
        break;
    }
    const headers: IncomingHttpHeaders = { ...req.headers, ...options.upstreamHeaders };
    if (action?.kind === 'ignore-range') delete headers['range'];
    if (action?.kind === 'shift-range' && typeof headers['range'] === 'string') {
      const match = /^bytes=(\d+)-(\d*)$/.exec(headers['range']);
      if (match) headers['range'] = `bytes=${Math.max(0, Number(match[1]) + action.by)}-${match[2]}`;
    }
    const upstreamRes = await forward(req.method ?? 'GET', recorded.path, headers, body);
    const responseHeaders: IncomingHttpHeaders = { ...upstreamRes.headers };
    const setHeaders = (set: Record<string, string | undefined>) => {
      for (const [name, value] of Object.entries(set)) {
        if (value === undefined) delete responseHeaders[name.toLowerCase()];
        else responseHeaders[name.toLowerCase()] = value;
      }
    };
    const status = upstreamRes.statusCode ?? 502;
    recorded.status = status;
    const changesAnswer =
      action?.kind === 'truncate' ||
      action?.kind === 'corrupt' ||
      action?.kind === 'headers' ||
      action?.kind === 'replace-body' ||
      (action?.kind === 'stall' && action.afterBytes !== undefined);
    if (changesAnswer && (status < 200 || status > 299)) {
      refund();
      action = undefined;
    }
    if (action?.kind === 'headers') setHeaders(action.set);

    if (action?.kind === 'corrupt' || action?.kind === 'replace-body') {
      let payload = await readAll(upstreamRes);
      if (action.kind === 'corrupt' && payload.length > 0) {
        payload = Buffer.from(payload);
        const offset = action.offset ?? payload.length - 1;
        payload[offset] = payload[offset]! ^ 0xff;
      } else if (action.kind === 'replace-body') {
        payload = typeof action.body === 'function' ? action.body(payload) : action.body;
        setHeaders(action.headers ?? {});
        responseHeaders['content-length'] = String(payload.length);
      }
      recorded.bytesSent = payload.length;
      res.writeHead(status, responseHeaders).end(req.method === 'HEAD' ? undefined : payload);
      return;
    }

    res.writeHead(status, responseHeaders);
    const cutAfter = action?.kind === 'truncate' ? action.afterBytes : undefined;
    const stallAfter = action?.kind === 'stall' && action.afterBytes !== undefined ? action.afterBytes : undefined;
    for await (const chunk of upstreamRes as AsyncIterable<Buffer>) {
      let data = chunk;
      if (stallAfter !== undefined && recorded.bytesSent <= stallAfter && recorded.bytesSent + data.length > stallAfter) {
        const head = data.subarray(0, stallAfter - recorded.bytesSent);
        await writeChunk(res, head);
        recorded.bytesSent += head.length;
        data = data.subarray(head.length);
        await wait((action as { ms: number }).ms);
        if (res.destroyed) return;
      }
      if (cutAfter !== undefined && recorded.bytesSent + data.length >= cutAfter) {
        await writeChunk(res, data.subarray(0, cutAfter - recorded.bytesSent));
        recorded.bytesSent = cutAfter;
        upstreamRes.destroy();
        // Give the bytes a moment to leave, then cut the connection mid-body.
        await wait(20);
        res.destroy();
        req.socket.destroy();
        return;
      }
      await writeChunk(res, data);
      recorded.bytesSent += data.length;
      if (res.destroyed) return;
    }
    res.end();
  }

  function forward(method: string, path: string, headers: IncomingHttpHeaders, body: Buffer): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const outgoing = httpRequest({ host: upstreamHost, port: upstreamPort, method, path, headers, agent: false }, resolve);
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const timer of timers) clearTimeout(timer);
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(close);
  return {
    host: `127.0.0.1:${port}`,
    requests,
    setRules(next) {
      active = next.map((rule) => ({ rule, left: rule.times ?? Infinity }));
    },
    matching(path, method) {
      return requests.filter((r) => path.test(r.path) && (method === undefined || r.method === method));
    },
    close,
  };
}

function splitHost(host: string): [string, number] {
  const index = host.lastIndexOf(':');
  return [host.slice(0, index), Number(host.slice(index + 1))];
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function writeChunk(res: ServerResponse, data: Buffer): Promise<void> {
  if (data.length === 0 || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    if (res.write(data)) resolve();
    else {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    }
  });
}
