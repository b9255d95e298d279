/**
 * `ducc convert --config FILE` choosing the cvmfs publisher, run as a child process against the stand-in
 * cvmfs_server (test/support/fake-cvmfs-server) and the real registry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import type { WrittenImage } from '../../support/oci-image.ts';
import { debianShellEntries } from '../../support/debian-base-layer.ts';
import {
  asTestContext,
  entriesOf,
  exists,
  expectExit,
  FAKE_CVMFS_SERVER,
  flatPath,
  hexOf,
  layerPath,
  pushImage,
  runCli,
  suiteCleanup,
  tempDir,
  wishlistYaml,
  type Cleanup,
} from './cli-support.ts';

const run = promisify(execFile);
const REPO = 'cvmfs-cli.example.org';

interface Stratum0 {
  dir: string;
  mountRoot: string;
  state: string;
  config: string;
  env: Record<string, string>;
  repoDir: string;
  invocations(): Promise<string[]>;
  list(): Promise<string>;
}

/** A stand-in stratum 0: `<dir>/cvmfs/<REPO>/` (so `cvmfs_server list` knows the repository), state dir, config file. */
async function stratum0(t: Cleanup, extraEnv: Record<string, string> = {}): Promise<Stratum0> {
  const dir = await tempDir(t, 'ducc-cli-cvmfs-');
  const mountRoot = join(dir, 'cvmfs');
  const state = join(dir, 'state');
  const repoDir = join(mountRoot, REPO);
  await mkdir(repoDir, { recursive: true });
  const config = join(dir, 'ducc.yaml');
  await writeFile(config, ['publisher:', '  kind: cvmfs', `  mountRoot: '${mountRoot}'`, `  cvmfsServer: '${FAKE_CVMFS_SERVER}'`, ''].join('\n'));
  const env = { CVMFS_FAKE_ROOT: mountRoot, CVMFS_FAKE_STATE: state, ...extraEnv };
  return {
    dir,
    mountRoot,
    state,
    config,
    env,
    repoDir,
    invocations: async () => (await readFile(join(state, 'invocations.log'), 'utf8').catch(() => '')).split('\n').filter((line) => line !== ''),
    list: async () => (await run(FAKE_CVMFS_SERVER, ['list'], { env: { ...process.env, CVMFS_FAKE_ROOT: mountRoot, CVMFS_FAKE_STATE: state } })).stdout,
  };
}

describe('ducc convert --config (cvmfs publisher, stand-in cvmfs_server)', () => {
  let registry: TestRegistry;
  let first: WrittenImage;
  let second: WrittenImage;
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    const base = [...debianShellEntries(), { name: 'etc/', type: 'directory' as const }, { name: 'etc/os-release', content: 'ID=test\n' }];
    first = await pushImage(suite, registry, 'sci/first', '1.0', [
      base,
      [
        { name: 'opt/', type: 'directory' },
        { name: 'opt/first', content: 'one' },
      ],
    ]);
    second = await pushImage(suite, registry, 'sci/second', '2.0', [
      base,
      [
        { name: 'opt/', type: 'directory' },
        { name: 'opt/second', content: 'two' },
      ],
    ]);
  });
  after(() => suite.runAll());

  it('ingests layers and flat trees, shares one transaction per image for the small writes, and leaves no transaction open', async (t) => {
    const s0 = await stratum0(t);
    const wishlist = join(s0.dir, 'wishlist.yaml');
    await writeFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/sci/first:1.0`, `http://${registry.host}/sci/second:2.0`]));

    const result = expectExit(await runCli(['convert', wishlist, '--config', s0.config, '--skip-thin-image'], { env: s0.env }), 0);

    assert.match(result.stdout, /^2 converted, 0 up to date, 0 failed$/m);
    // Layout under mountRoot/<repo>: layers (nested catalogs, metadata), flat trees, metadata, public symlinks.
    const repo = s0.repoDir;
    const layers = [...new Set([...first.layerDigests, ...second.layerDigests])];
    assert.equal(layers.length, 3, 'the base layer is shared');
    for (const digest of layers) {
      assert.equal((await lstat(join(repo, layerPath(digest), 'layerfs/.cvmfscatalog'))).size, 0);
      const layersJson = JSON.parse(await readFile(join(repo, layerPath(digest), '.metadata/layers.json'), 'utf8'));
      assert.equal(layersJson[0]['compressed-diff-digest'], digest);
    }
    assert.ok((await lstat(join(repo, layerPath(first.layerDigests[0]!), 'layerfs/bin/dash'))).isFile());
    const baseOrigin = JSON.parse(await readFile(join(repo, layerPath(first.layerDigests[0]!), '.metadata/origin.json'), 'utf8'));
    assert.deepEqual(baseOrigin, { origin: [first.configDigest, second.configDigest] });
    for (const [image, name, file] of [
      [first, 'sci/first:1.0', 'opt/first'],
      [second, 'sci/second:2.0', 'opt/second'],
    ] as const) {
      const flat = join(repo, flatPath(image.configDigest));
      assert.ok((await lstat(join(flat, '.cvmfscatalog'))).isFile(), `${name}: flat tree is a nested catalog`);
      assert.ok((await lstat(join(flat, 'bin/dash'))).isFile());
      assert.ok((await lstat(join(flat, '.singularity.d/runscript'))).isFile());
      assert.ok(await exists(join(flat, file)));
      assert.equal(await readlink(join(repo, registry.host, name)), `../../${flatPath(image.configDigest)}`);
      const manifest = JSON.parse(await readFile(join(repo, '.metadata', registry.host, name, 'manifest.json'), 'utf8'));
      assert.equal(manifest.Config.Digest, image.configDigest);
      assert.deepEqual(
        manifest.Layers.map((l: { Digest: string }) => l.Digest),
        image.layerDigests,
      );
    }
    for (const marker of ['.layers/.cvmfscatalog', '.flat/.cvmfscatalog']) assert.ok(await exists(join(repo, marker)), marker);

    // The calls: every layer and flat tree through ingest; every transaction closed by its publish at once.
    const calls = (await s0.invocations()).filter((line) => line !== 'list');
    const ingests = calls.filter((line) => line.startsWith('ingest '));
    assert.deepEqual(
      ingests.slice().sort(),
      [
        ...layers.map((d) => `ingest --catalog -t - -b ${layerPath(d)}/layerfs -k ${REPO}`),
        ...[first, second].map((i) => `ingest --catalog -t - -b ${flatPath(i.configDigest)} -k ${REPO}`),
      ].sort(),
    );
    for (let i = 0; i < calls.length; i++) {
      if (calls[i] === `transaction ${REPO}`) assert.equal(calls[i + 1], `publish ${REPO}`, `call ${i + 1} after transaction: ${calls.join(' | ')}`);
      if (calls[i] === `publish ${REPO}`) assert.equal(calls[i - 1], `transaction ${REPO}`);
    }
    assert.ok(!calls.some((line) => line.startsWith('abort')), calls.join('\n'));
    // Per layer one transaction for its .metadata, per image one for the small writes, right after its flat ingest.
    assert.equal(calls.filter((line) => line === `transaction ${REPO}`).length, layers.length + 2);
    for (const image of [first, second]) {
      const flatIngest = calls.indexOf(`ingest --catalog -t - -b ${flatPath(image.configDigest)} -k ${REPO}`);
      assert.deepEqual(calls.slice(flatIngest + 1, flatIngest + 3), [`transaction ${REPO}`, `publish ${REPO}`]);
    }
    assert.equal(calls.at(-1), `publish ${REPO}`);
    assert.doesNotMatch(await s0.list(), /in transaction/);
    assert.ok(!(await entriesOf(s0.state)).some((name) => name.endsWith('.transaction') || name.startsWith('staging.')));

    // A second run is a no-op: no ingest, no transaction.
    const before = (await s0.invocations()).length;
    const again = expectExit(await runCli(['convert', wishlist, '--config', s0.config, '--skip-thin-image'], { env: s0.env }), 0);
    assert.match(again.stdout, /^0 converted, 2 up to date, 0 failed$/m);
    assert.deepEqual((await s0.invocations()).slice(before), ['list']);

    // -g -f: every layer goes through ingest again; the shared layer keeps the backlinks of both images.
    const beforeForce = (await s0.invocations()).length;
    const forced = expectExit(await runCli(['convert', wishlist, '--config', s0.config, '--skip-thin-image', '-g', '-f'], { env: s0.env }), 0);
    assert.match(forced.stdout, /^2 converted, 0 up to date, 0 failed$/m);
    const forcedCalls = (await s0.invocations()).slice(beforeForce);
    for (const digest of layers)
      assert.ok(forcedCalls.includes(`ingest --catalog -t - -b ${layerPath(digest)}/layerfs -k ${REPO}`), `${digest} not ingested again`);
    assert.ok(!forcedCalls.some((line) => line.startsWith('ingest --catalog -t - -b .flat/')), 'flat trees are kept');
    const origin = JSON.parse(await readFile(join(repo, layerPath(first.layerDigests[0]!), '.metadata/origin.json'), 'utf8')) as { origin: string[] };
    assert.deepEqual(new Set(origin.origin), new Set([first.configDigest, second.configDigest]));
    assert.doesNotMatch(await s0.list(), /in transaction/);
  });

  it('a failing cvmfs_server publish gives a clear error, exit 1, an abort -f and nothing under final names', async (t) => {
    const s0 = await stratum0(t, { CVMFS_FAKE_FAIL: 'publish' });
    const wishlist = join(s0.dir, 'wishlist.yaml');
    await writeFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/sci/first:1.0`]));

    const result = expectExit(
      await runCli(['convert', wishlist, '--config', s0.config, '--skip-thin-image', '--max-concurrent-downloads', '1'], { env: s0.env }),
      1,
    );

    const errors = result.stdout.split('\n').filter((line) => line.startsWith('error: '));
    assert.equal(errors.length, 1, result.stdout);
    assert.match(
      errors[0]!,
      new RegExp(
        `^error: .*wishlist\\.yaml:5: http://${registry.host.replace(/\./g, '\\.')}/sci/first:1\\.0: cvmfs_server publish ${REPO.replace(/\./g, '\\.')} failed \\(exit 1\\): CernVM-FS error: injected failure of 'publish'`,
      ),
    );
    assert.match(result.stdout, /^0 converted, 0 up to date, 1 failed$/m);
    const calls = await s0.invocations();
    assert.ok(calls.includes(`abort -f ${REPO}`), calls.join('\n'));
    assert.equal(calls.indexOf(`abort -f ${REPO}`), calls.indexOf(`publish ${REPO}`) + 1, 'the failed publish is aborted at once');
    assert.doesNotMatch(await s0.list(), /in transaction/);
    // The half-published layer is taken back; no symlink, no manifest.
    assert.ok(
      calls.some((line) => line.startsWith('ingest --delete .layers/')),
      calls.join('\n'),
    );
    for (const digest of first.layerDigests) assert.equal(await exists(join(s0.repoDir, layerPath(digest))), false, `${hexOf(digest)} left behind`);
    assert.equal(await exists(join(s0.repoDir, registry.host, 'sci/first:1.0')), false);
    assert.equal(await exists(join(s0.repoDir, '.metadata', registry.host, 'sci/first:1.0', 'manifest.json')), false);
  });

  it('an image listing the same layer twice converts: one ingest for it, its origin written once', async (t) => {
    const same = [{ name: 'empty-ish', content: '' }];
    const image = await pushImage(t, registry, 'sci/repeated', '1', [same, [{ name: 'middle', content: 'm' }], same]);
    assert.equal(image.layerDigests[0], image.layerDigests[2]);
    const s0 = await stratum0(t);
    const wishlist = join(s0.dir, 'wishlist.yaml');
    await writeFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/sci/repeated:1`]));
    const notifications = join(s0.dir, 'notifications.jsonl');

    const result = expectExit(await runCli(['convert', wishlist, '--config', s0.config, '--skip-thin-image', '-n', notifications], { env: s0.env }), 0);

    assert.match(result.stdout, /^1 converted, 0 up to date, 0 failed$/m);
    const ingests = (await s0.invocations()).filter((line) => line.startsWith('ingest ') && line.includes('/layerfs '));
    assert.deepEqual(
      ingests.sort(),
      [image.layerDigests[0]!, image.layerDigests[1]!].map((d) => `ingest --catalog -t - -b ${layerPath(d)}/layerfs -k ${REPO}`).sort(),
    );
    const origin = JSON.parse(await readFile(join(s0.repoDir, layerPath(image.layerDigests[0]!), '.metadata/origin.json'), 'utf8'));
    assert.deepEqual(origin, { origin: [image.configDigest] });
    const started = (await readFile(notifications, 'utf8'))
      .trim()
      .split('\n')
      .filter((line) => line.includes('"start_layer_conversion"'));
    assert.equal(started.length, 2);
    assert.ok(await exists(join(s0.repoDir, flatPath(image.configDigest), 'middle')));
  });

  it('a layer left ingested without its metadata (killed between ingest and transaction) is unpacked again', async (t) => {
    const s0 = await stratum0(t);
    const wishlist = join(s0.dir, 'wishlist.yaml');
    await writeFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/sci/first:1.0`]));
    // What a SIGKILL right after `cvmfs_server ingest` of the top layer leaves: a published layerfs, no .metadata.
    const top = first.layerDigests[1]!;
    await mkdir(join(s0.repoDir, layerPath(top), 'layerfs/opt'), { recursive: true });
    await writeFile(join(s0.repoDir, layerPath(top), 'layerfs/.cvmfscatalog'), '');

    const result = expectExit(await runCli(['convert', wishlist, '--config', s0.config, '--skip-thin-image'], { env: s0.env }), 0);

    assert.match(result.stdout, /^1 converted, 0 up to date, 0 failed$/m);
    assert.ok(await exists(join(s0.repoDir, layerPath(top), '.metadata/layers.json')));
    assert.equal(await readFile(join(s0.repoDir, layerPath(top), 'layerfs/opt/first'), 'utf8'), 'one');
    assert.equal(await readFile(join(s0.repoDir, registry.host, 'sci/first:1.0', 'opt/first'), 'utf8'), 'one');
    assert.doesNotMatch(await s0.list(), /in transaction/);
  });

  it('a repository that cvmfs_server list does not know fails with a clear message', async (t) => {
    const s0 = await stratum0(t);
    const wishlist = join(s0.dir, 'wishlist.yaml');
    await writeFile(wishlist, wishlistYaml('other.example.org', [`http://${registry.host}/sci/first:1.0`]));

    const result = expectExit(await runCli(['convert', wishlist, '--config', s0.config, '--skip-thin-image'], { env: s0.env }), 1);

    assert.match(result.stderr, /^ducc: repository other\.example\.org is not served by this machine \(cvmfs_server list\)$/m);
    assert.deepEqual(await s0.invocations(), ['list']);
  });
});
