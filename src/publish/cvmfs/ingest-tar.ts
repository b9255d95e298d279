import { closeSync, createWriteStream, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { DuccError } from '../../util/errors.ts';
import { stepAside } from '../../util/yield-gate.ts';

/** Metadata of an entry as the tar carries it (`cvmfs_server ingest -k` keeps uid and gid). */
export interface EntryMeta {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

/** The name `cvmfs_server ingest` turns into a nested catalog; it must be a regular file (the ingest aborts otherwise). */
export const CATALOG_MARKER = '.cvmfscatalog';
/** The archive is written in chunks of this size. */
const CHUNK_BYTES = 1024 * 1024;
/** Chunks written to the sink and not yet taken by it, at most: the writer waits beyond this. */
const CHUNKS_IN_FLIGHT = 4;
const BLOCK = 512;
const ZEROS = Buffer.alloc(2 * BLOCK);
/** What an entry method returns when it did not have to wait. */
const READY = Promise.resolve();

type EntryType = 'file' | 'link' | 'symlink' | 'directory';
const TYPEFLAG: Record<EntryType | 'pax', number> = { file: 0x30, link: 0x31, symlink: 0x32, directory: 0x35, pax: 0x78 };

interface TarHeader {
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  size: number;
  linkname?: string;
}

/**
 * A tar stream for `cvmfs_server ingest`, written entry by entry into `sink` with backpressure: each
 * method resolves once the entry is in the archive and at most CHUNKS_IN_FLIGHT chunks wait in the sink.
 * Names are relative to the ingest's base directory; hard links name their target the same way, and may
 * point at a file that is already published (the ingest clones its catalog entry: no data is read or
 * written again).
 *
 * The archive is POSIX ustar, with a PAX extended header where a name, link target, owner, size or mtime
 * does not fit. Headers and file contents are written into a few 1 MiB chunks that are used again once
 * the sink has taken them (its write callback): memory stays at a few MiB, and nothing is left for the
 * garbage collector. (With tar-stream, a 512-byte buffer per header and one per file read, freed only by
 * a collection that V8 starts late for memory outside its heap, added ~100 MB to the peak RSS of a
 * conversion of the 50,000-small-files bench image with the cvmfs publisher.)
 *
 * The sink must be done with a chunk's bytes when it calls a write back, as a socket or a pipe is (the
 * bytes are in the kernel); a stream that keeps the buffer itself, like a PassThrough, must copy it.
 */
export class IngestTar {
  readonly #sink: Writable;
  readonly #spare: Buffer[] = [];
  #chunk: Buffer;
  #used = 0;
  #inFlight = 0;
  #released: (() => void) | undefined;
  #failed: Error | undefined;

  constructor(sink: Writable) {
    this.#sink = sink;
    this.#chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
    sink.on('error', (error) => this.#fail(error));
    sink.on('close', () => this.#fail(new DuccError('BOT_ERR_CVMFS', 'the tar for cvmfs_server ingest was closed early')));
  }

  directory(name: string, meta: EntryMeta): Promise<void> {
    return this.#entry({ name: name === '' ? './' : name, type: 'directory', size: 0, ...header(meta) });
  }

  file(name: string, meta: EntryMeta, content: Buffer): Promise<void> {
    return this.#entry({ name, type: 'file', size: content.length, ...header(meta) }, content);
  }

  /** A regular file whose bytes are read from `source` (a local file of `size` bytes). */
  fileFrom(name: string, meta: EntryMeta, source: string, size: number): Promise<void> {
    const fd = openSync(source, 'r');
    const done = this.#entry({ name, type: 'file', size, ...header(meta) }, fd);
    if (done === READY) {
      closeSync(fd);
      return READY;
    }
    return done.finally(() => closeSync(fd));
  }

  symlink(name: string, target: string, meta: Omit<EntryMeta, 'mode'>): Promise<void> {
    return this.#entry({ name, type: 'symlink', size: 0, linkname: target, ...header({ ...meta, mode: 0o777 }) });
  }

  /**
   * Whether a promise one of the entry methods returned stands for a wait (or a failure): if not, the
   * entry is in the archive already, and a caller writing many entries need not await it.
   */
  waited(result: Promise<void>): boolean {
    return result !== READY;
  }

  hardlink(name: string, target: string): Promise<void> {
    return this.#entry({ name, type: 'link', size: 0, linkname: target, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0) });
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

  /** Writes the archive that `write` makes into a local file, whole (the file is removed if `write` fails). */
  static async toFile(file: string, write: (tar: IngestTar) => Promise<void>): Promise<void> {
    // A file stream calls a write back once its bytes are written, as IngestTar needs.
    const tar = new IngestTar(createWriteStream(file, { flags: 'wx', mode: 0o600 }));
    try {
      await write(tar);
      await tar.finish();
    } catch (error) {
      tar.destroy(error);
      await rm(file, { force: true });
      throw error;
    }
  }

  /** Ends the archive (the end-of-archive blocks) and the sink, once the sink has taken every byte. */
  async finish(): Promise<void> {
    this.#check();
    this.#append(ZEROS);
    await this.#handOn();
    while (this.#inFlight > 0) await this.#waitForRelease();
    this.#check();
    await new Promise<void>((resolve, reject) => {
      this.#sink.end(() => (this.#failed === undefined ? resolve() : reject(this.#failed)));
    });
  }

  /** Gives up: the sink is destroyed (the ingest guard then kills the ingest before it sees an end of input). */
  destroy(error: unknown): void {
    this.#fail(error instanceof Error ? error : new Error(String(error)));
    this.#sink.destroy();
  }

  /**
   * Writes one entry's header and body: a buffer, or `size` bytes read from a file descriptor (checked:
   * a file that changed size is an error, reported as what it is). Synchronous as long as the entry fits
   * in the current chunk and the sink keeps up, which is nearly always: then it returns READY, and a
   * layer of 50,000 files costs no promise, closure or async frame per entry.
   */
  #entry(head: TarHeader, body?: Buffer | number): Promise<void> {
    try {
      this.#check();
      this.#header(head);
      const state = { done: 0 };
      if (body !== undefined && !this.#body(head, body, state)) return this.#entrySlowly(head, body, state);
      this.#pad(head.size);
      return this.#inFlight >= CHUNKS_IN_FLIGHT ? this.#drain() : READY;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The rest of a body that did not fit in one chunk: handed on chunk by chunk, waiting for the sink. */
  async #entrySlowly(head: TarHeader, body: Buffer | number, state: { done: number }): Promise<void> {
    do await this.#handOn();
    while (!this.#body(head, body, state));
    this.#pad(head.size);
    await this.#drain();
  }

  /** Copies what fits of the body into the current chunk; true once it is all in. */
  #body(head: TarHeader, body: Buffer | number, state: { done: number }): boolean {
    if (Buffer.isBuffer(body)) {
      const copied = body.copy(this.#chunk, this.#used, state.done);
      state.done += copied;
      this.#used += copied;
      return state.done === body.length;
    }
    for (;;) {
      if (this.#used === CHUNK_BYTES) return false;
      // One byte more than announced is asked for, to notice a file that grew.
      const read = readSync(body, this.#chunk, this.#used, Math.min(CHUNK_BYTES - this.#used, head.size - state.done + 1), null);
      if (read === 0) break;
      state.done += read;
      if (state.done > head.size) throw new DuccError('BOT_ERR_PUBLISH', `${head.name}: more than the announced ${head.size} bytes`);
      this.#used += read;
    }
    if (state.done !== head.size) throw new DuccError('BOT_ERR_PUBLISH', `${head.name}: ${state.done} bytes instead of the announced ${head.size}`);
    return true;
  }

  /** Waits while too many chunks are in the sink. */
  async #drain(): Promise<void> {
    while (this.#inFlight >= CHUNKS_IN_FLIGHT && this.#failed === undefined) await this.#waitForRelease();
    this.#check();
  }

  #check(): void {
    if (this.#failed !== undefined) throw this.#failed;
  }

  #fail(error: Error): void {
    this.#failed ??= error;
    const released = this.#released;
    this.#released = undefined;
    released?.();
  }

  /** The ustar header of `head`, after a PAX extended header if something does not fit in it. */
  #header(head: TarHeader): void {
    // Directories without a trailing slash (but the root, './'), as tar-stream wrote them: what the stratum-0 tests checked.
    const name = head.name;
    const prefixAt = splitAt(name);
    const seconds = Math.floor(head.mtime.getTime() / 1000);
    const fits =
      prefixAt !== undefined &&
      (head.linkname === undefined || (head.linkname.length <= 100 && isAscii(head.linkname))) &&
      head.uid <= MAX_ID &&
      head.gid <= MAX_ID &&
      seconds >= 0 &&
      seconds <= MAX_OCTAL_11 &&
      head.size <= MAX_OCTAL_11;
    if (!fits) {
      let records = '';
      if (prefixAt === undefined) records += paxRecord('path', name);
      if (head.linkname !== undefined && (Buffer.byteLength(head.linkname) > 100 || !isAscii(head.linkname))) records += paxRecord('linkpath', head.linkname);
      if (head.uid > MAX_ID) records += paxRecord('uid', String(head.uid));
      if (head.gid > MAX_ID) records += paxRecord('gid', String(head.gid));
      if (!(seconds >= 0 && seconds <= MAX_OCTAL_11)) records += paxRecord('mtime', String(seconds));
      if (head.size > MAX_OCTAL_11) records += paxRecord('size', String(head.size));
      const length = Buffer.byteLength(records);
      this.#block('PaxHeader', -1, 'pax', head.mode, head.uid, head.gid, length, seconds, undefined);
      this.#room(length);
      this.#used += this.#chunk.write(records, this.#used, 'utf8');
      this.#pad(length);
    }
    this.#block(name, prefixAt ?? -1, head.type, head.mode, head.uid, head.gid, head.size, seconds, head.linkname);
  }

  /**
   * One 512-byte header block, written into the current chunk. `prefixAt`: where the name is split into
   * ustar's prefix and name (the slash's index), -1 when it is not (a name too long is cut: a PAX record
   * holds it).
   */
  #block(
    name: string,
    prefixAt: number,
    type: EntryType | 'pax',
    mode: number,
    uid: number,
    gid: number,
    size: number,
    seconds: number,
    linkname: string | undefined,
  ): void {
    this.#room(BLOCK);
    const chunk = this.#chunk;
    const at = this.#used;
    chunk.fill(0, at, at + BLOCK);
    if (prefixAt < 0) chunk.write(name, at, 100, 'utf8');
    else {
      chunk.write(name.slice(prefixAt + 1), at, 100, 'utf8');
      chunk.write(name.slice(0, prefixAt), at + 345, 155, 'utf8');
    }
    writeOctal(chunk, at + 100, 8, mode & 0o7777);
    writeOctal(chunk, at + 108, 8, Math.min(uid, MAX_ID));
    writeOctal(chunk, at + 116, 8, Math.min(gid, MAX_ID));
    writeOctal(chunk, at + 124, 12, size > MAX_OCTAL_11 ? 0 : size);
    writeOctal(chunk, at + 136, 12, seconds >= 0 && seconds <= MAX_OCTAL_11 ? seconds : 0);
    chunk[at + 156] = TYPEFLAG[type];
    if (linkname !== undefined) chunk.write(linkname, at + 157, 100, 'utf8');
    USTAR.copy(chunk, at + 257);
    writeOctal(chunk, at + 329, 8, 0);
    writeOctal(chunk, at + 337, 8, 0);
    let sum = 8 * 32;
    for (let i = at; i < at + 148; i++) sum += chunk[i]!;
    for (let i = at + 156; i < at + BLOCK; i++) sum += chunk[i]!;
    writeOctal(chunk, at + 148, 8, sum);
    this.#used += BLOCK;
  }

  /** Zeros up to the next block boundary after a body of `length` bytes. */
  #pad(length: number): void {
    const rest = length % BLOCK;
    if (rest !== 0) this.#appendSmall(ZEROS.subarray(0, BLOCK - rest));
  }

  /** Bytes that fit in a chunk after at most one hand-on (which then happens synchronously: a spare chunk is taken, or one allocated). */
  #appendSmall(bytes: Buffer): void {
    this.#room(bytes.length);
    bytes.copy(this.#chunk, this.#used);
    this.#used += bytes.length;
  }

  /** Any number of bytes, handed on chunk by chunk (without waiting: for the end of the archive). */
  #append(bytes: Buffer): void {
    for (let offset = 0; offset < bytes.length;) {
      this.#room(1);
      const n = bytes.copy(this.#chunk, this.#used, offset);
      this.#used += n;
      offset += n;
    }
  }

  /** Makes room for `bytes` in the current chunk, handing it on (without waiting) if needed. */
  #room(bytes: number): void {
    if (this.#used + bytes > CHUNK_BYTES) this.#write();
  }

  /** Hands the current chunk on, and waits while too many are in the sink. */
  async #handOn(): Promise<void> {
    this.#write();
    while (this.#inFlight >= CHUNKS_IN_FLIGHT && this.#failed === undefined) await this.#waitForRelease();
    this.#check();
  }

  /** Writes the current chunk to the sink; the next bytes go into a spare chunk (or a new one). */
  #write(): void {
    if (this.#used === 0) return;
    const chunk = this.#chunk;
    this.#inFlight++;
    this.#sink.write(chunk.subarray(0, this.#used), (error) => {
      this.#inFlight--;
      if (error) this.#fail(error);
      else this.#spare.push(chunk);
      const released = this.#released;
      this.#released = undefined;
      released?.();
    });
    this.#chunk = this.#spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
    this.#used = 0;
  }

  #waitForRelease(): Promise<void> {
    if (this.#failed !== undefined) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#released = resolve));
  }
}

/** Largest uid/gid of a ustar header (7 octal digits), and largest size or mtime (11). */
const MAX_ID = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

function writeOctal(chunk: Buffer, offset: number, length: number, value: number): void {
  chunk.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

function isAscii(text: string): boolean {
  return /^[\x01-\x7f]*$/.test(text);
}

/** ustar's magic and version. */
const USTAR = Buffer.from('ustar\u000000', 'latin1');

/**
 * Where a name goes into a ustar header: -1 for whole (at most 100 bytes), the index of the slash that
 * splits it into prefix (at most 155 bytes) and name (at most 100), or undefined when it needs a PAX
 * `path` record (too long, or not ASCII).
 */
function splitAt(name: string): number | undefined {
  if (name.length <= 100) return isAscii(name) ? -1 : undefined;
  if (!isAscii(name)) return undefined;
  // The longest prefix that leaves at most 100 bytes of name.
  for (let slash = name.lastIndexOf('/', name.length - 2); slash > 0; slash = name.lastIndexOf('/', slash - 1)) {
    if (name.length - slash - 1 > 100) break;
    if (slash <= 155) return slash;
  }
  return undefined;
}

/** One PAX record: `<length> <key>=<value>\n`, the length counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bytes = Buffer.byteLength(body);
  let length = bytes + String(bytes).length;
  if (String(length).length !== String(bytes).length) length = bytes + String(length).length;
  return `${length}${body}`;
}

function header(meta: EntryMeta): Pick<TarHeader, 'mode' | 'uid' | 'gid' | 'mtime'> {
  return { mode: meta.mode & 0o7777, uid: meta.uid, gid: meta.gid, mtime: meta.mtime };
}

function metaOf(stat: { mode: number; uid: number; gid: number; mtime: Date }): EntryMeta {
  return { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtime: stat.mtime };
}
