/** Path rules and small file-system helpers shared by the cvmfs publishers. */
import type { Stats } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { DuccError } from '../../util/errors.ts';
import type { DirectoryEntry, Publisher } from '../publisher.ts';

/** A publisher-relative path, normalized; '' for the root. Absolute paths and `..` are refused. */
export function normalizeRelativePath(relPath: string, code: 'BOT_ERR_PUBLISH' | 'BOT_ERR_CONFIG' | 'BOT_ERR_UNSAFE_ENTRY'): string {
  // Most paths are normal already (a flat tree's tens of thousands of entries): returned as they are,
  // without the arrays and strings of splitting them.
  if (NORMAL.test(relPath)) return relPath;
  if (relPath.startsWith('/')) throw new DuccError(code, `path '${relPath}' must be relative`);
  const parts = relPath.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new DuccError(code, `path '${relPath}' must not contain '..'`);
  return parts.join('/');
}

/** A relative path without empty, `.` or `..` components (and not empty). */
const NORMAL = /^(?!\.\.?(?:\/|$))[^/]+(?:\/(?!\.\.?(?:\/|$))[^/]+)*$/;

/** A path to write or publish: normalized, never the publisher root itself. */
export function checkNew(relPath: string): string {
  const rel = normalizeRelativePath(relPath, 'BOT_ERR_PUBLISH');
  if (rel === '') throw new DuccError('BOT_ERR_PUBLISH', 'cannot write the publisher root itself');
  return rel;
}

/** `a`, `a/b` for `a/b/c`. */
export function ancestors(relPath: string): string[] {
  const parts = relPath.split('/');
  return parts.slice(0, -1).map((_, index) => parts.slice(0, index + 1).join('/'));
}

/** `a/b` for `a/b/c`, '' for `a`. */
export function parentOf(relPath: string): string {
  const slash = relPath.lastIndexOf('/');
  return slash === -1 ? '' : relPath.slice(0, slash);
}

export function isSameOrBelow(relPath: string, dir: string): boolean {
  return dir === '' || relPath === dir || relPath.startsWith(`${dir}/`);
}

export function describeType(stats: Stats): string {
  if (stats.isDirectory()) return 'directory';
  if (stats.isFile()) return 'regular file';
  if (stats.isSymbolicLink()) return 'symlink';
  return 'special file';
}

export function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export async function ifExists<T>(operation: Promise<T>): Promise<T | undefined> {
  try {
    return await operation;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/** Entries of a directory with their types (no stat per entry), or undefined when absent. */
export async function readDirectory(absolute: string): Promise<DirectoryEntry[] | undefined> {
  const entries = await ifExists(readdir(absolute, { withFileTypes: true }));
  return entries?.map((entry) => ({
    name: entry.name,
    type: entry.isDirectory() ? 'directory' : entry.isSymbolicLink() ? 'symlink' : entry.isFile() ? 'file' : 'other',
  }));
}

/** Target of a symlink, or undefined when absent or not a symlink. */
export async function readLinkIfAny(absolute: string): Promise<string | undefined> {
  try {
    return await readlink(absolute);
  } catch (error) {
    if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw error;
  }
}

/** A transaction's `requires`, checked under the repository lock: nothing is published when one is gone. */
export async function checkRequirements(publisher: Pick<Publisher, 'lstat' | 'description'>, requirements: string[]): Promise<void> {
  for (const relPath of requirements) {
    if ((await publisher.lstat(relPath)) === undefined) {
      throw new DuccError('BOT_ERR_PUBLISH', `${relPath} is gone from ${publisher.description} (removed by a garbage collection?); try again`, {
        temporary: true,
      });
    }
  }
}
