/**
 * Hostile layer archives against extractLayer. Each test is named after the risk it covers and checks
 * that nothing outside the target changed (names, modes, owners, times, link counts, content), plus what
 * the target must look like. Archives are built here in code (tar-stream's packer, or raw records for
 * what it cannot write).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildTar, DEFAULT_MTIME, type TarEntrySpec } from '../../support/build-tar.ts';
import { arena, extractInto, type Arena } from './arena.ts';
import { endOfArchive, gnuLongNameEntry, paxHeader, rawData, rawHeader } from './raw-tar.ts';
import type { TestContext } from 'node:test';

const IS_ROOT = process.getuid?.() === 0;

async function hostile(t: TestContext, entries: TarEntrySpec[] | Buffer) {
  const a = await arena(t);
  const before = await a.outsideState();
  const tar = Buffer.isBuffer(entries) ? entries : await buildTar(entries);
  return { a, before, tar };
}

async function assertOutsideUntouched(a: Arena, before: string): Promise<void> {
  assert.equal(await a.outsideState(), before, 'something outside the target changed');
}

const rejected = (re: RegExp, code = 'BOT_ERR_UNSAFE_ENTRY') => ({ code, message: re });

describe('entry names', () => {
  for (const name of ['a/../../outside/new', '../outside/new', '/../outside/new', './../outside/new', 'a/b/../../../outside/new']) {
    it(`name-escape-dotdot: '${name}' is rejected and names the layer and entry`, async (t) => {
      const { a, before, tar } = await hostile(t, [
        { name: 'a/', type: 'directory' },
        { name, content: 'x' },
      ]);
      await assert.rejects(extractInto(a, tar), rejected(/layer sha256:feed, entry '.*outside\/new'.*'\.\.'/));
      await assertOutsideUntouched(a, before);
    });
  }

  it('name-leading-slash-stripped: an absolute name (or several slashes, node-tar CVE-2021-32804) lands inside the target', async (t) => {
    const { a, before } = await hostile(t, []);
    const absolute = join(a.outside, 'secret');
    await extractInto(
      a,
      await buildTar([
        { name: absolute, content: 'inside' },
        { name: `//${a.outside}//sub/file`, content: 'y' },
      ]),
    );
    assert.equal(await readFile(join(a.target, absolute), 'utf8'), 'inside');
    assert.equal(await readFile(join(a.target, a.outside, 'sub/file'), 'utf8'), 'y');
    await assertOutsideUntouched(a, before);
  });

  it('pax-path-checked-after-folding: a PAX path with .. wins over a harmless ustar name and is rejected', async (t) => {
    const { a, before, tar } = await hostile(t, [{ name: 'harmless', content: 'x', pax: { path: '../outside/pax-escape' } }]);
    await assert.rejects(extractInto(a, tar), rejected(/entry '\.\.\/outside\/pax-escape'.*'\.\.'/));
    await assertOutsideUntouched(a, before);
  });

  it('pax-long-name-honoured: a >100-byte name packed as PAX is extracted under its full name', async (t) => {
    const longName = `dir/${'n'.repeat(150)}`;
    const { a, tar } = await hostile(t, [{ name: longName, content: 'long' }]);
    await extractInto(a, tar);
    assert.equal(await readFile(join(a.target, longName), 'utf8'), 'long');
  });

  it('gnu-long-name-checked-after-folding: a GNU long name that climbs out is rejected', async (t) => {
    const longName = `${'a/'.repeat(60)}${'../'.repeat(61)}outside/gnu-escape`;
    const tar = Buffer.concat([gnuLongNameEntry(longName, { name: 'innocent', typeflag: '0' }, Buffer.from('x')), endOfArchive()]);
    const { a, before } = await hostile(t, tar);
    await assert.rejects(extractInto(a, tar), rejected(/'\.\.'/));
    await assertOutsideUntouched(a, before);
  });

  it('gnu-long-name-honoured: a benign GNU long name (and long link) is used in full', async (t) => {
    const longName = `deep/${'x'.repeat(120)}`;
    const longLink = `/${'y'.repeat(140)}`;
    const tar = Buffer.concat([
      gnuLongNameEntry(longName, { name: 'truncated', typeflag: '0' }, Buffer.from('content')),
      gnuLongNameEntry(`${longName}-link`, { name: 'truncated2', typeflag: '2', linkname: longLink }),
      endOfArchive(),
    ]);
    const { a } = await hostile(t, tar);
    await extractInto(a, tar);
    assert.equal(await readFile(join(a.target, longName), 'utf8'), 'content');
    assert.equal(await readlink(join(a.target, `${longName}-link`)), longLink);
    assert.deepEqual(await readdir(a.target), ['deep']);
  });

  it('name-nul-byte: a NUL in a (PAX) name or link target is rejected', async (t) => {
    const { a, before, tar } = await hostile(t, [{ name: 'x', content: 'x', pax: { path: 'ok\0../../outside/nul' } }]);
    await assert.rejects(extractInto(a, tar), rejected(/NUL/));
    const second = await hostile(t, [{ name: 'l', type: 'symlink', linkname: 'x', pax: { linkpath: 'target\0more' } }]);
    await assert.rejects(extractInto(second.a, second.tar), rejected(/NUL/));
    await assertOutsideUntouched(a, before);
  });
});

describe('symlinks', () => {
  it('escape-via-symlink-parent: link/x with link -> <outside> (absolute) or ../outside lands inside', async (t) => {
    const { a, before } = await hostile(t, []);
    await extractInto(
      a,
      await buildTar([
        { name: 'abs', type: 'symlink', linkname: a.outside },
        { name: 'abs/pwned', content: 'abs' },
        { name: 'rel', type: 'symlink', linkname: '../outside' },
        { name: 'rel/pwned', content: 'rel' },
        { name: 'up', type: 'symlink', linkname: '../../../../../..' },
        { name: 'up/outside/pwned-up', content: 'up' },
      ]),
    );
    await assertOutsideUntouched(a, before);
    assert.equal(await readlink(join(a.target, 'abs')), a.outside, 'symlink targets are stored verbatim');
    assert.equal(await readFile(join(a.target, a.outside, 'pwned'), 'utf8'), 'abs');
    assert.equal(await readFile(join(a.target, 'outside/pwned'), 'utf8'), 'rel');
    assert.equal(await readFile(join(a.target, 'outside/pwned-up'), 'utf8'), 'up');
  });

  it('escape-via-symlink-chain: links to links to outside are all resolved inside', async (t) => {
    const { a, before, tar } = await hostile(t, [
      { name: 'one', type: 'symlink', linkname: 'two/..' },
      { name: 'two', type: 'symlink', linkname: '/..' },
      { name: 'three', type: 'symlink', linkname: 'one/../outside' },
      { name: 'three/pwned', content: 'x' },
    ]);
    await extractInto(a, tar);
    await assertOutsideUntouched(a, before);
    assert.equal(await readFile(join(a.target, 'outside/pwned'), 'utf8'), 'x');
  });

  it('dir-cache-invalidated-when-replaced-by-symlink: a directory known from earlier entries, then replaced by a symlink, is not trusted (node-tar CVE-2021-32803)', async (t) => {
    const { a, before } = await hostile(t, []);
    await extractInto(
      a,
      await buildTar([
        { name: 'd/', type: 'directory' },
        { name: 'd/x', content: 'x' },
        { name: 'd', type: 'symlink', linkname: a.outside },
        { name: 'd/y', content: 'y' },
        { name: 'e/f/', type: 'directory' },
        { name: 'e/f/x', content: 'x' },
        { name: 'e', type: 'symlink', linkname: '../outside' },
        { name: 'e/f/y', content: 'y' },
        // Known from its own entry alone (no entry below it yet), then replaced.
        { name: 'g/', type: 'directory' },
        { name: 'g', type: 'symlink', linkname: '../outside/g' },
        { name: 'g/z', content: 'z' },
      ]),
    );
    await assertOutsideUntouched(a, before);
    assert.equal(await readFile(join(a.target, a.outside, 'y'), 'utf8'), 'y');
    assert.equal(await readFile(join(a.target, 'outside/f/y'), 'utf8'), 'y');
    assert.equal(await readFile(join(a.target, 'outside/g/z'), 'utf8'), 'z');
  });

  it('whiteout-through-symlink-in-same-layer: a whiteout below a symlink of its own layer is written inside', async (t) => {
    const { a, before, tar } = await hostile(t, [
      { name: 'lnk', type: 'symlink', linkname: '../outside' },
      { name: 'lnk/.wh.secret', content: '' },
    ]);
    await extractInto(a, tar);
    await assertOutsideUntouched(a, before);
    assert.ok((await lstat(join(a.target, 'outside/.wh.secret'))).isFile());
  });

  it('symlink-loop-bounded: a loop fails with a clear error instead of spinning', async (t) => {
    const { a, before, tar } = await hostile(t, [
      { name: 'a', type: 'symlink', linkname: 'b' },
      { name: 'b', type: 'symlink', linkname: 'a' },
      { name: 'a/x', content: 'x' },
    ]);
    await assert.rejects(extractInto(a, tar), rejected(/too many symlinks/));
    await assertOutsideUntouched(a, before);
  });

  it('file-over-symlink-not-written-through: an existing symlink is replaced, its target untouched', async (t) => {
    const { a, before } = await hostile(t, []);
    await extractInto(
      a,
      await buildTar([
        { name: 'victim', type: 'symlink', linkname: join(a.outside, 'secret') },
        { name: 'victim', content: 'new', mode: 0o4755 },
        { name: 'rel', type: 'symlink', linkname: '../outside/secret' },
        { name: 'rel', type: 'link', linkname: 'victim' },
      ]),
    );
    await assertOutsideUntouched(a, before);
    assert.equal(await readFile(join(a.target, 'victim'), 'utf8'), 'new');
    assert.equal((await lstat(join(a.target, 'rel'))).ino, (await lstat(join(a.target, 'victim'))).ino);
  });

  it('file-over-hardlink-not-written-through: replacing one name of a hard-linked pair keeps the other', async (t) => {
    const { a, tar } = await hostile(t, [
      { name: 'original', content: 'original' },
      { name: 'alias', type: 'link', linkname: 'original' },
      { name: 'alias', content: 'replaced' },
    ]);
    await extractInto(a, tar);
    assert.equal(await readFile(join(a.target, 'original'), 'utf8'), 'original');
    assert.equal(await readFile(join(a.target, 'alias'), 'utf8'), 'replaced');
  });

  it('directory-over-symlink-replaces-link: a directory entry never chmods the link target', async (t) => {
    const { a, before } = await hostile(t, []);
    await extractInto(
      a,
      await buildTar([
        { name: 'd', type: 'symlink', linkname: a.outside },
        { name: 'd/', type: 'directory', mode: 0o700, uid: 4242, gid: 4242 },
        { name: 'r', type: 'symlink', linkname: '../outside/sub' },
        { name: 'r/', type: 'directory', mode: 0o777 },
      ]),
    );
    await assertOutsideUntouched(a, before);
    assert.ok((await lstat(join(a.target, 'd'))).isDirectory());
    assert.equal((await lstat(join(a.target, 'd'))).mode & 0o7777, 0o700);
    assert.ok((await lstat(join(a.target, 'r'))).isDirectory());
  });

  it('directory-metadata-not-applied-through-later-symlink: a directory replaced by a symlink is not chmod/chown/utimes-ed at the end', async (t) => {
    const { a, before } = await hostile(t, []);
    await extractInto(
      a,
      await buildTar([
        { name: 'd/', type: 'directory', mode: 0o777, uid: 4242, gid: 4242 },
        { name: 'd', type: 'symlink', linkname: a.outside },
        { name: 'e/', type: 'directory', mode: 0o700 },
        { name: 'e/sub/', type: 'directory', mode: 0o777, uid: 4242, gid: 4242 },
        { name: 'e', type: 'symlink', linkname: '../outside' },
      ]),
    );
    await assertOutsideUntouched(a, before);
    assert.equal(await readlink(join(a.target, 'd')), a.outside);
    assert.equal(await readlink(join(a.target, 'e')), '../outside');
  });

  it('directory-metadata-not-applied-through-replaced-parent: a parent swapped for a symlink after its child was recorded', async (t) => {
    const { a, before } = await hostile(t, []);
    await extractInto(
      a,
      await buildTar([
        { name: 'p/', type: 'directory' },
        { name: 'p/sub/', type: 'directory', mode: 0o777, uid: 4242, gid: 4242 },
        { name: 'p', type: 'symlink', linkname: a.outside },
        // recreate the recorded path through the symlink's re-rooted target: still inside
        { name: 'q/', type: 'directory' },
        { name: 'q/sub/', type: 'directory', mode: 0o700 },
        { name: 'q', content: 'now a file' },
      ]),
    );
    await assertOutsideUntouched(a, before);
    assert.equal((await lstat(join(a.target, 'q'))).isFile(), true);
  });
});

describe('hard links', () => {
  it('hardlink-escape-dotdot: a hard link target with .. is rejected', async (t) => {
    const { a, before, tar } = await hostile(t, [{ name: 'h', type: 'link', linkname: '../outside/secret' }]);
    await assert.rejects(extractInto(a, tar), rejected(/hard link target.*'\.\.'/));
    await assertOutsideUntouched(a, before);
  });

  it('hardlink-pax-linkpath-checked: a PAX linkpath that climbs out is rejected', async (t) => {
    const { a, before, tar } = await hostile(t, [{ name: 'h', type: 'link', linkname: 'harmless', pax: { linkpath: 'x/../../outside/secret' } }]);
    await assert.rejects(extractInto(a, tar), rejected(/hard link target/));
    await assertOutsideUntouched(a, before);
  });

  it('hardlink-absolute-is-root-relative: /<outside>/secret names a path inside the layer, not the host file', async (t) => {
    const { a, before } = await hostile(t, []);
    const result = await extractInto(a, await buildTar([{ name: 'h', type: 'link', linkname: join(a.outside, 'secret') }]));
    await assertOutsideUntouched(a, before);
    assert.equal((await lstat(join(a.target, 'h'))).size, 0, 'kept as an empty placeholder for a lower layer');
    assert.deepEqual(result.externalHardlinks, [{ path: 'h', target: join(a.outside, 'secret').slice(1) }]);
  });

  it('hardlink-via-symlink-parent: lnk -> <outside>; h -> lnk/secret never links the host file', async (t) => {
    const { a, before } = await hostile(t, []);
    await extractInto(
      a,
      await buildTar([
        { name: 'lnk', type: 'symlink', linkname: a.outside },
        { name: 'rel', type: 'symlink', linkname: '../outside' },
        { name: 'h1', type: 'link', linkname: 'lnk/secret' },
        { name: 'h2', type: 'link', linkname: 'rel/secret' },
      ]),
    );
    await assertOutsideUntouched(a, before);
    const secret = await stat(join(a.outside, 'secret'));
    for (const name of ['h1', 'h2']) assert.notEqual((await lstat(join(a.target, name))).ino, secret.ino);
  });

  it('hardlink-to-symlink-not-followed: a hard link to a symlink links the symlink itself', async (t) => {
    const { a, before } = await hostile(t, []);
    await extractInto(
      a,
      await buildTar([
        { name: 's', type: 'symlink', linkname: join(a.outside, 'secret') },
        { name: 'h', type: 'link', linkname: 's' },
      ]),
    );
    await assertOutsideUntouched(a, before);
    assert.ok((await lstat(join(a.target, 'h'))).isSymbolicLink());
  });

  it('hardlink-to-directory-or-root rejected', async (t) => {
    const first = await hostile(t, [
      { name: 'd/', type: 'directory' },
      { name: 'h', type: 'link', linkname: 'd' },
    ]);
    await assert.rejects(extractInto(first.a, first.tar), rejected(/hard link to a directory/));
    const second = await hostile(t, [{ name: 'h', type: 'link', linkname: './' }]);
    await assert.rejects(extractInto(second.a, second.tar), rejected(/layer root/));
  });
});

describe('the layer root', () => {
  for (const [entry, what] of [
    [{ name: '.', type: 'symlink', linkname: '/outside' }, 'a symlink'],
    [{ name: './', type: 'symlink', linkname: '../outside' }, 'a symlink'],
    [{ name: '/', content: 'file over the root' }, 'a regular file'],
    [{ name: './', type: 'link', linkname: 'keep' }, 'a hard link'],
    [{ name: '.', type: 'fifo' }, 'a fifo'],
  ] as [TarEntrySpec, string][]) {
    it(`root-stays-a-directory: '${entry.name}' as ${what} fails the layer, naming the entry`, async (t) => {
      const { a, before, tar } = await hostile(t, [{ name: 'keep', content: 'k' }, entry, { name: 'after', content: 'a' }]);
      const name = entry.name.replace('.', '\\.');
      await assert.rejects(extractInto(a, tar), rejected(new RegExp(`layer sha256:feed, entry '${name}': ${what} named like the layer root`)));
      await assertOutsideUntouched(a, before);
      assert.ok((await lstat(a.target)).isDirectory());
    });
  }

  it('root-metadata-applies-to-target-only: a ./ directory entry sets the target mode, not the parent', async (t) => {
    const { a, before, tar } = await hostile(t, [{ name: './', type: 'directory', mode: 0o750 }]);
    await extractInto(a, tar);
    await assertOutsideUntouched(a, before);
    assert.equal((await lstat(a.target)).mode & 0o7777, 0o750);
  });
});

describe('special files and metadata', () => {
  it('no-device-or-fifo: character, block devices and FIFOs are never created', async (t) => {
    const { a, tar } = await hostile(t, [
      { name: 'dev/', type: 'directory' },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 },
      { name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1 },
      { name: 'dev/pipe', type: 'fifo' },
    ]);
    const result = await extractInto(a, tar);
    assert.deepEqual(await readdir(join(a.target, 'dev')), []);
    assert.equal(result.warnings.length, 3);
  });

  it('xattrs-never-applied: SCHILY.xattr security.*, trusted.* and user.* records are ignored', async (t) => {
    const { a, tar } = await hostile(t, [
      {
        name: 'bin/ping',
        content: 'ping',
        mode: 0o755,
        pax: {
          'SCHILY.xattr.security.capability': '\u0001\u0000\u0000\u0002\u0000\u0020\u0000\u0000',
          'SCHILY.xattr.trusted.overlay.opaque': 'y',
          'SCHILY.xattr.user.note': 'hello',
        },
      },
    ]);
    await extractInto(a, tar);
    assert.equal(await readFile(join(a.target, 'bin/ping'), 'utf8'), 'ping');
    let listed: string;
    try {
      listed = execFileSync('python3', ['-c', 'import os,sys; print(",".join(os.listxattr(sys.argv[1])))', join(a.target, 'bin/ping')], {
        encoding: 'utf8',
      }).trim();
    } catch {
      t.skip('python3 is not available to list xattrs');
      return;
    }
    assert.equal(listed, '');
  });

  it('setuid-setgid-sticky-kept and mtimes applied (policy: consumers mount nosuid)', async (t) => {
    const { a, tar } = await hostile(t, [
      { name: 'su', content: 'su', mode: 0o4755 },
      { name: 'sg/', type: 'directory', mode: 0o2775 },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
    ]);
    await extractInto(a, tar);
    assert.equal((await lstat(join(a.target, 'su'))).mode & 0o7777, 0o4755);
    assert.equal((await lstat(join(a.target, 'sg'))).mode & 0o7777, 0o2775);
    assert.equal((await lstat(join(a.target, 'tmp'))).mode & 0o7777, 0o1777);
    assert.equal((await lstat(join(a.target, 'su'))).mtime.getTime(), DEFAULT_MTIME.getTime());
  });

  it('ownership-applied-only-as-root: tar uid/gid are applied with lchown/fchown when running as root', { skip: !IS_ROOT }, async (t) => {
    const { a, tar } = await hostile(t, [
      { name: 'owned', content: 'x', uid: 1234, gid: 5678 },
      { name: 'link', type: 'symlink', linkname: 'owned', uid: 4321, gid: 8765 },
    ]);
    await extractInto(a, tar);
    const file = await lstat(join(a.target, 'owned'));
    assert.deepEqual([file.uid, file.gid], [1234, 5678]);
    const link = await lstat(join(a.target, 'link'));
    assert.deepEqual([link.uid, link.gid], [4321, 8765]);
  });
});

describe('malformed archives', () => {
  it('corrupt-header-names-layer: a header with a bad checksum is a clear archive error', async (t) => {
    const header = rawHeader({ name: 'file', typeflag: '0', size: 4 });
    header[0] = 'g'.charCodeAt(0); // checksum no longer matches
    const tar = Buffer.concat([header, rawData(Buffer.from('data')), endOfArchive()]);
    const { a } = await hostile(t, tar);
    await assert.rejects(extractInto(a, tar), { code: 'BOT_ERR_ARCHIVE', message: /layer sha256:feed: .*(invalid|corrupt)/i });
  });

  it('directory-with-size-does-not-stall: a directory header that claims content is unpacked and the next entry follows', async (t) => {
    // With tar-stream's extractor such an entry's content stream never ended, and the layer hung.
    const tar = Buffer.concat([
      rawHeader({ name: 'dir/', typeflag: '5', size: 100 }),
      rawHeader({ name: 'dir/file', typeflag: '0', size: 4 }),
      rawData(Buffer.from('data')),
      endOfArchive(),
    ]);
    const { a } = await hostile(t, tar);
    await extractInto(a, tar);
    assert.equal(await readFile(join(a.target, 'dir/file'), 'utf8'), 'data');
  });

  it('gnu-sparse-refused: a GNU sparse 1.0 file (10,000,000-entry map, 1 TiB declared) fails the layer at its header, naming it', async (t) => {
    const { a, before } = await hostile(t, []);
    const entries = 10_000_000;
    // The map is `<count>\n` then `<offset>\n<size>\n` per entry (~180 MB), padded to a block; no data follows.
    const mapBytes = (() => {
      let bytes = `${entries}\n`.length;
      for (let i = 0; i < entries; i++) bytes += `${i * 110_000}\n1\n`.length;
      return bytes + ((512 - (bytes % 512)) % 512);
    })();
    let pulled = 0;
    async function* archive(): AsyncGenerator<Buffer> {
      yield paxHeader({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'var/huge.img', 'GNU.sparse.realsize': String(1024 ** 4) });
      yield rawHeader({ name: './GNUSparseFile.0/huge.img', typeflag: '0', size: mapBytes });
      let chunk = `${entries}\n`;
      for (let i = 0; i < entries; i++) {
        chunk += `${i * 110_000}\n1\n`;
        if (chunk.length >= 65_536) {
          pulled += chunk.length;
          yield Buffer.from(chunk);
          chunk = '';
        }
      }
      yield Buffer.from(chunk.padEnd(chunk.length + ((512 - ((mapBytes - chunk.length) % 512)) % 512), '\0'));
      yield endOfArchive();
    }
    await assert.rejects(
      extractInto(a, Readable.from(archive())),
      rejected(/layer sha256:feed, entry 'var\/huge\.img': a GNU sparse file; sparse files are not supported/),
    );
    assert.ok(pulled < 8 * 1024 * 1024, `read ${pulled} bytes of the sparse map before refusing the layer`);
    assert.deepEqual(await readdir(a.target), []);
    await assertOutsideUntouched(a, before);
  });

  it('gnu-sparse-refused: an old GNU sparse entry (typeflag S) and PAX 0.x sparse records fail the layer too', async (t) => {
    const content = rawData(Buffer.from('data'));
    for (const sparse of [
      Buffer.concat([rawHeader({ name: 'old', typeflag: 'S', size: 4 }), content]),
      Buffer.concat([
        paxHeader({ 'GNU.sparse.size': '1099511627776', 'GNU.sparse.numblocks': '1' }),
        rawHeader({ name: 'zero-one', typeflag: '0', size: 4 }),
        content,
      ]),
    ]) {
      const { a } = await hostile(t, []);
      await assert.rejects(extractInto(a, Buffer.concat([sparse, endOfArchive()])), rejected(/entry '(old|zero-one)': a GNU sparse file/));
    }
  });

  it('truncated-archive-names-layer: an archive that ends inside an entry is a clear archive error', async (t) => {
    const full = await buildTar([{ name: 'big', content: Buffer.alloc(4096, 1) }]);
    const tar = full.subarray(0, 512 + 1000);
    const { a } = await hostile(t, tar);
    await assert.rejects(extractInto(a, tar), { code: 'BOT_ERR_ARCHIVE', message: /layer sha256:feed/ });
  });
});
