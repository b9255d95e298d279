/**
 * Pieces of the cvmfs publisher that need no CernVM-FS: reading `cvmfs_server list`, and the tar that
 * `cvmfs_server ingest` is fed (test/cvmfs/ runs the publisher itself on a real stratum 0).
 */
import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import tarStream from 'tar-stream';
import type { Header } from 'tar-stream';
import { parseServerList } from '../../../src/publish/cvmfs/cvmfs-server.ts';
import { IngestTar } from '../../../src/publish/cvmfs/ingest-tar.ts';
import { DuccError } from '../../../src/util/errors.ts';
import { DEFAULT_MTIME } from '../../support/build-tar.ts';

/** Reads a tar back: header and body of each entry. */
async function readTar(bytes: Buffer): Promise<{ header: Header; body: Buffer }[]> {
  const extract = tarStream.extract();
  const done = (async () => {
    const entries: { header: Header; body: Buffer }[] = [];
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      entries.push({ header: entry.header, body: Buffer.concat(chunks) });
    }
    return entries;
  })();
  extract.end(bytes);
  return done;
}

/** A sink that copies what it is given (IngestTar uses a chunk again once the write called back). */
function collector(): { sink: Writable; bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      // Later, as a pipe would: the writer must wait for it.
      setImmediate(callback);
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

/** Runs `write` against a fresh IngestTar and returns the entries of the finished archive. */
async function tarOf(write: (tar: IngestTar) => Promise<void>): Promise<{ header: Header; body: Buffer }[]> {
  const { sink, bytes } = collector();
  const tar = new IngestTar(sink);
  await write(tar);
  await tar.finish();
  return readTar(bytes());
}

async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ingest-tar-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('parseServerList', () => {
  it('reads names and the in-transaction flag from the cvmfs_server list format', () => {
    const output = [
      "Warning: unexpected file '/etc/cvmfs/repositories.d/README' in directory /etc/cvmfs/repositories.d/",
      'unpacked.cern.ch (stratum0 / local)  ',
      'unpacked.cern.ch.old (stratum0 / S3 - in transaction - whitelist expired)  ',
      'replica.cern.ch (stratum1 / local) -> origin.cern.ch ',
      'legacy.cern.ch (stratum0 / local) (created with INCOMPATIBLE layout revision 2.1.0)',
      '',
    ].join('\n');
    assert.deepEqual(parseServerList(output), [
      { name: 'unpacked.cern.ch', inTransaction: false },
      { name: 'unpacked.cern.ch.old', inTransaction: true },
      { name: 'replica.cern.ch', inTransaction: false },
      { name: 'legacy.cern.ch', inTransaction: false },
    ]);
  });

  it('accepts bare names (as the DUCC mock prints them)', () => {
    assert.deepEqual(parseServerList('testunpacked.cern.ch\n'), [{ name: 'testunpacked.cern.ch', inTransaction: false }]);
  });
});

describe('IngestTar', () => {
  it('packs a staged layer below its prefix, parents first: modes, owners, symlinks, shared inodes as hard links, and our catalog marker', async (t) => {
    const dir = await scratch(t);
    const layerfs = join(dir, 'layerfs');
    await mkdir(join(layerfs, 'usr/bin'), { recursive: true });
    await writeFile(join(layerfs, 'usr/bin/su'), 'setuid');
    await chmod(join(layerfs, 'usr/bin/su'), 0o4755);
    await link(join(layerfs, 'usr/bin/su'), join(layerfs, 'usr/bin/su-alias'));
    await symlink('usr/bin', join(layerfs, 'bin'));
    await writeFile(join(layerfs, '.cvmfscatalog'), "the image's own marker");
    await symlink('/etc/passwd', join(layerfs, 'usr/.cvmfscatalog'));
    const skipped: string[] = [];

    const entries = await tarOf((tar) => tar.localTree(layerfs, '.layers/ab/abc/layerfs', { marker: true, skipped: (name) => skipped.push(name) }));

    const names = entries.map((e) => `${e.header.type} ${e.header.name}${e.header.linkname ? ` -> ${e.header.linkname}` : ''}`);
    assert.deepEqual(names, [
      'directory .layers/ab/abc/layerfs',
      'file .layers/ab/abc/layerfs/.cvmfscatalog',
      'symlink .layers/ab/abc/layerfs/bin -> usr/bin',
      'directory .layers/ab/abc/layerfs/usr',
      'directory .layers/ab/abc/layerfs/usr/bin',
      'file .layers/ab/abc/layerfs/usr/bin/su',
      'link .layers/ab/abc/layerfs/usr/bin/su-alias -> .layers/ab/abc/layerfs/usr/bin/su',
    ]);
    assert.equal(entries[1]!.body.length, 0, 'our marker is empty, not the image file of that name');
    assert.equal(entries[5]!.header.mode, 0o4755);
    assert.equal(entries[5]!.body.toString(), 'setuid');
    assert.deepEqual(skipped, ['.layers/ab/abc/layerfs/usr/.cvmfscatalog'], 'a marker that is not a regular file would abort the ingest');
  });

  it('streams large files and refuses a file whose size is not the announced one', async (t) => {
    const dir = await scratch(t);
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    await writeFile(join(dir, 'big'), big);
    const meta = { mode: 0o644, uid: 1, gid: 2, mtime: DEFAULT_MTIME };

    const entries = await tarOf((tar) => tar.fileFrom('big', meta, join(dir, 'big'), big.length));
    assert.deepEqual(entries[0]!.body, big);
    assert.deepEqual([entries[0]!.header.uid, entries[0]!.header.gid], [1, 2]);

    const tar = new IngestTar(collector().sink);
    await assert.rejects(
      tar.fileFrom('big', meta, join(dir, 'big'), big.length + 10),
      (error) => error instanceof DuccError && /big: 3145728 bytes instead of the announced 3145738/.test(error.message),
    );
    tar.destroy(new Error('done'));
  });

  it('writes names, link targets and owners that do not fit a ustar header in PAX records', async () => {
    const long = `${'a'.repeat(80)}/${'b'.repeat(90)}/${'c'.repeat(99)}`;
    const meta = { mode: 0o4755, uid: 3_000_000, gid: 12, mtime: DEFAULT_MTIME };
    const entries = await tarOf(async (tar) => {
      await tar.file(long, meta, Buffer.from('split into prefix and name'));
      await tar.file('x'.repeat(300), meta, Buffer.from('path record'));
      await tar.file('ünïcode/fïle', meta, Buffer.from('u'));
      await tar.symlink('sym', 'l'.repeat(150), meta);
      await tar.hardlink('hl', long);
    });
    assert.deepEqual(
      // tar-stream applies a PAX path and linkpath itself, and leaves the other records in `pax`.
      entries.map((e) => [
        e.header.name,
        e.header.linkname ?? null,
        Number((e.header.pax as Record<string, string> | undefined)?.['uid'] ?? e.header.uid),
        e.body.toString(),
      ]),
      [
        [long, null, 3_000_000, 'split into prefix and name'],
        ['x'.repeat(300), null, 3_000_000, 'path record'],
        ['ünïcode/fïle', null, 3_000_000, 'u'],
        ['sym', 'l'.repeat(150), 3_000_000, ''],
        ['hl', long, 0, ''],
      ],
    );
  });

  it('writes through a few reused chunks: at most four wait in a slow sink, whatever the number of entries', async () => {
    let waiting = 0;
    let most = 0;
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(Buffer.from(chunk));
        most = Math.max(most, ++waiting);
        setTimeout(() => {
          waiting--;
          callback();
        }, 1);
      },
    });
    const tar = new IngestTar(sink);
    const meta = { mode: 0o644, uid: 0, gid: 0, mtime: DEFAULT_MTIME };
    for (let i = 0; i < 20_000; i++) await tar.file(`d/${'n'.repeat(120)}${i}`, meta, Buffer.from(`file ${i}\n`));
    await tar.finish();
    assert.ok(most <= 4, `${most} writes waited in the sink at once`);
    const entries = await readTar(Buffer.concat(chunks));
    assert.equal(entries.length, 20_000);
    assert.equal(entries[12_345]!.body.toString(), 'file 12345\n');
  });

  it('writes the repository root as ./, and symlinks with mode 0777', async () => {
    const entries = await tarOf(async (tar) => {
      await tar.directory('', { mode: 0o755, uid: 0, gid: 0, mtime: DEFAULT_MTIME });
      await tar.symlink('name', 'target', { uid: 0, gid: 0, mtime: DEFAULT_MTIME });
    });
    assert.deepEqual(
      entries.map((e) => [e.header.name, e.header.mode]),
      [
        ['./', 0o755],
        ['name', 0o777],
      ],
    );
  });
});
