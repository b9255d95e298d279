/**
 * A `docker save` archive (`docker-archive:PATH:NAME:TAG`, also what `skopeo copy ... docker-archive:PATH`
 * writes): manifest.json lists each image's config file, RepoTags and layer files. The image is the entry
 * whose RepoTags hold NAME:TAG (docker.io/library/ prefixes aside, as docker shows names).
 *
 * The config is the image's own (its bytes, so its digest, are those of the registry image). The layers
 * are uncompressed tars whose digest is their diff_id; an OCI-style member `blobs/<alg>/<hex>` that is
 * not the diff_id is a compressed layer, digest from its name (checked when read). The manifest handed to
 * convert-image is made here (OCI media types); every byte read is checked against it.
 */
import type { Readable } from 'node:stream';
import { DuccError, errorMessage } from '../util/errors.ts';
import { isValidDigest } from '../registry/digest.ts';
import { parseImageConfig, type ManifestLimits } from '../registry/manifest.ts';
import { MAX_MANIFEST_BYTES } from '../registry/manifest-fetch.ts';
import { REGISTRY_SETTING_VARIABLES } from '../registry/settings.ts';
import { parseStrictJson } from '../registry/strict-json.ts';
import type { Descriptor, ImageManifest } from '../registry/types.ts';
import type { ImageSource, SourceManifest, SourceReads } from './image-source.ts';
import { DEFAULT_MAX_DOCUMENT_BYTES } from './oci-layout.ts';
import { TarIndex, type TarMember } from './tar-index.ts';
import { assertBlobWithin, sha256Digest, verifyBlob } from './verify.ts';
import { VerifyingStream } from '../registry/verifying-stream.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const OCI_LAYER: Record<'none' | 'gzip' | 'zstd', string> = {
  none: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

interface ArchiveEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

export class DockerArchiveSource implements ImageSource {
  readonly #path: string;
  readonly #name: string;
  readonly #limits: ManifestLimits;
  readonly #reads: SourceReads;
  /** Member of each blob digest handed out by resolveManifest. */
  readonly #members = new Map<string, string>();
  #index: TarIndex | undefined;
  readonly description: string;

  constructor(path: string, name: string, options: { limits: ManifestLimits; reads: SourceReads }) {
    this.#path = path;
    this.#name = name;
    this.#limits = options.limits;
    this.#reads = options.reads;
    this.description = `docker-archive:${path}:${name}`;
  }

  async resolveManifest(reference: string): Promise<SourceManifest> {
    const { index, entries } = await this.#entries();
    const wanted = familiarName(this.#name);
    const matching = entries.filter((entry) => entry.RepoTags.some((repoTag) => sameRepoTag(repoTag, wanted, reference)));
    if (matching.length === 0) {
      throw new DuccError(
        'BOT_ERR_REGISTRY_NOT_FOUND',
        `no image ${this.#name}:${reference} in docker-archive:${this.#path} (RepoTags: ${shownTags(entries)})`,
      );
    }
    if (matching.length > 1)
      throw new DuccError('BOT_ERR_REGISTRY', `docker-archive:${this.#path} has ${matching.length} images tagged ${this.#name}:${reference}`);
    const entry = matching[0]!;
    const configWhat = `config ${entry.Config} of docker-archive:${this.#path}`;
    const configMember = this.#member(index, entry.Config, configWhat);
    const configBytes = await index.read(configMember, MAX_MANIFEST_BYTES, configWhat);
    this.#reads.documents++;
    const configDigest = sha256Digest(configBytes);
    const config = parseImageConfig(configBytes, configWhat);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== entry.Layers.length) {
      throw new DuccError('BOT_ERR_REGISTRY', `${configWhat} lists ${diffIds.length} diff_ids for the ${entry.Layers.length} layers of manifest.json`);
    }
    this.#members.set(configDigest, configMember.name);
    const layers: Descriptor[] = [];
    for (const [i, layerPath] of entry.Layers.entries()) {
      const what = `layer ${layerPath} of docker-archive:${this.#path}`;
      const member = this.#member(index, layerPath, what);
      const diffId = diffIds[i]!;
      // An OCI-style member (docker 25+) is named by the digest of its bytes; anything else is an uncompressed tar.
      const named = /(?:^|\/)blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(member.name);
      const namedDigest = named ? `${named[1]}:${named[2]}` : undefined;
      let digest = diffId;
      let mediaType = OCI_LAYER.none;
      if (namedDigest !== undefined && isValidDigest(namedDigest) && namedDigest !== diffId) {
        digest = namedDigest;
        mediaType = OCI_LAYER[await this.#compressionOf(index, member, what)];
      }
      this.#members.set(digest, member.name);
      layers.push({ mediaType, digest, size: member.size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, digest: configDigest, size: configBytes.length },
      layers,
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    return { manifestDigest: sha256Digest(manifestBytes), manifestMediaType: OCI_MANIFEST, manifestBytes, manifest };
  }

  async resolveAllManifests(reference: string): Promise<SourceManifest[]> {
    return [await this.resolveManifest(reference)];
  }

  async fetchBlob(descriptor: Descriptor, maxBytes = DEFAULT_MAX_DOCUMENT_BYTES): Promise<Buffer> {
    const what = `blob ${descriptor.digest} of docker-archive:${this.#path}`;
    assertBlobWithin(descriptor, maxBytes, what);
    const index = await this.#currentIndex();
    const bytes = await index.read(this.#known(index, descriptor, what), maxBytes, what);
    this.#reads.documents++;
    verifyBlob(bytes, descriptor, what);
    return bytes;
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    const what = `blob ${descriptor.digest} of docker-archive:${this.#path}`;
    const index = await this.#currentIndex();
    const file = index.stream(this.#known(index, descriptor, what));
    this.#reads.layers++;
    const verifier = new VerifyingStream(descriptor, what);
    file.on('error', (error) => verifier.destroy(new DuccError('BOT_ERR_ARCHIVE', `reading ${what}: ${errorMessage(error)}`, { cause: error })));
    verifier.on('close', () => file.destroy());
    return file.pipe(verifier);
  }

  async listTags(): Promise<string[]> {
    const { entries } = await this.#entries();
    const wanted = familiarName(this.#name);
    const tags = entries.flatMap((entry) => entry.RepoTags.map(splitRepoTag).filter((split) => split !== undefined && familiarName(split.name) === wanted));
    return [...new Set(tags.map((split) => split!.tag))];
  }

  /** Reads the member table afresh and manifest.json. */
  async #entries(): Promise<{ index: TarIndex; entries: ArchiveEntry[] }> {
    const index = await TarIndex.open(this.#path, `docker-archive:${this.#path}`);
    this.#index = index;
    const what = `manifest.json of docker-archive:${this.#path}`;
    const member = index.member('manifest.json');
    if (member === undefined) {
      throw new DuccError('BOT_ERR_ARCHIVE', `docker-archive:${this.#path} has no manifest.json (archives of docker before 1.10 are not supported)`);
    }
    const bytes = await index.read(member, MAX_MANIFEST_BYTES, what);
    this.#reads.documents++;
    return { index, entries: parseArchiveManifest(bytes, what, this.#limits) };
  }

  async #currentIndex(): Promise<TarIndex> {
    return (this.#index ??= await TarIndex.open(this.#path, `docker-archive:${this.#path}`));
  }

  #member(index: TarIndex, name: string, what: string): TarMember {
    const member = index.member(name);
    if (member === undefined) throw new DuccError('BOT_ERR_ARCHIVE', `${what} is not in the archive`);
    return member;
  }

  #known(index: TarIndex, descriptor: Descriptor, what: string): TarMember {
    const name = this.#members.get(descriptor.digest);
    if (name === undefined) throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${what} is not one of the archive's images' blobs`);
    return this.#member(index, name, what);
  }

  /** gzip or zstd from the first bytes of a compressed member (4 bytes read). */
  async #compressionOf(index: TarIndex, member: TarMember, what: string): Promise<'gzip' | 'zstd'> {
    const head = await index.read({ ...member, size: Math.min(4, member.size) }, 4, what);
    if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (head.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return 'zstd';
    throw new DuccError('BOT_ERR_MEDIA_TYPE', `${what} is neither its diff_id's tar nor gzip or zstd`);
  }
}

function parseArchiveManifest(bytes: Buffer, what: string, limits: ManifestLimits): ArchiveEntry[] {
  let doc: unknown;
  try {
    doc = parseStrictJson(bytes);
  } catch (error) {
    throw new DuccError('BOT_ERR_ARCHIVE', `invalid ${what}: ${errorMessage(error)}`);
  }
  if (!Array.isArray(doc)) throw new DuccError('BOT_ERR_ARCHIVE', `invalid ${what}: not a list`);
  if (doc.length > limits.maxIndexEntries) {
    throw new DuccError(
      'BOT_ERR_LIMIT',
      `${what} lists ${doc.length} images, more than the limit of ${limits.maxIndexEntries} (${REGISTRY_SETTING_VARIABLES.maxIndexEntries})`,
    );
  }
  return doc.map((raw: unknown, i) => {
    const entry = raw as Partial<Record<keyof ArchiveEntry, unknown>> | null;
    const strings = (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === 'string');
    if (
      entry === null ||
      typeof entry !== 'object' ||
      typeof entry.Config !== 'string' ||
      !strings(entry.Layers) ||
      !(entry.RepoTags === null || entry.RepoTags === undefined || strings(entry.RepoTags))
    ) {
      throw new DuccError('BOT_ERR_ARCHIVE', `invalid ${what}: entry ${i} needs Config, Layers and RepoTags`);
    }
    const layers = entry.Layers as string[];
    if (layers.length > limits.maxImageLayers) {
      throw new DuccError(
        'BOT_ERR_LIMIT',
        `${what} entry ${i} lists ${layers.length} layers, more than the limit of ${limits.maxImageLayers} (${REGISTRY_SETTING_VARIABLES.maxImageLayers})`,
      );
    }
    return { Config: entry.Config, Layers: layers, RepoTags: (entry.RepoTags as string[] | null | undefined) ?? [] };
  });
}

/** `name:tag` split at the last `:` after the last `/`. */
function splitRepoTag(repoTag: string): { name: string; tag: string } | undefined {
  const colon = repoTag.lastIndexOf(':');
  if (colon <= repoTag.lastIndexOf('/')) return undefined;
  return { name: repoTag.slice(0, colon), tag: repoTag.slice(colon + 1) };
}

/** A name as docker shows it: `docker.io/library/x` and `index.docker.io/x` are `x`, `docker.io/org/x` is `org/x`. */
export function familiarName(name: string): string {
  return name.replace(/^(?:index\.)?docker\.io\//, '').replace(/^library\/(?=[^/]+$)/, '');
}

function sameRepoTag(repoTag: string, familiar: string, tag: string): boolean {
  const split = splitRepoTag(repoTag);
  return split !== undefined && split.tag === tag && familiarName(split.name) === familiar;
}

function shownTags(entries: ArchiveEntry[]): string {
  const tags = entries.flatMap((entry) => entry.RepoTags);
  if (tags.length === 0) return 'none: the archive was written without a name (skopeo copy ... docker-archive:PATH:NAME:TAG names it)';
  return tags.slice(0, 10).join(', ') + (tags.length > 10 ? `, ... (${tags.length})` : '');
}
