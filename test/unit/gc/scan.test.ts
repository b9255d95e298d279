/**
 * The reachability scan on hand-made repositories (directory publisher): every kind of public name,
 * metadata at any depth, and the traps of DUCC's own walk.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { formatDuccManifest } from '../../../src/metadata/ducc-manifest.ts';
import { scanRepository } from '../../../src/gc/scan.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { tempDir } from '../../support/tmp-dir.ts';

const REPO = 'scan.example.org';
const hex = (c: string) => c.repeat(64);
const flat = (c: string) => `.flat/${c}${c}/${hex(c)}`;
const layer = (c: string) => `.layers/${c}${c}/${hex(c)}`;

async function repository(t: Parameters<typeof tempDir>[0]) {
  const root = await tempDir(t);
  const base = join(root, REPO);
  const dir = async (path: string) => mkdir(join(base, path), { recursive: true });
  const link = async (path: string, target: string) => {
    await mkdir(dirname(join(base, path)), { recursive: true });
    await symlink(target, join(base, path));
  };
  const file = async (path: string, content: string | Buffer) => {
    await mkdir(dirname(join(base, path)), { recursive: true });
    await writeFile(join(base, path), content);
  };
  const manifest = (config: string, layers: string[]) =>
    formatDuccManifest({ config: { size: 1, digest: `sha256:${hex(config)}` }, layers: layers.map((c) => ({ size: 1, digest: `sha256:${hex(c)}` })) });
  for (const c of 'abcdef') {
    await dir(flat(c));
    await dir(`${layer(c)}/layerfs`);
  }
  return { publisher: new DirectoryPublisher({ root, repository: REPO, sync: false }), base, dir, link, file, manifest };
}

it('follows plain public names, .multiarch names, aliases and variant symlinks to what they keep', async (t) => {
  const { publisher, dir, link } = await repository(t);
  await link('reg.example.org/lib/plain:1', `../../${flat('a')}`);
  await link('.multiarch/amd64/reg.example.org/lib/multi:1', `../../../../${flat('b')}`);
  await link('.multiarch/arm64:v8/reg.example.org/lib/multi:1', `../../../../${flat('c')}`);
  await link('.multiarch/aarch64', 'arm64:v8');
  await link('reg.example.org/lib/multi:1', '../../.multiarch/$(CVMFS_ARCH:-amd64)/reg.example.org/lib/multi:1');
  await dir('reg.example.org/empty-dir');

  const scan = await scanRepository(publisher);

  assert.deepEqual(
    scan.publicNames.map((name) => [name.path, name.keeps]),
    [
      ['.multiarch/amd64/reg.example.org/lib/multi:1', [flat('b')]],
      ['.multiarch/arm64:v8/reg.example.org/lib/multi:1', [flat('c')]],
      ['reg.example.org/lib/multi:1', [flat('b'), flat('c')]],
      ['reg.example.org/lib/plain:1', [flat('a')]],
    ],
  );
  assert.deepEqual([...scan.reachable].sort(), [flat('a'), flat('b'), flat('c')]);
});

it('keeps what absolute links into the repository name, and nothing for links that leave it, loop or dangle', async (t) => {
  const { publisher, base, link } = await repository(t);
  await link('reg.example.org/absolute:1', `/cvmfs/${REPO}/${flat('a')}`);
  await link('reg.example.org/local-absolute:1', join(base, flat('b')));
  await link('reg.example.org/escapes:1', `../../../../${REPO}/${flat('c')}`);
  await link('reg.example.org/loop:1', 'loop:2');
  await link('reg.example.org/loop:2', 'loop:1');
  await link('reg.example.org/dangling:1', `../${flat('9')}`);
  await link('reg.example.org/into-a-layer:1', `../${layer('d')}/layerfs/usr/bin`);

  const scan = await scanRepository(publisher, { absoluteRoots: [`/cvmfs/${REPO}`] });

  assert.deepEqual([...scan.reachable].sort(), [flat('a'), flat('b'), layer('d')]);
  assert.deepEqual(
    scan.publicNames.filter((name) => name.keeps.length === 0).map((name) => name.path),
    ['reg.example.org/dangling:1', 'reg.example.org/escapes:1', 'reg.example.org/loop:1', 'reg.example.org/loop:2'],
  );
});

it('a hidden regular file at the root does not end the walk of the public names (DUCC’s SkipDir trap)', async (t) => {
  const { publisher, file, link } = await repository(t);
  await file('.cvmfsdirtab', '/.layers/*\n');
  await link('zzz.example.org/last:1', `../${flat('e')}`);

  const scan = await scanRepository(publisher);

  assert.deepEqual([...scan.reachable], [flat('e')]);
});

it('reads manifest.json at every depth, keeps their layers and flat trees, and finds metadata without one', async (t) => {
  const { publisher, dir, file, manifest } = await repository(t);
  // A digest-only image's directory holds the metadata of a longer repository name below it.
  await file('.metadata/reg.example.org/lib/manifest.json', manifest('a', ['b']));
  await file('.metadata/reg.example.org/lib/sub:1/manifest.json', manifest('c', ['d', 'e']));
  await file('.metadata/.multiarch/arm64/reg.example.org/x:1/manifest.json', manifest('f', ['f']));
  await dir('.metadata/reg.example.org/lib/gone:1');
  await dir('.metadata/other.example.org/only/empty:2');
  await file('.metadata/remove-schedule.json', '[]');
  await file('.metadata/gc-schedule.json', '{"version":1,"items":{}}');

  const scan = await scanRepository(publisher);

  assert.deepEqual(
    scan.manifests.map((m) => m.dir),
    ['.metadata/.multiarch/arm64/reg.example.org/x:1', '.metadata/reg.example.org/lib', '.metadata/reg.example.org/lib/sub:1'],
  );
  assert.deepEqual([...scan.reachable].sort(), [flat('a'), flat('c'), flat('f'), layer('b'), layer('d'), layer('e'), layer('f')]);
  assert.deepEqual(scan.metadataWithoutManifest, ['.metadata/other.example.org', '.metadata/reg.example.org/lib/gone:1']);
  assert.equal(scan.layersBlocked, undefined);
});

it('an unreadable manifest blocks the collection of layers; names outside DUCC’s layout are not listed', async (t) => {
  const { publisher, dir, file } = await repository(t);
  await file('.metadata/reg.example.org/broken:1/manifest.json', '{"Layers": "not a list"');
  await dir('.flat/zz/not-ours');
  await dir(`.layers/aa/${hex('b')}`); // in the wrong fan-out directory
  await file('.flat/ab/file', 'x');

  const scan = await scanRepository(publisher);

  assert.match(scan.layersBlocked ?? '', /\.metadata\/reg\.example\.org\/broken:1\/manifest\.json: not a DUCC manifest/);
  assert.deepEqual(scan.flats, [...'abcdef'].map(flat));
  assert.deepEqual(scan.layers, [...'abcdef'].map(layer));
});
