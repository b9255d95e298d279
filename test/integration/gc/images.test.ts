/**
 * delete-image and prune (directory publisher): an image's public names and metadata go at once, its
 * content with a later gc; prune decides on names alone, a wildcard wish keeping the tags it matches.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { buildImage, pushImage, type BuiltImage } from '../../support/direct-push.ts';
import { repositoryProblems } from '../../support/gc-repo.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, exists, suiteCleanup, tempDir } from '../../support/tmp-dir.ts';
import { snapshotTree } from '../../support/tree-snapshot.ts';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { collectGarbage } from '../../../src/gc/collect.ts';
import { bytesFreedByRemoving, deleteImages, nameOf, pruneImages } from '../../../src/gc/images.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { parseImageReference } from '../../../src/wishlist/image-reference.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { createLogger } from '../../../src/util/logger.ts';

const quiet = createLogger({ level: 'silent' });
const REPO = 'images.example.org';

describe('delete-image and prune', () => {
  const suite = suiteCleanup();
  let registry: TestRegistry;
  let multi: BuiltImage;
  let plain: BuiltImage[];

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    const tar = (name: string) => buildTar([{ name, content: `${name}\n`.repeat(100) }]);
    multi = buildImage([
      { layers: [await tar('amd64')], platform: { os: 'linux', architecture: 'amd64' } },
      { layers: [await tar('arm64')], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    plain = await Promise.all(['p0', 'p1', 'p2', 'p3', 'p4', 'p5'].map(async (name) => buildImage([{ layers: [await tar(name)], config: { Cmd: [name] } }])));
  });
  after(() => suite.runAll());

  const setup = async (t: Parameters<typeof tempDir>[0]) => {
    const root = join(await tempDir(t), 'cvmfs');
    const publisher = new DirectoryPublisher({ root, repository: REPO, sync: false });
    const convert = async (inputs: string[], multiArch = false) => {
      const text = ['version: 1', `cvmfs_repo: ${REPO}`, 'input:', ...inputs.map((input) => `  - 'http://${registry.host}/${input}'`)].join('\n');
      const summary = await runConversion(parseWishlist(text, 'w.yaml'), { repoRoot: root, skipThinImage: true, multiArch }, {}, quiet);
      assert.deepEqual(summary.failures, []);
    };
    return { root, repo: join(root, REPO), publisher, convert };
  };
  const ref = (input: string) => nameOf(parseImageReference(`http://${registry.host}/${input}`));

  it('delete-image removes a multi-arch image’s variant symlink, platform names and metadata; gc then takes its content', async (t) => {
    const { repo, publisher, convert } = await setup(t);
    await pushImage(registry.host, 'img/multi', '1', multi);
    await pushImage(registry.host, 'img/plain', '1', plain[0]!);
    await convert(['img/multi:1', 'img/plain:1'], true);
    const host = registry.host;
    const freed = await bytesFreedByRemoving(publisher, [ref('img/multi:1')]);

    const deleted = await deleteImages(publisher, [ref('img/multi:1')]);

    assert.deepEqual(deleted, [
      {
        name: `${host}/img/multi:1`,
        paths: [
          `${host}/img/multi:1`,
          `.multiarch/amd64/${host}/img/multi:1`,
          `.multiarch/arm64:v8/${host}/img/multi:1`,
          `.metadata/.multiarch/amd64/${host}/img/multi:1`,
          `.metadata/.multiarch/arm64:v8/${host}/img/multi:1`,
        ],
      },
    ]);
    for (const path of deleted[0]!.paths) assert.equal(await exists(join(repo, path)), false, path);
    assert.equal(await readlink(join(repo, '.multiarch', 'aarch64')), 'arm64:v8', 'aliases stay');
    assert.equal(await exists(join(repo, host, 'img/plain:1')), true);
    assert.deepEqual(await repositoryProblems(publisher), []);
    const report = await collectGarbage(publisher, { gracePeriodMs: 0 });
    assert.deepEqual(report.removed.map((item) => item.kind).sort(), ['flat tree', 'flat tree', 'layer', 'layer', 'metadata']);
    assert.equal(report.removed.find((item) => item.kind === 'metadata')!.path, '.metadata/.multiarch', 'left empty by the removal');
    assert.equal(freed, report.removedBytes, 'the bytes announced before the removal are those the gc reclaims');
    assert.ok(freed > 0);
    assert.deepEqual(await deleteImages(publisher, [ref('img/multi:1')]), [], 'nothing left to delete');
  });

  it('a digest-only image: its public name goes, and its shared metadata directory only loses a manifest describing it', async (t) => {
    const { repo, publisher, convert } = await setup(t);
    await pushImage(registry.host, 'img/bydigest', 'x', plain[1]!);
    await convert([`img/bydigest@${plain[1]!.digest}`]);
    await pushImage(registry.host, 'img/bydigest', 'y', plain[2]!);

    const other = await deleteImages(publisher, [ref(`img/bydigest@${plain[2]!.digest}`)]);
    const deleted = await deleteImages(publisher, [ref(`img/bydigest@${plain[1]!.digest}`)]);

    assert.deepEqual(other, [], 'another digest of the repository is not published');
    assert.deepEqual(deleted[0]!.paths, [`${registry.host}/img/bydigest:${plain[1]!.digest}`, `.metadata/${registry.host}/img/bydigest/manifest.json`]);
    assert.equal(await exists(join(repo, '.metadata', registry.host, 'img/bydigest')), true, 'the directory stays');
  });

  it('prune removes what no wish names — a wildcard keeps its matching tags — at most --max per run; a dry run changes nothing', async (t) => {
    const { root, repo, publisher, convert } = await setup(t);
    const tags: [string, BuiltImage][] = [
      ['prune/app:1.0', plain[0]!],
      ['prune/app:1.1', plain[1]!],
      ['prune/app:2.0', plain[2]!],
      ['prune/other:x', plain[3]!],
      ['prune/other:y', plain[4]!],
      ['prune/gone:1', plain[5]!],
    ];
    for (const [name, image] of tags) await pushImage(registry.host, name.split(':')[0]!, name.split(':')[1]!, image);
    await convert(tags.map(([name]) => name));
    const wishes = parseWishlist(
      ['version: 1', `cvmfs_repo: ${REPO}`, 'input:', `  - 'http://${registry.host}/prune/app:1.*'`, `  - 'https://${registry.host}/prune/other:x'`].join('\n'),
      'w.yaml',
    ).wishes.map((wish) => wish.image);
    const before = await snapshotTree(root);

    const dry = await pruneImages(publisher, wishes, { max: 0, dryRun: true });
    const unchanged = await snapshotTree(root);
    const first = await pruneImages(publisher, wishes, { max: 2 });
    const second = await pruneImages(publisher, wishes, { max: 2 });

    const host = registry.host;
    assert.deepEqual(
      dry.removed.map((image) => image.name),
      [`${host}/prune/app:2.0`, `${host}/prune/gone:1`, `${host}/prune/other:y`],
    );
    assert.deepEqual(unchanged, before);
    assert.deepEqual(
      first.removed.map((image) => image.name),
      [`${host}/prune/app:2.0`, `${host}/prune/gone:1`],
    );
    assert.deepEqual(first.deferred, [`${host}/prune/other:y`]);
    assert.equal(first.kept, 3);
    assert.deepEqual(
      second.removed.map((image) => image.name),
      [`${host}/prune/other:y`],
    );
    for (const kept of ['prune/app:1.0', 'prune/app:1.1', 'prune/other:x']) assert.equal(await exists(join(repo, host, kept)), true, kept);
    for (const gone of ['prune/app:2.0', 'prune/other:y', 'prune/gone:1']) assert.equal(await exists(join(repo, host, gone)), false, gone);
    assert.deepEqual(await repositoryProblems(publisher), []);
    const report = await collectGarbage(publisher, { gracePeriodMs: 3600_000 });
    assert.equal(report.removed.length, 0, 'content waits for its grace period');
    assert.equal(report.pending.filter((item) => item.kind === 'flat tree').length, 3);
  });
});
