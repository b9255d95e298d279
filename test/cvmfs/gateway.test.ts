/**
 * Publishing through the CernVM-FS repository gateway (CernVM-FS 2.12, cvmfs_gateway on loopback): the
 * gateway publisher gives the directory publisher's trees; two conversion workers on two publisher nodes
 * (the second in a mount namespace of its own) publish disjoint shards of one wish list at the same time;
 * a worker killed while it holds a lease is recovered, and its image completes.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { createGatewayRepository, type GatewayRepository, type PublisherNode } from '../support/gateway.ts';
import { debianLikeImage } from '../support/test-images.ts';
import { snapshotTree, type SnapshotEntry } from '../support/tree-snapshot.ts';
import { tempDir } from '../support/tmp-dir.ts';
import { waitFor } from '../support/wait-for.ts';
import { CLI } from '../integration/cli/cli-support.ts';
import { parseWishlist } from '../../src/wishlist/wishlist.ts';
import { runConversion } from '../../src/cli/run-conversion.ts';
import { createLogger } from '../../src/util/logger.ts';

const quiet = createLogger({ level: 'silent' });
const STALL_HOOK = new URL('../integration/crash/stall-hook.ts', import.meta.url).pathname;

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** `ducc ARGS` on a publisher node (through nsenter for nodes 2..), never through a shell. */
function cliOn(node: PublisherNode, args: string[], env: Record<string, string> = {}, nodeOptions: string[] = []) {
  const argv = [...node.prefix, process.execPath, ...nodeOptions, CLI, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const done = new Promise<CliRun>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, output })));
  return { child, done, output: () => output };
}

describe('publishing through the repository gateway', () => {
  let registry: TestRegistry;
  let repo: GatewayRepository;
  let work: string;
  let images: string[];
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext;

  before(async () => {
    registry = await startRegistry(suite);
    repo = await createGatewayRepository(suite, 'gateway', { nodes: 2, maxLeaseSeconds: 20 });
    work = await tempDir(suite);
    // Six image repositories sharing a base layer: the workers meet on it (one waits for the other's lease).
    const layout = join(work, 'layout');
    const base = await buildTar([
      { name: 'etc/', type: 'directory' },
      ...Array.from({ length: 50 }, (_, i) => ({ name: `etc/base${i}`, content: `base ${i}\n` })),
    ]);
    images = [];
    for (let i = 0; i < 6; i++) {
      const own = await buildTar([
        { name: 'app/', type: 'directory' },
        ...Array.from({ length: 200 }, (_, j) => ({ name: `app/f${j}`, content: `image ${i} file ${j}\n`.repeat(30) })),
      ]);
      await writeOciLayout(layout, `i${i}`, [{ layers: [base, own], config: { Cmd: ['/bin/sh'], Labels: { image: String(i) } } }]);
      await pushOciLayout(layout, `i${i}`, { host: registry.host, repository: `shard/image${i}`, tag: 'v1' });
      images.push(`http://${registry.host}/shard/image${i}:v1`);
    }
    const debianish = join(work, 'debianish');
    await writeOciLayout(debianish, 'v1', [await debianLikeImage()]);
    await pushOciLayout(debianish, 'v1', { host: registry.host, repository: 'test/debianish', tag: 'v1' });
    for (const node of repo.nodes) {
      // A lock directory per node, as on separate machines (the gateway arbitrates between nodes).
      await mkdir(join(work, `locks${node.index}`));
      const config = [
        'publisher:',
        '  kind: cvmfs',
        `  lockDir: ${join(work, `locks${node.index}`)}`,
        `  stagingDir: ${join(work, `staging${node.index}`)}`,
        '',
      ];
      await writeFile(join(work, `node${node.index}.yaml`), config.join('\n'));
    }
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const wishlistFile = async (name: string, inputs: string[]) => {
    const file = join(work, `${name}.yaml`);
    await writeFile(file, ['version: 1', `cvmfs_repo: '${repo.name}'`, 'input:', ...inputs.map((i) => `  - '${i}'`), ''].join('\n'));
    return file;
  };
  const convertArgs = (node: PublisherNode, wishlist: string, extra: string[] = []) => [
    'convert',
    wishlist,
    '--config',
    join(work, `node${node.index}.yaml`),
    '--skip-thin-image',
    ...extra,
  ];

  it('the gateway publisher gives the directory publisher tree, with leases on its own paths and catalogs where DUCC puts them', async () => {
    const wish = `http://${registry.host}/test/debianish:v1`;
    const list = (cvmfsRepo: string) => parseWishlist(`version: 1\ncvmfs_repo: '${cvmfsRepo}'\ninput:\n  - '${wish}'\n`, 'w.yaml');
    assert.equal((await runConversion(list('ref.example.org'), { repoRoot: join(work, 'dir'), skipThinImage: true }, {}, quiet)).failed, 0);

    const result = await cliOn(repo.nodes[0]!, convertArgs(repo.nodes[0]!, await wishlistFile('debianish', [wish]))).done;

    assert.equal(result.code, 0, result.output);
    const name = `${registry.host}/test/debianish:v1`;
    const flatOf = async (root: string) => snapshotTree(await realpath(join(root, name)));
    const comparable = (snapshot: Map<string, SnapshotEntry>) => snapshot;
    assert.deepEqual(comparable(await flatOf(repo.mount)), comparable(await flatOf(join(work, 'dir', 'ref.example.org'))));
    const manifest = await readFile(join(repo.mount, '.metadata', registry.host, 'test/debianish:v1/manifest.json'), 'utf8');
    assert.equal(manifest, await readFile(join(work, 'dir', 'ref.example.org', '.metadata', registry.host, 'test/debianish:v1/manifest.json'), 'utf8'));
    const catalogs = await repo.catalogs();
    assert.ok(catalogs.includes('.layers') && catalogs.includes('.flat'), catalogs.join(' '));
    assert.ok(catalogs.some((c) => /^\.layers\/[0-9a-f]{2}\/[0-9a-f]{64}\/layerfs$/.test(c)));
    assert.ok(catalogs.some((c) => /^\.flat\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(c)));
    await repo.check();
  });

  it('two workers on two publisher nodes publish disjoint shards of one wish list at the same time', async () => {
    const wishlist = await wishlistFile('shards', images);
    const [one, two] = repo.nodes as [PublisherNode, PublisherNode];

    // Each worker runs as `ducc loop` would: a round, and another one if an image of the first failed. The
    // images share their base layer, which both workers publish at once: the gateway then refuses one of
    // the two commits now and then (its receiver cannot merge it), and that image converts in the next round.
    const worker = async (node: PublisherNode, shard: string) => {
      const rounds: CliRun[] = [];
      for (let round = 0; round < 2; round++) {
        rounds.push(await cliOn(node, convertArgs(node, wishlist, ['--shard', shard])).done);
        if (rounds.at(-1)!.code === 0) break;
      }
      return rounds;
    };
    const [first, second] = await Promise.all([worker(one, '1/2'), worker(two, '2/2')]);
    const log = (rounds: CliRun[]) => rounds.map((run, i) => `--- round ${i + 1}\n${run.output}`).join('\n');
    await writeFile(join(work, 'shard-runs.log'), `${log(first)}\n----\n${log(second)}`);
    if (first.length + second.length > 2) console.log(`a second round was needed:\n${log(first)}\n----\n${log(second)}`);

    assert.equal(first.at(-1)!.code, 0, log(first));
    assert.equal(second.at(-1)!.code, 0, log(second));
    const converted = (rounds: CliRun[]) => rounds.reduce((sum, run) => sum + Number(/^(\d+) converted/m.exec(run.output)?.[1] ?? 0), 0);
    assert.equal(converted(first) + converted(second), images.length, `${log(first)}\n${log(second)}`);
    assert.ok(converted(first) > 0 && converted(second) > 0, 'both workers had work');
    await repo.check();
    // The gateway signs each commit a moment after accepting it: once node 1's view (refreshed by a
    // transaction it gives up at once) shows every public name, a run over the whole list on either node
    // finds everything published.
    let names: string[] = [];
    let context = '';
    await waitFor(
      async () => {
        await one.server(['transaction', `${repo.name}/.ducc-gitops-refresh`]);
        await one.server(['abort', '-f', repo.name]);
        names = await readdir(join(repo.mount, registry.host, 'shard')).catch((): string[] => []);
        context = `${await readFile(join(work, 'shard-runs.log'), 'utf8')}\n${(await repo.gatewayLog()).slice(-4000)}`;
        return images.every((_, i) => names.includes(`image${i}:v1`));
      },
      60_000,
      'every public name signed and visible',
      { detail: () => `node 1 sees ${names.join(', ')}\n${context}` },
    );
    for (const node of [one, two]) {
      const again = await cliOn(node, convertArgs(node, wishlist)).done;
      assert.match(again.output, new RegExp(`^0 converted, ${images.length} up to date, 0 failed$`, 'm'), again.output);
    }
    for (let i = 0; i < images.length; i++) {
      assert.equal(await readFile(join(repo.mount, registry.host, `shard/image${i}:v1`, 'app/f0'), 'utf8'), `image ${i} file 0\n`.repeat(30));
    }
  });

  it('a worker killed while it holds a lease is recovered, and its image completes', async (t) => {
    // A seventh image, new to the repository: node 2's worker freezes in the middle of its layer's ingest.
    const layout = join(work, 'layout');
    await writeOciLayout(layout, 'late', [
      {
        layers: [
          await buildTar([
            { name: 'late/', type: 'directory' },
            ...Array.from({ length: 600 }, (_, j) => ({ name: `late/f${j}`, content: `late ${j}\n`.repeat(40) })),
          ]),
        ],
        config: { Cmd: ['/bin/sh'] },
      },
    ]);
    await pushOciLayout(layout, 'late', { host: registry.host, repository: 'shard/image', tag: 'late' });
    const wishlist = await wishlistFile('late', [`http://${registry.host}/shard/image:late`]);
    const two = repo.nodes[1]!;
    const marker = join(work, 'late.stalled');
    const stall = { module: 'fs', fn: 'openSync', arg: 0, match: '/staging2/.*/layerfs/', also: { arg: 1, match: '^r$' }, nth: 500, marker };
    const doomed = cliOn(two, convertArgs(two, wishlist), { DUCC_TEST_STALL: JSON.stringify(stall) }, ['--import', STALL_HOOK]);
    t.after(() => doomed.child.kill('SIGKILL'));
    await waitFor(
      () =>
        stat(marker).then(
          () => true,
          () => false,
        ),
      60_000,
      'the worker frozen inside its ingest',
      { detail: doomed.output },
    );
    await waitFor(async () => /in transaction/.test(await two.server(['list'])), 30_000, 'node 2 holding its lease');
    doomed.child.kill('SIGKILL');
    await doomed.done;

    // Node 2 comes back: its recover() aborts the transaction (and so gives the lease back), then converts.
    const rerun = await cliOn(two, convertArgs(two, wishlist)).done;

    assert.equal(rerun.code, 0, rerun.output);
    assert.match(rerun.output, /^1 converted, 0 up to date, 0 failed$/m);
    assert.doesNotMatch(await two.server(['list']), /in transaction/);
    await repo.check();
    assert.equal((await readdir(join(repo.mount, registry.host, 'shard/image:late', 'late'))).length, 600);
  });
});
