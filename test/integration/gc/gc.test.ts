/**
 * `ducc gc` with the directory publisher, on images converted from a real registry: what is reachable
 * stays, what a tag move or a removal left behind goes once the grace period (an injected clock) has
 * passed since a gc first saw it, a dry run changes nothing, thin images keep their layers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { buildImage, pushImage, type BuiltImage } from '../../support/direct-push.ts';
import { repositoryProblems } from '../../support/gc-repo.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, exists, suiteCleanup, tempDir } from '../../support/tmp-dir.ts';
import { snapshotTree } from '../../support/tree-snapshot.ts';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { collectGarbage } from '../../../src/gc/collect.ts';
import { GC_SCHEDULE_PATH } from '../../../src/gc/scan.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { createLogger } from '../../../src/util/logger.ts';

const quiet = createLogger({ level: 'silent' });
const REPO = 'gc.example.org';
const HOUR = 3600_000;
const T0 = Date.parse('2026-05-01T10:00:00Z');

describe('ducc gc (directory publisher)', () => {
  const suite = suiteCleanup();
  let registry: TestRegistry;
  let images: Record<'a' | 'b' | 'c', BuiltImage>;
  let aTarBytes: number;

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    const base = await buildTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/os-release', content: 'ID=test\n' },
    ]);
    const layer = async (name: string, size: number) => buildTar([{ name, content: Buffer.alloc(size, name) }]);
    const aTar = await layer('a.bin', 3000);
    aTarBytes = aTar.length;
    images = {
      a: buildImage([{ layers: [base, aTar], config: { Cmd: ['a'] } }]),
      b: buildImage([{ layers: [base, await layer('b.bin', 5000)], config: { Cmd: ['b'] } }]),
      c: buildImage([{ layers: [await layer('c.bin', 7000)], config: { Cmd: ['c'] } }]),
    };
  });
  after(() => suite.runAll());

  const setup = async (t: Parameters<typeof tempDir>[0]) => {
    const root = join(await tempDir(t), 'cvmfs');
    const publisher = new DirectoryPublisher({ root, repository: REPO, sync: false });
    const convert = async (tags: string[], options: { skipFlat?: boolean; env?: Record<string, string>; extra?: string[] } = {}) => {
      const text = ['version: 1', `cvmfs_repo: ${REPO}`, ...(options.extra ?? []), 'input:', ...tags.map((tag) => `  - 'http://${registry.host}/${tag}'`)].join(
        '\n',
      );
      const summary = await runConversion(
        parseWishlist(text, 'w.yaml'),
        { repoRoot: root, skipThinImage: options.env === undefined, ...(options.skipFlat ? { skipFlat: true } : {}) },
        options.env ?? {},
        quiet,
      );
      assert.deepEqual(summary.failures, []);
    };
    return { root, repo: join(root, REPO), publisher, convert };
  };
  const hex = (digest: string) => digest.slice(7);
  const flatOf = (image: BuiltImage) => `.flat/${hex(image.configDigests[0]!).slice(0, 2)}/${hex(image.configDigests[0]!)}`;
  const layerOf = (digest: string) => `.layers/${hex(digest).slice(0, 2)}/${hex(digest)}`;

  it('removes a moved tag’s flat tree and layer only once the grace period has passed since a gc first saw them', async (t) => {
    const { repo, publisher, convert } = await setup(t);
    await pushImage(registry.host, 'gc/app', 'grace', images.a);
    await convert(['gc/app:grace']);
    await pushImage(registry.host, 'gc/app', 'grace', images.b);
    await convert(['gc/app:grace']);
    const oldLayer = layerOf(images.a.layerDigests[0]![1]!);
    const shared = layerOf(images.a.layerDigests[0]![0]!);

    const first = await collectGarbage(publisher, { gracePeriodMs: 2 * HOUR, now: () => T0 });
    const half = await collectGarbage(publisher, { gracePeriodMs: 2 * HOUR, now: () => T0 + HOUR });
    const schedule = JSON.parse(await readFile(join(repo, GC_SCHEDULE_PATH), 'utf8')) as { items: Record<string, { since: string }> };
    const last = await collectGarbage(publisher, { gracePeriodMs: 2 * HOUR, now: () => T0 + 2 * HOUR });

    assert.deepEqual(first.removed, []);
    assert.deepEqual(first.pending.map((item) => item.path).sort(), [flatOf(images.a), oldLayer].sort());
    assert.deepEqual(half.removed, []);
    assert.deepEqual(
      Object.values(schedule.items).map((item) => item.since),
      [new Date(T0).toISOString(), new Date(T0).toISOString()],
    );
    assert.deepEqual(last.removed.map((item) => item.path).sort(), [flatOf(images.a), oldLayer].sort());
    assert.equal(last.removedBytes, last.removed.find((item) => item.kind === 'layer')!.bytes);
    assert.equal(last.removedBytes, aTarBytes, 'the layer counts with the size of its tar, as layers.json records it');
    assert.equal(await exists(join(repo, flatOf(images.a))), false);
    assert.equal(await exists(join(repo, oldLayer)), false);
    assert.equal(await exists(join(repo, shared)), true);
    assert.equal(await exists(join(repo, flatOf(images.b))), true);
    assert.deepEqual(await repositoryProblems(publisher), []);
    assert.deepEqual(JSON.parse(await readFile(join(repo, GC_SCHEDULE_PATH), 'utf8')), { version: 1, items: {} });
  });

  it('forgets an item that is referenced again before its grace period ends', async (t) => {
    const { repo, publisher, convert } = await setup(t);
    await pushImage(registry.host, 'gc/app', 'again', images.a);
    await convert(['gc/app:again']);
    await pushImage(registry.host, 'gc/app', 'again', images.b);
    await convert(['gc/app:again']);
    await collectGarbage(publisher, { gracePeriodMs: HOUR, now: () => T0 });
    await pushImage(registry.host, 'gc/app', 'again', images.a);
    await convert(['gc/app:again']);

    const report = await collectGarbage(publisher, { gracePeriodMs: HOUR, now: () => T0 + 10 * HOUR });

    // a's flat tree and layer are referenced again; b's became garbage at T0 + 10 h.
    assert.deepEqual(report.removed, []);
    assert.deepEqual(report.pending.map((item) => [item.path, item.since]).sort(), [
      [flatOf(images.b), T0 + 10 * HOUR],
      [layerOf(images.b.layerDigests[0]![1]!), T0 + 10 * HOUR],
    ]);
    assert.equal(await exists(join(repo, flatOf(images.a))), true);
    assert.equal(await readlink(join(repo, registry.host, 'gc/app:again')), `../../${flatOf(images.a)}`);
  });

  it('a dry run prints what would go, with bytes, and changes nothing', async (t) => {
    const { root, repo, publisher, convert } = await setup(t);
    await pushImage(registry.host, 'gc/app', 'dry', images.a);
    await convert(['gc/app:dry']);
    await pushImage(registry.host, 'gc/app', 'dry', images.c);
    await convert(['gc/app:dry']);
    await collectGarbage(publisher, { gracePeriodMs: HOUR, now: () => T0 });
    // Staging of a process that is gone, and a metadata directory without manifest.
    await mkdir(join(root, '.ducc-staging', REPO, '999999999-dead'), { recursive: true });
    await writeFile(join(root, '.ducc-staging', REPO, '999999999-dead', 'half-a-layer'), Buffer.alloc(4096));
    await mkdir(join(repo, '.metadata', 'gone.example.org', 'x:1'), { recursive: true });
    const before = await snapshotTree(root);

    const report = await collectGarbage(publisher, { gracePeriodMs: HOUR, dryRun: true, now: () => T0 + 2 * HOUR });

    assert.deepEqual(await snapshotTree(root), before);
    assert.equal(report.dryRun, true);
    assert.equal(report.publishes, 0);
    assert.deepEqual(
      report.removed.map((item) => `${item.kind} ${item.path}`).sort(),
      [
        `flat tree ${flatOf(images.a)}`,
        `layer ${layerOf(images.a.layerDigests[0]![0]!)}`,
        `layer ${layerOf(images.a.layerDigests[0]![1]!)}`,
        `staging ${join(root, '.ducc-staging', REPO, '999999999-dead')}`,
      ].sort(),
    );
    assert.deepEqual(
      report.pending.map((item) => [item.kind, item.path, item.dueAt]),
      [['metadata', '.metadata/gone.example.org', T0 + 3 * HOUR]],
    );
    assert.equal(report.removed.find((item) => item.kind === 'staging')!.bytes, 4096);
    assert.equal(
      report.removedBytes,
      report.removed.reduce((sum, item) => sum + item.bytes, 0),
    );
  });

  it('removes stale staging and metadata directories without a manifest, and keeps both publishers’ own files', async (t) => {
    const { root, repo, publisher, convert } = await setup(t);
    await pushImage(registry.host, 'gc/app', 'meta', images.c);
    await convert(['gc/app:meta']);
    await mkdir(join(root, '.ducc-staging', REPO, '999999999-dead', 'layerfs'), { recursive: true });
    await mkdir(join(repo, '.metadata', registry.host, 'gc', 'old:1'), { recursive: true });

    const report = await collectGarbage(publisher, { gracePeriodMs: 0, now: () => T0 });

    assert.deepEqual(report.removed.map((item) => [item.kind, item.path]).sort(), [
      ['metadata', `.metadata/${registry.host}/gc/old:1`],
      ['staging', join(root, '.ducc-staging', REPO, '999999999-dead')],
    ]);
    assert.equal(await exists(join(repo, '.metadata', registry.host, 'gc', 'app:meta', 'manifest.json')), true);
    assert.equal(await exists(join(root, '.ducc-staging', REPO, '999999999-dead')), false);
    assert.deepEqual(await repositoryProblems(publisher), []);
  });

  it('multi-arch: a variant symlink keeps every platform; per-platform names left by a tag that became single-platform keep theirs', async (t) => {
    const { repo, publisher, convert } = await setup(t);
    const index = buildImage([
      { layers: [await buildTar([{ name: 'amd64', content: 'x86' }])], platform: { os: 'linux', architecture: 'amd64' } },
      { layers: [await buildTar([{ name: 'arm64', content: 'arm' }])], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    await pushImage(registry.host, 'gc/multi', '1', index);
    const text = ['version: 1', `cvmfs_repo: ${REPO}`, 'input:', `  - 'http://${registry.host}/gc/multi:1'`].join('\n');
    const summary = await runConversion(parseWishlist(text, 'w.yaml'), { repoRoot: join(repo, '..'), skipThinImage: true, multiArch: true }, {}, quiet);
    assert.deepEqual(summary.failures, []);
    const platformFlats = index.configDigests.map((digest) => `.flat/${hex(digest).slice(0, 2)}/${hex(digest)}`).sort();

    const whileMulti = await collectGarbage(publisher, { gracePeriodMs: 0, now: () => T0 });
    await pushImage(registry.host, 'gc/multi', '1', images.c);
    await convert(['gc/multi:1']);
    const afterMove = await collectGarbage(publisher, { gracePeriodMs: 0, now: () => T0 });

    assert.deepEqual(whileMulti.removed, []);
    assert.deepEqual(afterMove.removed, [], 'the .multiarch/<platform>/ names are still public names');
    for (const flat of platformFlats) assert.equal(await exists(join(repo, flat)), true, flat);
    assert.equal(await readlink(join(repo, registry.host, 'gc/multi:1')), `../../${flatOf(images.c)}`);
    assert.deepEqual(await repositoryProblems(publisher), []);
  });

  it('keeps the layers of a thin image even when its image has no public name (--skip-flat)', async (t) => {
    const output = await startRegistry(t, { htpasswd: { username: 'pusher', password: 'thin-pass' } });
    const { repo, publisher, convert } = await setup(t);
    await pushImage(registry.host, 'gc/thin', '1', images.b);
    await convert(['gc/thin:1'], {
      skipFlat: true,
      env: { DUCC_OUTPUT_REGISTRY_PASS: 'thin-pass' },
      extra: ['user: pusher', `output_format: 'http://${output.host}/thin/$(image)'`],
    });
    const thinJson = await pulledThinJson(output.host, 'thin/gc/thin', '1', 'pusher:thin-pass');

    const report = await collectGarbage(publisher, { gracePeriodMs: 0, now: () => T0 });

    assert.deepEqual(report.removed, []);
    assert.equal(thinJson.layers.length, 2);
    for (const layer of thinJson.layers) {
      const path = layer.url.replace(`cvmfs://${REPO}/`, '');
      assert.equal(await exists(join(repo, path)), true, `${path}, named by the pushed thin.json, is kept`);
    }
  });
});

/** thin.json of a pushed thin image, read from the registry with plain HTTP (the layer is a gzip tar holding only it). */
async function pulledThinJson(host: string, repository: string, tag: string, credentials: string): Promise<{ layers: { url: string }[] }> {
  const headers = { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` };
  const manifest = (await (
    await fetch(`http://${host}/v2/${repository}/manifests/${tag}`, { headers: { ...headers, accept: 'application/vnd.docker.distribution.manifest.v2+json' } })
  ).json()) as { layers: { digest: string }[] };
  const blob = Buffer.from(await (await fetch(`http://${host}/v2/${repository}/blobs/${manifest.layers[0]!.digest}`, { headers })).arrayBuffer());
  const { gunzipSync } = await import('node:zlib');
  const tar = gunzipSync(blob);
  const size = parseInt(tar.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim(), 8);
  return JSON.parse(tar.subarray(512, 512 + size).toString('utf8')) as { layers: { url: string }[] };
}
