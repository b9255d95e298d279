import { chmod, lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * `rm -rf` that also removes trees holding directories without write permission for us (images have
 * 0555 directories; as a user other than root their entries cannot be unlinked): on EACCES or EPERM
 * every directory of the tree is made writable and the removal tried again. No error when absent.
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true, maxRetries: 2 });
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw error;
  }
  await makeWritable(path);
  await rm(path, { recursive: true, force: true, maxRetries: 2 });
}

async function makeWritable(path: string): Promise<void> {
  const stats = await lstat(path).catch(() => undefined);
  if (!stats?.isDirectory()) return;
  if ((stats.mode & 0o700) !== 0o700) await chmod(path, (stats.mode & 0o7777) | 0o700);
  for (const name of await readdir(path)) await makeWritable(join(path, name));
}
