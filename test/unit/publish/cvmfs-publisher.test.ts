import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import tarStream from 'tar-stream';
import type { Header } from 'tar-stream';
import { filterLayerTar, normalizeEntryPath, packTree, parseServerList, TarOutputClosedError } from '../../../src/publish/cvmfs-publisher.ts';
import type { TreeEntry } from '../../../src/publish/publisher.ts';
import { DuccError } from '../../../src/util/errors.ts';
import { buildTar, DEFAULT_MTIME } from '../../support/build-tar.ts';

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

async function* listed(entries: TreeEntry[]): AsyncIterable<TreeEntry> {
  yield* entries;
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

describe('normalizeEntryPath', () => {
  it('strips ./ and / and refuses ..', () => {
    assert.equal(normalizeEntryPath('./usr//bin/'), 'usr/bin');
    assert.equal(normalizeEntryPath('/etc/passwd'), 'etc/passwd');
    assert.equal(normalizeEntryPath('./'), '.');
    assert.throws(
      () => normalizeEntryPath('a/../../b'),
      (error) => error instanceof DuccError && error.code === 'BOT_ERR_UNSAFE_ENTRY',
    );
  });
});

describe('filterLayerTar', () => {
  it('rewrites external hard links as empty files with the link header metadata, keeping PAX records', async () => {
    const mtime = new Date('2019-01-01T00:00:00Z');
    const input = await buildTar([
      { name: './', type: 'directory' },
      { name: './target', content: 'data', mode: 0o600 },
      { name: './internal', type: 'link', linkname: './target' },
      { name: './also-internal', type: 'link', linkname: 'target' },
      {
        name: './external',
        type: 'link',
        linkname: './lower/file',
        mode: 0o4711,
        uid: 55,
        gid: 66,
        mtime,
        pax: { 'SCHILY.xattr.user.x': 'y' },
      },
      { name: '/abs/file', content: 'abs' },
    ]);
    const filter = filterLayerTar(Readable.from([input]));
    const [result, output] = await Promise.all([filter.result, buffer(filter.output)]);
    assert.deepEqual(result, {
      warnings: [],
      externalHardlinks: [{ path: 'external', target: 'lower/file' }],
      implicitDirectories: ['abs'],
    });

    const entries = await readTar(output);
    assert.deepEqual(
      entries.map((entry) => [entry.header.name, entry.header.type, entry.header.linkname]),
      [
        ['./', 'directory', null],
        ['./target', 'file', null],
        ['./internal', 'link', './target'],
        ['./also-internal', 'link', './target'],
        ['./external', 'file', null],
        ['abs/file', 'file', null],
      ],
    );
    const external = entries[4]?.header;
    assert.equal(external?.size, 0);
    assert.equal(external?.mode, 0o4711);
    assert.deepEqual([external?.uid, external?.gid], [55, 66]);
    assert.equal(external?.mtime.getTime(), mtime.getTime());
    assert.equal((external?.pax as Record<string, string> | undefined)?.['SCHILY.xattr.user.x'], 'y');
    assert.equal((external?.pax as Record<string, string> | undefined)?.linkpath, undefined);
    assert.equal(entries[1]?.body.toString(), 'data');
    assert.equal(entries[5]?.body.toString(), 'abs');
  });

  it('reports parents without a directory entry of their own as implicit directories', async () => {
    const input = await buildTar([
      { name: 'a/b/c/file', content: 'x' },
      { name: 'a/', type: 'directory' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 },
      { name: 'x/y', type: 'symlink', linkname: '/z' },
    ]);
    const filter = filterLayerTar(Readable.from([input]));
    const [result] = await Promise.all([filter.result, buffer(filter.output)]);
    assert.deepEqual(result.implicitDirectories, ['a/b', 'a/b/c', 'x']);
  });

  it('destroys its output with the source error, after calling onFailure', async () => {
    const input = await buildTar([{ name: 'a', content: Buffer.alloc(100_000, 1) }]);
    const mismatch = new Error('digest mismatch');
    const source = new Readable({ read() {} });
    source.push(input);
    const events: string[] = [];
    const filter = filterLayerTar(source, () => events.push('onFailure'));
    const consumer = new Writable({
      write(_chunk, _encoding, callback) {
        callback();
      },
    });
    filter.output.on('error', (error) => events.push(`output error: ${error.message}`));
    filter.output.pipe(consumer);
    setTimeout(() => source.destroy(mismatch), 20);
    await assert.rejects(filter.result, (error) => error === mismatch);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events, ['onFailure', 'output error: digest mismatch']);
  });

  it('reports a closed output as TarOutputClosedError', async () => {
    const input = await buildTar([{ name: 'a', content: Buffer.alloc(1_000_000, 1) }]);
    const filter = filterLayerTar(Readable.from([input]));
    filter.output.once('data', () => filter.output.destroy(new Error('EPIPE')));
    await assert.rejects(filter.result, (error) => error instanceof TarOutputClosedError);
  });

  it('refuses a hard link that climbs out of the layer', async () => {
    const input = await buildTar([{ name: 'x', type: 'link', linkname: '../etc/shadow' }]);
    const filter = filterLayerTar(Readable.from([input]));
    filter.output.resume();
    filter.output.on('error', () => {});
    await assert.rejects(filter.result, (error) => error instanceof DuccError && error.code === 'BOT_ERR_UNSAFE_ENTRY');
  });
});

describe('packTree', () => {
  it('writes directories, files, symlinks and hard links with their metadata', async () => {
    const mtime = DEFAULT_MTIME;
    const tree = packTree(
      listed([
        { type: 'directory', path: '', mode: 0o755, uid: 0, gid: 0, mtime },
        { type: 'directory', path: 'd', mode: 0o2775, uid: 7, gid: 8, mtime },
        { type: 'file', path: 'd/f', mode: 0o640, uid: 7, gid: 8, mtime, size: 3, content: Buffer.from('abc') },
        { type: 'symlink', path: 'd/l', target: '/abs/target', uid: 7, gid: 8, mtime },
        { type: 'hardlink', path: 'd/h', target: 'd/f' },
      ]),
    );
    const [, output] = await Promise.all([tree.result, buffer(tree.output)]);
    const entries = await readTar(output);
    assert.deepEqual(
      entries.map(({ header }) => [header.name, header.type, header.mode, header.uid, header.gid, header.linkname]),
      [
        ['./', 'directory', 0o755, 0, 0, null],
        ['d', 'directory', 0o2775, 7, 8, null],
        ['d/f', 'file', 0o640, 7, 8, null],
        ['d/l', 'symlink', 0o777, 7, 8, '/abs/target'],
        ['d/h', 'link', 0o644, 0, 0, 'd/f'],
      ],
    );
    assert.equal(entries[2]?.body.toString(), 'abc');
  });

  it('refuses a file whose source has another size than announced', async () => {
    const tree = packTree(
      listed([{ type: 'file', path: 'f', mode: 0o644, uid: 0, gid: 0, mtime: DEFAULT_MTIME, size: 10, source: new URL(import.meta.url).pathname }]),
    );
    tree.output.resume();
    tree.output.on('error', () => {});
    await assert.rejects(tree.result, (error) => error instanceof DuccError && /announced 10/.test(error.message));
  });
  it('refuses a link entry, which only publishers that hard-link tree files are given', async () => {
    const tree = packTree(listed([{ type: 'link', path: 'f', source: new URL(import.meta.url).pathname }]));
    tree.output.resume();
    tree.output.on('error', () => {});
    await assert.rejects(tree.result, (error) => error instanceof DuccError && /tree entry f: a 'link' entry/.test(error.message));
  });
});
