import { DuccError } from '../util/errors.ts';
import { isValidDigest } from './digest.ts';
import type { RepositoryRef } from './types.ts';

/** Grammars from the distribution spec; everything we put into a URL path is checked against them. */
const HOST_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY_PATTERN = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function isValidRegistryHost(value: string): boolean {
  return HOST_PATTERN.test(value);
}

export function isValidRepository(value: string): boolean {
  return value.length <= 255 && REPOSITORY_PATTERN.test(value);
}

export function isValidTag(value: string): boolean {
  return TAG_PATTERN.test(value);
}

/** Throws BOT_ERR_REFERENCE unless scheme, registry host and repository name are well-formed. */
export function assertValidRef(ref: RepositoryRef): void {
  if (ref.scheme !== 'https' && ref.scheme !== 'http') {
    throw new DuccError('BOT_ERR_REFERENCE', `unsupported registry scheme ${JSON.stringify(String(ref.scheme))}`);
  }
  if (typeof ref.registry !== 'string' || !isValidRegistryHost(ref.registry)) {
    throw new DuccError('BOT_ERR_REFERENCE', `invalid registry host ${JSON.stringify(String(ref.registry))}`);
  }
  if (typeof ref.repository !== 'string' || !isValidRepository(ref.repository)) {
    throw new DuccError('BOT_ERR_REFERENCE', `invalid repository name ${JSON.stringify(String(ref.repository))}`);
  }
}

/** Throws BOT_ERR_REFERENCE unless `reference` is a valid tag or digest. Returns which one it is. */
export function classifyReference(reference: string): 'tag' | 'digest' {
  if (typeof reference === 'string') {
    if (isValidDigest(reference)) return 'digest';
    if (isValidTag(reference)) return 'tag';
  }
  const shown = JSON.stringify(String(reference).slice(0, 140));
  throw new DuccError(
    'BOT_ERR_REFERENCE',
    `invalid image reference ${shown}: expected a tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) or a digest (sha256:<64 hex> / sha512:<128 hex>)`,
  );
}

/** `registry/repository` for messages. */
export function refName(ref: RepositoryRef): string {
  return `${ref.registry}/${ref.repository}`;
}
