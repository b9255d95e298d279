import { DuccError } from '../util/errors.ts';
import { isValidDigest } from '../registry/digest.ts';

/**
 * An image named in a wish list, parsed with DUCC's grammar `[scheme://]REGISTRY/REPOSITORY[:TAG][@DIGEST]`,
 * or one of the registry-less sources (see SourceLocation). On-disk paths derive from `registry`,
 * `repository` and `tag`, so they are kept exactly as written: no Docker Hub defaulting, no `library/`
 * insertion, no lower-casing, the port stays part of the registry.
 */
export interface ImageReference {
  scheme: 'https' | 'http' | SourceKind;
  /**
   * host[:port], e.g. `registry.hub.docker.com` or `gitlab-p4n.aip.de:5005`. For a registry-less source,
   * its kind (`oci`, `oci-archive`, `docker-archive`, `dogestry`): the first component of its public name.
   */
  registry: string;
  /**
   * e.g. `library/ubuntu`; never starts or ends with `/`. For a registry-less source, the rest of its
   * public name: the path without its leading `/` (docker-archive: then the image name), or the dogestry
   * remote and repository.
   */
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>` */
  digest?: string;
  /** Where an image that is not in a registry is read from (absent for registries). */
  source?: SourceLocation;
}

/** The registry-less kinds of input, each with its own scheme. */
export type SourceKind = 'oci' | 'oci-archive' | 'docker-archive' | 'dogestry';
export const SOURCE_KINDS: readonly SourceKind[] = ['oci', 'oci-archive', 'docker-archive', 'dogestry'];

/**
 * Where a registry-less image is:
 * - `oci:PATH:TAG`: an OCI image layout directory, the image whose `org.opencontainers.image.ref.name` is TAG
 *   (what `skopeo copy ... oci:PATH:TAG` writes);
 * - `oci-archive:PATH:TAG`: the same layout in a tar file;
 * - `docker-archive:PATH:NAME:TAG`: a `docker save` archive, the image with the RepoTag NAME:TAG;
 * - `dogestry://REMOTE/NAME:TAG`: a dogestry remote named in the configuration (`dogestryRemotes`).
 * PATH is absolute.
 */
export type SourceLocation =
  { kind: 'oci' | 'oci-archive'; path: string } | { kind: 'docker-archive'; path: string; name: string } | { kind: 'dogestry'; remote: string; name: string };

const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;
// OCI distribution spec: path components are lower-case alphanumerics separated by `.`, `_`, `__` or dashes.
const REPOSITORY_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// Tags per the distribution spec, plus `*` for DUCC's wildcard tags.
const TAG = /^[\w*][\w.*-]{0,127}$/;

const DOCKER_HUB = 'https://registry.hub.docker.com';
/** One component of a file path in a reference: no `:` (it ends the path), no blanks, no `.` or `..` of its own. */
const PATH_COMPONENT = /^[A-Za-z0-9._+=,~-]+$/;
/** Names of dogestry remotes, as every short name in the configuration. */
const REMOTE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** A docker image name (dogestry repositories, docker-archive RepoTags): `[host[:port]/]component(/component)*`. */
const DOCKER_NAME_HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::\d{1,5})?$/;

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

  const pathKind = /^(oci|oci-archive|docker-archive):(?!\/\/)/.exec(text);
  if (pathKind) return parsePathSource(input, pathKind[1] as 'oci' | 'oci-archive' | 'docker-archive', text.slice(pathKind[0].length));
  if (/^dogestry:\/\//.test(text)) return parseDogestry(input, text.slice('dogestry://'.length));

  let scheme: 'https' | 'http' = 'https';
  let rest = text;
  const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(text);
  if (schemeMatch) {
    const given = schemeMatch[1]!.toLowerCase();
    if (given !== 'https' && given !== 'http') {
      fail(
        input,
        `unsupported scheme '${schemeMatch[1]}' (use https:// or http://; or oci:PATH:TAG, oci-archive:PATH:TAG, docker-archive:PATH:NAME:TAG, dogestry://REMOTE/NAME:TAG)`,
      );
    }
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
  if ((SOURCE_KINDS as readonly string[]).includes(registry.toLowerCase())) {
    fail(input, `'${registry}' is reserved: public names starting with it belong to ${registry} inputs`);
  }

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

/**
 * `oci:PATH:TAG`, `oci-archive:PATH:TAG`, `docker-archive:PATH:NAME:TAG` (skopeo's transport syntax, with the
 * reference required). The public name is `<kind>/<PATH without its leading />[/<NAME>]:<TAG>`.
 */
function parsePathSource(input: string, kind: 'oci' | 'oci-archive' | 'docker-archive', rest: string): ImageReference {
  const example = kind === 'docker-archive' ? `${kind}:/srv/images/app.tar:example.org/app:1.0` : `${kind}:/srv/images/app${kind === 'oci' ? '' : '.tar'}:1.0`;
  const colon = rest.indexOf(':');
  if (colon < 0) {
    fail(input, kind === 'docker-archive' ? 'it names no image NAME:TAG in the archive' : 'it has no tag', example);
  }
  const path = rest.slice(0, colon);
  const reference = rest.slice(colon + 1);
  checkPath(input, path, example);
  if (reference.includes('@')) fail(input, `${kind} inputs are named by tag, not by digest`, example);
  let name: string | undefined;
  let tag = reference;
  if (kind === 'docker-archive') {
    const split = splitNameAndTag(reference);
    if (split === undefined) fail(input, `'${reference}' is not NAME:TAG (a RepoTag of the archive)`, example);
    name = split.name;
    tag = split.tag;
    checkDockerName(input, name, example);
  }
  if (!TAG.test(tag)) fail(input, `tag '${tag}' is not valid`, example);
  const location = path.slice(1) + (name === undefined ? '' : `/${name}`);
  const source: SourceLocation = kind === 'docker-archive' ? { kind, path, name: name! } : { kind, path };
  return { scheme: kind, registry: kind, repository: location, tag, source };
}

/** `dogestry://REMOTE/NAME:TAG`; the public name is `dogestry/<REMOTE>/<NAME>:<TAG>`. */
function parseDogestry(input: string, rest: string): ImageReference {
  const example = 'dogestry://central/myorg/app:1.0';
  if (/[?#]/.test(rest)) fail(input, 'query strings and fragments are not allowed (the remote is configured by name in dogestryRemotes)', example);
  if (rest.includes('@')) fail(input, 'dogestry inputs are named by tag, not by digest', example);
  const slash = rest.indexOf('/');
  if (slash <= 0) fail(input, 'it names no remote and repository', example);
  const remote = rest.slice(0, slash);
  if (!REMOTE_NAME.test(remote)) fail(input, `'${remote}' is not a remote name (lowercase letters, digits and dashes, as in dogestryRemotes)`, example);
  const split = splitNameAndTag(rest.slice(slash + 1));
  if (split === undefined) fail(input, 'it has no tag', `dogestry://${remote}/${rest.slice(slash + 1) || 'myorg/app'}:latest`);
  checkDockerName(input, split.name, example);
  if (!TAG.test(split.tag)) fail(input, `tag '${split.tag}' is not valid`, example);
  return {
    scheme: 'dogestry',
    registry: 'dogestry',
    repository: `${remote}/${split.name}`,
    tag: split.tag,
    source: { kind: 'dogestry', remote, name: split.name },
  };
}

/** `name:tag`, the tag after the last `:` that follows the last `/` (a `host:port/` prefix keeps its colon). */
function splitNameAndTag(text: string): { name: string; tag: string } | undefined {
  const colon = text.lastIndexOf(':');
  if (colon <= text.lastIndexOf('/') || colon === 0) return undefined;
  return { name: text.slice(0, colon), tag: text.slice(colon + 1) };
}

function checkPath(input: string, path: string, example: string): void {
  if (!path.startsWith('/')) fail(input, `the path '${path}' is not absolute`, example);
  const components = path.slice(1).split('/');
  for (const component of components) {
    if (component === '' || component === '.' || component === '..')
      fail(input, `the path '${path}' is not in normal form (no empty, '.' or '..' components)`, example);
    if (!PATH_COMPONENT.test(component)) fail(input, `path component '${component}' has characters other than letters, digits and . _ + = , ~ -`);
  }
}

/** A docker image name: an optional `host[:port]/` and lowercase components, as distribution allows. */
function checkDockerName(input: string, name: string, example: string): void {
  const parts = name.split('/');
  if (parts.some((part) => part === '')) fail(input, `image name '${name}' has an empty component`, example);
  const host = parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost') ? parts.shift()! : undefined;
  if (host !== undefined && !DOCKER_NAME_HOST.test(host)) fail(input, `'${host}' is not a valid host in image name '${name}'`);
  for (const component of parts) {
    if (!REPOSITORY_COMPONENT.test(component)) {
      fail(input, `image name component '${component}' is not valid (lower-case letters, digits and . _ - separators)`);
    }
  }
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

/** `scheme://registry/repository[:tag][@digest]`, DUCC's `WholeName()`; a registry-less input as written. */
export function wholeName(ref: ImageReference): string {
  const source = ref.source;
  if (source === undefined) return `${ref.scheme}://${ref.registry}/${ref.repository}${referenceSuffix(ref)}`;
  switch (source.kind) {
    case 'oci':
    case 'oci-archive':
      return `${source.kind}:${source.path}${referenceSuffix(ref)}`;
    case 'docker-archive':
      return `docker-archive:${source.path}:${source.name}${referenceSuffix(ref)}`;
    case 'dogestry':
      return `dogestry://${source.remote}/${source.name}${referenceSuffix(ref)}`;
  }
}

/** The same image with another tag (wildcard expansion), its public name following. */
export function withTag(ref: ImageReference, tag: string): ImageReference {
  return { ...ref, tag };
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
  const { registry, repository } = outputVariables(input);
  out = replaceUpTo5(out, '$(scheme)', input.scheme);
  out = replaceUpTo5(out, '$(registry)', registry);
  out = replaceUpTo5(out, '$(repository)', repository);
  out = replaceUpTo5(out, '$(digest)', input.digest ?? '');
  out = replaceUpTo5(out, '$(tag)', input.tag ?? '');
  out = replaceUpTo5(out, '$(reference)', referenceSuffix(input));
  out = replaceUpTo5(out, '$(image)', repository + referenceSuffix(input));
  return out;
}

/**
 * `$(registry)` and `$(repository)` of an input: the registry host and repository; for a dogestry input the
 * remote and the dogestry repository; for docker-archive the archive's path and the image name; for oci and
 * oci-archive the path and its last component.
 */
function outputVariables(input: ImageReference): { registry: string; repository: string } {
  const source = input.source;
  if (source === undefined) return { registry: input.registry, repository: input.repository };
  switch (source.kind) {
    case 'dogestry':
      return { registry: source.remote, repository: source.name };
    case 'docker-archive':
      return { registry: source.path, repository: source.name };
    case 'oci':
    case 'oci-archive':
      return { registry: source.path, repository: source.path.slice(source.path.lastIndexOf('/') + 1) };
  }
}
