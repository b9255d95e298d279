import { constants as fsConstants } from 'node:fs';
import {
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
import { DuccError } from '../util/errors.ts';
import type { LayerUnpackResult } from '../publish/publisher.ts';
import { checkWhiteoutName, entryComponents, plainEntryName, unsafe, WHITEOUT_PREFIX } from './entry-path.ts';
import { FileWriterSession } from './file-writer.ts';
import { unpackSettingsFromEnv, type ExtractLimits, type UnpackSettings } from './settings.ts';
import { TarReader, type TarHeader } from './tar-reader.ts';

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

const IS_ROOT = process.getuid?.() === 0;
/** New files belong to us already: chown only when the entry names someone else. */
const PROCESS_UID = process.getuid?.() ?? -1;
const PROCESS_GID = process.getgid?.() ?? -1;
/** Read once: bits it holds are dropped from modes given to open(2). */
const UMASK = readUmask();

function readUmask(): number {
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
 * reported); the root stays a directory; device nodes and FIFOs are never created; no xattrs are
 * applied; no metadata call follows a symlink (files and directories through their own descriptor,
 * symlinks with lchown/lutimes, and a directory's deferred metadata only if the path still reaches that
 * directory without any symlink). Streaming: file content goes to disk chunk by chunk, under limits.
 * Every error is a DuccError naming the layer and, where there is one, the entry.
 */
export async function extractLayer(tar: Readable, targetDir: string, options: ExtractOptions): Promise<LayerUnpackResult> {
  // Normalised, so that `${target}/${name}` of a plain name is the path join() gives (names are keyed by it).
  const target = resolve(targetDir);
  const targetPrefix = target.endsWith('/') ? target : `${target}/`;
  const settings = options.settings ?? unpackSettingsFromEnv(process.env);
  const limits = withOverrides(settings.limits, options.limits);
  const preserveOwnership = options.preserveOwnership ?? IS_ROOT;
  const result: LayerUnpackResult = { warnings: [], externalHardlinks: [] };
  const directories = new Map<string, DirMetadata>();
  // Directories known to be real directories (not symlinks) in `target`: relative path -> full path.
  // Saves an lstat per component for every entry. Cleared whenever something is replaced.
  const knownDirs = new Map<string, string>([['', target]]);
  const implicitDirs = new Set<string>();
  // Small new files go to a writer thread (see file-writer.ts); everything else is done here, in order.
  // `names` holds every path created in this layer, with the writer's ticket for a file handed over
  // (CREATED_HERE otherwise): only a name not in it can go to the writer (the target starts empty, so
  // such a name is free), and a name in it is replaced here, after settling if its ticket is pending.
  const writer = options.writerThread === false ? undefined : FileWriterSession.open(settings);
  const names = new Map<string, number>();
  // Set once anything was removed to make room for a later entry. Until then no recorded directory can
  // have been replaced by a symlink or a file (a name in a fresh target only ever gets created), so the
  // checks that guard against that are skipped.
  let removedSomething = false;
  const handOverAfter = options.writerThreadAfterFiles ?? WRITER_THREAD_AFTER_FILES;
  let regularFiles = 0;
  let entries = 0;
  let bytes = 0;
  /** The entry being written, or the last one read, for errors. */
  let where: string | undefined;

  // The archive is read by TarReader (tar-reader.ts), which hands each entry and its content to these
  // callbacks synchronously: an archive can hold hundreds of thousands of entries, and a stream or a
  // promise per entry would cost more than creating the file. Everything below is synchronous; a throw
  // fails the reader's write, and with it the layer.
  /** Where the current entry's content goes (`chunk[start..end)`), if anywhere. */
  let sink: ((chunk: Buffer, start: number, end: number) => void) | undefined;
  /** Called at the end of the current entry's content. */
  let finish: (() => void) | undefined;
  const extract = new TarReader({
    entry(header) {
      handleEntry(header);
    },
    data(chunk, start, end) {
      if (sink === undefined) return;
      bytes += end - start;
      if (bytes > limits.maxBytes) throw new DuccError('BOT_ERR_LIMIT', `${where}: layer larger than ${limits.maxBytes} uncompressed bytes`);
      sink(chunk, start, end);
    },
    end() {
      const done = finish;
      sink = undefined;
      finish = undefined;
      done?.();
    },
  });
  /** The file being written here: its descriptor (closed if the layer fails half-way) and metadata. */
  let direct: { fd: number; needsChown: boolean; uid: number; gid: number; createMode: number; mode: number; mtime: Date } | undefined;
  /** Set by the first failure. */
  let failed = false;
  let rejectFinished!: (error: unknown) => void;
  const fail = (error: unknown): void => {
    if (failed) return;
    failed = true;
    rejectFinished(error);
  };
  const finished = new Promise<void>((resolve, reject) => {
    rejectFinished = reject;
    extract.on('finish', resolve);
    extract.on('error', fail);
    // Also when `tar` failed (or was destroyed) before we were called: finished() reports that at once.
    streamFinished(tar, { writable: false }, (error) => {
      if (error) extract.destroy(tar.errored ?? error);
    });
  });
  // Rejections after we gave up (the streams are destroyed then) must not become unhandled.
  finished.catch(() => undefined);
  tar.pipe(extract);

  try {
    await finished;
    where = undefined;
    // Everything handed to the writer is on disk before directory times are set (creating a file
    // changes its directory's mtime).
    writer?.settle();

    // Deepest first, so that a read-only parent does not block its children's metadata.
    const realTarget = removedSomething ? realpathSync(target) : undefined;
    const ordered = [...directories.values()].sort((a, b) => b.path.length - a.path.length);
    for (const dir of ordered) applyDirectoryMetadata(dir, realTarget);
  } catch (error) {
    failed = true;
    extract.destroy();
    tar.destroy();
    if (direct !== undefined) closeSync(direct.fd);
    // The writer must be done with the target before the caller removes it.
    writer?.close();
    throw layerError(error, options.label, where, entries);
  }
  writer?.close();
  result.implicitDirectories = [...implicitDirs].sort();
  return result;

  /** One archive entry; sets `sink` and `finish` when its content is to be written. */
  function handleEntry(header: TarHeader): void {
    where = `${options.label}, entry '${header.name}'`;
    if (++entries > limits.maxEntries) throw new DuccError('BOT_ERR_LIMIT', `${options.label}: more than ${limits.maxEntries} entries`);
    // Most names are plain ('usr/bin/ls', 'etc/') and their directory is already resolved: they are
    // placed without splitting them into components (an array and a string per component).
    let path: string | undefined;
    let components: string[] | undefined;
    const plain = plainEntryName(header.name, limits);
    if (plain !== undefined) {
      const slash = plain.lastIndexOf('/');
      if (plain.startsWith(WHITEOUT_PREFIX, slash + 1)) checkWhiteoutName(plain.slice(slash + 1), where);
      // A known directory's path is `${target}/${key}` (nothing on the way is a symlink).
      if (knownDirs.has(slash < 0 ? '' : plain.slice(0, slash))) path = targetPrefix + plain;
      else components = plain.split('/');
    } else {
      components = entryComponents(header.name, limits, where);
      const name = components.at(-1);
      if (name !== undefined) checkWhiteoutName(name, where);
    }

    // The reader has already folded PAX and GNU long-name records into this header.
    const type = header.type;
    const mode = header.mode & 0o7777;
    const uid = header.uid;
    const gid = header.gid;
    const mtime = header.mtime;

    if (components?.length === 0) {
      // The layer root itself (`./`): its metadata applies to `target`. Nothing else may replace the
      // root (umoci CVE-2021-29136: a symlink named `.` redirected every later layer).
      if (type === 'directory') directories.set(target, { path: target, mode, uid, gid, mtime });
      else result.warnings.push(`${where}: ${type ?? 'unknown entry'} named like the layer root ignored (the root stays a directory)`);
      return;
    }

    if (type === 'character-device' || type === 'block-device' || type === 'fifo') {
      result.warnings.push(`${where}: ${type} not created (device nodes and FIFOs are never created)`);
      return;
    }
    if (type !== 'file' && type !== 'contiguous-file' && type !== 'directory' && type !== 'symlink' && type !== 'link') {
      result.warnings.push(`${where}: unsupported entry type '${type}' skipped`);
      return;
    }

    if (path === undefined) {
      const parent = ensureParent(components!.slice(0, -1));
      const name = components!.at(-1)!;
      path = parent.endsWith('/') ? parent + name : `${parent}/${name}`;
    }

    if (type === 'directory') {
      const existing = lookup(path);
      if (existing && !existing.isDirectory()) {
        writer?.settle();
        rmSync(path, { force: true });
        removedSomething = true;
        knownDirs.clear();
      }
      if (!existing || !existing.isDirectory()) {
        mkdirSync(path, { mode: 0o700 });
        names.set(path, CREATED_HERE);
      }
      // A real directory now, reached without a symlink (its path is the plain join): entries below it
      // find their parent here instead of resolving it again, with an lstat per component.
      const key = plain ?? components!.join('/');
      if (path === targetPrefix + key) knownDirs.set(key, path);
      implicitDirs.delete(relative(target, path));
      // Permissions last, deepest first: a 0555 directory must still receive its children.
      directories.set(path, { path, mode, uid, gid, mtime });
      return;
    }

    if (type === 'symlink') {
      // Symlink targets are stored verbatim; they are resolved (inside the root) only when used.
      const linkTarget = header.linkname ?? '';
      if (linkTarget.includes('\0')) throw unsafe(where, 'symlink target contains a NUL byte');
      if (Buffer.byteLength(linkTarget) > limits.maxPathBytes)
        throw new DuccError('BOT_ERR_LIMIT', `${where}: symlink target longer than ${limits.maxPathBytes} bytes`);
      replacing(path, () => symlinkSync(linkTarget, path));
      if (preserveOwnership) lchownSync(path, uid, gid);
      lutimesSync(path, mtime, mtime);
      return;
    }
    if (type === 'link') {
      const linkComponents = entryComponents(header.linkname ?? '', limits, `${where} (hard link target)`);
      if (linkComponents.length === 0) throw unsafe(where, 'hard link to the layer root');
      const source = resolveExisting(linkComponents);
      if (source === undefined) {
        // Target lives in a lower layer: keep the name as an empty file (as cvmfs_server ingest
        // --tolerate-missing-hardlinks does) and let the flattener link it to the real file.
        result.externalHardlinks.push({ path: plain ?? components!.join('/'), target: linkComponents.join('/') });
        replacing(path, () => writeEmptyFile(path, mode, uid, gid, mtime));
      } else {
        const stat = lstatSync(source);
        if (stat.isDirectory()) throw unsafe(where, `hard link to a directory '${header.linkname}'`);
        replacing(path, () => linkSync(source, path));
      }
      return;
    }

    // Regular file: created fresh (O_EXCL, O_NOFOLLOW) so an existing link is never written through.
    // Filesystem calls are synchronous on purpose: one awaited call costs ~50 µs of thread-pool
    // round trip against ~3 µs done directly, and a layer can hold tens of thousands of small files.
    // Each call is short, and the event loop still runs between the chunks of the archive.
    const needsChown = preserveOwnership && (uid !== PROCESS_UID || gid !== PROCESS_GID);
    // Created with its final mode when open(2) can give it exactly (no setuid/setgid/sticky bit, no bit
    // the umask would drop, no chown to clear bits afterwards): saves an fchmod per file. A new file's
    // descriptor is writable whatever its mode, and the staging directory is private meanwhile.
    const createMode = (mode & 0o7000) === 0 && (mode & UMASK) === 0 && !needsChown ? mode : 0o600;
    const size = header.size;
    if (writer !== undefined && ++regularFiles > handOverAfter && writer.accepts(size) && !names.has(path)) {
      // A new name in a real directory: the writer thread creates it (O_EXCL|O_NOFOLLOW there too).
      names.set(
        path,
        writer.begin({ path, size, createMode, mode, uid: needsChown ? uid : -1, gid: needsChown ? gid : -1, mtime: mtime.getTime() / 1000 }, where),
      );
      sink = writeToWriter;
      finish = endWriterFile;
      return;
    }
    const fd = replacing(path, () => openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, createMode));
    direct = { fd, needsChown, uid, gid, createMode, mode, mtime };
    sink = writeDirect;
    finish = endDirectFile;
  }

  function writeToWriter(chunk: Buffer, start: number, end: number): void {
    writer!.write(chunk, start, end);
  }

  function endWriterFile(): void {
    writer!.end();
  }

  function writeDirect(chunk: Buffer, start: number, end: number): void {
    writeAll(direct!.fd, chunk, start, end);
  }

  function endDirectFile(): void {
    const { fd, needsChown, uid, gid, createMode, mode, mtime } = direct!;
    direct = undefined;
    try {
      if (needsChown) fchownSync(fd, uid, gid);
      // chmod after chown: chown clears setuid/setgid.
      if (createMode !== mode) fchmodSync(fd, mode);
      futimesSync(fd, mtime, mtime);
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
  function applyDirectoryMetadata(dir: DirMetadata, realTarget: string | undefined): void {
    // Without realTarget nothing was removed in this layer: every recorded path is still the directory
    // it was (and resolving ~1,000 paths costs one readlink per component of each).
    if (realTarget !== undefined) {
      const rel = relative(target, dir.path);
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
      if (preserveOwnership) fchownSync(fd, dir.uid, dir.gid);
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
  function ensureParent(parentComponents: string[]): string {
    const key = parentComponents.join('/');
    const known = knownDirs.get(key);
    if (known !== undefined) return known;
    const resolved = resolveComponents(parentComponents, true);
    if (resolved === undefined) throw unsafe(`${options.label}`, `cannot create parent directory '${key}'`);
    const path = join(target, ...resolved);
    if (resolved.length === parentComponents.length && resolved.every((c, i) => c === parentComponents[i])) knownDirs.set(key, path);
    return path;
  }

  /** Path of an existing entry (final component not followed), or undefined when it does not exist. */
  function resolveExisting(componentsToFind: string[]): string | undefined {
    const parent = resolveComponents(componentsToFind.slice(0, -1), false);
    if (parent === undefined) return undefined;
    const path = join(target, ...parent, componentsToFind.at(-1)!);
    return lookup(path) ? path : undefined;
  }

  /**
   * Resolves directory components inside `target`. Symlinks are followed with `target` as the root
   * (absolute targets are re-rooted, `..` stops at the root), at most `maxSymlinkHops` times. With
   * `create`, missing directories are made; otherwise a missing one yields undefined.
   */
  function resolveComponents(input: string[], create: boolean): string[] | undefined {
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
      const path = join(target, ...resolved, part);
      const stat = lookup(path);
      if (stat === undefined) {
        if (!create) return undefined;
        mkdirSync(path, { mode: 0o755 });
        names.set(path, CREATED_HERE);
        resolved.push(part);
        implicitDirs.add(resolved.join('/'));
      } else if (stat.isSymbolicLink()) {
        if (++hops > limits.maxSymlinkHops) throw unsafe(options.label, `too many symlinks resolving '${input.join('/')}'`);
        const linkTarget = readlinkSync(path);
        if (linkTarget.startsWith('/')) resolved.length = 0;
        pending.unshift(...linkTarget.split('/'));
      } else if (stat.isDirectory()) {
        resolved.push(part);
      } else {
        if (!create) return undefined;
        throw unsafe(options.label, `'${[...resolved, part].join('/')}' is not a directory but an entry is placed below it`);
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
  function replacing<T>(path: string, create: () => T): T {
    settleIfPending(names.get(path));
    names.set(path, CREATED_HERE);
    try {
      return create();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    removeExisting(path);
    return create();
  }

  function removeExisting(path: string): void {
    const existing = lstatOrUndefined(path);
    if (existing === undefined) return;
    // Nothing is removed while the writer may be creating files: below a directory removed and replaced
    // by a symlink, a file in flight would be created through it.
    writer?.settle();
    rmSync(path, { recursive: true, force: true });
    removedSomething = true;
    knownDirs.clear();
  }

  /**
   * lstat of a path of the target, once any write of that very path handed to the writer is done. A
   * path never created in this layer does not exist (the target starts empty): no lstat, and no thrown
   * ENOENT, which costs more than the call.
   */
  function lookup(path: string): Stats | undefined {
    const ticket = names.get(path);
    if (ticket === undefined) return undefined;
    settleIfPending(ticket);
    return lstatOrUndefined(path);
  }

  /** Waits for the writer if the name's file was handed over and may not be on disk yet. */
  function settleIfPending(ticket: number | undefined): void {
    if (ticket !== undefined && ticket !== CREATED_HERE && writer!.isPending(ticket)) writer!.settle();
  }

  function writeEmptyFile(path: string, mode: number, uid: number, gid: number, mtime: Date): void {
    const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
    try {
      if (preserveOwnership) fchownSync(fd, uid, gid);
      fchmodSync(fd, mode);
      futimesSync(fd, mtime, mtime);
    } finally {
      closeSync(fd);
    }
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
