// Over 500 lines on purpose: one class, one method per tar entry type, sharing the per-layer state of the hot
// path (see the class comment); split up, each entry would pay for the indirection.
import { constants as fsConstants } from 'node:fs';
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { finished as streamFinished, type Readable } from 'node:stream';
import { isMainThread } from 'node:worker_threads';
import { DuccError } from '../util/errors.ts';
import type { LayerUnpackResult } from './tree-types.ts';
import { checkNoWhiteoutDirectory, checkWhiteoutName, entryComponents, plainEntryName, unsafe, WHITEOUT_PREFIX } from './entry-path.ts';
import { FileWriterSession } from './file-writer.ts';
import { unpackSettingsFromEnv, type ExtractLimits, type UnpackSettings } from './settings.ts';
import { TarReader, type TarHeader, type TarVisitor } from './tar-reader.ts';

export interface ExtractOptions {
  /** Names the layer in errors, e.g. `layer sha256:ab12…`. */
  label: string;
  /** Limits and writer threads; default `unpackSettingsFromEnv(process.env)`. */
  settings?: UnpackSettings;
  /** Overrides of the settings' limits. */
  limits?: Partial<ExtractLimits>;
  /** Apply tar uid/gid; defaults to "when running as root", since only root can. */
  preserveOwnership?: boolean;
  /** Hand small files to a writer thread (file-writer.ts) when there is one; default true. */
  writerThread?: boolean;
  /** Regular files written here before the small ones go to the writer thread (default WRITER_THREAD_AFTER_FILES). */
  writerThreadAfterFiles?: number;
}

/**
 * A layer's first regular files are written directly: most layers are small (a config change, an
 * application), and for them a writer thread's start-up (~35 MB, tens of ms) and round trips cost more
 * than they save. Only a layer that goes on past this many files hands its small files over.
 */
export const WRITER_THREAD_AFTER_FILES = 256;

/** In the extractor's map of names: created by the extractor itself (writer tickets start at 1). */
const CREATED_HERE = 0;

interface DirMetadata {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

/** A regular file being written by the extractor itself: its descriptor (closed if the layer fails half-way) and metadata. */
interface DirectFile {
  fd: number;
  needsChown: boolean;
  uid: number;
  gid: number;
  createMode: number;
  mode: number;
  mtime: Date;
}

/** Where the current entry's content goes. */
const Content = { None: 0, Direct: 1, Writer: 2 } as const;
type Content = (typeof Content)[keyof typeof Content];

const IS_ROOT = process.getuid?.() === 0;
/** New files belong to us already: chown only when the entry names someone else. */
const PROCESS_UID = process.getuid?.() ?? -1;
const PROCESS_GID = process.getgid?.() ?? -1;
/** Read once: bits it holds are dropped from modes given to open(2). */
const UMASK = readUmask();

function readUmask(): number {
  // Worker threads (the conversion thread of `ducc serve`) may not set it, only read it.
  if (!isMainThread) return process.umask();
  // process.umask() without an argument is only documentation-deprecated (a race when threads change
  // it); setting and restoring is the race-free alternative and reads the same value.
  const current = process.umask(0o022);
  process.umask(current);
  return current;
}

/**
 * Unpacks an uncompressed layer tar into `target` (an empty directory that we own), the way DUCC's
 * `cvmfs_server ingest` lays out `.layers/<xx>/<d>/layerfs`: whiteouts stay as the `.wh.*` files the tar
 * holds, modes (setuid/setgid/sticky included) and mtimes as in the tar, ownership when running as root.
 *
 * Safety (untrusted input; see docs/security.md): names with `..` are rejected; a path that passes
 * through a symlink created by an earlier entry is resolved as if `target` were `/`; existing paths are
 * replaced, never written through; hard links must point inside the layer and not at a directory (a
 * target that is not in this layer, common for links into lower layers, becomes an empty file and is
 * reported); an entry that would make the root anything but a directory fails the layer; device nodes
 * and FIFOs are never created; no xattrs are applied; no metadata call follows a symlink (files and
 * directories through their own descriptor, symlinks with lchown/lutimes, and a directory's deferred
 * metadata only if the path still reaches that directory without any symlink). Streaming: file content
 * goes to disk chunk by chunk, under limits. Every error is a DuccError naming the layer and, where there
 * is one, the entry.
 */
export async function extractLayer(tar: Readable, targetDir: string, options: ExtractOptions): Promise<LayerUnpackResult> {
  return new LayerExtractor(targetDir, options).extract(tar);
}

/**
 * One layer being unpacked, as umoci's TarExtractor and node-tar's Unpack: the archive is read by
 * TarReader (tar-reader.ts), which hands each entry and its content to this visitor synchronously (an
 * archive can hold hundreds of thousands of entries, and a stream or a promise per entry would cost more
 * than creating the file), and each entry type has a method of its own. Everything is synchronous; a
 * throw fails the reader's write, and with it the layer.
 */
class LayerExtractor implements TarVisitor {
  private readonly label: string;
  /** Normalised, so that `${target}/${name}` of a plain name is the path join() gives (names are keyed by it). */
  private readonly target: string;
  private readonly targetPrefix: string;
  private readonly limits: ExtractLimits;
  private readonly preserveOwnership: boolean;
  private readonly handOverAfter: number;
  private readonly result: LayerUnpackResult = { warnings: [], externalHardlinks: [] };
  /** Directory entries, whose metadata is applied at the end. */
  private readonly directories = new Map<string, DirMetadata>();
  /**
   * Directories known to be real directories (not symlinks) in `target`: relative path -> full path.
   * Saves an lstat per component for every entry. Cleared whenever something is replaced.
   */
  private readonly knownDirs: Map<string, string>;
  /** Directories created only as parents of entries (relative paths). */
  private readonly implicitDirs = new Set<string>();
  /**
   * Small new files go to a writer thread (see file-writer.ts); everything else is done here, in order.
   * `names` holds every path created in this layer, with the writer's ticket for a file handed over
   * (CREATED_HERE otherwise): only a name not in it can go to the writer (the target starts empty, so
   * such a name is free), and a name in it is replaced here, after settling if its ticket is pending.
   */
  private readonly writer: FileWriterSession | undefined;
  private readonly names = new Map<string, number>();
  /**
   * Hard links into lower layers, by the path of their placeholder: an entry that later replaces or
   * removes a placeholder drops it (later entries of a layer win, as with tar -x and umoci).
   */
  private readonly external = new Map<string, { path: string; target: string }>();
  /** Names of this layer's device nodes and FIFOs, which are not created: hard links to them are not either. */
  private readonly notCreated = new Set<string>();
  /**
   * Set once anything was removed to make room for a later entry. Until then no recorded directory can
   * have been replaced by a symlink or a file (a name in a fresh target only ever gets created), so the
   * checks that guard against that are skipped.
   */
  private removedSomething = false;
  private regularFiles = 0;
  private entries = 0;
  private bytes = 0;
  /** The entry being written, or the last one read, for errors. */
  private where: string | undefined;
  /** Where the current entry's content goes, and the file when the extractor writes it itself. */
  private content: Content = Content.None;
  private direct: DirectFile | undefined;

  constructor(targetDir: string, options: ExtractOptions) {
    const settings = options.settings ?? unpackSettingsFromEnv(process.env);
    this.label = options.label;
    this.target = resolve(targetDir);
    this.targetPrefix = this.target.endsWith('/') ? this.target : `${this.target}/`;
    this.limits = withOverrides(settings.limits, options.limits);
    this.preserveOwnership = options.preserveOwnership ?? IS_ROOT;
    this.handOverAfter = options.writerThreadAfterFiles ?? WRITER_THREAD_AFTER_FILES;
    this.knownDirs = new Map([['', this.target]]);
    this.writer = options.writerThread === false ? undefined : FileWriterSession.open(settings);
  }

  async extract(tar: Readable): Promise<LayerUnpackResult> {
    const reader = new TarReader(this);
    const finished = new Promise<void>((resolve, reject) => {
      reader.on('finish', resolve);
      reader.on('error', reject);
      // Also when `tar` failed (or was destroyed) before we were called: finished() reports that at once.
      streamFinished(tar, { writable: false }, (error) => {
        if (error) reader.destroy(tar.errored ?? error);
      });
    });
    // Rejections after we gave up (the streams are destroyed then) must not become unhandled.
    finished.catch(() => undefined);
    tar.pipe(reader);

    try {
      await finished;
      this.where = undefined;
      // Everything handed to the writer is on disk before directory times are set (creating a file
      // changes its directory's mtime).
      this.writer?.settle();
      // Deepest first, so that a read-only parent does not block its children's metadata.
      const realTarget = this.removedSomething ? realpathSync(this.target) : undefined;
      const ordered = [...this.directories.values()].sort((a, b) => b.path.length - a.path.length);
      for (const dir of ordered) this.applyDirectoryMetadata(dir, realTarget);
    } catch (error) {
      reader.destroy();
      tar.destroy();
      if (this.direct !== undefined) closeSync(this.direct.fd);
      // The writer must be done with the target before the caller removes it.
      this.writer?.close();
      throw layerError(error, this.label, this.where, this.entries);
    }
    this.writer?.close();
    this.result.externalHardlinks = [...this.external.values()];
    this.result.implicitDirectories = [...this.implicitDirs].sort();
    return this.result;
  }

  /** One archive entry: checks its name and hands it to the method for its type. */
  entry(header: TarHeader): void {
    const where = `${this.label}, entry '${header.name}'`;
    this.where = where;
    if (++this.entries > this.limits.maxEntries) throw new DuccError('BOT_ERR_LIMIT', `${this.label}: more than ${this.limits.maxEntries} entries`);
    // Refused at its header, before its sparse map (which can be huge) is read: see docs/security.md.
    if (header.sparse) throw unsafe(where, 'a GNU sparse file; sparse files are not supported, so the layer is refused');
    // Most names are plain ('usr/bin/ls', 'etc/') and their directory is already resolved: they are
    // placed without splitting them into components (an array and a string per component).
    let path: string | undefined;
    let components: string[] | undefined;
    const plain = plainEntryName(header.name, this.limits);
    if (plain !== undefined) {
      const slash = plain.lastIndexOf('/');
      if (plain.startsWith(WHITEOUT_PREFIX, slash + 1)) checkWhiteoutName(plain.slice(slash + 1), where);
      if (slash > 0 && plain.lastIndexOf(WHITEOUT_PREFIX, slash) !== -1) checkNoWhiteoutDirectory(plain.slice(0, slash).split('/'), where);
      // A known directory's path is `${target}/${key}` (nothing on the way is a symlink).
      if (this.knownDirs.has(slash < 0 ? '' : plain.slice(0, slash))) path = this.targetPrefix + plain;
      else components = plain.split('/');
    } else {
      components = entryComponents(header.name, this.limits, where);
      const name = components.at(-1);
      if (name !== undefined) checkWhiteoutName(name, where);
      checkNoWhiteoutDirectory(components.slice(0, -1), where);
    }

    // The reader has already folded PAX and GNU long-name records into this header.
    const type = header.type;
    if (components?.length === 0) {
      this.root(header);
      return;
    }
    if (type === 'character-device' || type === 'block-device' || type === 'fifo') {
      this.result.warnings.push(`${where}: ${type} not created (device nodes and FIFOs are never created)`);
      this.notCreated.add(plain ?? components!.join('/'));
      return;
    }
    if (type !== 'file' && type !== 'contiguous-file' && type !== 'directory' && type !== 'symlink' && type !== 'link') {
      this.result.warnings.push(`${where}: unsupported entry type '${type}' skipped`);
      return;
    }

    if (path === undefined) {
      const parent = this.ensureParent(components!.slice(0, -1));
      const name = components!.at(-1)!;
      path = parent.endsWith('/') ? parent + name : `${parent}/${name}`;
    }
    switch (type) {
      case 'directory':
        this.directory(path, plain ?? components!.join('/'), header);
        break;
      case 'symlink':
        this.symlink(path, header);
        break;
      case 'link':
        this.hardLink(path, header);
        break;
      default:
        this.file(path, header);
    }
  }

  /** Content of the current entry: `chunk[start..end)`. */
  data(chunk: Buffer, start: number, end: number): void {
    if (this.content === Content.None) return;
    this.bytes += end - start;
    if (this.bytes > this.limits.maxBytes) throw new DuccError('BOT_ERR_LIMIT', `${this.where}: layer larger than ${this.limits.maxBytes} uncompressed bytes`);
    if (this.content === Content.Writer) this.writer!.write(chunk, start, end);
    else writeAll(this.direct!.fd, chunk, start, end);
  }

  /** The end of the current entry's content. */
  end(): void {
    const content = this.content;
    this.content = Content.None;
    if (content === Content.Writer) this.writer!.end();
    else if (content === Content.Direct) this.finishDirectFile();
  }

  /**
   * The layer root itself (`.`, `./`, `/`): a directory entry's metadata applies to `target`. An entry of
   * any other type would change what the root is (umoci CVE-2021-29136: a symlink named `.` redirected
   * every later layer): the layer is refused, as umoci refuses it.
   */
  private root(header: TarHeader): void {
    if (header.type !== 'directory') throw unsafe(this.where!, `${describeType(header.type)} named like the layer root (only a directory may be the root)`);
    this.directories.set(this.target, { path: this.target, mode: header.mode & 0o7777, uid: header.uid, gid: header.gid, mtime: header.mtime });
  }

  private directory(path: string, key: string, header: TarHeader): void {
    const existing = this.lookup(path);
    if (existing && !existing.isDirectory()) {
      this.writer?.settle();
      rmSync(path, { force: true });
      this.removedSomething = true;
      this.knownDirs.clear();
      this.forgetExternal(path);
    }
    if (!existing || !existing.isDirectory()) {
      mkdirSync(path, { mode: 0o700 });
      this.names.set(path, CREATED_HERE);
    }
    // A real directory now, reached without a symlink (its path is the plain join): entries below it
    // find their parent here instead of resolving it again, with an lstat per component.
    if (path === this.targetPrefix + key) this.knownDirs.set(key, path);
    this.implicitDirs.delete(relative(this.target, path));
    // Permissions last, deepest first: a 0555 directory must still receive its children.
    this.directories.set(path, { path, mode: header.mode & 0o7777, uid: header.uid, gid: header.gid, mtime: header.mtime });
  }

  private symlink(path: string, header: TarHeader): void {
    // Symlink targets are stored verbatim; they are resolved (inside the root) only when used.
    const linkTarget = header.linkname ?? '';
    if (linkTarget.includes('\0')) throw unsafe(this.where!, 'symlink target contains a NUL byte');
    if (Buffer.byteLength(linkTarget) > this.limits.maxPathBytes)
      throw new DuccError('BOT_ERR_LIMIT', `${this.where}: symlink target longer than ${this.limits.maxPathBytes} bytes`);
    this.replacing(path, () => symlinkSync(linkTarget, path));
    if (this.preserveOwnership) lchownSync(path, header.uid, header.gid);
    lutimesSync(path, header.mtime, header.mtime);
  }

  private hardLink(path: string, header: TarHeader): void {
    const where = this.where!;
    const linkComponents = entryComponents(header.linkname ?? '', this.limits, `${where} (hard link target)`);
    if (linkComponents.length === 0) throw unsafe(where, 'hard link to the layer root');
    const source = this.resolveExisting(linkComponents);
    if (source === undefined && this.notCreated.has(linkComponents.join('/'))) {
      this.result.warnings.push(`${where}: hard link to '${header.linkname}', which was not created, not created either`);
      return;
    }
    // A link to a placeholder of this layer links what the placeholder stands for.
    const lower = source === undefined ? linkComponents.join('/') : this.external.get(source)?.target;
    if (lower !== undefined) {
      // Target lives in a lower layer: keep the name as an empty file (as cvmfs_server ingest
      // --tolerate-missing-hardlinks does) and let the flattener link it to the real file.
      this.replacing(path, () => this.writeEmptyFile(path, header));
      this.external.set(path, { path: path.slice(this.targetPrefix.length), target: lower });
      return;
    }
    const stat = lstatSync(source!);
    if (stat.isDirectory()) throw unsafe(where, `hard link to a directory '${header.linkname}'`);
    this.replacing(path, () => linkSync(source!, path));
  }

  /**
   * A regular file: created fresh (O_EXCL, O_NOFOLLOW) so an existing link is never written through.
   * Filesystem calls are synchronous on purpose: one awaited call costs ~50 µs of thread-pool round
   * trip against ~3 µs done directly, and a layer can hold tens of thousands of small files. Each call
   * is short, and the event loop still runs between the chunks of the archive.
   */
  private file(path: string, header: TarHeader): void {
    const { uid, gid, mtime, size } = header;
    const mode = header.mode & 0o7777;
    const needsChown = this.preserveOwnership && (uid !== PROCESS_UID || gid !== PROCESS_GID);
    // Created with its final mode when open(2) can give it exactly (no setuid/setgid/sticky bit, no bit
    // the umask would drop, no chown to clear bits afterwards): saves an fchmod per file. A new file's
    // descriptor is writable whatever its mode, and the staging directory is private meanwhile.
    const createMode = (mode & 0o7000) === 0 && (mode & UMASK) === 0 && !needsChown ? mode : 0o600;
    const writer = this.writer;
    if (writer !== undefined && ++this.regularFiles > this.handOverAfter && writer.accepts(size) && !this.names.has(path)) {
      // A new name in a real directory: the writer thread creates it (O_EXCL|O_NOFOLLOW there too).
      const job = { path, size, createMode, mode, uid: needsChown ? uid : -1, gid: needsChown ? gid : -1, mtime: mtime.getTime() / 1000 };
      this.names.set(path, writer.begin(job, this.where!));
      this.content = Content.Writer;
      return;
    }
    const fd = this.replacing(path, () => openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, createMode));
    this.direct = { fd, needsChown, uid, gid, createMode, mode, mtime };
    this.content = Content.Direct;
  }

  private finishDirectFile(): void {
    const { fd, needsChown, uid, gid, createMode, mode, mtime } = this.direct!;
    this.direct = undefined;
    try {
      if (needsChown) fchownSync(fd, uid, gid);
      // chmod after chown: chown clears setuid/setgid.
      if (createMode !== mode) fchmodSync(fd, mode);
      futimesSync(fd, mtime, mtime);
    } finally {
      closeSync(fd);
    }
  }

  /** An empty placeholder for a hard link to a lower layer, with the entry's metadata. */
  private writeEmptyFile(path: string, header: TarHeader): void {
    const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
    try {
      if (this.preserveOwnership) fchownSync(fd, header.uid, header.gid);
      fchmodSync(fd, header.mode & 0o7777);
      futimesSync(fd, header.mtime, header.mtime);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Mode, owner and times of a directory entry, applied at the end. The path was recorded when the entry
   * was read; a later entry may have replaced it, or one of its parents, with a symlink (containerd
   * CVE-2021-32760: the final chmod followed it out of the root) or a file. So: only if the path still
   * reaches a directory without any symlink (its real path is itself), and through its own descriptor
   * opened with O_NOFOLLOW.
   */
  private applyDirectoryMetadata(dir: DirMetadata, realTarget: string | undefined): void {
    // Without realTarget nothing was removed in this layer: every recorded path is still the directory
    // it was (and resolving ~1,000 paths costs one readlink per component of each).
    if (realTarget !== undefined) {
      const rel = relative(this.target, dir.path);
      const expected = rel === '' ? realTarget : join(realTarget, rel);
      let real: string;
      try {
        real = realpathSync.native(dir.path);
      } catch (error) {
        if (isGone(error)) return;
        throw error;
      }
      if (real !== expected) return;
    }
    let fd: number;
    try {
      fd = openSync(dir.path, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
    } catch (error) {
      if (isGone(error)) return;
      throw error;
    }
    try {
      if (this.preserveOwnership) fchownSync(fd, dir.uid, dir.gid);
      // chmod after chown: chown clears setuid/setgid.
      fchmodSync(fd, dir.mode);
      futimesSync(fd, dir.mtime, dir.mtime);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The real directory for a parent path, following symlinks as if `target` were the root (like
   * securejoin) and creating missing directories (0755) as tar extraction does.
   */
  private ensureParent(parentComponents: string[]): string {
    const key = parentComponents.join('/');
    const known = this.knownDirs.get(key);
    if (known !== undefined) return known;
    const resolved = this.resolveComponents(parentComponents, true);
    if (resolved === undefined) throw unsafe(this.label, `cannot create parent directory '${key}'`);
    const path = join(this.target, ...resolved);
    if (resolved.length === parentComponents.length && resolved.every((c, i) => c === parentComponents[i])) this.knownDirs.set(key, path);
    return path;
  }

  /** Path of an existing entry (final component not followed), or undefined when it does not exist. */
  private resolveExisting(componentsToFind: string[]): string | undefined {
    const parent = this.resolveComponents(componentsToFind.slice(0, -1), false);
    if (parent === undefined) return undefined;
    const path = join(this.target, ...parent, componentsToFind.at(-1)!);
    return this.lookup(path) ? path : undefined;
  }

  /**
   * Resolves directory components inside `target`. Symlinks are followed with `target` as the root
   * (absolute targets are re-rooted, `..` stops at the root), at most `maxSymlinkHops` times. With
   * `create`, missing directories are made; otherwise a missing one yields undefined.
   */
  private resolveComponents(input: string[], create: boolean): string[] | undefined {
    const pending = [...input];
    const resolved: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        resolved.pop();
        continue;
      }
      const path = join(this.target, ...resolved, part);
      const stat = this.lookup(path);
      // Also where a symlink led here (`s -> .wh.etc`, then `s/file`).
      if (stat === undefined || stat.isDirectory()) checkNoWhiteoutDirectory([part], this.where ?? this.label);
      if (stat === undefined) {
        if (!create) return undefined;
        mkdirSync(path, { mode: 0o755 });
        // Ours, not the image's: 0755 whatever the umask.
        if ((UMASK & 0o755) !== 0) chmodSync(path, 0o755);
        this.names.set(path, CREATED_HERE);
        resolved.push(part);
        this.implicitDirs.add(resolved.join('/'));
      } else if (stat.isSymbolicLink()) {
        if (++hops > this.limits.maxSymlinkHops) throw unsafe(this.label, `too many symlinks resolving '${input.join('/')}'`);
        const linkTarget = readlinkSync(path);
        if (linkTarget.startsWith('/')) resolved.length = 0;
        pending.unshift(...linkTarget.split('/'));
      } else if (stat.isDirectory()) {
        resolved.push(part);
      } else {
        if (!create) return undefined;
        throw unsafe(this.label, `'${[...resolved, part].join('/')}' is not a directory but an entry is placed below it`);
      }
    }
    return resolved;
  }

  /**
   * Creates something at `path` with an exclusive call (O_EXCL, symlink, link: they fail with EEXIST and
   * never follow what is there). Only when the name is taken — an entry repeated or replaced later in the
   * archive — is the old entry removed (never written through) and the creation tried again: no lstat
   * for the common case of a new name.
   */
  private replacing<T>(path: string, create: () => T): T {
    this.settleIfPending(this.names.get(path));
    this.names.set(path, CREATED_HERE);
    if (this.external.size > 0) this.external.delete(path);
    try {
      return create();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    this.removeExisting(path);
    return create();
  }

  private removeExisting(path: string): void {
    const existing = lstatOrUndefined(path);
    if (existing === undefined) return;
    // Nothing is removed while the writer may be creating files: below a directory removed and replaced
    // by a symlink, a file in flight would be created through it.
    this.writer?.settle();
    rmSync(path, { recursive: true, force: true });
    this.removedSomething = true;
    this.knownDirs.clear();
    this.forgetExternal(path);
  }

  /** Drops the placeholders at or below a path that was removed. */
  private forgetExternal(path: string): void {
    for (const placeholder of this.external.keys()) {
      if (placeholder === path || placeholder.startsWith(`${path}/`)) this.external.delete(placeholder);
    }
  }

  /**
   * lstat of a path of the target, once any write of that very path handed to the writer is done. A
   * path never created in this layer does not exist (the target starts empty): no lstat, and no thrown
   * ENOENT, which costs more than the call.
   */
  private lookup(path: string): Stats | undefined {
    const ticket = this.names.get(path);
    if (ticket === undefined) return undefined;
    this.settleIfPending(ticket);
    return lstatOrUndefined(path);
  }

  /** Waits for the writer if the name's file was handed over and may not be on disk yet. */
  private settleIfPending(ticket: number | undefined): void {
    if (ticket !== undefined && ticket !== CREATED_HERE && this.writer!.isPending(ticket)) this.writer!.settle();
  }
}

/** An entry type for messages: 'a symlink', 'a hard link', 'an entry of unknown type'. */
function describeType(type: TarHeader['type']): string {
  switch (type) {
    case null:
      return 'an entry of unknown type';
    case 'file':
    case 'contiguous-file':
      return 'a regular file';
    case 'link':
      return 'a hard link';
    default:
      return `a ${type}`;
  }
}

/** The limits with those `overrides` sets. */
function withOverrides(limits: ExtractLimits, overrides: Partial<ExtractLimits> | undefined): ExtractLimits {
  if (overrides === undefined) return limits;
  const merged = { ...limits };
  for (const key of Object.keys(merged) as (keyof ExtractLimits)[]) merged[key] = overrides[key] ?? limits[key];
  return merged;
}

/** ENOENT, ENOTDIR or ELOOP: the path no longer is what was recorded. */
function isGone(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP';
}

/**
 * Any failure as a DuccError naming the layer and the entry: our own errors pass unchanged, filesystem
 * errors (ENOSPC, ENAMETOOLONG, ...) name the entry being written, and the tar parser's and
 * decompressors' errors say the archive is invalid (the reader refuses PAX / GNU long-name records over
 * 4 MiB, which becomes a limit error).
 */
function layerError(error: unknown, label: string, where: string | undefined, entries: number): DuccError {
  if (error instanceof DuccError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof (error as { syscall?: unknown } | null)?.syscall === 'string') {
    return new DuccError('BOT_ERR_PUBLISH', `${where ?? label}: ${message}`, { cause: error });
  }
  const position =
    entries === 0 ? 'before the first entry' : `after ${entries} entries${where === undefined ? '' : ` (last: ${where.slice(label.length + 2)})`}`;
  if (/header exceeds max size/i.test(message)) {
    return new DuccError('BOT_ERR_LIMIT', `${label}: a PAX or GNU long-name header larger than 4 MiB ${position}`, { cause: error });
  }
  const what = typeof code === 'string' && code.startsWith('Z_') ? 'decompression failed' : 'not a valid tar archive';
  return new DuccError('BOT_ERR_ARCHIVE', `${label}: ${what} ${position}: ${message}`, { cause: error });
}

/** Writes `chunk[start..end)` whole (writeSync may write less than asked). */
function writeAll(fd: number, chunk: Buffer, start: number, end: number): void {
  let offset = start;
  while (offset < end) offset += writeSync(fd, chunk, offset, end - offset);
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw error;
  }
}
