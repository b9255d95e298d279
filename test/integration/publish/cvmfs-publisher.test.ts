import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readlink, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { CvmfsServerPublisher } from '../../../src/publish/cvmfs-publisher.ts';
import type { CvmfsServerPublisherOptions } from '../../../src/publish/cvmfs-publisher.ts';
import type { TreeEntry } from '../../../src/publish/publisher.ts';
import { DuccError } from '../../../src/util/errors.ts';
import { buildTar, DEFAULT_MTIME } from '../../support/build-tar.ts';

const FAKE_CVMFS_SERVER = fileURLToPath(new URL('../../support/fake-cvmfs-server/cvmfs_server', import.meta.url));
const REPO = 'repo.example.org';
const LAYER = '.layers/ab/abcdef';
const execFileAsync = promisify(execFile);

interface Fake {
  dir: string;
  root: string;
  state: string;
  lockDir: string;
  env: Record<string, string>;
  logLines: string[];
  publisher(options?: Partial<CvmfsServerPublisherOptions>): CvmfsServerPublisher;
  /** The stand-in's invocation log, one argv per line. */
  invocations(): Promise<string[]>;
  /** Runs the stand-in directly, as an operator would. */
  server(...args: string[]): Promise<string>;
}

async function setUp(t: TestContext, repositories: string[] = [REPO]): Promise<Fake> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cvmfs-publisher-'));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 3 }));
  const root = path.join(dir, 'cvmfs');
  const state = path.join(dir, 'state');
  const lockDir = path.join(dir, 'lock');
  for (const repository of repositories) await mkdir(path.join(root, repository), { recursive: true });
  await mkdir(lockDir);
  const env = { CVMFS_FAKE_ROOT: root, CVMFS_FAKE_STATE: state };
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logLines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((line) => line !== ''),
      );
      callback();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  return {
    dir,
    root,
    state,
    lockDir,
    env,
    logLines,
    publisher: (options = {}) =>
      new CvmfsServerPublisher({
        repository: REPO,
        mountRoot: root,
        cvmfsServer: FAKE_CVMFS_SERVER,
        lockDir,
        logger,
        ...options,
        env: { ...env, ...options.env },
      }),
    invocations: async () => {
      const text = await readFile(path.join(state, 'invocations.log'), 'utf8').catch(() => '');
      return text.split('\n').filter((line) => line !== '');
    },
    server: async (...args) => (await execFileAsync(FAKE_CVMFS_SERVER, args, { env: { ...process.env, ...env } })).stdout,
  };
}

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

function withoutLists(lines: string[]): string[] {
  return lines.filter((line) => line !== 'list');
}

async function listOf(fake: Fake): Promise<string> {
  return fake.server('list');
}

async function* entriesOf(list: TreeEntry[]): AsyncIterable<TreeEntry> {
  yield* list;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('CvmfsServerPublisher against the stand-in cvmfs_server', () => {
  it('reports where it reads from', async (t) => {
    const fake = await setUp(t);
    const publisher = fake.publisher();
    assert.equal(publisher.readRoot, path.join(fake.root, REPO));
    assert.match(publisher.description, /repo\.example\.org/);
    const sub = fake.publisher({ subdirectory: 'sub/dir/' });
    assert.equal(sub.readRoot, path.join(fake.root, REPO, 'sub/dir'));
  });

  describe('publishLayer', () => {
    it('ingests the layer into <layerDir>/layerfs as a nested catalog, then writes the metadata in a transaction', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const tar = await buildTar([
        { name: 'etc/', type: 'directory', mode: 0o755 },
        { name: 'etc/hostname', content: 'box\n', mode: 0o640, uid: 1234, gid: 1234 },
        { name: 'etc/.wh.passwd', content: '' },
        { name: 'bin/sh', type: 'symlink', linkname: '/bin/bash' },
      ]);
      const result = await publisher.publishLayer(LAYER, Readable.from([tar]), (unpacked) => ({
        'origin.json': Buffer.from('{"a":1}'),
        'unpack.json': Buffer.from(JSON.stringify(unpacked)),
      }));

      assert.deepEqual(result, { warnings: [], externalHardlinks: [], implicitDirectories: ['bin'] });
      const layerfs = path.join(publisher.readRoot, LAYER, 'layerfs');
      assert.equal(await readFile(path.join(layerfs, 'etc/hostname'), 'utf8'), 'box\n');
      const hostname = await stat(path.join(layerfs, 'etc/hostname'));
      assert.deepEqual([hostname.mode & 0o7777, hostname.uid, hostname.gid], [0o640, 1234, 1234]);
      assert.equal(await readFile(path.join(layerfs, 'etc/.wh.passwd'), 'utf8'), '');
      assert.equal(await readlink(path.join(layerfs, 'bin/sh')), '/bin/bash');
      assert.ok((await lstat(path.join(layerfs, '.cvmfscatalog'))).isFile());
      assert.equal((await publisher.readFile(`${LAYER}/.metadata/origin.json`))?.toString(), '{"a":1}');
      assert.deepEqual(JSON.parse((await publisher.readFile(`${LAYER}/.metadata/unpack.json`))?.toString() ?? ''), result);
      assert.deepEqual(withoutLists(await fake.invocations()), [
        `ingest --catalog -t - -b ${LAYER}/layerfs -k ${REPO}`,
        `transaction ${REPO}`,
        `publish ${REPO}`,
      ]);
      assert.equal((await publisher.lstat(`${LAYER}/layerfs`))?.isDirectory(), true);
      assert.equal(await publisher.lstat(`${LAYER}/nothing`), undefined);
      assert.equal(await publisher.readFile(`${LAYER}/nothing`), undefined);
    });

    it('gives the layer to the repository owner with keepLayerOwnership: false (DUCC argv)', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher({ keepLayerOwnership: false });
      const tar = await buildTar([{ name: 'f', content: 'x', uid: 1234, gid: 1234 }]);
      await publisher.publishLayer(LAYER, Readable.from([tar]), () => ({}));
      // Without -k the real ingest uses the repository owner; the stand-in uses its caller.
      const file = await stat(path.join(publisher.readRoot, LAYER, 'layerfs/f'));
      assert.deepEqual([file.uid, file.gid], [process.getuid?.(), process.getgid?.()]);
      assert.equal(withoutLists(await fake.invocations())[0], `ingest --catalog -t - -b ${LAYER}/layerfs ${REPO}`);
    });

    it('turns hard links to lower layers into empty files and reports them; keeps links inside the layer', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const mtime = new Date('2020-05-06T07:08:09Z');
      const tar = await buildTar([
        { name: 'usr/bin/', type: 'directory' },
        { name: 'usr/bin/local', content: 'inside' },
        { name: 'usr/bin/same', type: 'link', linkname: 'usr/bin/local' },
        { name: 'usr/bin/perl5', type: 'link', linkname: 'usr/bin/perl', mode: 0o755, uid: 1234, gid: 4321, mtime },
        { name: 'usr/bin/perl6', type: 'link', linkname: 'usr/bin/perl5' },
      ]);
      const result = await publisher.publishLayer(LAYER, Readable.from([tar]), () => ({}));

      assert.deepEqual(result.externalHardlinks, [
        { path: 'usr/bin/perl5', target: 'usr/bin/perl' },
        { path: 'usr/bin/perl6', target: 'usr/bin/perl' },
      ]);
      assert.deepEqual(result.warnings, []);
      const layerfs = path.join(publisher.readRoot, LAYER, 'layerfs');
      const placeholder = await lstat(path.join(layerfs, 'usr/bin/perl5'));
      assert.ok(placeholder.isFile());
      assert.equal(placeholder.size, 0);
      assert.equal(placeholder.mode & 0o7777, 0o755);
      assert.equal(placeholder.mtime.getTime(), mtime.getTime());
      const local = await lstat(path.join(layerfs, 'usr/bin/local'));
      const same = await lstat(path.join(layerfs, 'usr/bin/same'));
      assert.equal(same.ino, local.ino, 'a hard link inside the layer stays a hard link');
    });

    it('drops device nodes and FIFOs with a warning each', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const tar = await buildTar([
        { name: 'dev/', type: 'directory' },
        { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 },
        { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 },
        { name: 'run/pipe', type: 'fifo' },
        { name: 'dev/null2', type: 'link', linkname: 'dev/null' },
        { name: 'kept', content: 'x' },
      ]);
      const result = await publisher.publishLayer(LAYER, Readable.from([tar]), () => ({}));

      assert.equal(result.warnings.length, 4);
      assert.match(result.warnings[0] ?? '', /dev\/null.*character-device/);
      assert.match(result.warnings[1] ?? '', /dev\/sda.*block-device/);
      assert.match(result.warnings[2] ?? '', /run\/pipe.*fifo/);
      assert.match(result.warnings[3] ?? '', /dev\/null2.*hard link/);
      assert.deepEqual(result.externalHardlinks, []);
      const layerfs = path.join(publisher.readRoot, LAYER, 'layerfs');
      assert.deepEqual((await readdir(path.join(layerfs, 'dev'))).sort(), []);
      assert.equal(await publisher.lstat(`${LAYER}/layerfs/run/pipe`), undefined);
      assert.equal(await publisher.readFile(`${LAYER}/layerfs/kept`).then(String), 'x');
    });

    it('publishes nothing and rethrows the source error when the stream fails at its end', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const tar = await buildTar([
        { name: 'a', content: 'a'.repeat(1000) },
        { name: 'b', content: 'b' },
      ]);
      const mismatch = new Error('digest mismatch');
      let metadataCalled = false;
      await assert.rejects(
        publisher.publishLayer(LAYER, failingAtEnd(tar, mismatch), () => {
          metadataCalled = true;
          return {};
        }),
        (error) => error === mismatch,
      );

      assert.equal(metadataCalled, false);
      assert.equal(await publisher.lstat(LAYER), undefined);
      assert.equal(await publisher.lstat('.layers/ab'), undefined);
      const calls = await fake.invocations();
      assert.ok(calls.includes(`ingest --delete ${LAYER} ${REPO}`), calls.join('\n'));
      assert.ok(!calls.includes(`publish ${REPO}`));
      assert.doesNotMatch(await listOf(fake), /in transaction/);
    });

    it('refuses entries that climb out of the layer', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const tar = await buildTar([
        { name: 'a', content: 'a' },
        { name: 'x/../../escape', content: 'x' },
      ]);
      await assert.rejects(
        publisher.publishLayer(LAYER, Readable.from([tar]), () => ({})),
        (error) => error instanceof DuccError && error.code === 'BOT_ERR_UNSAFE_ENTRY',
      );
      assert.equal(await publisher.lstat(LAYER), undefined);
      assert.doesNotMatch(await listOf(fake), /in transaction/);
    });

    it('reports a failing ingest with its stderr, not the broken pipe', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher({ env: { CVMFS_FAKE_FAIL: 'ingest' } });
      const tar = await buildTar([{ name: 'big', content: Buffer.alloc(4 * 1024 * 1024, 7) }]);
      await assert.rejects(
        publisher.publishLayer(LAYER, Readable.from([tar]), () => ({})),
        (error) => {
          assert.ok(error instanceof DuccError);
          assert.equal(error.code, 'BOT_ERR_CVMFS');
          assert.match(error.message, /^cvmfs_server ingest repo\.example\.org failed \(exit 1\): .*injected failure of 'ingest'/);
          return true;
        },
      );
      assert.equal(await publisher.lstat(LAYER), undefined);
    });

    it('fails without touching a transaction that someone else opened', async (t) => {
      const fake = await setUp(t);
      await fake.server('transaction', REPO);
      const publisher = fake.publisher();
      const tar = await buildTar([{ name: 'a', content: 'a' }]);
      await assert.rejects(
        publisher.publishLayer(LAYER, Readable.from([tar]), () => ({})),
        /^DuccError: cvmfs_server ingest repo\.example\.org failed \(exit 1\): .*Impossible to start a transaction/,
      );
      assert.ok(!(await fake.invocations()).some((line) => line.startsWith('abort')));
      assert.match(await listOf(fake), /in transaction/);
    });

    it('removes the ingested layer when the metadata transaction fails', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher({ env: { CVMFS_FAKE_FAIL: 'publish' } });
      const tar = await buildTar([{ name: 'a', content: 'a' }]);
      await assert.rejects(
        publisher.publishLayer(LAYER, Readable.from([tar]), () => ({ 'x.json': Buffer.from('{}') })),
        /cvmfs_server publish repo\.example\.org failed \(exit 1\)/,
      );
      assert.equal(await publisher.lstat(LAYER), undefined);
      const calls = withoutLists(await fake.invocations());
      assert.deepEqual(calls.slice(-3), [`publish ${REPO}`, `abort -f ${REPO}`, `ingest --delete ${LAYER} ${REPO}`]);
    });

    it('refuses a layer directory that already exists', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      await mkdir(path.join(publisher.readRoot, LAYER), { recursive: true });
      const tar = Readable.from([await buildTar([{ name: 'a', content: 'a' }])]);
      await assert.rejects(
        publisher.publishLayer(LAYER, tar, () => ({})),
        (error) => error instanceof DuccError && error.code === 'BOT_ERR_PUBLISH' && /already exists/.test(error.message),
      );
      assert.ok(tar.destroyed);
      assert.deepEqual(await fake.invocations(), []);
    });
  });

  describe('publishTree', () => {
    it('keeps modes, ownership, symlinks and hard links (ingest -k)', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const source = path.join(fake.dir, 'source-file');
      await writeFile(source, 'from disk');
      const mtime = new Date('2021-02-03T04:05:06Z');
      await publisher.publishTree(
        '.flat/xy/xyz',
        entriesOf([
          { type: 'directory', path: 'opt', mode: 0o750, uid: 1234, gid: 1234, mtime },
          { type: 'file', path: 'opt/data', mode: 0o640, uid: 1234, gid: 4321, mtime, size: 5, content: Buffer.from('bytes') },
          { type: 'file', path: 'opt/tool', mode: 0o4755, uid: 0, gid: 1234, mtime, size: 9, source },
          { type: 'symlink', path: 'opt/link', target: 'data', uid: 1234, gid: 1234, mtime },
          { type: 'hardlink', path: 'opt/data2', target: 'opt/data' },
        ]),
      );

      const tree = path.join(publisher.readRoot, '.flat/xy/xyz');
      const opt = await lstat(path.join(tree, 'opt'));
      assert.equal(opt.mode & 0o7777, 0o750);
      assert.deepEqual([opt.uid, opt.gid], [1234, 1234]);
      assert.equal(opt.mtime.getTime(), mtime.getTime());
      const data = await lstat(path.join(tree, 'opt/data'));
      assert.deepEqual([data.mode & 0o7777, data.uid, data.gid], [0o640, 1234, 4321]);
      assert.equal(await readFile(path.join(tree, 'opt/data'), 'utf8'), 'bytes');
      const tool = await lstat(path.join(tree, 'opt/tool'));
      assert.deepEqual([tool.mode & 0o7777, tool.uid, tool.gid], [0o4755, 0, 1234]);
      assert.equal(await readFile(path.join(tree, 'opt/tool'), 'utf8'), 'from disk');
      const link = await lstat(path.join(tree, 'opt/link'));
      assert.ok(link.isSymbolicLink());
      assert.deepEqual([link.uid, link.gid], [1234, 1234]);
      assert.equal(await readlink(path.join(tree, 'opt/link')), 'data');
      assert.equal((await lstat(path.join(tree, 'opt/data2'))).ino, data.ino);
      assert.ok((await lstat(path.join(tree, '.cvmfscatalog'))).isFile());
      assert.deepEqual(withoutLists(await fake.invocations()), [`ingest --catalog -t - -b .flat/xy/xyz -k ${REPO}`]);
    });

    it('rethrows a failing source file and publishes nothing', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const mtime = DEFAULT_MTIME;
      await assert.rejects(
        publisher.publishTree(
          'tree',
          entriesOf([
            { type: 'file', path: 'a', mode: 0o644, uid: 0, gid: 0, mtime, size: 1, content: Buffer.from('a') },
            { type: 'file', path: 'b', mode: 0o644, uid: 0, gid: 0, mtime, size: 3, source: path.join(fake.dir, 'missing') },
          ]),
        ),
        (error) => (error as NodeJS.ErrnoException).code === 'ENOENT',
      );
      assert.equal(await publisher.lstat('tree'), undefined);
      assert.ok((await fake.invocations()).includes(`ingest --delete tree ${REPO}`));
      assert.doesNotMatch(await listOf(fake), /in transaction/);
    });

    it('refuses a hard link to something that is not an earlier file of the tree', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      await assert.rejects(
        publisher.publishTree('tree', entriesOf([{ type: 'hardlink', path: 'a', target: 'b' }])),
        (error) => error instanceof DuccError && error.code === 'BOT_ERR_PUBLISH',
      );
      assert.equal(await publisher.lstat('tree'), undefined);
    });

    it('passes repository-relative paths to cvmfs_server for a subdirectory repository', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher({ subdirectory: 'sub' });
      const mtime = DEFAULT_MTIME;
      await publisher.publishTree('tree', entriesOf([{ type: 'file', path: 'f', mode: 0o644, uid: 0, gid: 0, mtime, size: 1, content: Buffer.from('f') }]));
      await publisher.transaction((tx) => tx.writeFile('note', 'n'));
      assert.equal(await readFile(path.join(fake.root, REPO, 'sub/tree/f'), 'utf8'), 'f');
      assert.equal(await readFile(path.join(fake.root, REPO, 'sub/note'), 'utf8'), 'n');
      assert.deepEqual(withoutLists(await fake.invocations()), [`ingest --catalog -t - -b sub/tree -k ${REPO}`, `transaction ${REPO}`, `publish ${REPO}`]);
    });
  });

  describe('transaction', () => {
    it('writes inside an open transaction and publishes', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      await mkdir(path.join(publisher.readRoot, 'old/dir'), { recursive: true });
      const result = await publisher.transaction(async (tx) => {
        assert.equal((await fake.invocations()).at(-1), `transaction ${REPO}`);
        await tx.writeFile('.metadata/img/manifest.json', '{}');
        await tx.writeFile('bin/run', 'x', 0o755);
        await tx.mkdir('empty/dir');
        await tx.symlink('public/image:tag', '../.flat/ab/abc');
        await tx.symlink('public/image:tag', '../.flat/cd/cde');
        await tx.remove('old');
        await tx.remove('never/there');
        return 42;
      });

      assert.equal(result, 42);
      assert.deepEqual(withoutLists(await fake.invocations()), [`transaction ${REPO}`, `publish ${REPO}`]);
      assert.equal(await publisher.readFile('.metadata/img/manifest.json').then(String), '{}');
      assert.equal(((await publisher.lstat('bin/run'))?.mode ?? 0) & 0o7777, 0o755);
      assert.equal(((await publisher.lstat('.metadata'))?.mode ?? 0) & 0o7777, 0o755);
      assert.ok((await publisher.lstat('empty/dir'))?.isDirectory());
      assert.equal(await readlink(path.join(publisher.readRoot, 'public/image:tag')), '../.flat/cd/cde');
      assert.equal(await publisher.lstat('old'), undefined);
      assert.deepEqual(await readdir(path.join(publisher.readRoot, 'public')), ['image:tag'], 'no temporary files left');
    });

    it('aborts and rethrows the original error when the work fails', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const failure = new Error('work failed');
      await assert.rejects(
        publisher.transaction(async (tx) => {
          await tx.writeFile('half/written', 'x');
          throw failure;
        }),
        (error) => error === failure,
      );
      assert.deepEqual(withoutLists(await fake.invocations()), [`transaction ${REPO}`, `abort -f ${REPO}`]);
      assert.equal(await publisher.lstat('half'), undefined, 'the stand-in abort removes what the transaction created');
      assert.doesNotMatch(await listOf(fake), /in transaction/);
    });

    it('aborts when publishing fails and reports cvmfs_server stderr', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher({ env: { CVMFS_FAKE_FAIL: 'publish' } });
      await assert.rejects(
        publisher.transaction((tx) => tx.writeFile('f', 'x')),
        (error) => {
          assert.ok(error instanceof DuccError);
          assert.equal(error.code, 'BOT_ERR_CVMFS');
          assert.equal(
            error.message,
            "cvmfs_server publish repo.example.org failed (exit 1): CernVM-FS error: injected failure of 'publish' (CVMFS_FAKE_FAIL)",
          );
          return true;
        },
      );
      assert.deepEqual(withoutLists(await fake.invocations()), [`transaction ${REPO}`, `publish ${REPO}`, `abort -f ${REPO}`]);
    });

    it('keeps the original error when the abort fails too, and logs the abort failure', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher({ env: { CVMFS_FAKE_FAIL: 'abort' } });
      const failure = new Error('work failed');
      await assert.rejects(
        publisher.transaction(async () => {
          throw failure;
        }),
        (error) => error === failure,
      );
      assert.ok(fake.logLines.some((line) => /abort -f failed/.test(line)));
    });

    it('does not abort a transaction that someone else opened', async (t) => {
      const fake = await setUp(t);
      await fake.server('transaction', REPO);
      const publisher = fake.publisher();
      await assert.rejects(
        publisher.transaction(async () => 1),
        (error) => {
          assert.ok(error instanceof DuccError);
          assert.equal(
            error.message,
            'cvmfs_server transaction repo.example.org failed (exit 17): CernVM-FS transaction error: another transaction is already open',
          );
          return true;
        },
      );
      assert.ok(!(await fake.invocations()).some((line) => line.startsWith('abort')));
      assert.match(await listOf(fake), /in transaction/);
    });

    it('refuses to put a symlink over a regular file', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      await writeFile(path.join(publisher.readRoot, 'image:tag'), 'a file');
      await assert.rejects(
        publisher.transaction((tx) => tx.symlink('image:tag', '.flat/ab/abc')),
        (error) => error instanceof DuccError && error.code === 'BOT_ERR_PUBLISH' && /regular file/.test(error.message),
      );
      assert.equal(await publisher.readFile('image:tag').then(String), 'a file');
      assert.deepEqual(withoutLists(await fake.invocations()), [`transaction ${REPO}`, `abort -f ${REPO}`]);
    });

    it('refuses writes after the transaction is over, and paths that leave the repository', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      let leaked: Parameters<Parameters<CvmfsServerPublisher['transaction']>[0]>[0] | undefined;
      await publisher.transaction(async (tx) => {
        leaked = tx;
      });
      await assert.rejects(leaked?.writeFile('late', 'x') ?? Promise.resolve(), /already closed/);

      await mkdir(path.join(fake.dir, 'outside'));
      const { symlink } = await import('node:fs/promises');
      await symlink(path.join(fake.dir, 'outside'), path.join(publisher.readRoot, 'escape'));
      await assert.rejects(
        publisher.transaction((tx) => tx.writeFile('escape/file', 'x')),
        (error) => error instanceof DuccError && error.code === 'BOT_ERR_UNSAFE_ENTRY',
      );
      await assert.rejects(
        publisher.transaction((tx) => tx.writeFile('../x', 'x')),
        /must not contain '\.\.'/,
      );
      assert.deepEqual(await readdir(path.join(fake.dir, 'outside')), []);
    });
  });

  describe('recover', () => {
    it('aborts a transaction left open by a crash, with a warning', async (t) => {
      const fake = await setUp(t);
      await fake.server('transaction', REPO);
      const publisher = fake.publisher();
      await publisher.recover();
      assert.deepEqual(withoutLists(await fake.invocations()), [`transaction ${REPO}`, `abort -f ${REPO}`]);
      assert.doesNotMatch(await listOf(fake), /in transaction/);
      assert.ok(fake.logLines.some((line) => JSON.parse(line).level === 40 && /left in a transaction/.test(line)));
      await publisher.transaction((tx) => tx.writeFile('f', 'x'));
    });

    it('does nothing on a healthy repository', async (t) => {
      const fake = await setUp(t);
      await fake.publisher().recover();
      assert.deepEqual(await fake.invocations(), ['list']);
    });

    it('fails clearly when the repository is not in cvmfs_server list, comparing whole names', async (t) => {
      const fake = await setUp(t, [`${REPO}.old`, `x${REPO}`]);
      await assert.rejects(fake.publisher().recover(), (error) => {
        assert.ok(error instanceof DuccError);
        assert.equal(error.code, 'BOT_ERR_CVMFS');
        assert.equal(error.message, 'repository repo.example.org is not served by this machine (cvmfs_server list)');
        return true;
      });
    });

    it('fails clearly when cvmfs_server cannot be run', async (t) => {
      const fake = await setUp(t);
      await assert.rejects(
        fake.publisher({ cvmfsServer: path.join(fake.dir, 'no-such-cvmfs_server') }).recover(),
        (error) => error instanceof DuccError && error.code === 'BOT_ERR_CVMFS' && /cannot run .* list: .*ENOENT/.test(error.message),
      );
    });
  });

  describe('locking', () => {
    it('queues concurrent calls of one publisher instead of failing', async (t) => {
      const fake = await setUp(t);
      const publisher = fake.publisher();
      const slow = (name: string) =>
        publisher.transaction(async (tx) => {
          await new Promise((resolve) => setTimeout(resolve, 100));
          await tx.writeFile(name, name);
        });
      const tar = await buildTar([{ name: 'a', content: 'a' }]);
      await Promise.all([slow('one'), slow('two'), publisher.publishLayer(LAYER, Readable.from([tar]), () => ({})), slow('three')]);
      assert.deepEqual(withoutLists(await fake.invocations()), [
        `transaction ${REPO}`,
        `publish ${REPO}`,
        `transaction ${REPO}`,
        `publish ${REPO}`,
        `ingest --catalog -t - -b ${LAYER}/layerfs -k ${REPO}`,
        `transaction ${REPO}`,
        `publish ${REPO}`,
        `transaction ${REPO}`,
        `publish ${REPO}`,
      ]);
    });

    it('makes a second publisher (another process, sharing the lock dir) wait for the lock', async (t) => {
      const fake = await setUp(t);
      const first = fake.publisher();
      const second = fake.publisher();
      const release = deferred();
      const entered = deferred();
      let secondStarted = false;
      const one = first.transaction(async (tx) => {
        entered.resolve();
        await release.promise;
        await tx.writeFile('first', '1');
      });
      await entered.promise;
      const two = second.transaction(async (tx) => {
        secondStarted = true;
        await tx.writeFile('second', '2');
      });
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(secondStarted, false);
      assert.ok((await lstat(path.join(fake.lockDir, `ducc-gitops-${REPO}.lock`))).isDirectory());
      assert.deepEqual(await fake.invocations(), [`transaction ${REPO}`]);
      release.resolve();
      await Promise.all([one, two]);
      assert.deepEqual(await fake.invocations(), [`transaction ${REPO}`, `publish ${REPO}`, `transaction ${REPO}`, `publish ${REPO}`]);
      await assert.rejects(lstat(path.join(fake.lockDir, `ducc-gitops-${REPO}.lock`)), { code: 'ENOENT' });
    });

    it('gives up after lockWaitMs with a clear error', async (t) => {
      const fake = await setUp(t);
      const first = fake.publisher();
      const second = fake.publisher({ lockWaitMs: 300 });
      const release = deferred();
      const entered = deferred();
      const one = first.transaction(async () => {
        entered.resolve();
        await release.promise;
      });
      await entered.promise;
      await assert.rejects(
        second.transaction(async () => undefined),
        (error) => error instanceof DuccError && error.code === 'BOT_ERR_CVMFS' && /waiting for repository lock/.test(error.message),
      );
      release.resolve();
      await one;
    });
  });
});
