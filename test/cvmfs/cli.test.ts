/**
 * `ducc convert --config` with the cvmfs publisher on a real CernVM-FS 2.12 stratum 0, through the real
 * CLI: odd images, a layer left incomplete by an older tool, a failing `cvmfs_server`, a repository this
 * machine does not serve.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { CvmfsServerPublisher } from '../../src/publish/cvmfs/cvmfs-publisher.ts';
import { buildTar } from '../support/build-tar.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { cvmfsServerShim, createRepository, type TestRepository } from '../support/stratum0.ts';
import { tempDir } from '../support/tmp-dir.ts';
import { exists, expectExit, flatPath, layerPath, pushImage, runCli, wishlistYaml } from '../integration/cli/cli-support.ts';

describe('ducc convert with the cvmfs publisher on a real stratum 0', () => {
  let registry: TestRegistry;
  let repo: TestRepository;
  let work: string;
  let shim: Awaited<ReturnType<typeof cvmfsServerShim>>;
  let config: string;
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext;

  before(async () => {
    registry = await startRegistry(suite);
    repo = await createRepository(suite, 'cli');
    work = await tempDir(suite);
    shim = await cvmfsServerShim(join(work, 'bin'));
    config = join(work, 'ducc.yaml');
    await writeFile(
      config,
      ['publisher:', '  kind: cvmfs', `  cvmfsServer: ${shim.command}`, `  lockDir: ${work}`, `  stagingDir: ${join(work, 'staging')}`, ''].join('\n'),
    );
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const wishlistFor = async (name: string, inputs: string[], cvmfsRepo = repo.name) => {
    const file = join(work, `${name}.yaml`);
    await writeFile(file, wishlistYaml(cvmfsRepo, inputs));
    return file;
  };
  const callsDuring = async <T>(action: () => Promise<T>): Promise<{ result: T; calls: string[] }> => {
    const before = (await shim.calls()).length;
    const result = await action();
    return { result, calls: (await shim.calls()).slice(before).map((argv) => argv.join(' ')) };
  };

  it('an image listing the same layer twice converts in two publishes: its layers in one ingest, the image in another', async (t) => {
    const same = [{ name: 'empty-ish', content: '' }];
    const image = await pushImage(t, registry, 'sci/repeated', '1', [same, [{ name: 'middle', content: 'm' }], same]);
    assert.equal(image.layerDigests[0], image.layerDigests[2]);
    const wishlist = await wishlistFor('repeated', [`http://${registry.host}/sci/repeated:1`]);

    const { result, calls } = await callsDuring(() => runCli(['convert', wishlist, '--config', config, '--skip-thin-image']));

    expectExit(result, 0);
    assert.match(result.stdout, /^1 converted, 0 up to date, 0 failed$/m);
    assert.deepEqual(calls, ['list', `ingest -t - -b / -k ${repo.name}`, `ingest -t - -b / -k ${repo.name}`]);
    const origin = JSON.parse(await readFile(join(repo.mount, layerPath(image.layerDigests[0]!), '.metadata/origin.json'), 'utf8'));
    assert.deepEqual(origin, { origin: [image.configDigest] });
    assert.equal(await readFile(join(repo.mount, flatPath(image.configDigest), 'middle'), 'utf8'), 'm');
  });

  it('a layer published without its metadata (by an older tool, or DUCC killed between its publishes) is unpacked again', async (t) => {
    const image = await pushImage(t, registry, 'sci/first', '1.0', [
      [{ name: 'etc/', type: 'directory' }],
      [
        { name: 'opt/', type: 'directory' },
        { name: 'opt/first', content: 'one' },
      ],
    ]);
    const top = image.layerDigests[1]!;
    const publisher = new CvmfsServerPublisher({ repository: repo.name, lockDir: work, stagingDir: join(work, 'staging'), logger: pino({ level: 'silent' }) });
    await publisher.publishLayers((batch) => batch.add(layerPath(top), Readable.from([Buffer.alloc(0)]), () => ({})).then(() => undefined));
    assert.equal(await exists(join(repo.mount, layerPath(top), '.metadata/layers.json')), false);
    const wishlist = await wishlistFor('first', [`http://${registry.host}/sci/first:1.0`]);

    const result = expectExit(await runCli(['convert', wishlist, '--config', config, '--skip-thin-image']), 0);

    assert.match(result.stdout, /^1 converted, 0 up to date, 0 failed$/m);
    assert.ok(await exists(join(repo.mount, layerPath(top), '.metadata/layers.json')));
    assert.equal(await readFile(join(repo.mount, registry.host, 'sci/first:1.0', 'opt/first'), 'utf8'), 'one');
    await repo.check();
  });

  it('a failing cvmfs_server ingest: one error line naming the wish, exit 1, nothing under final names, no transaction left', async (t) => {
    const image = await pushImage(t, registry, 'sci/failing', '1', [await buildTar([{ name: 'failing', content: 'f' }])]);
    const wishlist = await wishlistFor('failing', [`http://${registry.host}/sci/failing:1`]);
    await shim.failNext(['ingest']);
    let result;
    try {
      result = expectExit(await runCli(['convert', wishlist, '--config', config, '--skip-thin-image']), 1);
    } finally {
      await shim.failNext([]);
    }

    assert.match(result.stdout, /^0 converted, 0 up to date, 1 failed$/m);
    assert.match(result.stdout + result.stderr, /sci\/failing:1.*cvmfs_server ingest .* failed \(exit 1\): injected failure of 'ingest'/);
    assert.equal(await exists(join(repo.mount, layerPath(image.layerDigests[0]!))), false);
    assert.equal(await exists(join(repo.mount, registry.host, 'sci/failing:1')), false);
    // Only this repository's line: other test suites on the machine may have theirs in a transaction.
    assert.doesNotMatch(await repo.server(['list']), new RegExp(`^${repo.name.replaceAll('.', '\\.')} .*in transaction`, 'm'));
  });

  it('a repository that cvmfs_server list does not know fails with a clear message', async () => {
    const wishlist = await wishlistFor('other', [`http://${registry.host}/sci/first:1.0`], 'not-here.example.org');

    const { result, calls } = await callsDuring(() => runCli(['convert', wishlist, '--config', config, '--skip-thin-image']));

    expectExit(result, 1);
    assert.match(result.stderr, /^ducc: repository not-here\.example\.org is not served by this machine \(cvmfs_server list\)$/m);
    assert.deepEqual(calls, ['list']);
  });
});
