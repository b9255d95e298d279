/**
 * Where the requests for a repository go. Usually the registry named in the image reference; with a
 * pull-through proxy configured for that registry (DUCC_<NAME>_PROXY), the proxy's host, with the proxy's
 * path prefix in front of the repository. Messages keep naming the registry of the reference.
 */
import type { CredentialStore } from '../credentials.ts';
import type { RepositoryRef } from '../types.ts';

export interface Endpoint {
  /** `<scheme>://<host>`: requests to any other origin (redirects, token realms) get no registry credentials. */
  origin: string;
  /** host[:port] the requests go to: the unit of the per-host concurrency limit. */
  host: string;
  /** The repository as this host knows it (proxy prefix included). */
  repositoryPath: string;
}

export function endpointFor(ref: RepositoryRef, credentials: CredentialStore | undefined): Endpoint {
  const proxy = credentials?.proxyFor(ref.registry);
  const host = proxy?.host ?? ref.registry;
  return { origin: `${ref.scheme}://${host}`, host, repositoryPath: `${proxy?.pathPrefix ?? ''}${ref.repository}` };
}

/** The URL for a target: a path below /v2/<repository path>/, or an absolute URL taken as it is. */
export function targetUrl(endpoint: Endpoint, target: string | URL): URL {
  return typeof target === 'string' ? new URL(`/v2/${endpoint.repositoryPath}/${target}`, endpoint.origin) : target;
}
