/** Data shapes shared by the registry client and its callers (OCI distribution / image spec subsets). */

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface RepositoryRef {
  scheme: 'https' | 'http';
  /** host[:port] */
  registry: string;
  repository: string;
}

/** Parsed config blob JSON: the parts we use (everything else is kept as unknown). */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: {
    Env?: string[] | null;
    Cmd?: string[] | null;
    Entrypoint?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Labels?: Record<string, string> | null;
    [k: string]: unknown;
  };
  rootfs?: { type: string; diff_ids: string[] };
  [k: string]: unknown;
}

/** An image manifest (Docker schema 2 or OCI), validated. */
export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** A Docker manifest list or OCI index, validated. */
export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** What resolveManifest returns: a ResolvedImage without the config blob (no blob request made). */
export interface ResolvedManifest {
  ref: RepositoryRef;
  manifestDigest: string;
  manifestMediaType: string;
  manifestBytes: Buffer;
  manifest: ImageManifest;
  indexDigest?: string;
  platform?: Platform;
}

export interface ResolvedImage {
  ref: RepositoryRef;
  /** digest of the image manifest actually used (platform manifest when the reference named an index) */
  manifestDigest: string;
  /** as declared by the manifest's own mediaType field, or the Content-Type when absent ('' if neither) */
  manifestMediaType: string;
  /** raw bytes as served */
  manifestBytes: Buffer;
  manifest: ImageManifest;
  /** fetched, digest-verified, parsed config blob */
  config: ImageConfig;
  configBytes: Buffer;
  /** set when the reference resolved to an index / manifest list */
  indexDigest?: string;
  /** platform of the chosen index entry */
  platform?: Platform;
}

export const MEDIA_TYPE_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MEDIA_TYPE_DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_DOCKER_SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
export const MEDIA_TYPE_DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const MEDIA_TYPE_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_MANIFEST];
export const INDEX_MEDIA_TYPES: readonly string[] = [MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_INDEX];

/** The Accept header value sent for manifest requests: all four supported types. */
export const MANIFEST_ACCEPT = [MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST].join(', ');
