/**
 * `umoci unpack` as the oracle for flat trees: what an image's root filesystem must be, entry by entry,
 * and which regular files must share an inode. umoci applies OCI layers the way containerd does (paths
 * resolved through existing symlinks inside the root, whiteouts on lower layers only, later entries of a
 * layer winning), independently of our code.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { writeOciLayout } from './oci-image.ts';
import { tempDir } from './tmp-dir.ts';
import type { SnapshotEntry } from './tree-snapshot.ts';

const run = promisify(execFile);

/** Paths DUCC adds to every flat image for Apptainer (and our catalog marker); absent from umoci's rootfs. */
export const APPTAINER_PATHS =
  /^(\.singularity\.d(\/.*)?|singularity|\.run|\.exec|\.test|\.shell|environment|\.cvmfscatalog|dev|proc|sys|root|home|tmp|var|var\/tmp|etc|etc\/hosts|etc\/resolv\.conf)$/;

/** `umoci unpack` of `<layout>:<tag>`; resolves with the bundle's rootfs, rejects with umoci's error. */
export async function umociRootfs(t: TestContext, layout: string, tag: string): Promise<string> {
  const bundle = join(await tempDir(t), 'bundle');
  try {
    await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
  } catch (error) {
    throw new Error(`umoci unpack failed: ${(error as { stderr?: string }).stderr?.trim() ?? String(error)}`, { cause: error });
  }
  return join(bundle, 'rootfs');
}

/** An image of these layer tars (base first) unpacked by umoci: its rootfs, or umoci's error. */
export async function umociUnpack(t: TestContext, layers: Buffer[]): Promise<string> {
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, 'v1', [{ layers }]);
  return umociRootfs(t, layout, 'v1');
}

/**
 * umoci's rootfs and our flat dir must agree entry by entry (type, mode bits, owner, size, content, link
 * target); ours may hold `extra` paths on top (the Apptainer files, the catalog marker).
 */
export function assertSameTree(ours: Map<string, SnapshotEntry>, oracle: Map<string, SnapshotEntry>, extra: RegExp = APPTAINER_PATHS): void {
  for (const [path, expected] of oracle) {
    if (path === 'dev' || path.startsWith('dev/')) continue;
    assert.deepEqual(ours.get(path), expected, `entry ${path} differs from umoci unpack`);
  }
  for (const path of ours.keys()) {
    if (!oracle.has(path)) assert.match(path, extra, `entry ${path} is not in umoci's rootfs`);
  }
}

/** The regular files below `root` that share an inode, as sorted groups of relative paths (groups of one left out). */
export async function hardLinkGroups(root: string): Promise<string[][]> {
  const byInode = new Map<number, string[]>();
  const visit = async (rel: string): Promise<void> => {
    for (const name of await readdir(rel === '' ? root : join(root, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const stat = await lstat(join(root, path));
      if (stat.isDirectory()) await visit(path);
      else if (stat.isFile() && stat.nlink > 1) byInode.set(stat.ino, [...(byInode.get(stat.ino) ?? []), path]);
    }
  };
  await visit('');
  return [...byInode.values()]
    .filter((group) => group.length > 1)
    .map((group) => group.sort())
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
}
