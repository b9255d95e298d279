/**
 * Incremental behaviours of `ducc convert`, run as a child process against the real registry: moved tags,
 * -g/--convert-again, -f/--overwrite-layers, -s/--skip-flat, wildcard tags.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import type { TarEntrySpec } from '../../support/build-tar.ts';
import {
  asTestContext,
  entriesOf,
  exists,
  expectExit,
  flatPath,
  layerPath,
  pushImage,
  runCli,
  suiteCleanup,
  tempDir,
  wishlistYaml,
  type Cleanup,
} from '../cli/cli-support.ts';

const REPO = 'incremental.example.org';
const BASE: TarEntrySpec[] = [
  { name: 'etc/', type: 'directory' },
  { name: 'etc/base', content: 'base layer' },
];

/** path, type, mode, and content hash or link target of every entry under `root` (contents of files named in `skipContent` left out). */
async function treeListing(root: string, options: { skipContent?: string[] } = {}): Promise<string[]> {
  const lines: string[] = [];
  const visit = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const stat = await lstat(path);
      const relPath = `${rel}${name}`;
      if (stat.isDirectory()) {
        lines.push(`${relPath}/ ${(stat.mode & 0o7777).toString(8)}`);
        await visit(path, `${relPath}/`);
      } else if (stat.isSymbolicLink()) {
        lines.push(`${relPath} -> ${await readlink(path)}`);
      } else if (options.skipContent?.includes(name)) {
        lines.push(`${relPath} ${(stat.mode & 0o7777).toString(8)} (content not compared)`);
      } else {
        lines.push(
          `${relPath} ${(stat.mode & 0o7777).toString(8)} ${createHash('sha256')
            .update(await readFile(path))
            .digest('hex')}`,
        );
      }
    }
  };
  await visit(root, '');
  return lines;
}

/** Leaves a file in each layer directory: it survives as long as the layer is not unpacked again. */
const MARKER = 'test-marker';
async function plantMarkers(repo: string, digests: string[]): Promise<void> {
  for (const digest of digests) await writeFile(join(repo, layerPath(digest), MARKER), '');
}
async function markersLeft(repo: string, digests: string[]): Promise<boolean[]> {
  return Promise.all(digests.map((digest) => exists(join(repo, layerPath(digest), MARKER))));
}
const withoutMarkers = (lines: string[]) => lines.filter((line) => !line.includes(MARKER));

interface Setup {
  root: string;
  repo: string;
  wishlist: string;
  convert(...flags: string[]): Promise<string>;
}

async function setUp(t: Cleanup, registry: TestRegistry, inputs: string[]): Promise<Setup> {
  const root = await tempDir(t, 'ducc-incremental-');
  const wishlist = join(root, 'wishlist.yaml');
  await writeFile(
    wishlist,
    wishlistYaml(
      REPO,
      inputs.map((input) => `http://${registry.host}/${input}`),
    ),
  );
  return {
    root,
    repo: join(root, 'cvmfs', REPO),
    wishlist,
    convert: async (...flags) => expectExit(await runCli(['convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--skip-thin-image', ...flags]), 0).stdout,
  };
}

describe('incremental conversion (ducc convert)', () => {
  let registry: TestRegistry;
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
  });
  after(() => suite.runAll());

  it('a tag moved to a new config gets a new flat dir and its symlink moves; the old flat stays and is scheduled for removal', async (t) => {
    const old = await pushImage(t, registry, 'inc/moving', 'stable', [BASE, [{ name: 'version', content: 'old' }]]);
    const s = await setUp(t, registry, ['inc/moving:stable']);
    assert.equal(await s.convert(), '1 converted, 0 up to date, 0 failed\n');
    const publicName = join(s.repo, registry.host, 'inc/moving:stable');
    assert.equal(await readlink(publicName), `../../${flatPath(old.configDigest)}`);
    assert.equal(await exists(join(s.repo, '.metadata/remove-schedule.json')), false);

    const moved = await pushImage(t, registry, 'inc/moving', 'stable', [BASE, [{ name: 'version', content: 'new' }]]);
    assert.notEqual(moved.configDigest, old.configDigest);
    assert.equal(moved.layerDigests[0], old.layerDigests[0]);
    await plantMarkers(s.repo, [old.layerDigests[0]!]);

    assert.equal(await s.convert(), '1 converted, 0 up to date, 0 failed\n');

    assert.equal(await readlink(publicName), `../../${flatPath(moved.configDigest)}`);
    assert.equal(await readFile(join(publicName, 'version'), 'utf8'), 'new');
    assert.equal(await readFile(join(s.repo, flatPath(old.configDigest), 'version'), 'utf8'), 'old', 'the old flat tree stays');
    assert.deepEqual(await markersLeft(s.repo, [old.layerDigests[0]!]), [true], 'the shared layer is not unpacked again');
    const manifest = JSON.parse(await readFile(join(s.repo, '.metadata', registry.host, 'inc/moving:stable/manifest.json'), 'utf8'));
    assert.equal(manifest.Config.Digest, moved.configDigest);
    const schedule = JSON.parse(await readFile(join(s.repo, '.metadata/remove-schedule.json'), 'utf8')) as {
      Config: { Digest: string };
      Layers: { Digest: string }[];
    }[];
    assert.deepEqual(
      schedule.map((entry) => [entry.Config.Digest, entry.Layers.map((l) => l.Digest)]),
      [[old.configDigest, old.layerDigests]],
    );
    const baseOrigin = JSON.parse(await readFile(join(s.repo, layerPath(old.layerDigests[0]!), '.metadata/origin.json'), 'utf8'));
    assert.deepEqual(baseOrigin, { origin: [old.configDigest, moved.configDigest] });
    assert.deepEqual(await entriesOf(join(s.root, 'cvmfs/.ducc-staging', REPO)), []);
  });

  it('-g converts an up-to-date image again without error and leaves the same tree; layers are not unpacked again', async (t) => {
    const image = await pushImage(t, registry, 'inc/again', '1', [BASE, [{ name: 'again', content: 'g' }]]);
    const s = await setUp(t, registry, ['inc/again:1']);
    await s.convert();
    const before = await treeListing(s.repo, { skipContent: ['origin.json'] });
    await plantMarkers(s.repo, image.layerDigests);

    assert.equal(await s.convert(), '0 converted, 1 up to date, 0 failed\n');
    assert.equal(await s.convert('-g'), '1 converted, 0 up to date, 0 failed\n');
    assert.equal(await s.convert('--convert-again'), '1 converted, 0 up to date, 0 failed\n');

    assert.deepEqual(withoutMarkers(await treeListing(s.repo, { skipContent: ['origin.json'] })), before);
    assert.deepEqual(await markersLeft(s.repo, image.layerDigests), [true, true], 'layers unpacked again');
    assert.deepEqual(await entriesOf(join(s.root, 'cvmfs/.ducc-staging', REPO)), []);
  });

  it('-f unpacks the layers of a converted image again (with -g; alone it leaves an up-to-date image alone, as DUCC), keeping origin.json', async (t) => {
    const image = await pushImage(t, registry, 'inc/overwrite', '1', [BASE, [{ name: 'overwrite', content: 'f' }]]);
    const sibling = await pushImage(t, registry, 'inc/sibling', '1', [BASE, [{ name: 'sibling', content: 's' }]]);
    const base = image.layerDigests[0]!;
    assert.equal(sibling.layerDigests[0], base);
    const s = await setUp(t, registry, ['inc/overwrite:1', 'inc/sibling:1']);
    await s.convert();
    const only = join(s.root, 'only-overwrite.yaml');
    await writeFile(only, wishlistYaml(REPO, [`http://${registry.host}/inc/overwrite:1`]));
    const convertOnly = async (...flags: string[]) =>
      expectExit(await runCli(['convert', only, '--repo-root', join(s.root, 'cvmfs'), '--skip-thin-image', ...flags]), 0).stdout;
    const before = await treeListing(s.repo, { skipContent: ['origin.json', 'layers.json'] });
    await plantMarkers(s.repo, image.layerDigests);
    await writeFile(join(s.repo, flatPath(image.configDigest), MARKER), '');

    assert.equal(await convertOnly('-f'), '0 converted, 1 up to date, 0 failed\n');
    assert.deepEqual(await markersLeft(s.repo, image.layerDigests), [true, true]);

    const notifications = join(s.root, 'notifications.jsonl');
    assert.equal(await convertOnly('-g', '--overwrite-layers', '-n', notifications), '1 converted, 0 up to date, 0 failed\n');

    assert.deepEqual(await markersLeft(s.repo, image.layerDigests), [false, false], 'layers not unpacked again');
    const started = (await readFile(notifications, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
      .filter((n) => n.action === 'start_layer_conversion');
    assert.deepEqual(started.map((n) => n.layer).sort(), image.layerDigests.map((d) => d.slice(7)).sort());
    assert.ok(await exists(join(s.repo, flatPath(image.configDigest), MARKER)), 'the flat tree is content-addressed and kept');
    assert.deepEqual(withoutMarkers(await treeListing(s.repo, { skipContent: ['origin.json', 'layers.json'] })), before);
    // The shared layer still names the sibling image (a garbage collection must not take it away), plus -g's append.
    const origin = JSON.parse(await readFile(join(s.repo, layerPath(base), '.metadata/origin.json'), 'utf8'));
    // Backlinks of other images kept; the reconverted image is not listed twice (DUCC would append it again).
    assert.deepEqual(origin, { origin: [image.configDigest, sibling.configDigest] });
    assert.deepEqual(await entriesOf(join(s.root, 'cvmfs/.ducc-staging', REPO)), []);
  });

  it('a flat tree that lost Apptainer files is not up to date: it is published again, from the layers already there (DUCC PR 4208)', async (t) => {
    const image = await pushImage(t, registry, 'inc/dotfiles', '1', [BASE, [{ name: 'dotfiles', content: 'd' }]]);
    const s = await setUp(t, registry, ['inc/dotfiles:1']);
    await s.convert();
    const flat = join(s.repo, flatPath(image.configDigest));
    const before = await treeListing(s.repo, { skipContent: ['origin.json'] });
    await plantMarkers(s.repo, image.layerDigests);

    for (const lost of ['.singularity.d/env/90-environment.sh', '.singularity.d']) {
      await rm(join(flat, lost), { recursive: true });

      assert.equal(await s.convert(), '1 converted, 0 up to date, 0 failed\n', `after losing ${lost}`);

      assert.deepEqual(withoutMarkers(await treeListing(s.repo, { skipContent: ['origin.json'] })), before);
      assert.deepEqual(await markersLeft(s.repo, image.layerDigests), [true, true], 'layers unpacked again');
      assert.equal(await s.convert(), '0 converted, 1 up to date, 0 failed\n');
    }
    assert.deepEqual(await entriesOf(join(s.root, 'cvmfs/.ducc-staging', REPO)), []);
  });

  it('an image whose .singularity.d is an absolute symlink (its files written through it, inside the image) is up to date on the next run', async (t) => {
    const image = await pushImage(t, registry, 'inc/dotlink', '1', [
      [
        { name: 'srv/', type: 'directory' },
        { name: 'srv/apptainer/', type: 'directory' },
        { name: '.singularity.d', type: 'symlink', linkname: '/srv/apptainer' },
      ],
    ]);
    const s = await setUp(t, registry, ['inc/dotlink:1']);
    assert.equal(await s.convert(), '1 converted, 0 up to date, 0 failed\n');
    assert.ok(await exists(join(s.repo, flatPath(image.configDigest), 'srv/apptainer/actions/run')));

    assert.equal(await s.convert(), '0 converted, 1 up to date, 0 failed\n');
  });

  it('-s writes layers and metadata but neither flat dir nor symlink; a later run without -s adds them without downloading layers', async (t) => {
    const image = await pushImage(t, registry, 'inc/skipflat', '1', [BASE, [{ name: 'skip', content: 's' }]]);
    const s = await setUp(t, registry, ['inc/skipflat:1']);

    assert.equal(await s.convert('-s'), '1 converted, 0 up to date, 0 failed\n');

    for (const digest of image.layerDigests) {
      assert.ok(await exists(join(s.repo, layerPath(digest), 'layerfs/.cvmfscatalog')));
      assert.ok(await exists(join(s.repo, layerPath(digest), '.metadata/layers.json')));
    }
    const manifest = JSON.parse(await readFile(join(s.repo, '.metadata', registry.host, 'inc/skipflat:1/manifest.json'), 'utf8'));
    assert.equal(manifest.Config.Digest, image.configDigest);
    assert.equal(await exists(join(s.repo, '.flat')), false, '.flat must not exist');
    assert.equal(await exists(join(s.repo, registry.host)), false, 'no public symlink');
    assert.equal(await s.convert('--skip-flat'), '0 converted, 1 up to date, 0 failed\n');
    await plantMarkers(s.repo, image.layerDigests);

    assert.equal(await s.convert(), '1 converted, 0 up to date, 0 failed\n');

    assert.equal(await readlink(join(s.repo, registry.host, 'inc/skipflat:1')), `../../${flatPath(image.configDigest)}`);
    assert.equal(await readFile(join(s.repo, flatPath(image.configDigest), 'skip'), 'utf8'), 's');
    assert.deepEqual(await markersLeft(s.repo, image.layerDigests), [true, true], 'layers unpacked again');
  });

  it('a wildcard wish converts every matching tag with its own symlink and metadata', async (t) => {
    const images = {
      '1.0': await pushImage(t, registry, 'inc/wild', '1.0', [BASE, [{ name: 'v', content: '1.0' }]]),
      '1.1': await pushImage(t, registry, 'inc/wild', '1.1', [BASE, [{ name: 'v', content: '1.1' }]]),
      '2.0': await pushImage(t, registry, 'inc/wild', '2.0', [BASE, [{ name: 'v', content: '2.0' }]]),
    };
    const s = await setUp(t, registry, ['inc/wild:1.*']);

    assert.equal(await s.convert(), '2 converted, 0 up to date, 0 failed\n');

    for (const tag of ['1.0', '1.1'] as const) {
      const publicName = join(s.repo, registry.host, `inc/wild:${tag}`);
      assert.equal(await readlink(publicName), `../../${flatPath(images[tag].configDigest)}`);
      assert.equal(await readFile(join(publicName, 'v'), 'utf8'), tag);
      const manifest = JSON.parse(await readFile(join(s.repo, '.metadata', registry.host, `inc/wild:${tag}/manifest.json`), 'utf8'));
      assert.equal(manifest.Config.Digest, images[tag].configDigest);
    }
    assert.deepEqual((await readdir(join(s.repo, registry.host, 'inc'))).sort(), ['wild:1.0', 'wild:1.1']);
    assert.deepEqual((await readdir(join(s.repo, '.metadata', registry.host, 'inc'))).sort(), ['wild:1.0', 'wild:1.1']);
    assert.equal(await exists(join(s.repo, flatPath(images['2.0'].configDigest))), false);
    assert.equal(await s.convert(), '0 converted, 2 up to date, 0 failed\n');
  });
});
