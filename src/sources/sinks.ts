/**
 * Writing images (thin images) where a wish list's `output_format` names a registry-less place: an OCI image
 * layout directory (`oci:PATH:TAG`) or a dogestry remote (`dogestry://REMOTE/NAME:TAG`). Archives are not
 * written to: a tar cannot take one more image in place.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { DuccError, errorMessage } from '../util/errors.ts';
import type { ImageReference } from '../wishlist/image-reference.ts';
import { writeDogestryImage } from './dogestry.ts';
import type { DogestryStore } from './dogestry-store.ts';
import { REF_NAME_ANNOTATION } from './oci-resolve.ts';
import { sha256Digest } from './verify.ts';

/** An image as bytes: its manifest and every blob it names. */
export interface ImageToWrite {
  manifest: Buffer;
  manifestMediaType: string;
  blobs: { digest: string; data: Buffer }[];
}

/** Where images can be written besides registries. */
export interface ImageSinks {
  /** Writes `image` as `output` (blobs first, the tag last); returns the manifest digest. */
  writeImage(output: ImageReference, image: ImageToWrite): Promise<string>;
  /** Whether `output`'s tag exists. */
  hasImage(output: ImageReference): Promise<boolean>;
}

/** The part of Sources the sinks need. */
export interface SinkStores {
  dogestryStore(name: string): DogestryStore;
}

export function imageSinks(stores: SinkStores): ImageSinks {
  return {
    writeImage: async (output, image) => {
      const source = output.source;
      const tag = output.tag;
      if (source === undefined || tag === undefined)
        throw new DuccError('BOT_ERR_THIN', `${output.registry}/${output.repository} is not a registry-less output with a tag`);
      if (source.kind === 'oci') return writeOciLayoutImage(source.path, tag, image);
      if (source.kind === 'dogestry') {
        const { config, layer } = configAndLayer(image);
        await writeDogestryImage(stores.dogestryStore(source.remote), source.name, tag, { config, layer: layer.data, layerCompressed: layer.compressed });
        return sha256Digest(image.manifest);
      }
      throw new DuccError('BOT_ERR_THIN', `thin images cannot be written into a ${source.kind} (write them to oci:DIR:TAG or dogestry://REMOTE/NAME:TAG)`);
    },
    hasImage: async (output) => {
      const source = output.source;
      if (source === undefined || output.tag === undefined) return false;
      if (source.kind === 'oci') {
        const index = await readIndex(source.path);
        return index.manifests.some((entry) => entry.annotations?.[REF_NAME_ANNOTATION] === output.tag);
      }
      if (source.kind === 'dogestry') {
        return (await stores.dogestryStore(source.remote).get(`repositories/${source.name}/${output.tag}`, 1024, 'tag file')) !== undefined;
      }
      return false;
    },
  };
}

interface LayoutIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
}

async function readIndex(dir: string): Promise<LayoutIndex> {
  try {
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as LayoutIndex;
    if (!Array.isArray(index.manifests)) throw new Error('no manifests list');
    return index;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
    throw new DuccError('BOT_ERR_THIN', `${join(dir, 'index.json')} is not an OCI index: ${errorMessage(error)}`, { cause: error });
  }
}

/** Docker schema 2 media types and their OCI names (the same blobs). */
const OCI_MEDIA_TYPES: Record<string, string> = {
  'application/vnd.docker.distribution.manifest.v2+json': 'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.container.image.v1+json': 'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar': 'application/vnd.oci.image.layer.v1.tar',
};

/**
 * The image with an OCI manifest: readers of layouts (containers/image, so skopeo and podman) look only at
 * OCI manifests and indexes in index.json. The blobs stay as they are.
 */
function asOci(image: ImageToWrite): ImageToWrite {
  const manifest = JSON.parse(image.manifest.toString('utf8')) as { mediaType?: string; config: { mediaType: string }; layers: { mediaType: string }[] };
  if (manifest.mediaType === undefined || OCI_MEDIA_TYPES[manifest.mediaType] === undefined) return image;
  const oci = {
    ...manifest,
    mediaType: OCI_MEDIA_TYPES[manifest.mediaType],
    config: { ...manifest.config, mediaType: OCI_MEDIA_TYPES[manifest.config.mediaType] ?? manifest.config.mediaType },
    layers: manifest.layers.map((layer) => ({ ...layer, mediaType: OCI_MEDIA_TYPES[layer.mediaType] ?? layer.mediaType })),
  };
  return { ...image, manifest: Buffer.from(JSON.stringify(oci)), manifestMediaType: oci.mediaType! };
}

/**
 * Adds an image to an OCI layout (made if missing), with an OCI manifest: its blobs, then index.json with the
 * entry tagged `tag` replaced, through a temporary file and a rename.
 */
async function writeOciLayoutImage(dir: string, tag: string, docker: ImageToWrite): Promise<string> {
  const image = asOci(docker);
  try {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const manifestDigest = sha256Digest(image.manifest);
    for (const blob of [...image.blobs, { digest: manifestDigest, data: image.manifest }]) {
      const path = join(dir, 'blobs', ...blob.digest.split(':'));
      if (await stat(path).catch(() => undefined)) continue;
      await atomicWrite(path, blob.data);
    }
    const index = await readIndex(dir);
    const kept = index.manifests.filter((entry) => entry.annotations?.[REF_NAME_ANNOTATION] !== tag);
    kept.push({ mediaType: image.manifestMediaType, digest: manifestDigest, size: image.manifest.length, annotations: { [REF_NAME_ANNOTATION]: tag } });
    await atomicWrite(join(dir, 'index.json'), Buffer.from(JSON.stringify({ ...index, manifests: kept })));
    return manifestDigest;
  } catch (error) {
    if (error instanceof DuccError) throw error;
    throw new DuccError('BOT_ERR_THIN', `writing the thin image into oci:${dir}:${tag}: ${errorMessage(error)}`, { cause: error });
  }
}

async function atomicWrite(path: string, data: Buffer): Promise<void> {
  const temporary = `${path}.${randomUUID()}.tmp`;
  try {
    await writeFile(temporary, data);
    await rename(temporary, path);
  } finally {
    await rm(temporary, { force: true });
  }
}

/** The config blob and the single layer of a thin image. */
function configAndLayer(image: ImageToWrite): { config: Buffer; layer: { data: Buffer; compressed: boolean } } {
  const manifest = JSON.parse(image.manifest.toString('utf8')) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
  const blob = (digest: string) => {
    const found = image.blobs.find((candidate) => candidate.digest === digest);
    if (found === undefined) throw new DuccError('BOT_ERR_THIN', `blob ${digest} of the image to write is missing`);
    return found.data;
  };
  if (manifest.layers.length !== 1) throw new DuccError('BOT_ERR_THIN', `a dogestry remote takes images of one layer here, not ${manifest.layers.length}`);
  const layer = manifest.layers[0]!;
  return { config: blob(manifest.config.digest), layer: { data: blob(layer.digest), compressed: layer.mediaType.endsWith('gzip') } };
}
