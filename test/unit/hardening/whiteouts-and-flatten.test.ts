/**
 * Whiteouts, opaque directories and lower-layer hard links against the per-layer extraction and the
 * flattener, with the flat tree published by the directory publisher: nothing outside the target is
 * deleted or linked, whatever the layers hold.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar, type TarEntrySpec } from '../../support/build-tar.ts';
import { FlatTree } from '../../../src/unpack/flatten.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { arena, extractInto, extraTarget, type Arena } from './arena.ts';

/** Extracts each tar into its own target and flattens them, base first; publishes the flat tree under `<base>/work`. */
async function flatten(a: Arena, layers: TarEntrySpec[][]) {
  const inputs = [];
  for (const [index, entries] of layers.entries()) {
    const dir = await extraTarget(a, index + 1);
    const result = await extractInto(a, await buildTar(entries), undefined, dir);
    inputs.push({ dir, externalHardlinks: result.externalHardlinks, implicitDirectories: result.implicitDirectories ?? [] });
  }
  const tree = await FlatTree.build(inputs);
  const publisher = new DirectoryPublisher({ root: join(a.base, 'work'), repository: 'repo' });
  await publisher.recover();
  await publisher.publishTree('.flat/00/flat', tree.entries());
  return { tree, flat: join(a.base, 'work', 'repo', '.flat/00/flat'), dirs: inputs.map((i) => i.dir) };
}

async function allNames(dir: string, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const rel = `${prefix}${name}`;
    names.push(rel);
    if ((await lstat(join(dir, name))).isDirectory()) names.push(...(await allNames(join(dir, name), `${rel}/`)));
  }
  return names;
}

describe('whiteouts', () => {
  for (const name of ['.wh.', '.wh..', '.wh...', 'etc/.wh.', 'etc/.wh..', 'etc/.wh...']) {
    it(`invalid-whiteout '${name}' is rejected`, async (t) => {
      const a = await arena(t);
      await assert.rejects(
        extractInto(
          a,
          await buildTar([
            { name: 'etc/', type: 'directory' },
            { name, content: '' },
          ]),
        ),
        {
          code: 'BOT_ERR_UNSAFE_ENTRY',
          message: /invalid whiteout/,
        },
      );
    });
  }

  for (const spec of [
    { name: '../.wh.outside' },
    { name: 'a/../../.wh.outside' },
    { name: 'harmless', pax: { path: '../outside/.wh.secret' } },
  ] as TarEntrySpec[]) {
    it(`whiteout-climbing-out '${spec.pax?.['path'] ?? spec.name}' is rejected and deletes nothing`, async (t) => {
      const a = await arena(t);
      const before = await a.outsideState();
      await assert.rejects(extractInto(a, await buildTar([{ ...spec, content: '' }])), { code: 'BOT_ERR_UNSAFE_ENTRY', message: /'\.\.'/ });
      assert.equal(await a.outsideState(), before);
    });
  }

  for (const entries of [
    [{ name: '.wh.etc/somefile', content: 'x' }],
    [
      { name: 'usr/.wh.lib/', type: 'directory' },
      { name: 'usr/.wh.lib/libc.so', content: 'x' },
    ],
    [{ name: 'harmless', content: 'x', pax: { path: 'a/.wh..wh..opq/x' } }],
    [{ name: './.wh.etc//x', content: 'x' }],
    [
      { name: 's', type: 'symlink', linkname: '/.wh.etc' },
      { name: 's/file', content: 'x' },
    ],
  ] as TarEntrySpec[][]) {
    const name = entries.at(-1)!.pax?.['path'] ?? entries.at(-1)!.name;
    it(`whiteout-name-as-directory '${name}' is rejected (a layerfs reader would take it for a whiteout)`, async (t) => {
      const a = await arena(t);
      await assert.rejects(extractInto(a, await buildTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/passwd', content: 'root' }, ...entries])), {
        code: 'BOT_ERR_UNSAFE_ENTRY',
        message: new RegExp(`layer sha256:feed, entry '${name.replaceAll('.', '\\.')}': the whiteout name '\\.wh\\.[^']*' is used as a directory`),
      });
    });
  }

  it('whiteout-name-as-directory: aufs metadata directories (.wh..wh.plnk/) are not whiteouts and are accepted', async (t) => {
    const a = await arena(t);
    await extractInto(
      a,
      await buildTar([
        { name: '.wh..wh.plnk/', type: 'directory' },
        { name: '.wh..wh.plnk/123.456', content: '' },
      ]),
    );
    assert.deepEqual(await readdir(join(a.target, '.wh..wh.plnk')), ['123.456']);
  });

  it('whiteout-same-layer-ignored: a whiteout only affects lower layers, never entries of its own layer', async (t) => {
    const a = await arena(t);
    const { flat, dirs } = await flatten(a, [
      [
        { name: 'keep', content: 'lower' },
        { name: 'gone', content: 'lower' },
      ],
      [
        { name: '.wh.gone', content: '' },
        { name: 'gone', content: 'recreated above' },
        { name: 'new', content: 'upper' },
        { name: '.wh.new', content: '' },
      ],
    ]);
    assert.deepEqual((await readdir(dirs[1]!)).sort(), ['.wh.gone', '.wh.new', 'gone', 'new'], 'the layer dir keeps whiteouts as files and deletes nothing');
    assert.equal(await readFile(join(flat, 'gone'), 'utf8'), 'recreated above');
    assert.equal(await readFile(join(flat, 'new'), 'utf8'), 'upper');
    assert.equal(await readFile(join(flat, 'keep'), 'utf8'), 'lower');
  });

  it('whiteout-through-symlinked-parent-in-lower-layer: applied through the link inside the image, never on the host', async (t) => {
    const a = await arena(t);
    const before = await a.outsideState();
    const { flat } = await flatten(a, [
      [
        { name: 'etc/', type: 'directory' },
        { name: 'etc/passwd', content: 'root' },
        { name: 'etc/group', content: 'root' },
        { name: 'lnk', type: 'symlink', linkname: '/etc' },
        { name: 'abs', type: 'symlink', linkname: a.outside },
        { name: 'rel', type: 'symlink', linkname: '../outside' },
      ],
      [
        { name: 'lnk/.wh.passwd', content: '' },
        { name: 'abs/.wh.secret', content: '' },
        { name: 'rel/.wh.secret', content: '' },
        { name: 'rel/.wh..wh..opq', content: '' },
      ],
    ]);
    assert.equal(await a.outsideState(), before);
    // As containerd and umoci do: lnk/ has no entry of its own, so it is resolved through the lower
    // symlink, rooted in the image; the symlink stays. abs and rel lead to nothing inside the image.
    assert.equal(await readlink(join(flat, 'lnk')), '/etc');
    assert.deepEqual(await readdir(join(flat, 'etc')), ['group']);
    assert.deepEqual((await readdir(flat)).sort(), ['.cvmfscatalog', 'abs', 'etc', 'lnk', 'rel']);
  });

  it('opaque-marker-any-order: hides lower entries whether it comes before or after the layer own entries', async (t) => {
    const a = await arena(t);
    const { flat } = await flatten(a, [
      [
        { name: 'first/old', content: 'lower' },
        { name: 'last/old', content: 'lower' },
      ],
      [
        { name: 'first/.wh..wh..opq', content: '' },
        { name: 'first/new', content: 'upper' },
        { name: 'last/new', content: 'upper' },
        { name: 'last/.wh..wh..opq', content: '' },
      ],
    ]);
    assert.deepEqual(await readdir(join(flat, 'first')), ['new']);
    assert.deepEqual(await readdir(join(flat, 'last')), ['new']);
  });

  it('no-whiteout-or-control-file-in-flat-dir: .wh.*, aufs metadata and CVMFS control files never reach the flat tree', async (t) => {
    const a = await arena(t);
    const { flat } = await flatten(a, [
      [
        { name: 'd/x', content: 'x' },
        { name: '.cvmfsdirtab', content: '/*\n' },
      ],
      [
        { name: 'd/.wh.absent', content: '' },
        { name: '.wh..wh.plnk/', type: 'directory' },
        { name: '.wh..wh.plnk/123.456', content: '' },
        { name: '.wh..wh.aufs', content: '' },
        { name: 'd/.wh..wh..opq', content: '' },
        { name: 'd/.cvmfscatalog', content: '' },
      ],
    ]);
    const names = await allNames(flat);
    assert.deepEqual(
      names.filter((name) => /(^|\/)\.wh\./.test(name)),
      [],
    );
    assert.ok(!names.includes('.cvmfsdirtab'));
    assert.ok(!names.includes('d/.cvmfscatalog'));
    assert.ok(names.includes('.cvmfscatalog'), 'only the publisher writes its own catalog marker');
  });
});

describe('hard links into lower layers', () => {
  it('external-hardlink-resolved-in-flat-dir: a link to a lower-layer file shares its inode in the flat tree and is a placeholder in its layer', async (t) => {
    const a = await arena(t);
    const { flat, dirs } = await flatten(a, [
      [
        { name: 'usr/bin/perl', content: 'perl', mode: 0o755 },
        { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
      ],
      [
        { name: 'usr/bin/perl5', type: 'link', linkname: 'usr/bin/perl' },
        { name: 'usr/bin/via-symlink', type: 'link', linkname: 'bin/perl' },
      ],
    ]);
    assert.equal((await lstat(join(dirs[1]!, 'usr/bin/perl5'))).size, 0);
    const perl = await lstat(join(flat, 'usr/bin/perl'));
    assert.equal((await lstat(join(flat, 'usr/bin/perl5'))).ino, perl.ino);
    assert.equal((await lstat(join(flat, 'usr/bin/via-symlink'))).ino, perl.ino);
    assert.equal(await readFile(join(flat, 'usr/bin/perl5'), 'utf8'), 'perl');
  });

  for (const linkname of ['abs/secret', 'rel/secret', 'abs/sub/file']) {
    it(`external-hardlink-through-escaping-symlink: '${linkname}' through a lower symlink to the host fails the image and links no host file`, async (t) => {
      const a = await arena(t);
      const before = await a.outsideState();
      await assert.rejects(
        flatten(a, [
          [
            { name: 'abs', type: 'symlink', linkname: a.outside },
            { name: 'rel', type: 'symlink', linkname: '../outside' },
          ],
          [{ name: 'h', type: 'link', linkname }],
        ]),
        { code: 'BOT_ERR_UNSAFE_ENTRY', message: new RegExp(`^layer 2, entry 'h': hard link to '${linkname}', which no layer of the image holds`) },
      );
      assert.equal(await a.outsideState(), before, 'no host file gained a link');
    });
  }

  it('hardlink-to-device-node: a hard link to a device node of its layer is not created either (with a warning), and the image flattens', async (t) => {
    const a = await arena(t);
    const dir = await extraTarget(a, 1);
    const result = await extractInto(
      a,
      await buildTar([
        { name: 'dev/', type: 'directory' },
        { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 },
        { name: 'dev/null2', type: 'link', linkname: 'dev/null' },
      ]),
      undefined,
      dir,
    );
    assert.deepEqual(await readdir(join(dir, 'dev')), []);
    assert.deepEqual(result.externalHardlinks, []);
    assert.match(result.warnings.at(-1)!, /entry 'dev\/null2': hard link to 'dev\/null', which was not created, not created either/);
    await FlatTree.build([{ dir, externalHardlinks: result.externalHardlinks, implicitDirectories: result.implicitDirectories ?? [] }]);
  });

  it('external-hardlink-to-escaping-symlink: a hard link to a lower symlink pointing at the host is that symlink, never the host file', async (t) => {
    const a = await arena(t);
    const before = await a.outsideState();
    const { flat } = await flatten(a, [
      [{ name: 'file-link', type: 'symlink', linkname: `${a.outside}/secret` }],
      [{ name: 'h', type: 'link', linkname: 'file-link' }],
    ]);
    assert.equal(await a.outsideState(), before, 'no host file gained a link');
    assert.equal(await readlink(join(flat, 'h')), `${a.outside}/secret`);
  });
});
