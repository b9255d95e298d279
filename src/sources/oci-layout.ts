/**
 * An OCI image layout (`oci:PATH:TAG`, what `skopeo copy ... oci:PATH:TAG` writes: index.json,
 * blobs/<algorithm>/<hex>) in a directory, or in a tar file (`oci-archive:PATH:TAG`). Documents (manifests,
 * indexes, configs) are kept in the source cache by digest, so an unchanged tag costs the read of
 * index.json alone; layer blobs are streamed and verified.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DuccError, errorMessage } from '../util/errors.ts';
import { assertValidDigest } from '../registry/digest.ts';
import type { ManifestLimits } from '../registry/manifest.ts';
import { MAX_MANIFEST_BYTES } from '../registry/manifest-fetch.ts';
import type { Descriptor, ImageIndex, Platform } from '../registry/types.ts';
import type { SourceCache } from './cache.ts';
import type { ImageSource, SourceManifest, SourceReads } from './image-source.ts';
import { TarIndex } from './tar-index.ts';
import { layoutEntry, layoutTags, parseLayoutIndex, resolveAllEntries, resolveEntry } from './oci-resolve.ts';
import { assertBlobWithin, verifyBlob } from './verify.ts';
import { VerifyingStream } from '../registry/verifying-stream.ts';

/** Default cap of fetchBlob (a config), as the registry client's. */
export const DEFAULT_MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;

/** The files of a layout: in a directory, or members of a tar. Paths are relative to the layout's root. */
export interface LayoutFiles {
  /** index.json, read afresh (an archive's member table is read again with it). */
  readIndex(maxBytes: number, what: string): Promise<Buffer>;
  readFile(relative: string, maxBytes: number, what: string): Promise<Buffer>;
  streamFile(relative: string, what: string): Promise<Readable>;
}

/** A layout in a directory. */
export function directoryFiles(root: string): LayoutFiles {
  return {
    readIndex: (maxBytes, what) => readCapped(join(root, 'index.json'), maxBytes, what),
    readFile: (relative, maxBytes, what) => readCapped(join(root, relative), maxBytes, what),
    streamFile: async (relative, what) => {
      const handle = await open(join(root, relative)).catch((error: unknown) => {
        throw notFound(what, error);
      });
      return createReadStream('', { fd: handle, highWaterMark: 1024 * 1024 });
    },
  };
}

/** A layout in a tar file; its member table is read with each index.json. */
export function archiveFiles(path: string, description: string): LayoutFiles {
  let index: TarIndex | undefined;
  const current = async (): Promise<TarIndex> => (index ??= await TarIndex.open(path, description));
  const member = async (relative: string, what: string) => {
    const found = (await current()).member(relative);
    if (found === undefined) throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${what} is not in the archive`);
    return found;
  };
  return {
    readIndex: async (maxBytes, what) => {
      index = await TarIndex.open(path, description);
      return index.read(await member('index.json', what), maxBytes, what);
    },
    readFile: async (relative, maxBytes, what) => (await current()).read(await member(relative, what), maxBytes, what),
    streamFile: async (relative, what) => (await current()).stream(await member(relative, what)),
  };
}

export class OciLayoutSource implements ImageSource {
  readonly #files: LayoutFiles;
  readonly #limits: ManifestLimits;
  readonly #cache: SourceCache;
  readonly #reads: SourceReads;
  readonly description: string;

  constructor(description: string, files: LayoutFiles, options: { limits: ManifestLimits; cache: SourceCache; reads: SourceReads }) {
    this.#files = files;
    this.#limits = options.limits;
    this.#cache = options.cache;
    this.#reads = options.reads;
    this.description = description;
  }

  async resolveManifest(reference: string, options?: { platform?: Platform }): Promise<SourceManifest> {
    const index = await this.#index();
    return resolveEntry(this.#readDocument, layoutEntry(index, reference, this.description), this.description, this.#limits, options?.platform);
  }

  async resolveAllManifests(reference: string): Promise<SourceManifest[]> {
    const index = await this.#index();
    return resolveAllEntries(this.#readDocument, layoutEntry(index, reference, this.description), this.description, this.#limits);
  }

  fetchBlob(descriptor: Descriptor, maxBytes = DEFAULT_MAX_DOCUMENT_BYTES): Promise<Buffer> {
    return this.#readDocument(descriptor, maxBytes);
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    const what = `blob ${descriptor.digest} of ${this.description}`;
    const file = await this.#files.streamFile(this.#blobPath(descriptor), what);
    this.#reads.layers++;
    const verifier = new VerifyingStream(descriptor, what);
    file.on('error', (error) => verifier.destroy(new DuccError('BOT_ERR_ARCHIVE', `reading ${what}: ${errorMessage(error)}`, { cause: error })));
    verifier.on('close', () => file.destroy());
    return file.pipe(verifier);
  }

  async listTags(): Promise<string[]> {
    return layoutTags(await this.#index());
  }

  async #index(): Promise<ImageIndex> {
    const what = `${this.description}/index.json`;
    const bytes = await this.#files.readIndex(MAX_MANIFEST_BYTES, what);
    this.#reads.documents++;
    return parseLayoutIndex(bytes, what, this.#limits);
  }

  /** A document by descriptor: from the cache, else from blobs/ (then cached); verified either way. */
  readonly #readDocument = async (descriptor: Descriptor, maxBytes: number): Promise<Buffer> => {
    const what = `blob ${descriptor.digest} of ${this.description}`;
    assertBlobWithin(descriptor, maxBytes, what);
    const cached = await this.#cache.getDocument(descriptor.digest);
    if (cached !== undefined && cached.length === descriptor.size) return cached;
    const bytes = await this.#files.readFile(this.#blobPath(descriptor), descriptor.size, what);
    this.#reads.documents++;
    verifyBlob(bytes, descriptor, what);
    await this.#cache.putDocument(descriptor.digest, bytes);
    return bytes;
  };

  #blobPath(descriptor: Descriptor): string {
    assertValidDigest(descriptor.digest, `blob of ${this.description}`, 'BOT_ERR_REFERENCE');
    const [algorithm, hex] = descriptor.digest.split(':') as [string, string];
    return `blobs/${algorithm}/${hex}`;
  }
}

/** A file's bytes, refused (before reading) when longer than `maxBytes`. */
export async function readCapped(path: string, maxBytes: number, what: string): Promise<Buffer> {
  const handle = await open(path).catch((error: unknown) => {
    throw notFound(what, error);
  });
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) throw new DuccError('BOT_ERR_LIMIT', `${what} is ${size} bytes, more than the ${maxBytes} allowed`);
    const buffer = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(buffer, done, size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buffer.subarray(0, done);
  } finally {
    await handle.close();
  }
}

function notFound(what: string, error: unknown): DuccError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${what} does not exist`, { cause: error });
  return new DuccError('BOT_ERR_ARCHIVE', `cannot read ${what}: ${code ?? errorMessage(error)}`, { cause: error });
}
