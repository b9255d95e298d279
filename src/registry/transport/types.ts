/** The shapes the client and the transport exchange: what to send, and what came back. */
import type { Dispatcher } from 'undici';
import type { RepositoryRef } from '../types.ts';

/** The access a request needs, as the `<actions>` of distribution's `repository:<name>:<actions>` scope. */
export type Scope = 'pull' | 'pull,push';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT';

/** One request as the client asks for it; the transport adds the endpoint, authorization and retries. */
export interface RequestSpec {
  ref: RepositoryRef;
  method: Method;
  /** Path below /v2/<repository>/ ('manifests/latest'), or an absolute URL (upload Location, next page). */
  target: string | URL;
  headers?: Record<string, string>;
  body?: Buffer;
  scope: Scope;
  /** For messages: 'manifest team/app:latest', 'blob sha256:…'. */
  what: string;
  /** Called for each request sent for this spec (again after an auth challenge; not for redirect hops). */
  onSend?: () => void;
}

/** An answer, with the URL it finally came from (after redirects). */
export interface Exchange {
  response: Dispatcher.ResponseData;
  url: URL;
}
