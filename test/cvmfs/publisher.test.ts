/**
 * CvmfsServerPublisher's calls, one by one, against a real CernVM-FS 2.12 repository: what each call
 * publishes, in how many publishes, with which owners and modes; how failures (some injected by the
 * test shim in front of the real cvmfs_server) leave the repository; locking.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { CvmfsServerPublisher, type CvmfsServerPublisherOptions } from '../../src/publish/cvmfs/cvmfs-publisher.ts';
import { CvmfsServer } from '../../src/publish/cvmfs/cvmfs-server.ts';
import type { TreeEntry } from '../../src/unpack/tree-types.ts';
import { DuccError } from '../../src/util/errors.ts';
import { buildTar, DEFAULT_MTIME } from '../support/build-tar.ts';
import { cvmfsServerShim, createRepository, type TestRepository } from '../support/stratum0.ts';
import { tempDir } from '../support/tmp-dir.ts';

/** A readable that delivers `bytes` and then fails, like a digest check failing at the end of a blob. */
function failingAtEnd(bytes: Buffer, error: Error): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push(bytes);
      setTimeout(() => this.destroy(error), 50);
    },
  });
}

function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

const layersJson = () => ({ 'layers.json': Buffer.from('[]') });

describe('CvmfsServerPublisher on a real stratum 0', () => {
  let repo: TestRepository;
  let work: string;
  let shim: Awaited<ReturnType<typeof cvmfsServerShim>>;
  let log: ReturnType<typeof capturingLogger>;
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext;

  before(async () => {
    repo = await createRepository(suite, 'publisher');
    work = await tempDir(suite);
    shim = await cvmfsServerShim(join(work, 'bin'));
    await mkdir(join(work, 'locks'));
    log = capturingLogger();
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const publisher = (options: Partial<CvmfsServerPublisherOptions> = {}) =>
    new CvmfsServerPublisher({
      repository: repo.name,
      cvmfsServer: shim.command,
      lockDir: join(work, 'locks'),
      stagingDir: join(work, 'staging'),
      logger: log.logger,
      ...options,
    });
  /** The cvmfs_server calls made by `work`, without `list`. */
  const callsDuring = async (action: () => Promise<unknown>): Promise<string[]> => {
    const before = (await shim.calls()).length;
    await action();
    return (await shim.calls())
      .slice(before)
      .map((argv) => argv.join(' '))
      .filter((line) => line !== 'list');
  };
  const notInTransaction = async () => assert.equal(await repo.inTransaction(), false, `${repo.name} is left in a transaction`);

  it('ingests the layers of a batch together, with metadata and catalog markers; image owners kept, ours the repository owner’s, all 0755', async () => {
    const cvmfs = publisher();
    await cvmfs.recover();
    const first = await buildTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/motd', content: 'hello' },
      { name: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
      { name: 'home/user/notes', content: 'mine', uid: 1000, gid: 1000, mode: 0o600 },
      { name: 'usr/bin/su', content: 'setuid', mode: 0o4755 },
      { name: 'usr/bin/su-alias', type: 'link', linkname: 'usr/bin/su' },
      { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
    ]);
    const second = await buildTar([
      { name: 'etc/.wh.motd', content: '' },
      { name: 'lib/implicit/file', content: 'x' },
    ]);

    const calls = await callsDuring(() =>
      cvmfs.publishLayers(async (batch) => {
        await Promise.all([
          batch.add('.layers/aa/first', Readable.from([first]), layersJson),
          batch.add('.layers/bb/second', Readable.from([second]), (result) => ({
            'layers.json': Buffer.from('[]'),
            'notes.json': Buffer.from(JSON.stringify(result.implicitDirectories)),
          })),
        ]);
      }),
    );

    assert.deepEqual(calls, [`ingest -t - -b / -k ${repo.name}`]);
    const root = repo.mount;
    assert.equal(await readFile(join(root, '.layers/aa/first/layerfs/etc/motd'), 'utf8'), 'hello');
    assert.equal(await readFile(join(root, '.layers/bb/second/.metadata/notes.json'), 'utf8'), '["etc","lib","lib/implicit"]');
    assert.equal((await lstat(join(root, '.layers/bb/second/layerfs/etc/.wh.motd'))).isFile(), true);
    const notes = await stat(join(root, '.layers/aa/first/layerfs/home/user/notes'));
    assert.deepEqual([notes.uid, notes.gid, notes.mode & 0o7777], [1000, 1000, 0o600]);
    assert.equal((await stat(join(root, '.layers/aa/first/layerfs/usr/bin/su'))).mode & 0o7777, 0o4755);
    assert.equal(await readFile(join(root, '.layers/aa/first/layerfs/usr/bin/su-alias'), 'utf8'), 'setuid');
    assert.equal(await readlink(join(root, '.layers/aa/first/layerfs/bin')), 'usr/bin');
    const owner = await stat(root);
    for (const dir of ['.layers', '.layers/aa', '.layers/aa/first', '.layers/aa/first/.metadata', '.layers/bb/second/.metadata']) {
      const s = await stat(join(root, dir));
      assert.deepEqual([s.mode & 0o7777, s.uid, s.gid], [0o755, owner.uid, owner.gid], dir);
    }
    assert.deepEqual(
      (await repo.catalogs()).filter((c) => c.startsWith('.layers')),
      ['.layers', '.layers/aa', '.layers/aa/first/layerfs', '.layers/bb', '.layers/bb/second/layerfs'],
    );
    await repo.check();
  });

  it('a layer whose stream fails at its end publishes nothing of it; the other layers of the batch are published, and its error thrown', async () => {
    const cvmfs = publisher();
    const good = await buildTar([{ name: 'good', content: 'g' }]);
    const bad = await buildTar([{ name: 'bad', content: 'b' }]);
    const failure = new DuccError('BOT_ERR_DIGEST_MISMATCH', 'digest mismatch at the end of the blob');

    await assert.rejects(
      cvmfs.publishLayers(async (batch) => {
        const results = await Promise.allSettled([
          batch.add('.layers/cc/good', Readable.from([good]), layersJson),
          batch.add('.layers/cc/bad', failingAtEnd(bad, failure), layersJson),
        ]);
        const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (rejected) throw rejected.reason;
      }),
      (error) => error === failure,
    );

    assert.equal(await readFile(join(repo.mount, '.layers/cc/good/layerfs/good'), 'utf8'), 'g');
    assert.equal(await cvmfs.lstat('.layers/cc/bad'), undefined);
    await notInTransaction();
  });

  it('replaces an incomplete layer: removed (ingest -d), then ingested whole', async () => {
    const cvmfs = publisher();
    const incomplete = await buildTar([{ name: 'half', content: 'h' }]);
    await cvmfs.publishLayers((batch) => batch.add('.layers/dd/layer', Readable.from([incomplete]), () => ({})));
    assert.equal(await cvmfs.lstat('.layers/dd/layer/.metadata/layers.json'), undefined);
    const whole = await buildTar([{ name: 'whole', content: 'w' }]);

    const calls = await callsDuring(() => cvmfs.publishLayers((batch) => batch.add('.layers/dd/layer', Readable.from([whole]), layersJson, { replace: true })));

    // CernVM-FS cannot remove a directory and make it again in one ingest: two publishes.
    assert.deepEqual(calls, [`ingest -d .layers/dd/layer ${repo.name}`, `ingest -t - -b / -k ${repo.name}`]);
    assert.equal(await cvmfs.lstat('.layers/dd/layer/layerfs/half'), undefined);
    assert.equal(await readFile(join(repo.mount, '.layers/dd/layer/layerfs/whole'), 'utf8'), 'w');
    await repo.check();
  });

  it('a transaction is one ingest: files, a symlink, a directory and a tree whose files are catalog clones of layer files', async () => {
    const cvmfs = publisher();
    const layer = await buildTar([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/tool', content: 'tool', mode: 0o755, uid: 7, gid: 8 },
    ]);
    await cvmfs.publishLayers((batch) => batch.add('.layers/ee/layer', Readable.from([layer]), layersJson));
    const mtime = DEFAULT_MTIME;
    const entries: TreeEntry[] = [
      { type: 'directory', path: '', mode: 0o755, uid: 0, gid: 0, mtime },
      { type: 'directory', path: 'bin', mode: 0o755, uid: 0, gid: 0, mtime },
      { type: 'link', path: 'bin/tool', source: join(repo.mount, '.layers/ee/layer/layerfs/bin/tool') },
      { type: 'file', path: 'runscript', mode: 0o755, uid: 0, gid: 0, mtime, size: 3, content: Buffer.from('#!x') },
      { type: 'hardlink', path: 'runscript2', target: 'runscript' },
      { type: 'symlink', path: 'singularity', target: 'runscript', uid: 0, gid: 0, mtime },
    ];

    const calls = await callsDuring(() =>
      cvmfs.transaction(async (tx) => {
        await tx.tree('.flat/ff/image', entries);
        await tx.writeFile('.metadata/reg/img:1/manifest.json', '{}');
        await tx.symlink('reg/img:1', '../.flat/ff/image');
        await tx.mkdir('empty/dir');
      }),
    );

    assert.equal(calls.length, 1, calls.join('\n'));
    assert.match(calls[0]!, /^ingest /);
    const tool = await stat(join(repo.mount, 'reg/img:1/bin/tool'));
    assert.deepEqual([tool.uid, tool.gid, tool.mode & 0o7777], [7, 8, 0o755]);
    assert.equal(await readFile(join(repo.mount, 'reg/img:1/bin/tool'), 'utf8'), 'tool');
    assert.equal(await readFile(join(repo.mount, '.flat/ff/image/runscript2'), 'utf8'), '#!x');
    assert.equal(await readlink(join(repo.mount, '.flat/ff/image/singularity')), 'runscript');
    assert.equal(await readFile(join(repo.mount, '.metadata/reg/img:1/manifest.json'), 'utf8'), '{}');
    assert.ok((await stat(join(repo.mount, 'empty/dir'))).isDirectory());
    assert.ok((await repo.catalogs()).includes('.flat/ff/image'));

    // The symlink moves in one more ingest; a transaction with nothing in it publishes nothing.
    assert.equal((await callsDuring(() => cvmfs.transaction((tx) => tx.symlink('reg/img:1', '../.flat/ff/other')))).length, 1);
    assert.equal(await readlink(join(repo.mount, 'reg/img:1')), '../.flat/ff/other');
    assert.deepEqual(await callsDuring(() => cvmfs.transaction(async () => {})), []);
    await repo.check();
  });

  it('a tree published meanwhile by another process is kept, and the rest of the transaction published', async () => {
    const cvmfs = publisher();
    const tree = (content: string): TreeEntry[] => [
      { type: 'directory', path: '', mode: 0o755, uid: 0, gid: 0, mtime: DEFAULT_MTIME },
      { type: 'file', path: 'f', mode: 0o644, uid: 0, gid: 0, mtime: DEFAULT_MTIME, size: content.length, content: Buffer.from(content) },
    ];
    await cvmfs.transaction((tx) => tx.tree('.flat/kk/same', tree('first')));

    await cvmfs.transaction(async (tx) => {
      await tx.tree('.flat/kk/same', tree('second'));
      await tx.writeFile('.metadata/kk/manifest.json', '{}');
    });

    assert.equal(await readFile(join(repo.mount, '.flat/kk/same/f'), 'utf8'), 'first');
    assert.equal(await readFile(join(repo.mount, '.metadata/kk/manifest.json'), 'utf8'), '{}');
  });

  it('a tree whose entries fail half-way publishes nothing and leaves no transaction open', async () => {
    const cvmfs = publisher();
    async function* failing(): AsyncIterable<TreeEntry> {
      yield { type: 'directory', path: '', mode: 0o755, uid: 0, gid: 0, mtime: DEFAULT_MTIME };
      yield { type: 'file', path: 'a', mode: 0o644, uid: 0, gid: 0, mtime: DEFAULT_MTIME, size: 1, content: Buffer.from('a') };
      throw new DuccError('BOT_ERR_PUBLISH', 'the flattener failed');
    }
    await assert.rejects(
      cvmfs.transaction(async (tx) => {
        await tx.tree('.flat/gg/broken', failing());
        await tx.writeFile('beside-the-broken-tree', 'x');
      }),
      /the flattener failed/,
    );
    assert.equal(await cvmfs.lstat('.flat/gg/broken'), undefined);
    assert.equal(await cvmfs.lstat('beside-the-broken-tree'), undefined);
    await notInTransaction();
  });

  it('removing a symlink takes a classic transaction; removing directories alone is one ingest -d', async () => {
    const cvmfs = publisher();
    await cvmfs.transaction(async (tx) => {
      await tx.writeFile('gone/meta/manifest.json', '{}');
      await tx.symlink('gone/name', 'meta');
    });

    const calls = await callsDuring(() =>
      cvmfs.transaction(async (tx) => {
        await tx.remove('gone/name');
        await tx.remove('gone/meta');
        await tx.remove('never/was');
      }),
    );
    assert.deepEqual(calls, [`transaction ${repo.name}`, `publish ${repo.name}`]);
    assert.equal(await cvmfs.lstat('gone/name'), undefined);
    assert.equal(await cvmfs.lstat('gone/meta'), undefined);

    await cvmfs.transaction((tx) => tx.writeFile('dirs/a/file', 'a'));
    const dirCalls = await callsDuring(() => cvmfs.transaction((tx) => tx.remove('dirs/a')));
    assert.deepEqual(dirCalls, [`ingest -d dirs/a ${repo.name}`]);
    assert.equal(await cvmfs.lstat('dirs/a'), undefined);
    await repo.check();
  });

  it('refuses a symlink over a regular file, writes after the end, and paths that leave the repository', async () => {
    const cvmfs = publisher();
    await cvmfs.transaction((tx) => tx.writeFile('regular', 'r'));
    await assert.rejects(
      cvmfs.transaction((tx) => tx.symlink('regular', 'elsewhere')),
      (error) => error instanceof DuccError && /refusing to replace regular with a symlink: it exists and is a regular file/.test(error.message),
    );
    let escaped: import('../../src/publish/publisher.ts').Transaction | undefined;
    await cvmfs.transaction(async (tx) => {
      escaped = tx;
    });
    await assert.rejects(escaped!.writeFile('late', 'x'), /already closed/);
    await assert.rejects(
      cvmfs.transaction((tx) => tx.writeFile('../outside', 'x')),
      (error) => error instanceof DuccError && error.code === 'BOT_ERR_PUBLISH',
    );
    await notInTransaction();
  });

  it('paths of a repo/sub cvmfs_repo are below sub, which recover() creates', async () => {
    const cvmfs = publisher({ subdirectory: 'images/sub' });
    await cvmfs.recover();
    assert.ok((await stat(join(repo.mount, 'images/sub'))).isDirectory());
    const layer = await buildTar([{ name: 'f', content: 'f' }]);
    await cvmfs.publishLayers((batch) => batch.add('.layers/hh/layer', Readable.from([layer]), layersJson));
    await cvmfs.transaction(async (tx) => {
      await tx.tree('.flat/hh/tree', [{ type: 'link', path: 'f', source: join(repo.mount, 'images/sub/.layers/hh/layer/layerfs/f') }]);
    });
    assert.equal(await readFile(join(repo.mount, 'images/sub/.flat/hh/tree/f'), 'utf8'), 'f');
    assert.equal(cvmfs.readRoot, join(repo.mount, 'images/sub'));
    await repo.check();
  });

  describe('failures', () => {
    it('a failing ingest is reported with its stderr, publishes nothing and leaves no transaction', async () => {
      const cvmfs = publisher();
      await shim.failNext(['ingest']);
      try {
        await assert.rejects(
          cvmfs.transaction((tx) => tx.writeFile('not-there', 'x')),
          (error) =>
            error instanceof DuccError &&
            error.code === 'BOT_ERR_CVMFS' &&
            /cvmfs_server ingest .* failed \(exit 1\): injected failure of 'ingest'/.test(error.message),
        );
      } finally {
        await shim.failNext([]);
      }
      assert.equal(await cvmfs.lstat('not-there'), undefined);
      await notInTransaction();
    });

    it('a failing publish of a classic transaction is aborted (abort -f) and reported', async () => {
      const cvmfs = publisher();
      await cvmfs.transaction(async (tx) => {
        await tx.writeFile('kept/file', 'k');
        await tx.symlink('kept/link', 'file');
      });
      await shim.failNext(['publish']);
      let calls: string[];
      try {
        calls = await callsDuring(() =>
          assert.rejects(
            cvmfs.transaction((tx) => tx.remove('kept/link')),
            /cvmfs_server publish .* failed \(exit 1\): injected failure of 'publish'/,
          ),
        );
      } finally {
        await shim.failNext([]);
      }
      assert.deepEqual(calls, [`transaction ${repo.name}`, `publish ${repo.name}`, `abort -f ${repo.name}`]);
      assert.equal(await readlink(join(repo.mount, 'kept/link')), 'file');
      await notInTransaction();
    });

    it('leaves alone a transaction someone else opened, and fails clearly', async () => {
      const cvmfs = publisher();
      await repo.server(['transaction', repo.name]);
      try {
        const calls = await callsDuring(() =>
          assert.rejects(
            cvmfs.transaction((tx) => tx.writeFile('while-busy', 'x')),
            (error) => error instanceof DuccError && /cvmfs_server ingest .* failed/.test(error.message),
          ),
        );
        assert.ok(!calls.some((c) => c.startsWith('abort')), calls.join('\n'));
        assert.equal(await repo.inTransaction(), true, 'their transaction is still open');
      } finally {
        await repo.server(['abort', '-f', repo.name]);
      }
    });

    it('recover() aborts a transaction left open by a crash, and fails clearly for a repository this machine does not serve', async () => {
      await repo.server(['transaction', repo.name]);
      await publisher().recover();
      await notInTransaction();
      assert.ok(log.lines.some((line) => /left in a transaction/.test(line)));
      await assert.rejects(
        publisher({ repository: `not-${repo.name}` }).recover(),
        (error) => error instanceof DuccError && error.message === `repository not-${repo.name} is not served by this machine (cvmfs_server list)`,
      );
    });
  });

  describe('locking', () => {
    it('two publishers (as two processes would, sharing the lock directory) commit one after the other', async () => {
      const a = new CvmfsServer({ repository: repo.name, lockDir: join(work, 'locks'), logger: log.logger });
      const b = new CvmfsServer({ repository: repo.name, lockDir: join(work, 'locks'), logger: log.logger, lockWaitMs: 5000 });
      const order: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const first = a.exclusive(async () => {
        order.push('a in');
        await held;
        order.push('a out');
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const second = b.exclusive(async () => {
        order.push('b in');
      });
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.deepEqual(order, ['a in']);
      release();
      await Promise.all([first, second]);
      assert.deepEqual(order, ['a in', 'a out', 'b in']);
    });

    it('gives up after lockWaitMs with a clear error', async () => {
      const a = new CvmfsServer({ repository: repo.name, lockDir: join(work, 'locks'), logger: log.logger });
      const b = new CvmfsServer({ repository: repo.name, lockDir: join(work, 'locks'), logger: log.logger, lockWaitMs: 300 });
      let release!: () => void;
      const held = a.exclusive(() => new Promise<void>((resolve) => (release = resolve)));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await assert.rejects(
        b.exclusive(async () => {}),
        /timed out after 0 s waiting for repository lock .* \(another process is publishing to /,
      );
      release();
      await held;
    });
  });
});
