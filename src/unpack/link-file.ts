/**
 * Placing a layer file into a flat tree: a hard link (mode, owner, times and content shared with the
 * layer's file), or where the filesystem refuses one, a copy carrying the same metadata. Used by the
 * directory publisher and by the file-writer thread it hands links to.
 */
import { chmodSync, chownSync, constants as fsConstants, copyFileSync, linkSync, lstatSync, utimesSync } from 'node:fs';
import { DuccError } from '../util/errors.ts';

const IS_ROOT = process.getuid?.() === 0;

/** Hard-links `source` at `path` (which must not exist); copies it with its metadata where linking is refused. */
export function linkOrCopy(source: string, path: string): void {
  if (!tryLink(source, path)) copyWithMetadata(source, path);
}

/** Hard-links, or returns false where the filesystem refuses: another filesystem, hard links not allowed, too many links. */
export function tryLink(source: string, path: string): boolean {
  try {
    linkSync(source, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK') return false;
    throw error;
  }
}

/**
 * A copy of a layer file with the source's mode, owner (as root) and times: what a hard link would have
 * shared, for when it cannot be made. Reflinked where the filesystem can; never replaces `path`.
 */
export function copyWithMetadata(source: string, path: string): void {
  const stat = lstatSync(source);
  if (!stat.isFile()) throw new DuccError('BOT_ERR_PUBLISH', `${source}: expected a regular file to copy into the flat tree`);
  copyFileSync(source, path, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE);
  if (IS_ROOT) chownSync(path, stat.uid, stat.gid);
  chmodSync(path, stat.mode & 0o7777);
  utimesSync(path, stat.mtime, stat.mtime);
}
