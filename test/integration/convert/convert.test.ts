import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readlink, realpath, writeFile, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildTar } from '../../support/build-tar.ts';
import { debianLikeImage } from '../../support/test-images.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout, type TestImageSpec } from '../../support/oci-image.ts';
import { snapshotTree } from '../../support/tree-snapshot.ts';
import { assertSameTree, umociRootfs } from '../../support/umoci-oracle.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { formatDuccManifest } from '../../../src/metadata/ducc-manifest.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { withEnv } from '../../support/with-env.ts';
import { decompressThreadStats } from '../../../src/convert/decompress-thread.ts';

const run = promisify(execFile);
const CLI = new URL('../../../bin/ducc.js', import.meta.url).pathname;
const quietLogger = createLogger({ level: 'silent' });

function wishlistText(registry: TestRegistry, images: string[], extra = ''): string {
  return [
    'version: 1',
    'user: pusher',
    "cvmfs_repo: 'unpacked.example.org'",
    extra,
    'input:',
    ...images.map((i) => `  - '${i.startsWith('http') || !i.includes('/') ? i : `http://${registry.host}/${i}`}'`),
    '',
  ].join('\n');
}

describe('ducc convert with the directory publisher', () => {
  let registry: TestRegistry;
  let layout: string;
  let image: TestImageSpec;
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) };

  before(async () => {
    registry = await startRegistry(suite as unknown as TestContext);
    layout = join(await tempDir(suite), 'layout');
    image = await debianLikeImage();
    await writeOciLayout(layout, 'v1', [image]);
    await pushOciLayout(layout, 'v1', { host: registry.host, repository: 'test/debianish', tag: 'v1' });
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('publishes layers, a flat tree equal to umoci unpack, metadata and a relative public symlink; chroot runs the shell', async (t) => {
    const root = await tempDir(t);
    const wishlist = join(root, 'wishlist.yaml');
    await writeFile(wishlist, wishlistText(registry, ['test/debianish:v1']));

    const { stdout } = await run(process.execPath, [CLI, 'convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--skip-thin-image']);

    assert.match(stdout, /1 converted, 0 up to date, 0 failed/);
    const repo = join(root, 'cvmfs', 'unpacked.example.org');
    const publicName = `${registry.host}/test/debianish:v1`;
    const target = await readlink(join(repo, publicName));
    assert.match(target, /^\.\.\/\.\.\/\.flat\/[0-9a-f]{2}\/[0-9a-f]{64}$/);
    const flat = join(repo, registry.host, 'test', target);
    assertSameTree(await snapshotTree(flat), await snapshotTree(await umociRootfs(t, layout, 'v1')));

    // Layers keep whiteouts verbatim, and each has DUCC's metadata.
    const manifest = JSON.parse(await readFile(join(repo, '.metadata', registry.host, 'test/debianish:v1/manifest.json'), 'utf8'));
    const [, second] = manifest.Layers.map((l: { Digest: string }) => l.Digest.slice(7));
    const layerDir = join(repo, '.layers', second.slice(0, 2), second);
    assert.equal((await lstat(join(layerDir, 'layerfs/etc/.wh.removed-later'))).isFile(), true);
    assert.equal((await lstat(join(layerDir, 'layerfs/opt/app/.wh..wh..opq'))).isFile(), true);
    const layersJson = JSON.parse(await readFile(join(layerDir, '.metadata/layers.json'), 'utf8'));
    assert.equal(layersJson[0]['compressed-diff-digest'], `sha256:${second}`);
    assert.deepEqual(JSON.parse(await readFile(join(layerDir, '.metadata/origin.json'), 'utf8')), { origin: [manifest.Config.Digest] });
    for (const marker of ['.layers/.cvmfscatalog', `.layers/${second.slice(0, 2)}/.cvmfscatalog`, '.flat/.cvmfscatalog']) {
      assert.equal((await lstat(join(repo, marker))).size, 0, marker);
    }

    // manifest.json is DUCC's struct, byte for byte.
    const raw = await readFile(join(repo, '.metadata', registry.host, 'test/debianish:v1/manifest.json'));
    assert.deepEqual(
      raw,
      formatDuccManifest({
        mediaType: manifest.MediaType,
        config: { mediaType: manifest.Config.MediaType, size: manifest.Config.Size, digest: manifest.Config.Digest },
        layers: manifest.Layers.map((l: { MediaType: string; Size: number; Digest: string }) => ({ mediaType: l.MediaType, size: l.Size, digest: l.Digest })),
      }),
    );
    assert.match(raw.toString(), /^\{"SchemaVersion":2,"MediaType":"application\/vnd\.oci\.image\.manifest\.v1\+json","Config":\{"MediaType":/);

    // Apptainer files, and the image really runs.
    assert.equal(await readlink(join(flat, 'singularity')), '.singularity.d/runscript');
    assert.match(await readFile(join(flat, '.singularity.d/env/10-docker2singularity.sh'), 'utf8'), /export LANG="\$\{LANG:-"C\.UTF-8"\}"/);
    await run('chroot', [flat, '/bin/sh', '-c', 'true']);
    assert.deepEqual(await readdir(join(root, 'cvmfs', '.ducc-staging', 'unpacked.example.org')), []);
  });

  it('a second run over unchanged wishes makes no blob request and writes nothing', async (t) => {
    const root = await tempDir(t);
    const flags = { repoRoot: join(root, 'cvmfs'), skipThinImage: true };
    const list = parseWishlist(wishlistText(registry, ['test/debianish:v1']), 'w.yaml');
    const first = await runConversion(list, flags, {}, quietLogger);
    assert.equal(first.converted, 1);
    const before = await snapshotWithTimes(join(root, 'cvmfs', 'unpacked.example.org'));

    const second = await runConversion(list, flags, {}, quietLogger);

    assert.equal(second.upToDate, 1);
    assert.equal(second.blobRequests, 0);
    assert.deepEqual(await snapshotWithTimes(join(root, 'cvmfs', 'unpacked.example.org')), before);
  });

  it('bad entries fail with one line naming the wish while the others convert, and exit is non-zero', async (t) => {
    const root = await tempDir(t);
    const wishlist = join(root, 'wishlist.yaml');
    const locked = await startRegistry(t, { htpasswd: { username: 'owner', password: 'secret-pass' } });
    await writeFile(
      wishlist,
      wishlistText(registry, [
        'test/debianish:v1',
        'test/missing:v1',
        'http://127.0.0.1:1/nothing/here:v1',
        'ubuntu:22.04',
        `http://${locked.host}/private/image:1`,
      ]),
    );

    const result = await run(process.execPath, [CLI, 'convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--skip-thin-image']).then(
      () => assert.fail('convert should exit non-zero'),
      (error: { code: number; stdout: string }) => error,
    );

    assert.equal(result.code, 1);
    const lines = result.stdout.trim().split('\n');
    assert.match(
      lines.find((l) => l.includes('test/missing:v1'))!,
      /^error: .*wishlist\.yaml:7: http:\/\/127\.0\.0\.1:\d+\/test\/missing:v1: .*not found/,
    );
    assert.match(
      lines.find((l) => l.includes('127.0.0.1:1/'))!,
      /wishlist\.yaml:8: .*127\.0\.0\.1:1/,
    );
    assert.match(
      lines.find((l) => l.includes('ubuntu:22.04'))!,
      /wishlist\.yaml:9:5: error: .*registry\.hub\.docker\.com\/library\/ubuntu:22\.04/,
    );
    assert.match(
      lines.find((l) => l.includes('private/image'))!,
      /wishlist\.yaml:10: .*private\/image:1: .*(authentication|access denied)/,
    );
    assert.equal(lines.at(-1), '1 converted, 0 up to date, 4 failed');
    assert.ok((await lstat(join(root, 'cvmfs/unpacked.example.org', registry.host, 'test/debianish:v1'))).isSymbolicLink());
    assert.doesNotMatch(result.stdout, /secret-pass/);
    // Nothing of the failed wishes is visible, and no staging is left behind.
    assert.deepEqual((await readdir(join(root, 'cvmfs/unpacked.example.org'))).sort(), ['.flat', '.layers', '.metadata', registry.host].sort());
    assert.deepEqual(await readdir(join(root, 'cvmfs/.ducc-staging/unpacked.example.org')), []);
  });

  for (const variant of [
    { name: 'zstd layers', tag: 'zstd', compression: 'zstd' as const, format: 'oci' as const },
    { name: 'Docker schema 2 media types', tag: 'docker', compression: 'gzip' as const, format: 'docker' as const },
    { name: 'uncompressed layers', tag: 'plain', compression: 'none' as const, format: 'oci' as const },
    // Every layer, however small, decompressed on a thread of its own (as large layers are by default).
    { name: 'zstd layers decompressed on their own thread', tag: 'zstd-thread', compression: 'zstd' as const, format: 'oci' as const, threadFrom: '0' },
    { name: 'gzip layers decompressed on their own thread', tag: 'gzip-thread', compression: 'gzip' as const, format: 'oci' as const, threadFrom: '0' },
  ]) {
    it(`converts the same image with ${variant.name} to the same flat tree`, async (t) => {
      const variantLayout = join(await tempDir(t), 'layout');
      await writeOciLayout(variantLayout, variant.tag, [image], { compression: variant.compression });
      await pushOciLayout(variantLayout, variant.tag, { host: registry.host, repository: 'test/variants', tag: variant.tag, format: variant.format });
      const root = await tempDir(t);
      const threadsBefore = decompressThreadStats.started;

      const convert = () =>
        runConversion(
          parseWishlist(wishlistText(registry, [`test/variants:${variant.tag}`]), 'w.yaml'),
          { repoRoot: join(root, 'cvmfs'), skipThinImage: true },
          {},
          quietLogger,
        );
      const threadFrom = 'threadFrom' in variant ? variant.threadFrom : undefined;
      const summary = threadFrom === undefined ? await convert() : await withEnv({ DUCC_DECOMPRESS_THREAD_MIN_BYTES: threadFrom }, convert);

      // Small test layers use a thread only when told to.
      if (threadFrom !== undefined) assert.ok(decompressThreadStats.started > threadsBefore, 'no decompression thread was used');
      else assert.equal(decompressThreadStats.started, threadsBefore);

      assert.deepEqual(summary.failures, []);
      const repo = join(root, 'cvmfs', 'unpacked.example.org');
      const flat = join(repo, registry.host, 'test', await readlink(join(repo, registry.host, `test/variants:${variant.tag}`)));
      assertSameTree(await snapshotTree(flat), await snapshotTree(await umociRootfs(t, layout, 'v1')));
      await run('chroot', [flat, '/bin/sh', '-c', 'true']);
    });
  }

  it('takes the amd64 entry of a two-platform index, and a digest-pinned reference', async (t) => {
    const arm: TestImageSpec = {
      layers: [await buildTar([{ name: 'arch', content: 'arm64' }])],
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    };
    const amd: TestImageSpec = { ...image, platform: { os: 'linux', architecture: 'amd64' } };
    const indexLayout = join(await tempDir(t), 'layout');
    const written = await writeOciLayout(indexLayout, 'multi', [arm, amd]);
    await pushOciLayout(indexLayout, 'multi', { host: registry.host, repository: 'test/multi', tag: 'multi' });
    const root = await tempDir(t);
    const amdManifest = written.manifests[1]!;

    const summary = await runConversion(
      parseWishlist(wishlistText(registry, ['test/multi:multi', `test/multi@${amdManifest.digest}`]), 'w.yaml'),
      { repoRoot: join(root, 'cvmfs'), skipThinImage: true },
      {},
      quietLogger,
    );

    assert.deepEqual(summary.failures, []);
    assert.equal(summary.converted, 2);
    const repo = join(root, 'cvmfs', 'unpacked.example.org');
    const byTag = await readlink(join(repo, registry.host, 'test/multi:multi'));
    assert.equal(byTag.split('/').at(-1), amdManifest.configDigest.slice(7));
    assert.equal(await readlink(join(repo, registry.host, `test/multi:${amdManifest.digest}`)), byTag);
    assert.ok((await lstat(join(repo, '.metadata', registry.host, 'test/multi/manifest.json'))).isFile());
  });
});

describe('ducc convert --multi-arch', () => {
  it('publishes every platform under .multiarch/ with a CVMFS variant symlink and arch aliases; a rerun fetches no blob', async (t) => {
    const registry = await startRegistry(t);
    const arm: TestImageSpec = {
      layers: [await buildTar([{ name: 'arch', content: 'arm64' }])],
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    };
    const amd: TestImageSpec = { layers: [await buildTar([{ name: 'arch', content: 'amd64' }])], platform: { os: 'linux', architecture: 'amd64' } };
    const layout = join(await tempDir(t), 'layout');
    const written = await writeOciLayout(layout, '2.0', [arm, amd]);
    await pushOciLayout(layout, '2.0', { host: registry.host, repository: 'sci/multi', tag: '2.0' });
    const root = await tempDir(t);
    const list = parseWishlist(wishlistText(registry, ['sci/multi:2.0']), 'w.yaml');
    const flags = { repoRoot: join(root, 'cvmfs'), skipThinImage: true, multiArch: true };

    const first = await runConversion(list, flags, {}, quietLogger);

    assert.deepEqual(first.failures, []);
    assert.equal(first.converted, 1);
    const repo = join(root, 'cvmfs', 'unpacked.example.org');
    const name = `${registry.host}/sci/multi:2.0`;
    assert.equal(await readlink(join(repo, name)), `../../.multiarch/$(CVMFS_ARCH:-amd64)/${name}`);
    for (const [dir, index] of [
      ['amd64', 1],
      ['arm64:v8', 0],
    ] as const) {
      const flat = await realpath(join(repo, '.multiarch', dir, name));
      assert.equal(
        flat,
        await realpath(join(repo, '.flat', written.manifests[index]!.configDigest.slice(7, 9), written.manifests[index]!.configDigest.slice(7))),
      );
      assert.equal(await readFile(join(flat, 'arch'), 'utf8'), dir.slice(0, 5));
      assert.ok((await lstat(join(repo, '.metadata/.multiarch', dir, name, 'manifest.json'))).isFile());
    }
    assert.equal(await readlink(join(repo, '.multiarch/x86_64')), 'amd64');
    assert.equal(await readlink(join(repo, '.multiarch/aarch64')), 'arm64:v8');

    const second = await runConversion(list, flags, {}, quietLogger);

    assert.equal(second.upToDate, 1);
    assert.equal(second.blobRequests, 0);
  });
});

async function snapshotWithTimes(root: string): Promise<string[]> {
  const lines: string[] = [];
  const visit = async (dir: string, rel: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const stat = await lstat(join(dir, name));
      lines.push(`${rel}${name} ${stat.ino} ${stat.mtimeMs} ${stat.size}`);
      if (stat.isDirectory()) await visit(join(dir, name), `${rel}${name}/`);
    }
  };
  await visit(root, '');
  return lines;
}
