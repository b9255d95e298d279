/**
 * Which webhook route a POST is for, decided before express sees the request (see app.ts): the webhook
 * routes run on the plain node:http objects, because express's work per request — giving the request
 * and response its own prototypes, routing through its layers, its answer helpers — took as much CPU as
 * verifying, parsing and queueing a delivery, and a burst of deliveries is answered one after another.
 * Measured with 50 deliveries at once: a bare express app spends ~37 ms of CPU per burst where bare
 * node:http spends ~21 ms.
 *
 * Paths match as express 5 matched the routes these replace: case-insensitively, with an optional
 * trailing slash, the query string ignored, a target in absolute form (`http://host/path`) by its path;
 * path parameters (registry hooks) are percent-decoded.
 */
import { REGISTRY_ROUTE, REGISTRY_ROUTE_WITH_SECRET } from './registry-hook.ts';

/** The webhook endpoints: one handler each (app.ts). */
export type HookName = 'github' | 'gitlab' | 'registry';

export interface HookMatch {
  hook: HookName;
  /** Metrics and log label until the handler knows better (registry hooks: their kind). */
  source: string;
  /** The route pattern, for logs and metrics: never the URL (it may hold a secret). */
  route: string;
  /** Decoded path parameters; undefined when one is not valid percent-encoding. */
  params: string[] | undefined;
}

/** `scheme://authority` of a request target in absolute form (sent to proxies; express accepts it too). */
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;
const FORGE_PATH = /^\/hooks\/(github|gitlab)\/?$/i;
const REGISTRY_PATH = /^\/hooks\/registry\/([^/]+)\/([^/]+)(?:\/([^/]+))?\/?$/i;

/** The webhook route of a POST to `url` (path and query), or undefined when it is not one. */
export function matchHookRoute(url: string): HookMatch | undefined {
  const target = url.startsWith('/') ? url : url.replace(ABSOLUTE_FORM, '');
  const query = target.indexOf('?');
  const path = query === -1 ? target : target.slice(0, query);
  const forge = FORGE_PATH.exec(path);
  if (forge !== null) {
    const hook = forge[1]!.toLowerCase() as 'github' | 'gitlab';
    return { hook, source: hook, route: `/hooks/${hook}`, params: [] };
  }
  const registry = REGISTRY_PATH.exec(path);
  if (registry !== null) {
    const raw = registry.slice(1).filter((part): part is string => part !== undefined);
    return { hook: 'registry', source: 'registry', route: raw.length === 3 ? REGISTRY_ROUTE_WITH_SECRET : REGISTRY_ROUTE, params: decodeAll(raw) };
  }
  return undefined;
}

function decodeAll(parts: string[]): string[] | undefined {
  try {
    return parts.map((part) => decodeURIComponent(part));
  } catch {
    return undefined;
  }
}
