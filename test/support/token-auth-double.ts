/**
 * Test support: a registry double that puts the distribution token flow in front of a real registry
 * (node:http on 127.0.0.1, port 0; the registry is reached on loopback too).
 *
 * Requests to /v2/... must carry `Authorization: Bearer <token>` for a token that holds every scope the
 * request needs (`requiredScopes`). Without a token they get a 401 Bearer challenge naming
 * `challengeScope` (by default the required scopes), which may be narrower than what is needed, as with
 * registries that learn what a request needs only once they see it. With a token that lacks a scope
 * they get a 401 with error="insufficient_scope" naming what is needed. The token service at /token
 * issues a token for the scopes asked for (or those `grant` allows); scopes are compared as strings.
 * Authorized requests are forwarded to the registry without the Authorization header, and the answer
 * comes back unchanged. Token requests and registry requests are recorded.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Cleanup } from './tmp-dir.ts';
import { listenOnLoopback } from './loopback-server.ts';

export interface TokenAuthDoubleOptions {
  /** The scopes a request needs, e.g. ['repository:team/app:pull']. */
  requiredScopes(method: string, path: string): string[];
  /** The scope the first challenge names (space-separated); the required scopes by default. */
  challengeScope?(method: string, path: string): string;
  /** The scopes a token is issued with, of those asked for; all of them by default. */
  grant?(asked: string[]): string[];
  /** The realm insufficient_scope challenges name; this double's /token by default. */
  insufficientScopeRealm?(host: string): string;
}

export interface TokenRequestRecord {
  path: string;
  service: string | null;
  scopes: string[];
}

export interface RegistryRequestRecord {
  method: string;
  path: string;
  status: number;
  /** The token's scopes, when a known token was sent. */
  tokenScopes?: string[];
}

export interface TokenAuthDouble {
  /** 127.0.0.1:PORT */
  host: string;
  tokenRequests: TokenRequestRecord[];
  requests: RegistryRequestRecord[];
}

export const TOKEN_DOUBLE_SERVICE = 'token-double';

/** Starts the double in front of `upstream` (host:port of a plain-http registry without auth); closed when the test ends. */
export async function startTokenAuthDouble(t: Cleanup, upstream: string, options: TokenAuthDoubleOptions): Promise<TokenAuthDouble> {
  const tokens = new Map<string, string[]>();
  const tokenRequests: TokenRequestRecord[] = [];
  const requests: RegistryRequestRecord[] = [];
  let host = '';

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://double');
    if (!url.pathname.startsWith('/v2/')) {
      const scopes = url.searchParams
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter((s) => s !== '');
      tokenRequests.push({ path: url.pathname, service: url.searchParams.get('service'), scopes });
      const token = `token-${tokenRequests.length}`;
      tokens.set(token, options.grant ? options.grant(scopes) : scopes);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    const method = req.method ?? 'GET';
    const path = `${url.pathname}${url.search}`;
    const required = options.requiredScopes(method, url.pathname);
    const sent = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const held = sent === undefined ? undefined : tokens.get(sent);
    const record: RegistryRequestRecord = { method, path, status: 0 };
    if (held !== undefined) record.tokenScopes = held;
    requests.push(record);
    const realm = `http://${host}/token`;
    if (held === undefined) {
      const scope = options.challengeScope ? options.challengeScope(method, url.pathname) : required.join(' ');
      record.status = 401;
      unauthorized(res, `Bearer realm="${realm}",service="${TOKEN_DOUBLE_SERVICE}",scope="${scope}"`);
      return;
    }
    if (!required.every((scope) => held.includes(scope))) {
      const insufficientRealm = options.insufficientScopeRealm ? options.insufficientScopeRealm(host) : realm;
      record.status = 401;
      unauthorized(res, `Bearer realm="${insufficientRealm}",service="${TOKEN_DOUBLE_SERVICE}",scope="${required.join(' ')}",error="insufficient_scope"`);
      return;
    }
    const headers: IncomingHttpHeaders = { ...req.headers, host: upstream };
    delete headers['authorization'];
    const outgoing = httpRequest(`http://${upstream}${path}`, { method, headers, agent: false }, (answer: IncomingMessage) => {
      record.status = answer.statusCode ?? 502;
      res.writeHead(record.status, answer.headers);
      answer.pipe(res);
    });
    outgoing.on('error', (error) => res.writeHead(502).end(String(error)));
    req.pipe(outgoing);
  });
  ({ host } = await listenOnLoopback(t, server));
  return { host, tokenRequests, requests };
}

function unauthorized(res: ServerResponse, challenge: string): void {
  res
    .writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' })
    .end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
}
