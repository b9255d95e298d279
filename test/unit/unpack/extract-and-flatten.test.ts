import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, lstat, readlink, readdir, rm, symlink, utimes, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildTar } from '../../support/build-tar.ts';
import { extractLayer } from '../../../src/unpack/extract-layer.ts';
import { FlatTree } from '../../../src/unpack/flatten.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { copyWithMetadata } from '../../../src/unpack/link-file.ts';
import { fileWriterStats } from '../../../src/unpack/file-writer.ts';
import type { TreeEntry } from '../../../src/unpack/tree-types.ts';
import { tempDir } from '../../support/tmp-dir.ts';

async function unpack(t: TestContext, tar: Buffer) {
  const dir = join(await tempDir(t), 'layerfs');
  await mkdir(dir);
  const result = await extractLayer(Readable.from([tar]), dir, { label: 'layer test' });
  return { dir, result };
}

/**
 * A published tree as comparable rows: path, mode, owner, mtime, size, content or link target, and which
 * earlier path of the same tree shares the inode (hard links), not the inode number itself. Files made
 * at publication (the catalog marker) or added to the tree (etc/hosts) carry the time of that: left out.
 */
async function describeTree(base: string): Promise<string[]> {
  const rows: string[] = [];
  const inodes = new Map<number, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(base, rel))).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const stat = await lstat(join(base, path));
      const body = stat.isFile() ? await readFile(join(base, path), 'utf8') : stat.isSymbolicLink() ? await readlink(join(base, path)) : '';
      const sharedWith = stat.isFile() ? (inodes.get(stat.ino) ?? '') : '';
      if (stat.isFile() && sharedWith === '') inodes.set(stat.ino, path);
      const mtime = path === '.cvmfscatalog' || path === 'etc/hosts' ? 'now' : stat.mtimeMs;
      rows.push([path, stat.mode.toString(8), stat.uid, stat.gid, mtime, stat.size, body, sharedWith].join(' '));
      if (stat.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return rows;
}

describe('extractLayer', () => {
  it('keeps whiteouts verbatim, modes including setuid, symlinks verbatim, and hard links', async (t) => {
    const tar = await buildTar([
      { name: './', type: 'directory', mode: 0o755 },
      { name: 'bin/', type: 'directory' },
      { name: 'bin/su', content: 'su', mode: 0o4755, uid: 0 },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'etc/.wh.old', content: '' },
      { name: 'etc/.wh..wh..opq', content: '' },
      { name: 'usr/link', type: 'symlink', linkname: '/etc/passwd' },
      { name: 'usr/hard', type: 'link', linkname: 'bin/su' },
      { name: 'ro/', type: 'directory', mode: 0o555 },
      { name: 'ro/file', content: 'x', mode: 0o400 },
    ]);

    const { dir, result } = await unpack(t, tar);

    assert.equal((await lstat(join(dir, 'bin/su'))).mode & 0o7777, 0o4755);
    assert.equal((await lstat(join(dir, 'tmp'))).mode & 0o7777, 0o1777);
    assert.equal((await lstat(join(dir, 'ro'))).mode & 0o7777, 0o555);
    assert.equal((await lstat(join(dir, 'etc/.wh.old'))).isFile(), true);
    assert.equal((await lstat(join(dir, 'etc/.wh..wh..opq'))).isFile(), true);
    assert.equal(await readlink(join(dir, 'usr/link')), '/etc/passwd');
    assert.equal((await lstat(join(dir, 'usr/hard'))).ino, (await lstat(join(dir, 'bin/su'))).ino);
    assert.deepEqual(result.externalHardlinks, []);
  });

  it('rejects names that climb out with ..', async (t) => {
    const tar = await buildTar([{ name: 'a/../../escape', content: 'x' }]);

    await assert.rejects(unpack(t, tar), { code: 'BOT_ERR_UNSAFE_ENTRY', message: /layer test, entry 'a\/\.\.\/\.\.\/escape'.*'\.\.'/ });
  });

  it('resolves a path through a symlink inside the layer root, never outside it', async (t) => {
    const outside = await tempDir(t);
    const tar = await buildTar([
      { name: 'evil', type: 'symlink', linkname: outside },
      { name: 'evil/pwned', content: 'x' },
      { name: 'up', type: 'symlink', linkname: '../../../..' },
      { name: 'up/pwned2', content: 'y' },
    ]);

    const { dir } = await unpack(t, tar);

    assert.deepEqual(await readdir(outside), []);
    assert.equal(await readFile(join(dir, outside, 'pwned'), 'utf8'), 'x');
    assert.equal(await readFile(join(dir, 'pwned2'), 'utf8'), 'y');
  });

  it('replaces an existing symlink instead of writing through it', async (t) => {
    const outside = await tempDir(t);
    const tar = await buildTar([
      { name: 'victim', type: 'symlink', linkname: join(outside, 'target') },
      { name: 'victim', content: 'new' },
    ]);

    const { dir } = await unpack(t, tar);

    assert.deepEqual(await readdir(outside), []);
    assert.equal(await readFile(join(dir, 'victim'), 'utf8'), 'new');
  });

  it('never creates device nodes or FIFOs and reports them', async (t) => {
    const tar = await buildTar([
      { name: 'dev/', type: 'directory' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 },
      { name: 'dev/fifo', type: 'fifo' },
    ]);

    const { dir, result } = await unpack(t, tar);

    assert.deepEqual(await readdir(join(dir, 'dev')), []);
    assert.equal(result.warnings.length, 2);
    assert.match(result.warnings[0]!, /entry 'dev\/null': character-device not created/);
  });

  it('keeps a hard link to a lower layer as an empty file and reports it', async (t) => {
    const tar = await buildTar([{ name: 'usr/bin/perl5', type: 'link', linkname: 'usr/bin/perl', mode: 0o755 }]);

    const { dir, result } = await unpack(t, tar);

    assert.deepEqual(result.externalHardlinks, [{ path: 'usr/bin/perl5', target: 'usr/bin/perl' }]);
    assert.equal((await lstat(join(dir, 'usr/bin/perl5'))).size, 0);
  });

  it('rejects invalid whiteouts and hard links to directories', async (t) => {
    await assert.rejects(unpack(t, await buildTar([{ name: 'a/.wh..', content: '' }])), { code: 'BOT_ERR_UNSAFE_ENTRY', message: /invalid whiteout/ });
    await assert.rejects(
      unpack(
        t,
        await buildTar([
          { name: 'd/', type: 'directory' },
          { name: 'l', type: 'link', linkname: 'd' },
        ]),
      ),
      {
        code: 'BOT_ERR_UNSAFE_ENTRY',
        message: /hard link to a directory/,
      },
    );
  });
});

describe('FlatTree', () => {
  it('applies whiteouts and opaque directories of upper layers only, and resolves lower-layer hard links', async (t) => {
    const lower = await unpack(
      t,
      await buildTar([
        { name: 'etc/', type: 'directory' },
        { name: 'etc/keep', content: 'keep' },
        { name: 'etc/remove', content: 'gone' },
        { name: 'opaque/', type: 'directory' },
        { name: 'opaque/lower', content: 'hidden' },
        { name: 'usr/bin/perl', content: 'perl', mode: 0o755 },
      ]),
    );
    const upper = await unpack(
      t,
      await buildTar([
        // opaque marker after an entry of the same layer: order in the tar must not matter
        { name: 'opaque/upper', content: 'visible' },
        { name: 'opaque/.wh..wh..opq', content: '' },
        { name: 'etc/.wh.remove', content: '' },
        { name: 'etc/.wh.added', content: '' },
        { name: 'etc/added', content: 'recreated in the same layer' },
        { name: 'usr/bin/perl5', type: 'link', linkname: 'usr/bin/perl' },
      ]),
    );

    const tree = await FlatTree.build([
      { dir: lower.dir, externalHardlinks: lower.result.externalHardlinks },
      { dir: upper.dir, externalHardlinks: upper.result.externalHardlinks },
    ]);
    const entries = new Map<string, { type: string; source?: string; target?: string }>();
    for await (const entry of tree.entries()) if (entry.path !== '') entries.set(entry.path, entry as never);

    assert.ok(entries.has('etc/keep'));
    assert.ok(!entries.has('etc/remove'));
    assert.ok(entries.has('etc/added'));
    assert.ok(!entries.has('opaque/lower'));
    assert.ok(entries.has('opaque/upper'));
    assert.ok(![...entries.keys()].some((p) => p.includes('.wh.')));
    assert.equal(entries.get('usr/bin/perl')?.type, 'file');
    assert.deepEqual(entries.get('usr/bin/perl5'), { type: 'hardlink', path: 'usr/bin/perl5', target: 'usr/bin/perl' });
  });

  it('is published by the directory publisher with hard links shared and metadata kept', async (t) => {
    const root = await tempDir(t);
    const publisher = new DirectoryPublisher({ root, repository: 'repo.example.org' });
    await publisher.recover();
    const layer = await unpack(
      t,
      await buildTar([
        { name: 'bin/', type: 'directory', mode: 0o700 },
        { name: 'bin/tool', content: 'tool', mode: 0o2711 },
        { name: 'bin/alias', type: 'link', linkname: 'bin/tool' },
      ]),
    );
    const tree = await FlatTree.build([{ dir: layer.dir, externalHardlinks: [] }]);
    tree.add({ type: 'file', path: 'etc/hosts', mode: 0o644, content: Buffer.alloc(0) }, new Date());

    await publisher.publishTree('.flat/ab/abc', tree.entries());

    const flat = join(root, 'repo.example.org/.flat/ab/abc');
    assert.equal((await lstat(join(flat, 'bin'))).mode & 0o7777, 0o700);
    assert.equal((await lstat(join(flat, 'bin/tool'))).mode & 0o7777, 0o2711);
    assert.equal((await lstat(join(flat, 'bin/alias'))).ino, (await lstat(join(flat, 'bin/tool'))).ino);
    assert.equal((await lstat(join(flat, 'etc/hosts'))).size, 0);
    assert.equal((await lstat(join(flat, '.cvmfscatalog'))).size, 0);
    assert.deepEqual(await readdir(join(root, '.ducc-staging/repo.example.org')), []);
  });

  it('without file metadata gives link entries, published exactly like the tree read with it', async (t) => {
    const root = await tempDir(t);
    const publisher = new DirectoryPublisher({ root, repository: 'repo.example.org' });
    await publisher.recover();
    const mtime = new Date('2021-03-04T05:06:07Z');
    const lower = await unpack(
      t,
      await buildTar([
        { name: 'bin/', type: 'directory', mode: 0o751, mtime },
        { name: 'bin/tool', content: 'tool', mode: 0o4711, uid: 12, gid: 34, mtime },
        { name: 'bin/gone', content: 'whited out', mtime },
        { name: 'lib/', type: 'directory', mode: 0o755, mtime },
        { name: 'lib/libc.so', content: 'libc', mode: 0o644, uid: 5, gid: 6, mtime },
      ]),
    );
    const upper = await unpack(
      t,
      await buildTar([
        { name: 'bin/.wh.gone', content: '' },
        { name: 'bin/alias', type: 'link', linkname: 'bin/tool' },
        { name: 'etc/', type: 'directory', mode: 0o700, uid: 3, gid: 4, mtime },
        { name: 'etc/conf', content: 'conf', mode: 0o600, uid: 3, gid: 4, mtime },
        { name: 'etc/conf2', type: 'link', linkname: 'etc/conf' },
        { name: 'etc/ld', type: 'symlink', linkname: '../lib/libc.so', uid: 3, gid: 4, mtime },
      ]),
    );
    const layers = [
      { dir: lower.dir, externalHardlinks: lower.result.externalHardlinks, implicitDirectories: lower.result.implicitDirectories },
      { dir: upper.dir, externalHardlinks: upper.result.externalHardlinks, implicitDirectories: upper.result.implicitDirectories },
    ];
    const withMetadata = await FlatTree.build(layers);
    const linked = await FlatTree.build(layers, { fileMetadata: false });
    const added = { type: 'file' as const, path: 'etc/hosts', mode: 0o644, content: Buffer.from('hosts') };
    withMetadata.add(added, mtime);
    linked.add(added, mtime);

    const linkedEntries: TreeEntry[] = [];
    for await (const entry of linked.entries()) linkedEntries.push(entry);
    const byPath = new Map(linkedEntries.map((entry) => [entry.path, entry]));
    // Regular files of the layers are links to their own source, the lower-layer hard link included.
    assert.deepEqual(byPath.get('bin/tool'), { type: 'link', path: 'bin/tool', source: `${lower.dir}/bin/tool` });
    assert.deepEqual(byPath.get('bin/alias'), { type: 'link', path: 'bin/alias', source: `${lower.dir}/bin/tool` });
    assert.equal(byPath.get('etc/conf')?.type, 'link');
    assert.equal(byPath.get('etc/hosts')?.type, 'file');
    assert.equal(byPath.get('etc/ld')?.type, 'symlink');
    assert.ok(!byPath.has('bin/gone') && !linkedEntries.some((entry) => entry.type === 'hardlink'));

    await publisher.publishTree('.flat/aa/with', withMetadata.entries());
    await publisher.publishTree('.flat/aa/linked', linked.entries());
    const expected = await describeTree(join(root, 'repo.example.org/.flat/aa/with'));
    assert.deepEqual(await describeTree(join(root, 'repo.example.org/.flat/aa/linked')), expected);
    assert.ok(
      expected.some((row) => row.startsWith('bin/tool ') && row.endsWith(' bin/alias')),
      expected.join('\n'),
    );
    assert.ok(
      expected.some((row) => row.startsWith('bin 40751 0 0 1614834367000 ')),
      expected.join('\n'),
    );
    assert.ok(
      expected.some((row) => row.startsWith('etc/conf2 ') && row.endsWith(' etc/conf')),
      expected.join('\n'),
    );
    assert.ok(
      expected.some((row) => row.startsWith('bin/tool 104711 12 34 ')),
      expected.join('\n'),
    );
  });
  it('hands runs of hard links to the file-writer thread and gets the same tree', async (t) => {
    const root = await tempDir(t);
    const publisher = new DirectoryPublisher({ root, repository: 'repo.example.org' });
    await publisher.recover();
    const mtime = new Date('2022-05-06T07:08:09Z');
    const files = Array.from({ length: 700 }, (_, i) => ({
      name: `d${i % 7}/f${i}`,
      content: `file ${i}`,
      mode: 0o640 + (i % 2),
      uid: i % 3,
      gid: i % 5,
      mtime,
    }));
    const layer = await unpack(
      t,
      await buildTar([
        ...Array.from({ length: 7 }, (_, d) => ({ name: `d${d}/`, type: 'directory' as const, mtime })),
        ...files,
        { name: 'd0/same', type: 'link', linkname: 'd6/f699' },
      ]),
    );
    const layers = [{ dir: layer.dir, externalHardlinks: [], implicitDirectories: layer.result.implicitDirectories }];
    const before = fileWriterStats.linksHandedOver;

    await publisher.publishTree('.flat/bb/with', (await FlatTree.build(layers)).entries());
    await publisher.publishTree('.flat/bb/linked', (await FlatTree.build(layers, { fileMetadata: false })).entries());

    // 701 links, every other run of 256 handed over: entries 256-511.
    assert.equal(fileWriterStats.linksHandedOver - before, 256);
    const expected = await describeTree(join(root, 'repo.example.org/.flat/bb/with'));
    assert.equal(expected.length, 1 + 7 + 701);
    assert.deepEqual(await describeTree(join(root, 'repo.example.org/.flat/bb/linked')), expected);
    assert.deepEqual(await readdir(join(root, '.ducc-staging/repo.example.org')), []);
  });

  it('fails naming the entry when a handed-over link fails, and publishes nothing', async (t) => {
    const root = await tempDir(t);
    const publisher = new DirectoryPublisher({ root, repository: 'repo.example.org' });
    await publisher.recover();
    const layer = await unpack(t, await buildTar(Array.from({ length: 600 }, (_, i) => ({ name: `f${String(i).padStart(3, '0')}`, content: 'x' }))));
    const tree = await FlatTree.build([{ dir: layer.dir, externalHardlinks: [] }], { fileMetadata: false });
    // f300 is in the second run of 256 links, the one made by the writer thread.
    await rm(join(layer.dir, 'f300'));

    await assert.rejects(publisher.publishTree('.flat/cc/tree', tree.entries()), { code: 'BOT_ERR_PUBLISH', message: /^flat tree entry 'f300': ENOENT/ });
    assert.equal(await lstat(join(root, 'repo.example.org/.flat/cc/tree')).catch(() => undefined), undefined);
    assert.deepEqual(await readdir(join(root, '.ducc-staging/repo.example.org')), []);
  });
});

describe('copyWithMetadata', () => {
  it('copies a file with its mode, owner and times, where a hard link cannot be made', async (t) => {
    const dir = await tempDir(t);
    const source = join(dir, 'source');
    await writeFile(source, 'content');
    await chmod(source, 0o2751);
    const mtime = new Date('2020-01-02T03:04:05Z');
    await utimes(source, mtime, mtime);

    copyWithMetadata(source, join(dir, 'copy'));

    const [a, b] = [await lstat(source), await lstat(join(dir, 'copy'))];
    assert.notEqual(b.ino, a.ino);
    assert.equal(await readFile(join(dir, 'copy'), 'utf8'), 'content');
    assert.equal(b.mode & 0o7777, 0o2751);
    assert.deepEqual([b.uid, b.gid, b.mtimeMs], [a.uid, a.gid, mtime.getTime()]);
  });

  it('refuses a source that is not a regular file, and never replaces an existing file', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'file'), 'x');
    await writeFile(join(dir, 'existing'), 'keep');
    await symlink('file', join(dir, 'link'));

    assert.throws(() => copyWithMetadata(join(dir, 'link'), join(dir, 'copy')), { code: 'BOT_ERR_PUBLISH', message: /expected a regular file/ });
    assert.throws(() => copyWithMetadata(join(dir, 'file'), join(dir, 'existing')), { code: 'EEXIST' });
    assert.equal(await readFile(join(dir, 'existing'), 'utf8'), 'keep');
  });
});
