import type { Credential } from '../credentials.ts';

/** The `Basic` Authorization header value (RFC 7617) for a credential: for Basic registries and token services. */
export function basicAuthorization(credential: Credential): string {
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`, 'utf8').toString('base64')}`;
}
