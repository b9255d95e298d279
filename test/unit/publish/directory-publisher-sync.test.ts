/**
 * The directory publisher's durability: a staged layer or tree is flushed (`sync --file-system`, i.e.
 * syncfs) before it gets its final name, never after, and not at all with `sync: false`. A stand-in
 * `sync` first on PATH records each call and whether the final name existed at that moment.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statfsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import type { TreeEntry } from '../../../src/unpack/tree-types.ts';
import { buildTar } from '../../support/build-tar.ts';
import { exists, tempDir } from '../../support/tmp-dir.ts';

const LAYER = '.layers/ab/abcdef';

/** Puts a stand-in `sync` first on PATH for this test; it logs its arguments and whether WATCH exists. */
async function standInSync(t: TestContext, dir: string, options: { fail?: boolean } = {}): Promise<{ log: string; watch: (path: string) => void }> {
  const log = join(dir, 'sync.log');
  const script = join(dir, 'bin', 'sync');
  await writeFile(log, '');
  await mkdir(join(dir, 'bin'));
  await writeFile(
    script,
    [
      '#!/bin/sh',
      'state=absent',
      '[ -e "$SYNC_WATCH" ] && state=present',
      `echo "$* final=$state" >> '${log}'`,
      options.fail ? 'echo "sync: error syncing: Input/output error" >&2; exit 1' : 'exit 0',
      '',
    ].join('\n'),
  );
  await chmod(script, 0o755);
  const savedPath = process.env['PATH'];
  process.env['PATH'] = `${join(dir, 'bin')}:${savedPath}`;
  t.after(() => {
    process.env['PATH'] = savedPath;
    delete process.env['SYNC_WATCH'];
  });
  return { log, watch: (path) => (process.env['SYNC_WATCH'] = path) };
}

async function layerTar(): Promise<Buffer> {
  return buildTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', content: 'box\n' },
  ]);
}

/** tmpfs and ramfs: nothing to flush there. */
const inMemory = (path: string): boolean => [0x01021994, 0x858458f6].includes(statfsSync(path).type);

describe('DirectoryPublisher durability', () => {
  it('flushes a staged layer and a staged tree before renaming them into place', async (t) => {
    const dir = await tempDir(t, 'ducc-sync-');
    if (inMemory(dir)) return t.skip(`${dir} is in memory (tmpfs): nothing is flushed there`);
    const sync = await standInSync(t, dir);
    const publisher = new DirectoryPublisher({ root: join(dir, 'cvmfs'), repository: 'repo.example.org' });
    await publisher.recover();

    sync.watch(join(publisher.readRoot, LAYER));
    await publisher.publishLayer(LAYER, Readable.from([await layerTar()]), () => ({ 'layers.json': Buffer.from('{}') }));
    sync.watch(join(publisher.readRoot, '.flat/cd/cdef'));
    await publisher.publishTree(
      '.flat/cd/cdef',
      (async function* (): AsyncGenerator<TreeEntry> {
        yield { path: '', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: new Date(0) };
        yield { path: 'file', type: 'file', content: Buffer.from('x'), size: 1, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0) };
      })(),
    );

    const calls = (await readFile(sync.log, 'utf8')).trim().split('\n');
    assert.equal(calls.length, 2, calls.join('\n'));
    for (const call of calls) assert.match(call, new RegExp(`^--file-system ${join(dir, 'cvmfs', '.ducc-staging')}/.* final=absent$`));
    assert.equal(await readFile(join(publisher.readRoot, LAYER, 'layerfs/etc/hostname'), 'utf8'), 'box\n');
    assert.equal(await readFile(join(publisher.readRoot, '.flat/cd/cdef/file'), 'utf8'), 'x');
  });

  it('a failed flush publishes nothing and says how to turn flushing off', async (t) => {
    const dir = await tempDir(t, 'ducc-sync-');
    if (inMemory(dir)) return t.skip(`${dir} is in memory (tmpfs): nothing is flushed there`);
    await standInSync(t, dir, { fail: true });
    const publisher = new DirectoryPublisher({ root: join(dir, 'cvmfs'), repository: 'repo.example.org' });
    await publisher.recover();
    await assert.rejects(
      publisher.publishLayer(LAYER, Readable.from([await layerTar()]), () => ({})),
      {
        code: 'BOT_ERR_PUBLISH',
        message: /cannot flush .* 'sync --file-system' .*Input\/output error.*publisher\.sync: false/s,
      },
    );
    assert.equal(await exists(join(publisher.readRoot, LAYER)), false);
  });

  it('with sync: false nothing is flushed', async (t) => {
    const dir = await tempDir(t, 'ducc-sync-');
    const sync = await standInSync(t, dir);
    const publisher = new DirectoryPublisher({ root: join(dir, 'cvmfs'), repository: 'repo.example.org', sync: false });
    await publisher.recover();
    await publisher.publishLayer(LAYER, Readable.from([await layerTar()]), () => ({}));
    await publisher.transaction(async (tx) => tx.writeFile('.metadata/x/manifest.json', '{}'));
    assert.equal(await readFile(sync.log, 'utf8'), '');
    assert.equal(await readFile(join(publisher.readRoot, '.metadata/x/manifest.json'), 'utf8'), '{}');
  });

  it('on a filesystem in memory (tmpfs) nothing is flushed: there is nothing to flush', async (t) => {
    if (!existsSync('/dev/shm') || !inMemory('/dev/shm')) return t.skip('no tmpfs at /dev/shm');
    const dir = await mkdtemp(join('/dev/shm', 'ducc-sync-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const sync = await standInSync(t, dir);
    const publisher = new DirectoryPublisher({ root: join(dir, 'cvmfs'), repository: 'repo.example.org' });
    await publisher.recover();
    await publisher.publishLayer(LAYER, Readable.from([await layerTar()]), () => ({}));
    assert.equal(await readFile(sync.log, 'utf8'), '');
    assert.equal(await readFile(join(publisher.readRoot, LAYER, 'layerfs/etc/hostname'), 'utf8'), 'box\n');
  });

  it("the system's own sync --file-system works here", async (t) => {
    const dir = await tempDir(t, 'ducc-sync-');
    const publisher = new DirectoryPublisher({ root: join(dir, 'cvmfs'), repository: 'repo.example.org' });
    await publisher.recover();
    await publisher.publishLayer(LAYER, Readable.from([await layerTar()]), () => ({}));
    assert.equal(await exists(join(publisher.readRoot, LAYER, 'layerfs/etc/hostname')), true);
  });
});
