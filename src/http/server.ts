import { createServer, type RequestListener, type Server } from 'node:http';

/**
 * Timeouts of the webhook listener. Webhook senders give up after about 10 s, so a connection that has
 * not delivered its headers or its whole request within these limits is a slow or hostile sender and
 * is cut off (Node answers 408 and closes the socket).
 */
export const SERVER_TIMEOUTS = {
  /** Time to receive all request headers. */
  headersTimeoutMs: 10_000,
  /** Time to receive the whole request, body included (25 MiB at ~7 Mbit/s). */
  requestTimeoutMs: 30_000,
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: 5_000,
} as const;

export interface ListenOptions {
  host: string;
  /** 0 picks a free port (tests); read it back from `server.address()`. */
  port: number;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
}

/**
 * Starts an HTTP server for `app` (an express app or any request listener) and resolves once it
 * listens; rejects on errors such as EADDRINUSE. The caller closes it (`server.close()`).
 */
export function listen(app: RequestListener, options: ListenOptions): Promise<Server> {
  const headersTimeout = options.headersTimeoutMs ?? SERVER_TIMEOUTS.headersTimeoutMs;
  const requestTimeout = Math.max(options.requestTimeoutMs ?? SERVER_TIMEOUTS.requestTimeoutMs, headersTimeout);
  const server = createServer(
    {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? SERVER_TIMEOUTS.keepAliveTimeoutMs,
      // Node checks the two timeouts above on this interval (default 30 s, which would let a slow
      // sender hold a connection far longer than the limits say).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
    app,
  );
  // No socket inactivity timeout on top: requestTimeout bounds every request.
  server.timeout = 0;
  return new Promise<Server>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}
