/**
 * The cvmfs publisher on a real CernVM-FS 2.12 stratum 0: the shared test images converted into a real
 * repository give the directory publisher's trees entry by entry, in at most two publishes per image,
 * with nested catalogs where DUCC puts them; a second run publishes nothing; everything is readable by
 * an unprivileged user where the image allows it.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildTar } from '../support/build-tar.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { pushOciLayout, writeOciLayout, type TestImageSpec } from '../support/oci-image.ts';
import { cvmfsServerShim, createRepository, type TestRepository } from '../support/stratum0.ts';
import { debianLikeImage } from '../support/test-images.ts';
import { snapshotTree, type SnapshotEntry } from '../support/tree-snapshot.ts';
import { tempDir } from '../support/tmp-dir.ts';
import { parseWishlist } from '../../src/wishlist/wishlist.ts';
import { runConversion } from '../../src/cli/run-conversion.ts';
import { createLogger } from '../../src/util/logger.ts';

const run = promisify(execFile);
const quiet = createLogger({ level: 'silent' });

describe('cvmfs publisher on a real stratum 0: conversion', () => {
  let registry: TestRegistry;
  let repo: TestRepository;
  let work: string;
  let wishes: string[];
  let server: Awaited<ReturnType<typeof cvmfsServerShim>>;
  let big: Buffer;
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext;

  before(async () => {
    registry = await startRegistry(suite);
    repo = await createRepository(suite, 'convert');
    work = await tempDir(suite);
    server = await cvmfsServerShim(join(work, 'bin'));
    const layout = join(work, 'layout');
    const image = await debianLikeImage();
    wishes = [];
    const push = async (
      repository: string,
      tag: string,
      images: TestImageSpec[],
      options: { compression?: 'gzip' | 'zstd' | 'none'; format?: 'oci' | 'docker' } = {},
    ) => {
      await writeOciLayout(layout, `${repository.replaceAll('/', '-')}-${tag}`, images, options.compression ? { compression: options.compression } : {});
      await pushOciLayout(layout, `${repository.replaceAll('/', '-')}-${tag}`, {
        host: registry.host,
        repository,
        tag,
        ...(options.format ? { format: options.format } : {}),
      });
      wishes.push(`http://${registry.host}/${repository}:${tag}`);
    };
    await push('test/debianish', 'gzip', [image]);
    await push('test/debianish', 'zstd', [image], { compression: 'zstd' });
    await push('test/debianish', 'plain', [image], { compression: 'none' });
    await push('test/debianish', 'docker', [image], { format: 'docker' });
    await push('test/multi', 'index', [
      { layers: [await buildTar([{ name: 'arch', content: 'arm64' }])], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { ...image, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    // A file above CernVM-FS's chunk sizes (4-16 MiB): the flat tree's catalog clone of it must read whole.
    big = randomBytes(24 * 1024 * 1024);
    await push('test/big', '1', [
      {
        layers: [
          await buildTar([
            { name: 'data/', type: 'directory' },
            { name: 'data/big.bin', content: big },
          ]),
        ],
      },
    ]);
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const wishlist = (cvmfsRepo: string) =>
    parseWishlist(['version: 1', `cvmfs_repo: '${cvmfsRepo}'`, 'input:', ...wishes.map((w) => `  - '${w}'`), ''].join('\n'), 'wishlist.yaml');
  const cvmfsConfig = async () => {
    const file = join(work, 'ducc.yaml');
    await writeFile(
      file,
      [
        'publisher:',
        '  kind: cvmfs',
        `  cvmfsServer: ${server.command}`,
        `  lockDir: ${join(work, 'locks')}`,
        `  stagingDir: ${join(work, 'staging')}`,
        '',
      ].join('\n'),
    );
    await run('mkdir', ['-p', join(work, 'locks')]);
    return file;
  };

  it('gives the directory publisher tree entry by entry, at most two publishes per image, catalogs where DUCC puts them', async () => {
    const reference = await runConversion(wishlist('ref.example.org'), { repoRoot: join(work, 'dir'), skipThinImage: true }, {}, quiet);
    assert.equal(reference.failed, 0);
    const config = await cvmfsConfig();

    const summary = await runConversion(wishlist(repo.name), { config, skipThinImage: true }, {}, quiet);

    assert.deepEqual([summary.converted, summary.failed], [wishes.length, 0]);
    // Layers staged side by side share one staging directory, removed with the image's ingest.
    assert.deepEqual(await readdir(join(work, 'staging', repo.name)).catch(() => []), []);
    const ours = await snapshotTree(repo.mount, { ignore: (path) => path === 'new_repository' });
    const expected = await snapshotTree(join(work, 'dir', 'ref.example.org'));
    // layers.json records when the layer was unpacked: its bytes differ between two conversions.
    const comparable = (path: string, entry: SnapshotEntry | undefined) =>
      entry !== undefined && path.endsWith('/.metadata/layers.json') ? { ...entry, size: 0, sha256: '' } : entry;
    for (const [path, entry] of expected) assert.deepEqual(comparable(path, ours.get(path)), comparable(path, entry), `${path} differs between the publishers`);
    for (const path of ours.keys()) assert.ok(expected.has(path), `${path} is only in the cvmfs repository`);

    const publishes = (await server.calls()).filter(([command]) => command === 'ingest' || command === 'publish' || command === 'transaction');
    assert.ok(
      publishes.length <= 2 * wishes.length,
      `${publishes.length} publishes for ${wishes.length} images:\n${publishes.map((c) => c.join(' ')).join('\n')}`,
    );

    const catalogs = await repo.catalogs();
    const layers = [...expected.keys()].filter((path) => /^\.layers\/[0-9a-f]{2}\/[0-9a-f]{64}\/layerfs$/.test(path));
    const fanouts = [...new Set(layers.map((path) => path.split('/').slice(0, 2).join('/')))];
    const flats = [...expected.keys()].filter((path) => /^\.flat\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(path));
    assert.deepEqual(catalogs, ['.flat', '.layers', ...fanouts, ...layers, ...flats].sort());
    await repo.check();

    // The big file's clone reads whole through the client.
    const bigLink = await readlink(join(repo.mount, registry.host, 'test/big:1'));
    const { stdout } = await run('sha256sum', [join(repo.mount, registry.host, 'test', bigLink, 'data/big.bin')]);
    assert.equal(stdout.split(' ')[0], createHash('sha256').update(big).digest('hex'));
  });

  it('a second run makes no ingest, no transaction and no blob request', async () => {
    const config = await cvmfsConfig();
    const before = (await server.calls()).length;

    const summary = await runConversion(wishlist(repo.name), { config, skipThinImage: true }, {}, quiet);

    assert.deepEqual([summary.upToDate, summary.converted, summary.failed], [wishes.length, 0, 0]);
    assert.equal(summary.blobRequests, 0);
    const calls = (await server.calls()).slice(before);
    assert.deepEqual(
      calls.map(([command]) => command),
      ['list'],
      `only recover's list: ${calls.map((c) => c.join(' ')).join('; ')}`,
    );
  });

  it('every path is readable by an unprivileged user unless the image itself forbids it', async () => {
    // As nobody: every directory entered and every file read, except below the image's own 0750 home/user.
    const { stdout, stderr } = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'find', repo.mount, '!', '-readable', '-print'], {
      maxBuffer: 64 << 20,
    }).catch((error: { stdout: string; stderr: string }) => error);
    const unreadable = stdout.split('\n').filter((line) => line !== '');
    const allowed = /\/\.(layers\/[0-9a-f]{2}\/[0-9a-f]{64}\/layerfs|flat\/[0-9a-f]{2}\/[0-9a-f]{64})\/home\/user(\/notes)?$/;
    assert.deepEqual(
      unreadable.filter((path) => !allowed.test(path)),
      [],
      `unreadable for nobody:\n${unreadable.join('\n')}\n${stderr}`,
    );
    assert.ok(unreadable.length > 0, 'the image does have a 0750 directory (home/user), which nobody must not read');
  });
  it('both publishers unpack with one set of entry rules: the same limits refuse the same layer with the same error (issue 16 point 8)', async (t) => {
    // 10 entries, 6 directories deep: over DUCC_LIMIT_LAYER_ENTRIES=5 and DUCC_LIMIT_PATH_DEPTH=3.
    const layout = join(work, 'layout-limits');
    const deep = 'a/b/c/d/e/f/';
    const entries = [
      ...deep
        .split('/')
        .filter(Boolean)
        .map((_, i, parts) => ({ name: `${parts.slice(0, i + 1).join('/')}/`, type: 'directory' as const })),
      ...Array.from({ length: 4 }, (_, i) => ({ name: `${deep}file${i}`, content: `file ${i}\n` })),
    ];
    assert.equal(entries.length, 10);
    await writeOciLayout(layout, 'limits', [{ layers: [await buildTar(entries)] }]);
    await pushOciLayout(layout, 'limits', { host: registry.host, repository: 'test/limits', tag: '1' });
    const list = (cvmfsRepo: string) =>
      parseWishlist(['version: 1', `cvmfs_repo: '${cvmfsRepo}'`, 'input:', `  - 'http://${registry.host}/test/limits:1'`, ''].join('\n'), 'wishlist.yaml');
    const config = await cvmfsConfig();
    const saved = { entries: process.env['DUCC_LIMIT_LAYER_ENTRIES'], depth: process.env['DUCC_LIMIT_PATH_DEPTH'] };
    t.after(() => {
      for (const [name, value] of [
        ['DUCC_LIMIT_LAYER_ENTRIES', saved.entries],
        ['DUCC_LIMIT_PATH_DEPTH', saved.depth],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });
    const failures: string[][] = [];
    for (const limits of [{ entries: '5' }, { depth: '3' }]) {
      delete process.env['DUCC_LIMIT_LAYER_ENTRIES'];
      delete process.env['DUCC_LIMIT_PATH_DEPTH'];
      if (limits.entries) process.env['DUCC_LIMIT_LAYER_ENTRIES'] = limits.entries;
      if (limits.depth) process.env['DUCC_LIMIT_PATH_DEPTH'] = limits.depth;
      const calls = (await server.calls()).length;

      const directory = await runConversion(list('limits.example.org'), { repoRoot: join(work, 'dir-limits'), skipThinImage: true }, {}, quiet);
      const cvmfs = await runConversion(list(repo.name), { config, skipThinImage: true }, {}, quiet);

      assert.equal(directory.failed, 1);
      assert.equal(cvmfs.failed, 1);
      const messages = [directory, cvmfs].map((summary) => summary.failures[0]!.message);
      assert.match(messages[0]!, limits.entries ? /: more than 5 entries/ : /deeper than 3 directories/);
      assert.equal(messages[1], messages[0], 'the publishers disagree on the same layer');
      failures.push(messages);
      // Nothing of the refused image was published on the stratum 0.
      const published = (await server.calls()).slice(calls).filter(([command]) => command === 'ingest' || command === 'publish');
      assert.deepEqual(published, [], 'the refused layer must not reach cvmfs_server');
    }
    assert.notEqual(failures[0]![0], failures[1]![0]);
    await repo.check();
  });
});
