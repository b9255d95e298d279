import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** What tests compare of one filesystem entry: type, mode bits, owner, size, content hash, link target. */
export interface SnapshotEntry {
  type: 'dir' | 'file' | 'symlink' | 'other';
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
}

/** Walks a directory and describes every entry below it (the root itself as '.'), keyed by relative path. */
export async function snapshotTree(root: string, options: { ignore?: (path: string) => boolean } = {}): Promise<Map<string, SnapshotEntry>> {
  const result = new Map<string, SnapshotEntry>();
  const visit = async (rel: string): Promise<void> => {
    const path = rel === '.' ? root : join(root, rel);
    const stat = await lstat(path);
    const base = { mode: (stat.mode & 0o7777).toString(8).padStart(4, '0'), uid: stat.uid, gid: stat.gid };
    if (stat.isDirectory()) {
      result.set(rel, { type: 'dir', ...base });
      for (const name of (await readdir(path)).sort()) {
        const child = rel === '.' ? name : `${rel}/${name}`;
        if (options.ignore?.(child)) continue;
        await visit(child);
      }
    } else if (stat.isFile()) {
      result.set(rel, {
        type: 'file',
        ...base,
        size: stat.size,
        sha256: createHash('sha256')
          .update(await readFile(path))
          .digest('hex'),
      });
    } else if (stat.isSymbolicLink()) {
      result.set(rel, { type: 'symlink', ...base, mode: '', target: await readlink(path) });
    } else {
      result.set(rel, { type: 'other', ...base });
    }
  };
  await visit('.');
  return result;
}
