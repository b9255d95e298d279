import type { Dirent } from 'node:fs';
import { chmod, lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Entries of one directory unlinked at once. `fs.promises.rm` with `recursive` starts every unlink of a
 * directory at once: removing the staging of a layer of 50,000 files added ~87 MB to the peak RSS of
 * the process (the cvmfs publisher removes it after the layer's ingest, right before the flat tree, the
 * peak of a conversion). In groups of 64 the removal costs ~6 MB and ~25% more time (0.6 -> 0.8 s).
 */
const UNLINKS_AT_ONCE = 64;
/** Attempts at a directory that something fills again while it is being emptied (as rm's maxRetries). */
const ATTEMPTS = 3;

/**
 * `rm -rf` that also removes trees holding directories without write permission for us (images have
 * 0555 directories; as a user other than root their entries cannot be unlinked): on EACCES or EPERM
 * every directory of the tree is made writable and the removal tried again. No error when absent.
 * Symbolic links are removed, never followed.
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await removeEntry(path);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw error;
  }
  await makeWritable(path);
  await removeEntry(path);
}

async function removeEntry(path: string, attempt = 1): Promise<void> {
  // lstat first: readdir would follow a symlink to a directory and empty the directory it points to.
  const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (stats === undefined) return;
  if (!stats.isDirectory()) return unlinkIfThere(path);
  let entries: Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  // readdir's types come from lstat where the file system gives none: a symlink to a directory is not one.
  const others = entries.filter((entry) => !entry.isDirectory());
  for (let i = 0; i < others.length; i += UNLINKS_AT_ONCE) {
    await Promise.all(others.slice(i, i + UNLINKS_AT_ONCE).map((entry) => unlinkIfThere(join(path, entry.name))));
  }
  for (const entry of entries) if (entry.isDirectory()) await removeEntry(join(path, entry.name));
  try {
    await rmdir(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTEMPTY' && attempt < ATTEMPTS) return removeEntry(path, attempt + 1);
    throw error;
  }
}

async function unlinkIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

async function makeWritable(path: string): Promise<void> {
  const stats = await lstat(path).catch(() => undefined);
  if (!stats?.isDirectory()) return;
  if ((stats.mode & 0o700) !== 0o700) await chmod(path, (stats.mode & 0o7777) | 0o700);
  for (const name of await readdir(path)) await makeWritable(join(path, name));
}
