import { DuccError } from '../util/errors.ts';
import { isValidDigest } from '../registry/digest.ts';

/**
 * An image named in a wish list, parsed with DUCC's grammar `[scheme://]REGISTRY/REPOSITORY[:TAG][@DIGEST]`.
 * On-disk paths derive from these fields, so they are kept exactly as written: no Docker Hub defaulting,
 * no `library/` insertion, no lower-casing, the port stays part of the registry.
 */
export interface ImageReference {
  scheme: 'https' | 'http';
  /** host[:port], e.g. `registry.hub.docker.com` or `gitlab-p4n.aip.de:5005`. */
  registry: string;
  /** e.g. `library/ubuntu`; never starts or ends with `/`. */
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>` */
  digest?: string;
}

const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;
// OCI distribution spec: path components are lower-case alphanumerics separated by `.`, `_`, `__` or dashes.
const REPOSITORY_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// Tags per the distribution spec, plus `*` for DUCC's wildcard tags.
const TAG = /^[\w*][\w.*-]{0,127}$/;

const DOCKER_HUB = 'https://registry.hub.docker.com';

function fail(input: string, why: string, suggestion?: string): never {
  const hint = suggestion ? `; write it in full, e.g. '${suggestion}'` : '';
  throw new DuccError('BOT_ERR_REFERENCE', `invalid image reference '${input}': ${why}${hint}`);
}

/** What a user probably meant, for references missing the registry (`ubuntu:22.04`, `library/ubuntu`). */
function dockerHubSuggestion(path: string): string {
  const named = path.includes('/') ? path : `library/${path}`;
  // The suggestion must itself be valid: with a tag (`:latest` where none was given) or a digest.
  const last = named.slice(named.lastIndexOf('/') + 1);
  return `${DOCKER_HUB}/${named}${last.includes(':') || last.includes('@') ? '' : ':latest'}`;
}

/**
 * Parses an image reference exactly as DUCC does where DUCC is right, and with a clear error where DUCC
 * crashes (no tag and no digest) or silently misreads (`library/ubuntu:latest` taken as registry `library`).
 */
export function parseImageReference(input: string): ImageReference {
  const text = input.trim();
  if (text === '') fail(input, 'it is empty');
  if (/[\s\0]/.test(text)) fail(input, 'it contains whitespace or NUL characters');

  let scheme: 'https' | 'http' = 'https';
  let rest = text;
  const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(text);
  if (schemeMatch) {
    const given = schemeMatch[1]!.toLowerCase();
    if (given !== 'https' && given !== 'http') fail(input, `unsupported scheme '${schemeMatch[1]}' (use https:// or http://)`);
    scheme = given;
    rest = text.slice(schemeMatch[0].length);
  }
  if (/[?#]/.test(rest)) fail(input, 'query strings and fragments are not allowed');

  const slash = rest.indexOf('/');
  if (slash <= 0) {
    // `ubuntu:22.04`, `ubuntu`: DUCC reads the name as a host and fails with "invalid port".
    fail(input, 'it names no registry', dockerHubSuggestion(rest));
  }
  const registry = rest.slice(0, slash);
  const path = rest.slice(slash + 1);
  if (!schemeMatch && !looksLikeRegistryHost(registry)) {
    // `library/ubuntu:latest`: DUCC silently takes `library` as the registry host.
    fail(input, `'${registry}' does not look like a registry host (no '.' or ':port', not localhost)`, dockerHubSuggestion(rest));
  }
  checkRegistry(input, registry);

  const atParts = path.split('@');
  if (atParts.length > 2) fail(input, "it has more than one '@'");
  const repoAndTag = atParts[0]!;
  const digest = atParts[1];
  const colonParts = repoAndTag.split(':');
  if (colonParts.length > 2) fail(input, "too many ':' in the repository and tag");
  const repository = colonParts[0]!.replace(/^\/+|\/+$/g, '');
  const tag = colonParts[1];

  if (repository === '') fail(input, 'the repository is empty');
  for (const component of repository.split('/')) {
    if (!REPOSITORY_COMPONENT.test(component)) {
      fail(input, `repository component '${component}' is not valid (lower-case letters, digits and . _ - separators)`);
    }
  }
  if (tag !== undefined && !TAG.test(tag)) fail(input, `tag '${tag}' is not valid`);
  if (digest !== undefined && !isValidDigest(digest)) fail(input, `digest '${digest}' is not a valid sha256/sha512 digest`);
  if (tag === undefined && digest === undefined) {
    // DUCC panics here (GetReference with neither); demand an explicit choice rather than guessing :latest.
    fail(input, 'it has neither a tag nor a digest', `${scheme}://${registry}/${repository}:latest`);
  }
  if (digest !== undefined && tag?.includes('*')) fail(input, 'a wildcard tag cannot be combined with a digest');

  return { scheme, registry, repository, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

function looksLikeRegistryHost(host: string): boolean {
  return host.includes('.') || host.includes(':') || host === 'localhost' || IPV6.test(host);
}

function checkRegistry(input: string, registry: string): void {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(registry);
  const host = match?.[1];
  const port = match?.[2];
  if (!host || !(HOST.test(host) || IPV6.test(host))) fail(input, `'${registry}' is not a valid registry host`);
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) fail(input, `port ${port} is out of range`);
  if (registry.endsWith(':')) fail(input, `'${registry}' has an empty port`);
}

/** True when the tag contains `*` and so names a set of tags. */
export function isWildcard(ref: ImageReference): boolean {
  return ref.tag?.includes('*') ?? false;
}

/** `:tag`, `@digest` or `:tag@digest` (DUCC's `$(reference)`). */
export function referenceSuffix(ref: ImageReference): string {
  return (ref.tag === undefined ? '' : `:${ref.tag}`) + (ref.digest === undefined ? '' : `@${ref.digest}`);
}

/** `scheme://registry/repository[:tag][@digest]`, DUCC's `WholeName()`. */
export function wholeName(ref: ImageReference): string {
  return `${ref.scheme}://${ref.registry}/${ref.repository}${referenceSuffix(ref)}`;
}

/** What to ask the registry for: the digest wins when both are given (as in DUCC). */
export function manifestReference(ref: ImageReference): string {
  const reference = ref.digest ?? ref.tag;
  if (reference === undefined) throw new DuccError('BOT_ERR_REFERENCE', `${wholeName(ref)} has neither tag nor digest`);
  return reference;
}

/** Replaces a variable at most 5 times, as DUCC's `strings.Replace(..., 5)` does. */
function replaceUpTo5(text: string, variable: string, value: string): string {
  let result = text;
  for (let i = 0; i < 5 && result.includes(variable); i++) result = result.replace(variable, () => value);
  return result;
}

export const DEFAULT_OUTPUT_FORMAT = '$(scheme)://$(registry)/$(repository)_thin:$(tag)';

/**
 * The thin image name for an input, from `output_format` (DUCC's `formatOutputImage`). For a wildcard wish
 * the caller passes the expanded input, so every tag gets its own thin image (DUCC Classic pushed all of
 * them under the pattern tag).
 */
export function formatOutputImage(outputFormat: string | undefined, input: ImageReference): string {
  let out = outputFormat === undefined || outputFormat === '' ? DEFAULT_OUTPUT_FORMAT : outputFormat;
  out = replaceUpTo5(out, '$(scheme)', input.scheme);
  out = replaceUpTo5(out, '$(registry)', input.registry);
  out = replaceUpTo5(out, '$(repository)', input.repository);
  out = replaceUpTo5(out, '$(digest)', input.digest ?? '');
  out = replaceUpTo5(out, '$(tag)', input.tag ?? '');
  out = replaceUpTo5(out, '$(reference)', referenceSuffix(input));
  out = replaceUpTo5(out, '$(image)', input.repository + referenceSuffix(input));
  return out;
}
