/**
 * removeTree: `rm -rf` in bounded groups of unlinks (see src/publish/remove-tree.ts). It removes every kind
 * of entry, never follows a symbolic link out of the tree, and is quiet about what is already gone.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeTree } from '../../../src/publish/remove-tree.ts';
import { tempDir } from '../../support/tmp-dir.ts';

it('removes a tree of many files, nested and empty directories and symlinks, and nothing a symlink points to', async (t) => {
  const root = await tempDir(t);
  const outside = join(root, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'keep'), 'keep');
  const tree = join(root, 'tree');
  // More files in one directory than are unlinked at once, and directories below them.
  await mkdir(join(tree, 'a', 'b', 'empty'), { recursive: true });
  for (let i = 0; i < 300; i++) await writeFile(join(tree, 'a', `f${i}`), String(i));
  await writeFile(join(tree, 'a', 'b', 'deep'), 'deep');
  await symlink(outside, join(tree, 'a', 'to-outside-dir'));
  await symlink(join(outside, 'keep'), join(tree, 'to-outside-file'));
  await symlink('missing', join(tree, 'dangling'));

  await removeTree(tree);

  await assert.rejects(stat(tree), { code: 'ENOENT' });
  assert.deepEqual(await readdir(outside), ['keep']);
});

it('is quiet about a path that is not there, and removes a path that is a file or a symlink', async (t) => {
  const root = await tempDir(t);
  await removeTree(join(root, 'absent'));
  await writeFile(join(root, 'file'), 'x');
  await mkdir(join(root, 'dir'));
  await writeFile(join(root, 'dir', 'kept'), 'kept');
  await symlink(join(root, 'dir'), join(root, 'link'));

  await removeTree(join(root, 'file'));
  await removeTree(join(root, 'link'));

  assert.deepEqual(await readdir(root), ['dir']);
  assert.deepEqual(await readdir(join(root, 'dir')), ['kept'], 'the directory a removed symlink pointed to is left whole');
});
