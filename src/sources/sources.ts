/**
 * The ImageSources of a run: one object that finds, for every image reference, the source it is read from
 * (src/sources/<kind>.ts), keeping one per location so that what a source learnt (an archive's member
 * table) is not learnt twice in a run.
 */
import type { Logger } from 'pino';
import type { RegistryClient } from '../registry/client.ts';
import { DEFAULT_REGISTRY_SETTINGS, type RegistrySettings } from '../registry/settings.ts';
import { DuccError } from '../util/errors.ts';
import type { ImageReference } from '../wishlist/image-reference.ts';
import { SourceCache } from './cache.ts';
import { DockerArchiveSource } from './docker-archive.ts';
import { DogestrySource } from './dogestry.ts';
import { dogestryStore, type DogestryRemote, type DogestryStore } from './dogestry-store.ts';
import type { ImageSource, ImageSources, SourceReads } from './image-source.ts';
import { archiveFiles, directoryFiles, OciLayoutSource } from './oci-layout.ts';
import { RegistrySource, repositoryRef } from './registry-source.ts';
import { imageSinks, type ImageSinks } from './sinks.ts';

export interface SourcesOptions {
  /** The registry client (pull credentials, limits, retries). */
  registry: RegistryClient;
  /**
   * Where the source cache is kept (see cache.ts), e.g. `./var/cache/sources`; without it, in memory for
   * this process only (then a new process reads the documents of OCI layouts again).
   */
  cacheDir?: string;
  /**
   * Layer and index-entry caps (DUCC_LIMIT_IMAGE_LAYERS, DUCC_LIMIT_INDEX_ENTRIES), and for S3 remotes the
   * timeout and retries (DUCC_REGISTRY_TIMEOUT, DUCC_REGISTRY_RETRIES); the defaults when absent.
   */
  settings?: RegistrySettings;
  /** The configuration's `dogestryRemotes`. */
  dogestryRemotes?: readonly DogestryRemote[];
  /** Where S3 credentials are read from (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, and _FILE). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
}

export class Sources implements ImageSources {
  readonly #options: SourcesOptions;
  readonly #sources = new Map<string, ImageSource>();
  readonly #cache: SourceCache;
  readonly #stores = new Map<string, DogestryStore>();
  /** Documents and layers read from the registry-less sources. */
  readonly reads: SourceReads = { documents: 0, layers: 0 };

  constructor(options: SourcesOptions) {
    this.#options = options;
    this.#cache = new SourceCache(options.cacheDir, options.logger);
  }

  /** Writing images into OCI layouts and dogestry remotes (thin images). */
  readonly sinks: ImageSinks = imageSinks(this);

  /** Blob GETs sent to registries (configs and layers). */
  get blobRequests(): number {
    return this.#options.registry.blobRequestCount;
  }

  forImage(image: ImageReference): ImageSource {
    const source = image.source;
    const key = source === undefined ? `registry:${image.scheme}://${image.registry}/${image.repository}` : JSON.stringify(source);
    let found = this.#sources.get(key);
    if (found === undefined) {
      found = this.#create(image);
      this.#sources.set(key, found);
    }
    return found;
  }

  /** The store of a configured dogestry remote; BOT_ERR_CONFIG naming the configured ones when there is none of that name. */
  dogestryStore(name: string): DogestryStore {
    let store = this.#stores.get(name);
    if (store === undefined) {
      const remotes = this.#options.dogestryRemotes ?? [];
      const remote = remotes.find((candidate) => candidate.name === name);
      if (remote === undefined) {
        const known = remotes.length === 0 ? 'none is configured' : `configured: ${remotes.map((candidate) => candidate.name).join(', ')}`;
        throw new DuccError('BOT_ERR_CONFIG', `no dogestry remote '${name}' in the configuration's dogestryRemotes (${known})`);
      }
      store = dogestryStore(remote, this.#options.env ?? {}, this.#options.settings ?? DEFAULT_REGISTRY_SETTINGS);
      this.#stores.set(name, store);
    }
    return store;
  }

  #create(image: ImageReference): ImageSource {
    const source = image.source;
    const limits = this.#options.settings ?? DEFAULT_REGISTRY_SETTINGS;
    const common = { limits, cache: this.#cache, reads: this.reads };
    if (source === undefined) return new RegistrySource(this.#options.registry, repositoryRef(image), this.#cache);
    switch (source.kind) {
      case 'oci':
        return new OciLayoutSource(`oci:${source.path}`, directoryFiles(source.path), common);
      case 'oci-archive':
        return new OciLayoutSource(`oci-archive:${source.path}`, archiveFiles(source.path, `oci-archive:${source.path}`), common);
      case 'docker-archive':
        return new DockerArchiveSource(source.path, source.name, common);
      case 'dogestry':
        return new DogestrySource(source.remote, this.dogestryStore(source.remote), source.name, common);
    }
  }
}
