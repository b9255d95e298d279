import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, lstat, readlink, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildTar } from '../../support/build-tar.ts';
import { extractLayer } from '../../../src/unpack/extract-layer.ts';
import { FlatTree } from '../../../src/unpack/flatten.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { tempDir } from '../../support/tmp-dir.ts';


async function unpack(t: TestContext, tar: Buffer) {
  const dir = join(await tempDir(t), 'layerfs');
  await mkdir(dir);
  const result = await extractLayer(Readable.from([tar]), dir, { label: 'layer test' });
  return { dir, result };
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
    await assert.rejects(unpack(t, await buildTar([{ name: 'd/', type: 'directory' }, { name: 'l', type: 'link', linkname: 'd' }])), {
      code: 'BOT_ERR_UNSAFE_ENTRY',
      message: /hard link to a directory/,
    });
  });
});

describe('FlatTree', () => {
  it('applies whiteouts and opaque directories of upper layers only, and resolves lower-layer hard links', async (t) => {
    const lower = await unpack(t, await buildTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/keep', content: 'keep' },
      { name: 'etc/remove', content: 'gone' },
      { name: 'opaque/', type: 'directory' },
      { name: 'opaque/lower', content: 'hidden' },
      { name: 'usr/bin/perl', content: 'perl', mode: 0o755 },
    ]));
    const upper = await unpack(t, await buildTar([
      // opaque marker after an entry of the same layer: order in the tar must not matter
      { name: 'opaque/upper', content: 'visible' },
      { name: 'opaque/.wh..wh..opq', content: '' },
      { name: 'etc/.wh.remove', content: '' },
      { name: 'etc/.wh.added', content: '' },
      { name: 'etc/added', content: 'recreated in the same layer' },
      { name: 'usr/bin/perl5', type: 'link', linkname: 'usr/bin/perl' },
    ]));

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
    const layer = await unpack(t, await buildTar([
      { name: 'bin/', type: 'directory', mode: 0o700 },
      { name: 'bin/tool', content: 'tool', mode: 0o2711 },
      { name: 'bin/alias', type: 'link', linkname: 'bin/tool' },
    ]));
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
});
