import type { Readable } from 'node:stream';
import { DuccError } from '../util/errors.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { Descriptor, Platform, RepositoryRef, ResolvedManifest } from '../registry/types.ts';
import type { ImageReference } from '../wishlist/image-reference.ts';
import type { ImageSource } from './image-source.ts';
import type { ManifestCache } from '../registry/manifest-cache.ts';

/** The registry's repository of a registry image; BOT_ERR_REFERENCE for the other kinds of input. */
export function repositoryRef(image: ImageReference): RepositoryRef {
  if (image.source !== undefined || (image.scheme !== 'https' && image.scheme !== 'http')) {
    throw new DuccError('BOT_ERR_REFERENCE', `${image.scheme} input ${image.registry}/${image.repository} is not in a registry`);
  }
  return { scheme: image.scheme, registry: image.registry, repository: image.repository };
}

/**
 * A registry repository as an ImageSource: the registry client does all the work. With a cache (the
 * source cache), manifests and indexes are kept by digest, so an unchanged tag costs one conditional GET,
 * answered 304 without a body (src/registry/manifest-cache.ts).
 */
export class RegistrySource implements ImageSource {
  readonly #client: RegistryClient;
  readonly #ref: RepositoryRef;
  readonly #cache: ManifestCache | undefined;
  readonly description: string;

  constructor(client: RegistryClient, ref: RepositoryRef, cache?: ManifestCache) {
    this.#client = client;
    this.#ref = ref;
    this.#cache = cache;
    this.description = `${ref.registry}/${ref.repository}`;
  }

  resolveManifest(reference: string, options?: { platform?: Platform }): Promise<ResolvedManifest> {
    return this.#client.resolveManifest(this.#ref, reference, { ...options, ...(this.#cache ? { cache: this.#cache } : {}) });
  }

  resolveAllManifests(reference: string): Promise<ResolvedManifest[]> {
    return this.#client.resolveAllManifests(this.#ref, reference, this.#cache ? { cache: this.#cache } : {});
  }

  fetchBlob(descriptor: Descriptor, maxBytes?: number): Promise<Buffer> {
    return this.#client.fetchBlob(this.#ref, descriptor, maxBytes);
  }

  openBlob(descriptor: Descriptor): Promise<Readable> {
    return this.#client.openBlob(this.#ref, descriptor);
  }

  listTags(): Promise<string[]> {
    return this.#client.listTags(this.#ref);
  }
}
