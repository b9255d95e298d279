import { createReadStream, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import type { Header, Pack } from 'tar-stream';
import { DuccError } from '../../util/errors.ts';
import { stepAside } from '../../util/yield-gate.ts';

/** Metadata of an entry as the tar carries it (`cvmfs_server ingest -k` keeps uid and gid). */
export interface EntryMeta {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

/** Files up to this size are read whole (one synchronous read); larger ones are streamed. */
const READ_WHOLE_MAX_BYTES = 1024 * 1024;
/** The name `cvmfs_server ingest` turns into a nested catalog; it must be a regular file (the ingest aborts otherwise). */
export const CATALOG_MARKER = '.cvmfscatalog';

type Sink = ReturnType<Pack['entry']>;
type TarHeader = Partial<Header> & Pick<Header, 'name'>;

/**
 * A tar stream for `cvmfs_server ingest`, written entry by entry with backpressure: each method resolves
 * once the pack holds the entry (for a streamed body, once it accepted every byte). Names are relative to
 * the ingest's base directory; hard links name their target the same way, and may point at a file that
 * is already published (the ingest clones its catalog entry: no data is read or written again).
 */
export class IngestTar {
  readonly #pack: Pack = tarStream.pack();

  get output(): Readable {
    return this.#pack as unknown as Readable;
  }

  directory(name: string, meta: EntryMeta): Promise<void> {
    return this.#entry({ name: name === '' ? './' : name, type: 'directory', ...header(meta) });
  }

  file(name: string, meta: EntryMeta, content: Buffer): Promise<void> {
    return this.#entry({ name, type: 'file', size: content.length, ...header(meta) }, content);
  }

  /** A regular file whose bytes are read from `source` (a local file of `size` bytes). */
  fileFrom(name: string, meta: EntryMeta, source: string, size: number): Promise<void> {
    if (size <= READ_WHOLE_MAX_BYTES) return this.file(name, meta, readFileSync(source));
    return this.#entry({ name, type: 'file', size, ...header(meta) }, createReadStream(source) as AsyncIterable<Buffer>);
  }

  symlink(name: string, target: string, meta: Omit<EntryMeta, 'mode'>): Promise<void> {
    return this.#entry({ name, type: 'symlink', linkname: target, ...header({ ...meta, mode: 0o777 }) });
  }

  hardlink(name: string, target: string): Promise<void> {
    return this.#entry({ name, type: 'link', linkname: target, mode: 0o644 });
  }

  /**
   * A local directory tree (an unpacked layer in staging) below `prefix`, parents first: directories,
   * regular files, symlinks; files sharing an inode become hard links to the first name. The tree's own
   * metadata becomes `prefix`'s. A `.cvmfscatalog` that is not a regular file would abort the ingest: it
   * is left out, and reported through `skipped`. With `marker`, the root gets an empty catalog marker
   * (replacing the tree's own, if any).
   */
  async localTree(dir: string, prefix: string, options: { marker: boolean; skipped: (path: string) => void }): Promise<void> {
    const firstNameOf = new Map<string, string>();
    const root = lstatSync(dir);
    await this.directory(prefix, metaOf(root));
    if (options.marker) await this.file(`${prefix}/${CATALOG_MARKER}`, { ...metaOf(root), mode: 0o644 }, Buffer.alloc(0));
    const stack: [string, string][] = [[dir, prefix]];
    while (stack.length > 0) {
      const [local, name] = stack.pop()!;
      stepAside(); // in `ducc serve`'s conversion thread, while webhooks are answered (yield-gate.ts)
      const subdirs: [string, string][] = [];
      for (const child of readdirSync(local).sort()) {
        const localPath = `${local}/${child}`;
        const entryName = `${name}/${child}`;
        const stat = lstatSync(localPath);
        if (child === CATALOG_MARKER && (!stat.isFile() || (options.marker && local === dir))) {
          if (!stat.isFile()) options.skipped(entryName);
          continue;
        }
        if (stat.isDirectory()) {
          await this.directory(entryName, metaOf(stat));
          subdirs.push([localPath, entryName]);
        } else if (stat.isSymbolicLink()) {
          await this.symlink(entryName, readlinkSync(localPath), metaOf(stat));
        } else if (stat.isFile()) {
          if (stat.nlink > 1) {
            const identity = `${stat.dev}:${stat.ino}`;
            const first = firstNameOf.get(identity);
            if (first !== undefined) {
              await this.hardlink(entryName, first);
              continue;
            }
            firstNameOf.set(identity, entryName);
          }
          await this.fileFrom(entryName, metaOf(stat), localPath, stat.size);
        } else {
          options.skipped(entryName);
        }
      }
      stack.push(...subdirs.reverse());
    }
  }

  /** Ends the archive (the end-of-archive blocks). */
  finish(): void {
    this.#pack.finalize();
  }

  destroy(error: unknown): void {
    this.#pack.destroy(error instanceof Error ? error : new Error(String(error)));
  }

  /**
   * Writes one entry and resolves once the pack holds it. A streamed body is copied chunk by chunk with
   * backpressure and its length checked here, so that an error of the body or a wrong length is reported
   * as what it is (tar-stream would destroy the whole pack).
   */
  async #entry(head: TarHeader, body?: AsyncIterable<Buffer> | Buffer): Promise<void> {
    // A file entry without a body would wait for one: give empty files an empty buffer.
    if (body === undefined && head.type === 'file') body = Buffer.alloc(0);
    let sink: Sink | undefined;
    const written = new Promise<void>((resolve, reject) => {
      const callback = (error?: Error | null) => (error ? reject(error) : resolve());
      sink = Buffer.isBuffer(body) ? this.#pack.entry(head, body, callback) : this.#pack.entry(head, callback);
    });
    // Errors reach us through the entry callback; an 'error' event without listener would crash the process.
    sink?.on('error', () => {});
    if (sink === undefined || body === undefined || Buffer.isBuffer(body)) {
      await written;
      return;
    }
    written.catch(() => {}); // awaited below; on a body error the pack is torn down by the caller
    const size = head.size ?? 0;
    let copied = 0;
    for await (const chunk of body) {
      copied += chunk.length;
      if (copied > size) throw new DuccError('BOT_ERR_PUBLISH', `${head.name}: more than the announced ${size} bytes`);
      if (!sink.write(chunk)) await drained(sink);
    }
    if (copied !== size) throw new DuccError('BOT_ERR_PUBLISH', `${head.name}: ${copied} bytes instead of the announced ${size}`);
    sink.end(undefined);
    await written;
  }
}

function drained(sink: Sink): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      sink.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      sink.off('drain', onDrain);
      reject(new DuccError('BOT_ERR_CVMFS', 'the tar for cvmfs_server ingest was closed early'));
    };
    sink.once('drain', onDrain);
    sink.once('close', onClose);
  });
}

function header(meta: EntryMeta): Pick<Header, 'mode' | 'uid' | 'gid' | 'mtime'> {
  return { mode: meta.mode & 0o7777, uid: meta.uid, gid: meta.gid, mtime: meta.mtime };
}

function metaOf(stat: { mode: number; uid: number; gid: number; mtime: Date }): EntryMeta {
  return { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtime: stat.mtime };
}
