/**
 * The writer thread (src/unpack/file-writer.ts) creates a layer's small files while the main thread
 * goes on reading the archive. These tests check that this changes nothing observable: archives whose
 * entries depend on one another (same name twice, a file then something below it, a hard link to a file
 * just handed over, a directory replaced by a symlink while its files are in flight) give the same tree,
 * times and errors with and without the thread, and nothing outside the target is touched.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extractLayer, WRITER_THREAD_AFTER_FILES } from '../../../src/unpack/extract-layer.ts';
import { fileWriterStats } from '../../../src/unpack/file-writer.ts';
import { buildTar, type TarEntrySpec } from '../../support/build-tar.ts';
import { arena, extraTarget, type Arena } from '../hardening/arena.ts';

/** Every observable property of a tree: type, mode, owner, size, mtime, content, link target, and which names share an inode. */
async function describeTree(root: string): Promise<string[]> {
  const lines: string[] = [];
  const inodes = new Map<number, string>();
  const visit = async (rel: string): Promise<void> => {
    const path = rel === '' ? root : join(root, rel);
    const stat = await lstat(path);
    let extra = '';
    if (stat.isFile()) {
      extra = createHash('sha256')
        .update(await readFile(path))
        .digest('hex')
        .slice(0, 16);
      const first = inodes.get(stat.ino);
      if (first === undefined) inodes.set(stat.ino, rel);
      else extra += ` same-inode-as=${first}`;
    } else if (stat.isSymbolicLink()) extra = `-> ${await readlink(path)}`;
    // Directories without an entry of their own (and the root) get the time of extraction: not compared.
    const mtime = stat.isSymbolicLink() ? '' : stat.mtime.getUTCFullYear() >= 2025 ? 'now' : stat.mtime.toISOString();
    lines.push(`${rel || '.'} ${stat.mode.toString(8)} ${stat.uid}:${stat.gid} ${stat.isFile() ? stat.size : ''} ${mtime} ${extra}`);
    if (stat.isDirectory()) for (const name of (await readdir(path)).sort()) await visit(rel === '' ? name : `${rel}/${name}`);
  };
  await visit('');
  return lines;
}

async function extract(target: string, tar: Buffer, writerThread: boolean): Promise<string[]> {
  // writerThreadAfterFiles 0: every small file goes to the thread, however few the archive holds.
  const result = await extractLayer(Readable.from([tar]), target, { label: 'layer sha256:feed', writerThread, writerThreadAfterFiles: 0 });
  return result.warnings;
}

/** Extracts with and without the writer thread and returns both outcomes (tree or error message). */
async function bothWays(a: Arena, tar: Buffer): Promise<{ threaded: string; direct: string; handedOver: number }> {
  const outcome = async (target: string, writerThread: boolean): Promise<string> => {
    try {
      const warnings = await extract(target, tar, writerThread);
      return [...(await describeTree(target)), ...warnings].join('\n');
    } catch (error) {
      return `error: ${(error as Error).message.replaceAll(target, '<target>')}`;
    }
  };
  const before = fileWriterStats.filesHandedOver;
  const threaded = await outcome(await extraTarget(a, 1), true);
  const handedOver = fileWriterStats.filesHandedOver - before;
  const direct = await outcome(await extraTarget(a, 2), false);
  return { threaded, direct, handedOver };
}

const mtime = (n: number) => new Date(Date.UTC(2020, 0, 1, 0, 0, n));

describe('the writer thread changes nothing observable', () => {
  it('a layer hands files over only once it has more than WRITER_THREAD_AFTER_FILES of them', async (t) => {
    const a = await arena(t);
    const few = await buildTar(Array.from({ length: WRITER_THREAD_AFTER_FILES }, (_, i) => ({ name: `f${i}`, content: `${i}` })));
    const many = await buildTar(Array.from({ length: WRITER_THREAD_AFTER_FILES + 10 }, (_, i) => ({ name: `f${i}`, content: `${i}` })));
    const before = fileWriterStats.filesHandedOver;
    await extractLayer(Readable.from([few]), await extraTarget(a, 1), { label: 'layer sha256:feed' });
    assert.equal(fileWriterStats.filesHandedOver - before, 0);
    await extractLayer(Readable.from([many]), await extraTarget(a, 2), { label: 'layer sha256:feed' });
    assert.equal(fileWriterStats.filesHandedOver - before, 10);
  });

  it('many small files across batches, a large file, empty files and special modes give the same tree', async (t) => {
    const a = await arena(t);
    const entries: TarEntrySpec[] = [{ name: 'big/', type: 'directory', mode: 0o555 }];
    for (let i = 0; i < 700; i++)
      entries.push({ name: `d${i % 7}/f${i}`, content: Buffer.alloc(3000 + i, i % 251), mtime: mtime(i % 60), mode: i % 3 === 0 ? 0o755 : 0o640 });
    // 40 files of 60 KiB: batches also fill up by bytes, not only by count.
    for (let i = 0; i < 40; i++) entries.push({ name: `mid/m${i}`, content: Buffer.alloc(60 * 1024, 100 + i) });
    entries.push(
      { name: 'big/file', content: Buffer.alloc(3 * 1024 * 1024, 7) },
      { name: 'empty', content: '' },
      { name: 'suid', content: 's', mode: 0o4755 },
      { name: 'sticky', content: 't', mode: 0o1777 },
    );
    const { threaded, direct, handedOver } = await bothWays(a, await buildTar(entries));
    assert.equal(threaded, direct);
    assert.ok(handedOver >= 740, `only ${handedOver} files went to the writer thread`);
    assert.match(threaded, /^big 40555 /m);
    assert.match(threaded, /^suid 104755 /m);
  });

  it('a name used twice: the later entry wins, whatever the types', async (t) => {
    const a = await arena(t);
    const tar = await buildTar([
      { name: 'twice', content: 'first' },
      { name: 'twice', content: 'second', mtime: mtime(2) },
      { name: 'file-then-link', content: 'x' },
      { name: 'file-then-link', type: 'symlink', linkname: 'twice' },
      { name: 'file-then-dir', content: 'x' },
      { name: 'file-then-dir/', type: 'directory' },
      { name: 'file-then-dir/inside', content: 'inside' },
      { name: 'dir-then-file/', type: 'directory' },
      { name: 'dir-then-file/child', content: 'c' },
      { name: 'dir-then-file', content: 'now a file' },
    ]);
    const { threaded, direct } = await bothWays(a, tar);
    assert.equal(threaded, direct);
    assert.match(threaded, /^file-then-link 120777 .* -> twice$/m);
    assert.doesNotMatch(threaded, /dir-then-file\/child/);
  });

  it('a hard link to a file just handed over links that file (not a missing lower-layer file)', async (t) => {
    const a = await arena(t);
    const tar = await buildTar([
      { name: 'bin/tool', content: 'tool', mode: 0o755 },
      { name: 'bin/alias', type: 'link', linkname: 'bin/tool' },
    ]);
    const { threaded, direct } = await bothWays(a, tar);
    assert.equal(threaded, direct);
    assert.match(threaded, /^bin\/tool .* same-inode-as=bin\/alias$/m);
  });

  it('a file and then an entry below it: the same error naming the entry', async (t) => {
    const a = await arena(t);
    const tar = await buildTar([
      { name: 'a', content: 'file' },
      { name: 'a/b', content: 'below a file' },
    ]);
    const { threaded, direct } = await bothWays(a, tar);
    assert.equal(threaded, direct);
    assert.match(threaded, /^error: .*'a' is not a directory/);
  });

  it('a directory replaced by a symlink while its files are in flight: nothing is written through it', async (t) => {
    const a = await arena(t);
    const before = await a.outsideState();
    const entries: TarEntrySpec[] = [{ name: 'd/', type: 'directory' }];
    for (let i = 0; i < 300; i++) entries.push({ name: `d/f${i}`, content: `file ${i}` });
    entries.push({ name: 'd', type: 'symlink', linkname: a.outside }, { name: 'd/after', content: 'after' });
    const { threaded, direct } = await bothWays(a, await buildTar(entries));
    assert.equal(threaded, direct);
    assert.equal(await a.outsideState(), before, 'something outside the target changed');
    assert.match(threaded, new RegExp(`^d 120777 .* -> ${a.outside}$`, 'm'));
  });

  it('a file the kernel refuses in the writer thread names the layer and the entry', async (t) => {
    const a = await arena(t);
    const tooLong = 'n'.repeat(300);
    const tar = await buildTar([
      { name: 'ok', content: 'ok' },
      { name: `dir/${tooLong}`, content: 'x' },
    ]);
    const { threaded, direct, handedOver } = await bothWays(a, tar);
    assert.equal(threaded, direct);
    assert.ok(handedOver >= 2);
    assert.match(threaded, new RegExp(`^error: layer sha256:feed, entry 'dir/${tooLong}': .*ENAMETOOLONG`));
    await assert.rejects(extract(await extraTarget(a, 3), tar, true), { code: 'BOT_ERR_PUBLISH' });
  });
});
