/**
 * The disk fills up in the middle of unpacking a layer: `ducc convert` reports one clean line naming the
 * wish and the layer, exits 1, publishes nothing under a final name and leaves no staging behind.
 * Needs root (it mounts an 8 MiB tmpfs); without it the test fails and says so.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildTar } from '../../support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { snapshotTree } from '../../support/tree-snapshot.ts';
import { entries, runCli } from './support.ts';

const run = promisify(execFile);
const REPO = 'enospc.example.org';

it('ENOSPC in the middle of a layer: one clean error line naming wish and layer, exit 1, nothing published, no staging left', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ducc-enospc-'));
  const mountPoint = join(dir, 'small-disk');
  await mkdir(mountPoint);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0755', 'tmpfs', mountPoint]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      `this test needs root: it mounts an 8 MiB tmpfs to fill it up (mount -t tmpfs -o size=8m tmpfs ${mountPoint} failed: ${(error as { stderr?: string }).stderr?.trim() || String(error)})`,
      { cause: error },
    );
  }
  t.after(async () => {
    await run('umount', [mountPoint]).catch(() => run('umount', ['-l', mountPoint]));
    await rm(dir, { recursive: true, force: true });
  });

  const registry = await startRegistry(t);
  const layout = join(dir, 'layout');
  // 12 MiB that does not compress: larger than the whole filesystem.
  const written = await writeOciLayout(layout, '1', [
    {
      layers: [
        await buildTar([
          { name: 'data/', type: 'directory' },
          { name: 'data/huge.bin', content: randomBytes(12 * 1024 * 1024) },
        ]),
      ],
    },
  ]);
  await pushOciLayout(layout, '1', { host: registry.host, repository: 'sci/huge', tag: '1' });
  const layer = written.manifests[0]!.layerDigests[0]!;
  const wish = `http://${registry.host}/sci/huge:1`;
  const wishlist = join(dir, 'wishlist.yaml');
  await writeFile(wishlist, `version: 1\ncvmfs_repo: '${REPO}'\ninput:\n  - '${wish}'\n`);

  const result = await runCli(t, ['convert', wishlist, '--repo-root', mountPoint, '--skip-thin-image'], 1);

  const lines = result.stdout.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 2, result.stdout);
  assert.equal(lines[1], '0 converted, 0 up to date, 1 failed');
  const error = lines[0]!;
  assert.ok(error.startsWith(`error: ${wishlist}:4: ${wish}: `), error);
  assert.ok(error.includes(layer.slice('sha256:'.length)), `the error names the layer: ${error}`);
  assert.match(error, /no space left on device|ENOSPC/i);
  assert.doesNotMatch(error, /\s{2}at |\bat .+:\d+:\d+/, 'no stack trace');
  assert.ok(error.length < 600, `one short line: ${error.length} characters`);

  // Nothing under a final name: the repository holds nothing but (at most) empty directories.
  const tree = await snapshotTree(join(mountPoint, REPO)).catch(() => new Map());
  const published = [...tree].filter(([, entry]) => entry.type !== 'dir').map(([path]) => path);
  assert.deepEqual(published, [], 'nothing published');
  assert.ok(![...tree.keys()].some((path) => /^\.layers\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(path)), 'no layer directory');
  assert.deepEqual(await entries(join(mountPoint, '.ducc-staging', REPO)), [], 'staging cleaned up');
});
