import { createHash } from 'node:crypto';
import type { BotEvent, Delivery } from './events.ts';
import { isValidRegistryHost, isValidRepository, isValidTag } from '../registry/names.ts';
import { isValidDigest } from '../registry/digest.ts';
import { isRecord, rec, str } from './payload-fields.ts';

/**
 * Container-registry push notifications → `registry-push` events. Pure functions (no I/O, never throw).
 *
 * A registry notification is only a hint that "something changed in repository X": the bot re-resolves
 * the tag itself and never fetches from a URL found in the payload. Names are checked against the
 * distribution grammar (lowercase path components separated by `/`, no `..`, no leading or trailing
 * `/`; tags `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) and whatever does not match is dropped.
 *
 * `body` is the raw request body (`Uint8Array` or string, parsed here) or an already-parsed value. The
 * delivery id is `registry:<hookName>:<id>`, with the registry's event id when it sends one, else the
 * SHA-256 of the body (the same body retried gives the same id).
 *
 * The event's `source` is the hook name from the bot configuration (`registryHooks[].name`).
 */

/** Manifest and index media types: pushes of anything else (blobs, configs) are not images. */
const MANIFEST_MEDIA_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
]);

/** Docker Hub's notifications name no host; this is where its images are pulled from. */
export const DOCKER_HUB_REGISTRY = 'registry.hub.docker.com';

/**
 * CNCF distribution (`registry:2`/`3`, also GitLab's registry) envelope `{events: [...]}`. Keeps `push`
 * events of a tag or of a manifest/index; `registry` is `request.host` (the name clients used), never
 * `target.url`.
 */
export function parseDistributionNotification(body: unknown, hookName: string): Delivery {
  const { value, hash } = decode(body);
  const rawEvents = isRecord(value) && Array.isArray(value['events']) ? value['events'] : [];
  const events: BotEvent[] = [];
  const ids: string[] = [];
  for (const raw of rawEvents) {
    if (!isRecord(raw)) continue;
    const id = str(raw, 'id');
    if (id !== undefined) ids.push(id);
    if (raw['action'] !== 'push') continue;
    const target = rec(raw, 'target');
    const request = rec(raw, 'request');
    if (target === undefined || request === undefined) continue;
    const tag = validTag(str(target, 'tag'));
    const mediaType = str(target, 'mediaType');
    if (tag === undefined && (mediaType === undefined || !MANIFEST_MEDIA_TYPES.has(mediaType))) continue;
    const registry = validHost(str(request, 'host'));
    const repository = validRepository(str(target, 'repository'));
    if (registry === undefined || repository === undefined) continue;
    const digest = validDigest(str(target, 'digest'));
    events.push(registryPush(hookName, registry, repository, tag, digest));
  }
  const id = ids.length === 0 ? hash : ids.length === 1 ? safeId(ids[0]!) : sha256(ids.join('\n'));
  return { id: `registry:${hookName}:${id}`, events: unique(events) };
}

/**
 * Harbor: the Default format (`type: PUSH_ARTIFACT`, `event_data.resources[].resource_url`
 * `host/project/repo:tag`) and the CloudEvents format (`specversion`, `type: harbor.artifact.pushed`,
 * `id`, `data.resources[]`).
 */
export function parseHarbor(body: unknown, hookName: string): Delivery {
  const { value, hash } = decode(body);
  let data: Record<string, unknown> | undefined;
  let id = hash;
  if (isRecord(value) && value['specversion'] !== undefined) {
    const eventId = str(value, 'id');
    if (eventId !== undefined && eventId !== '') id = safeId(eventId);
    if (value['type'] === 'harbor.artifact.pushed') data = rec(value, 'data');
  } else if (isRecord(value) && value['type'] === 'PUSH_ARTIFACT') {
    data = rec(value, 'event_data');
  }
  const events: BotEvent[] = [];
  const resources = data !== undefined && Array.isArray(data['resources']) ? data['resources'] : [];
  for (const resource of resources) {
    if (!isRecord(resource)) continue;
    const parsed = parseResourceUrl(str(resource, 'resource_url'));
    if (parsed === undefined) continue;
    // Harbor puts the digest in `tag` for pushes by digest: validTag() drops it, the digest stays.
    const tag = validTag(str(resource, 'tag')) ?? parsed.tag;
    const digest = validDigest(str(resource, 'digest')) ?? parsed.digest;
    if (tag === undefined && digest === undefined) continue;
    events.push(registryPush(hookName, parsed.registry, parsed.repository, tag, digest));
  }
  return { id: `registry:${hookName}:${id}`, events: unique(events) };
}

/** Docker Hub: `push_data.tag` and `repository.repo_name` (official images get `library/`). No digest. */
export function parseDockerHub(body: unknown, hookName: string): Delivery {
  const { value, hash } = decode(body);
  const events: BotEvent[] = [];
  const pushData = isRecord(value) ? rec(value, 'push_data') : undefined;
  const repositoryInfo = isRecord(value) ? rec(value, 'repository') : undefined;
  const tag = validTag(pushData && str(pushData, 'tag'));
  const name = repositoryInfo && str(repositoryInfo, 'repo_name');
  const repository = validRepository(name !== undefined && !name.includes('/') ? `library/${name}` : name);
  if (tag !== undefined && repository !== undefined) events.push(registryPush(hookName, DOCKER_HUB_REGISTRY, repository, tag, undefined));
  return { id: `registry:${hookName}:${hash}`, events };
}

/** Quay `repo_push`: `docker_url` (`quay.io/ns/name`) and `updated_tags` (one per push with v2). No digest. */
export function parseQuay(body: unknown, hookName: string): Delivery {
  const { value, hash } = decode(body);
  const events: BotEvent[] = [];
  const dockerUrl = isRecord(value) ? str(value, 'docker_url') : undefined;
  const slash = dockerUrl === undefined ? -1 : dockerUrl.indexOf('/');
  const registry = slash > 0 ? validHost(dockerUrl!.slice(0, slash)) : undefined;
  const repository = slash > 0 ? validRepository(dockerUrl!.slice(slash + 1)) : undefined;
  const tags = isRecord(value) && Array.isArray(value['updated_tags']) ? value['updated_tags'] : [];
  if (registry !== undefined && repository !== undefined) {
    for (const raw of tags) {
      const tag = validTag(typeof raw === 'string' ? raw : undefined);
      if (tag !== undefined) events.push(registryPush(hookName, registry, repository, tag, undefined));
    }
  }
  return { id: `registry:${hookName}:${hash}`, events: unique(events) };
}

/** `host[:port]/path/to/repo:tag` or `…/repo@sha256:…` as Harbor writes `resource_url`. */
function parseResourceUrl(url: string | undefined): { registry: string; repository: string; tag?: string; digest?: string } | undefined {
  if (url === undefined) return undefined;
  const slash = url.indexOf('/');
  if (slash <= 0) return undefined;
  const registry = validHost(url.slice(0, slash));
  let rest = url.slice(slash + 1);
  let tag: string | undefined;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = validDigest(rest.slice(at + 1));
    if (digest === undefined) return undefined;
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      tag = validTag(rest.slice(colon + 1));
      if (tag === undefined) return undefined;
      rest = rest.slice(0, colon);
    }
  }
  const repository = validRepository(rest);
  if (registry === undefined || repository === undefined) return undefined;
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

function registryPush(source: string, registry: string, repository: string, tag: string | undefined, digest: string | undefined): BotEvent {
  return { kind: 'registry-push', source, registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Multi-architecture pushes and blob-heavy envelopes repeat the same image: keep one of each. */
function unique(events: BotEvent[]): BotEvent[] {
  const seen = new Set<string>();
  return events.filter((event) => {
    const key = JSON.stringify(event);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function decode(body: unknown): { value: unknown; hash: string } {
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const hash = sha256(body);
    try {
      return { value: JSON.parse(typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')), hash };
    } catch {
      return { value: undefined, hash };
    }
  }
  return { value: body, hash: sha256(JSON.stringify(body) ?? '') };
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Registry event ids go into the state database and logs: long or odd ones are replaced by their hash. */
function safeId(id: string): string {
  return /^[A-Za-z0-9._:-]{1,128}$/.test(id) ? id : sha256(id);
}

function validHost(value: string | undefined): string | undefined {
  return value !== undefined && isValidRegistryHost(value) ? value.toLowerCase() : undefined;
}

function validRepository(value: string | undefined): string | undefined {
  return value !== undefined && isValidRepository(value) ? value : undefined;
}

function validTag(value: string | undefined): string | undefined {
  return value !== undefined && isValidTag(value) ? value : undefined;
}

function validDigest(value: string | undefined): string | undefined {
  return value !== undefined && isValidDigest(value) ? value : undefined;
}
