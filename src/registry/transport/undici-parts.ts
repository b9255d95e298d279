/**
 * The two parts of undici the registry client uses, each imported from its own file instead of the
 * package's index. The index loads everything undici has — fetch, WebSocket, EventSource, mocks,
 * caches, every kind of dispatcher — and that took ~25 ms at every start of `ducc`, a fifth of a
 * conversion with nothing to do (an empty wish list: 116 ms -> 92 ms, median of 8 interleaved runs each; the
 * 50,000-small-files conversion 1.07 s -> 1.04 s, 8 runs). undici has no exports map, so these paths are
 * reachable; a release that moves them makes every registry test fail at once, and
 * test/unit/registry/undici-parts.test.ts checks that the index stays unloaded.
 */
import type { Dispatcher } from 'undici';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import requestOnDispatcher from 'undici/lib/api/api-request.js';

export const Agent = AgentClass;
export type Agent = InstanceType<typeof AgentClass>;

export type RequestOptions = { dispatcher: Dispatcher } & Omit<Dispatcher.RequestOptions, 'origin' | 'path'>;

/** undici's top-level `request(url, { dispatcher, ... })`, made the way its index makes it. */
export function request(url: URL, options: RequestOptions): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = options;
  return requestOnDispatcher.call(dispatcher, { ...rest, origin: url.origin, path: `${url.pathname}${url.search}` });
}
