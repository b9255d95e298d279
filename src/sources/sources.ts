/**
 * The ImageSources of a run: one object that finds, for every image reference, the source it is read from
 * (src/sources/<kind>.ts), keeping one per location so that what a source learnt (an archive's member
 * table) is not learnt twice in a run.
 */
import type { Logger } from 'pino';
import type { RegistryClient } from '../registry/client.ts';
import type { ImageReference } from '../wishlist/image-reference.ts';
import type { ImageSource, ImageSources, SourceReads } from './image-source.ts';
import { RegistrySource, repositoryRef } from './registry-source.ts';

export interface SourcesOptions {
  /** The registry client (pull credentials, limits, retries). */
  registry: RegistryClient;
  logger?: Logger;
}

export class Sources implements ImageSources {
  readonly #options: SourcesOptions;
  readonly #sources = new Map<string, ImageSource>();
  /** Documents and layers read from the registry-less sources. */
  readonly reads: SourceReads = { documents: 0, layers: 0 };

  constructor(options: SourcesOptions) {
    this.#options = options;
  }

  /** Blob GETs sent to registries (configs and layers). */
  get blobRequests(): number {
    return this.#options.registry.blobRequestCount;
  }

  forImage(image: ImageReference): ImageSource {
    const ref = repositoryRef(image);
    const key = `${ref.scheme}://${ref.registry}/${ref.repository}`;
    let source = this.#sources.get(key);
    if (source === undefined) {
      source = new RegistrySource(this.#options.registry, ref);
      this.#sources.set(key, source);
    }
    return source;
  }
}
