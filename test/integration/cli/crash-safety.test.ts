/**
 * Crash safety smoke test: `ducc convert` SIGKILLed while a large layer is being unpacked (directory
 * publisher) leaves nothing under a final name, and the next run completes. The cvmfs publisher's
 * crashes are tested on a real stratum 0 (test/cvmfs/crash.test.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import type { WrittenImage } from '../../support/oci-image.ts';
import {
  asTestContext,
  entriesOf,
  exists,
  expectExit,
  flatPath,
  layerPath,
  runCli,
  startCli,
  suiteCleanup,
  tempDir,
  waitFor,
  wishlistYaml,
} from './cli-support.ts';

const REPO = 'crash.example.org';
const BIG = 50 * 1024 * 1024;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Files below `dir` (recursively) with their sizes. */
async function filesBelow(dir: string): Promise<{ path: string; size: number }[]> {
  const found: { path: string; size: number }[] = [];
  for (const name of await entriesOf(dir)) {
    const path = join(dir, name);
    const stat = await lstat(path).catch(() => undefined);
    if (stat?.isDirectory()) found.push(...(await filesBelow(path)));
    else if (stat?.isFile()) found.push({ path, size: stat.size });
  }
  return found;
}

describe('crash safety', () => {
  let registry: TestRegistry;
  let image: WrittenImage;
  let layer: string;
  let payloadHash: string;
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    const payload = randomBytes(BIG);
    payloadHash = createHash('sha256').update(payload).digest('hex');
    const layout = join(await tempDir(suite, 'ducc-crash-layout-'), 'layout');
    // Uncompressed: quick to build, and the unpacking writes 50 MB, which leaves time to kill it.
    const written = await writeOciLayout(
      layout,
      'big',
      [
        {
          layers: [
            await buildTar([
              { name: 'data/', type: 'directory' },
              { name: 'data/blob.bin', content: payload },
            ]),
          ],
          config: { Cmd: ['/bin/true'] },
        },
      ],
      { compression: 'none' },
    );
    await pushOciLayout(layout, 'big', { host: registry.host, repository: 'crash/big', tag: 'big' });
    image = written.manifests[0]!;
    layer = image.layerDigests[0]!;
  });
  after(() => suite.runAll());

  it('SIGKILL during a large layer leaves nothing under final names; the next run completes and clears the dead staging', async (t) => {
    const root = await tempDir(t);
    const repo = join(root, 'cvmfs', REPO);
    const staging = join(root, 'cvmfs', '.ducc-staging', REPO);
    const wishlist = join(root, 'wishlist.yaml');
    await writeFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/crash/big:big`]));
    const args = ['convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--skip-thin-image'];

    const doomed = startCli(args);
    t.after(() => doomed.child.kill('SIGKILL'));
    // Kill as soon as the first bytes of the layer are on disk in staging.
    await waitFor(async () => (await filesBelow(staging)).some((file) => file.path.endsWith('blob.bin') && file.size > 0), 30_000, 'layer bytes in staging');
    doomed.child.kill('SIGKILL');
    const killed = await doomed.done;
    assert.equal(killed.signal, 'SIGKILL', `the process ended by itself first:\n${killed.stdout}${killed.stderr}`);

    // Nothing half-written under a final name: the layer is absent or complete, no metadata, no symlink.
    const deadPid = doomed.child.pid!;
    const leftovers = await entriesOf(staging);
    assert.ok(
      leftovers.some((name) => name.startsWith(`${deadPid}-`)),
      `the dead process's staging is there: ${leftovers.join(', ')}`,
    );
    if (await exists(join(repo, layerPath(layer)))) {
      assert.equal((await lstat(join(repo, layerPath(layer), 'layerfs/data/blob.bin'))).size, BIG);
      assert.ok(await exists(join(repo, layerPath(layer), '.metadata/layers.json')));
    }
    assert.equal(await exists(join(repo, flatPath(image.configDigest))), false);
    assert.equal(await exists(join(repo, registry.host)), false, 'no public symlink');
    assert.equal(await exists(join(repo, '.metadata', registry.host)), false, 'no manifest.json');

    const again = expectExit(await runCli(args), 0);

    assert.equal(again.stdout, '1 converted, 0 up to date, 0 failed\n');
    assert.equal(await readlink(join(repo, registry.host, 'crash/big:big')), `../../${flatPath(image.configDigest)}`);
    assert.equal(await sha256File(join(repo, registry.host, 'crash/big:big', 'data/blob.bin')), payloadHash);
    assert.equal(await sha256File(join(repo, layerPath(layer), 'layerfs/data/blob.bin')), payloadHash);
    assert.deepEqual(await readdir(staging), [], 'the dead staging is removed and the new one cleaned up');
    const manifest = JSON.parse(await readFile(join(repo, '.metadata', registry.host, 'crash/big:big/manifest.json'), 'utf8'));
    assert.equal(manifest.Config.Digest, image.configDigest);
  });
});
