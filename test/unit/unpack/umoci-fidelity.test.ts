/**
 * Layers unpacked one by one into their own `layerfs` (DUCC's layout), flattened and published by the
 * directory publisher, against `umoci unpack` of the same image: the flat tree must be the rootfs umoci
 * makes, entry by entry, with the same regular files sharing an inode; an image umoci refuses is refused
 * too, naming the layer and the entry. Flat trees are built both ways the publishers ask for (file
 * metadata read, or files handed over as links).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildTar, type TarEntrySpec } from '../../support/build-tar.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { snapshotTree } from '../../support/tree-snapshot.ts';
import { assertSameTree, hardLinkGroups, umociUnpack } from '../../support/umoci-oracle.ts';
import { extractLayer } from '../../../src/unpack/extract-layer.ts';
import { FlatTree, type FlatLayerInput } from '../../../src/unpack/flatten.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';

/** Where a layer is unpacked: `.layers/<xx>/<digest>/layerfs`, as the publishers lay it out (errors name the digest). */
function layerLabel(tar: Buffer): string {
  return `layer sha256:${createHash('sha256').update(tar).digest('hex')}`;
}

/** Our flat trees of these layers (base first): read with file metadata, and with files as links. */
async function duccFlat(t: TestContext, layers: Buffer[]): Promise<string[]> {
  const base = await tempDir(t);
  const inputs: FlatLayerInput[] = [];
  for (const [index, tar] of layers.entries()) {
    const hex = layerLabel(tar).slice('layer sha256:'.length);
    const dir = join(base, '.layers', hex.slice(0, 2), `${hex}-${index}`, 'layerfs');
    await mkdir(dir, { recursive: true });
    const result = await extractLayer(Readable.from([tar]), dir, { label: layerLabel(tar) });
    inputs.push({ dir, label: layerLabel(tar), externalHardlinks: result.externalHardlinks, implicitDirectories: result.implicitDirectories ?? [] });
  }
  const publisher = new DirectoryPublisher({ root: join(base, 'repo'), repository: 'r', sync: false });
  await publisher.recover();
  const flats: string[] = [];
  for (const fileMetadata of [true, false]) {
    const relDir = `.flat/00/${fileMetadata ? 'with-metadata' : 'linked'}`;
    await publisher.publishTree(relDir, (await FlatTree.build(inputs, { fileMetadata })).entries());
    flats.push(join(base, 'repo', 'r', relDir));
  }
  return flats;
}

/** The layers give the rootfs umoci gives, with the same hard-link groups; returns our (first) flat tree. */
async function assertLikeUmoci(t: TestContext, layerEntries: TarEntrySpec[][] | Buffer[]): Promise<string> {
  const layers = Buffer.isBuffer(layerEntries[0]) ? (layerEntries as Buffer[]) : await Promise.all((layerEntries as TarEntrySpec[][]).map((e) => buildTar(e)));
  const oracle = await umociUnpack(t, layers);
  const expected = await snapshotTree(oracle);
  const expectedGroups = await hardLinkGroups(oracle);
  const flats = await duccFlat(t, layers);
  for (const flat of flats) {
    assertSameTree(await snapshotTree(flat), expected, /^\.cvmfscatalog$/);
    assert.deepEqual(await hardLinkGroups(flat), expectedGroups, 'hard-link groups differ from umoci unpack');
  }
  return flats[0]!;
}

/** umoci refuses the image, and so do we: the error names the layer (by digest) and the entry. */
async function assertRefusedLikeUmoci(t: TestContext, layerEntries: TarEntrySpec[][], entry: RegExp): Promise<void> {
  const layers = await Promise.all(layerEntries.map((e) => buildTar(e)));
  await assert.rejects(umociUnpack(t, layers), /umoci unpack failed/);
  await assert.rejects(duccFlat(t, layers), (error: Error & { code?: string }) => {
    assert.match(error.message, /^layer sha256:[0-9a-f]{64}, (entry|entries below) '/);
    assert.match(error.message, entry);
    assert.equal(error.code, 'BOT_ERR_UNSAFE_ENTRY');
    return true;
  });
}

describe('like umoci unpack', () => {
  it('data after the end-of-archive marker is not read as entries (and the layer is accepted)', async (t) => {
    const main = await buildTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hostname', content: 'box' },
    ]);
    const concatenated = Buffer.concat([main, await buildTar([{ name: 'evil', content: 'appended archive' }])]);
    const garbage = Buffer.concat([main, Buffer.from('trailing bytes that are no tar header '.repeat(40))]);
    for (const tar of [concatenated, garbage]) await assertLikeUmoci(t, [tar]);
  });

  for (const [root, what] of [
    [{ name: '.', type: 'symlink', linkname: '/tmp' }, 'a symlink'],
    [{ name: './', content: 'a file' }, 'a regular file'],
    [{ name: '.', type: 'link', linkname: 'a' }, 'a hard link'],
  ] as [TarEntrySpec, string][]) {
    it(`a root entry '${root.name}' that is ${what} fails the image (in the base layer and in a later one)`, async (t) => {
      await assertRefusedLikeUmoci(t, [[{ name: 'a', content: 'a' }, root]], new RegExp(`named like the layer root`));
      await assertRefusedLikeUmoci(t, [[{ name: 'a', content: 'a' }], [root]], new RegExp(`${what} named like the layer root`));
    });
  }

  it("'/' as a symlink in a later layer fails the image", async (t) => {
    await assertRefusedLikeUmoci(
      t,
      [[{ name: 'a', content: 'a' }], [{ name: '/', type: 'symlink', linkname: '/tmp' }]],
      /entry '\/': a symlink named like the layer root/,
    );
  });

  it('a hard link into a lower layer, then a regular file of that name in the same layer: the file wins', async (t) => {
    const flat = await assertLikeUmoci(t, [
      [{ name: 'a', content: 'lower' }],
      [
        { name: 'b', type: 'link', linkname: 'a' },
        { name: 'b', content: 'upper' },
      ],
    ]);
    assert.equal(await readFile(join(flat, 'b'), 'utf8'), 'upper');
  });

  it('a hard link into a lower layer replaced by a directory, or removed with its parent, links nothing', async (t) => {
    await assertLikeUmoci(t, [
      [
        { name: 'a', content: 'lower' },
        { name: 't/', type: 'directory' },
        { name: 't/b', content: 'other' },
      ],
      [
        { name: 'b', type: 'link', linkname: 'a' },
        { name: 'b/', type: 'directory' },
        { name: 'b/x', content: 'x' },
        { name: 'd/b', type: 'link', linkname: 'a' },
        // d (with the placeholder d/b) replaced by a symlink to t: t/b must stay the lower file.
        { name: 'd', type: 'symlink', linkname: 't' },
      ],
    ]);
  });

  it('a hard link to a hard link into a lower layer shares the lower file too', async (t) => {
    await assertLikeUmoci(t, [
      [{ name: 'usr/bin/perl', content: 'perl', mode: 0o755 }],
      [
        { name: 'usr/bin/perl5', type: 'link', linkname: 'usr/bin/perl' },
        { name: 'usr/bin/perl5.36', type: 'link', linkname: 'usr/bin/perl5' },
        { name: 'usr/local/bin/perl', type: 'link', linkname: '/usr/bin/perl5.36' },
      ],
    ]);
  });

  for (const [what, lower, linkname] of [
    ['an absolute target outside the image', [{ name: 'etc/passwd', content: 'root' }], '/root/.ssh/id_rsa'],
    ['a target reached through a symlink out of the image', [{ name: 'host', type: 'symlink', linkname: '/var/lib/host-secrets' }], 'host/secret'],
    ['a target reached through a relative symlink', [{ name: 'up', type: 'symlink', linkname: '../../..' }], 'up/etc/shadow'],
    ['a name no layer has', [{ name: 'a', content: 'a' }], 'usr/bin/nothere'],
  ] as [string, TarEntrySpec[], string][]) {
    it(`a hard link to ${what} fails the image, naming the layer and the entry`, async (t) => {
      const escaped = linkname.replace(/^\//, '').replace(/[./]/g, (c) => `\\${c}`);
      await assertRefusedLikeUmoci(
        t,
        [
          lower,
          [
            { name: 'bin/', type: 'directory' },
            { name: 'bin/tool', type: 'link', linkname },
          ],
        ],
        new RegExp(`entry 'bin/tool': hard link to '${escaped}', which no layer of the image holds`),
      );
    });
  }

  it('a hard link to a lower-layer symlink links the symlink itself (link(2) does not follow it)', async (t) => {
    await assertLikeUmoci(t, [[{ name: 's', type: 'symlink', linkname: '/etc/passwd' }], [{ name: 'h', type: 'link', linkname: 's' }]]);
  });

  describe('entries below a name that is a symlink in a lower layer, without a directory entry of their own', () => {
    const mergedUsrBase: TarEntrySpec[] = [
      { name: 'usr/', type: 'directory' },
      { name: 'usr/lib/', type: 'directory' },
      { name: 'usr/lib/x86_64-linux-gnu/', type: 'directory' },
      { name: 'usr/lib/x86_64-linux-gnu/libc.so.6', content: 'libc', mode: 0o755 },
      { name: 'usr/lib/os-release', content: 'debian' },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
      { name: 'lib64', type: 'symlink', linkname: '/usr/lib64' },
      { name: 'usr/lib64', type: 'symlink', linkname: 'lib' },
    ];

    it('merged /usr: files land through the symlink (lib stays a symlink), hard links included', async (t) => {
      const flat = await assertLikeUmoci(t, [
        mergedUsrBase,
        [
          { name: 'lib/x86_64-linux-gnu/libextra.so.1', content: 'extra', mode: 0o755 },
          { name: 'lib/x86_64-linux-gnu/libextra.so', type: 'link', linkname: 'lib/x86_64-linux-gnu/libextra.so.1' },
          { name: 'lib/x86_64-linux-gnu/libc.so', type: 'link', linkname: 'usr/lib/x86_64-linux-gnu/libc.so.6' },
          { name: 'lib64/ld-linux-x86-64.so.2', content: 'ld', mode: 0o755 },
        ],
      ]);
      assert.equal(await readlink(join(flat, 'lib')), 'usr/lib');
      assert.equal(await readFile(join(flat, 'usr/lib/x86_64-linux-gnu/libextra.so.1'), 'utf8'), 'extra');
      assert.equal(await readFile(join(flat, 'usr/lib/ld-linux-x86-64.so.2'), 'utf8'), 'ld');
    });

    it('whiteouts and opaque markers apply through the symlink, to lower layers only', async (t) => {
      await assertLikeUmoci(t, [
        [
          ...mergedUsrBase,
          { name: 'etc/', type: 'directory' },
          { name: 'etc/x', content: 'x' },
          { name: 'etc/y', content: 'y' },
          { name: 'localetc', type: 'symlink', linkname: 'etc' },
          { name: 'opt/', type: 'directory' },
          { name: 'opt/old', content: 'old' },
          { name: 'optlink', type: 'symlink', linkname: '/opt' },
        ],
        [
          { name: 'localetc/.wh.x', content: '' },
          { name: 'lib/.wh.os-release', content: '' },
          { name: 'lib/x86_64-linux-gnu/.wh..wh..opq', content: '' },
          { name: 'lib/x86_64-linux-gnu/libnew.so', content: 'new' },
          // Added by this layer under its real name, whited out through the link: it stays.
          { name: 'opt/new', content: 'new' },
          { name: 'optlink/.wh.new', content: '' },
          { name: 'optlink/.wh.old', content: '' },
        ],
      ]);
    });

    it('a symlink out of the image (dangling inside it): whiteouts find nothing, files create the directories inside the image', async (t) => {
      const flat = await assertLikeUmoci(t, [
        [
          { name: 'hello', content: 'stays' },
          { name: 'lv', type: 'symlink', linkname: '/elsewhere' },
          { name: 'deep', type: 'symlink', linkname: '../../elsewhere/deeper/still' },
        ],
        [
          { name: 'lv/.wh.hello', content: '' },
          { name: 'lv/sub/.wh.hello', content: '' },
          { name: 'deep/file', content: 'f' },
        ],
      ]);
      assert.equal(await readFile(join(flat, 'elsewhere/deeper/still/file'), 'utf8'), 'f');
    });

    it('a directory of its own replaces the symlink; a directory holding only whiteouts is not created', async (t) => {
      await assertLikeUmoci(t, [
        [...mergedUsrBase, { name: 'x', content: 'x' }],
        [
          { name: 'lib/', type: 'directory', mode: 0o750 },
          { name: 'lib/own', content: 'own' },
          { name: 'nowhere/.wh.x', content: '' },
          { name: 'nowhere/deeper/.wh.x', content: '' },
        ],
      ]);
    });

    it('a symlink loop, or a symlink to a file, below which entries are placed fails the image', async (t) => {
      await assertRefusedLikeUmoci(t, [[{ name: 'loop', type: 'symlink', linkname: 'loop' }], [{ name: 'loop/x', content: 'x' }]], /'loop'/);
      await assertRefusedLikeUmoci(
        t,
        [
          [
            { name: 'f', content: 'file' },
            { name: 'l', type: 'symlink', linkname: 'f' },
          ],
          [{ name: 'l/x', content: 'x' }],
        ],
        /'l'.*not a directory/,
      );
    });
  });
});
