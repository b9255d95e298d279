/**
 * Crash safety smoke tests: `ducc convert` SIGKILLed while a large layer is being unpacked (directory
 * publisher) or ingested (cvmfs publisher, stand-in cvmfs_server) leaves nothing under a final name, and
 * the next run completes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { execFile } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, readlink, utimes, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
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
  FAKE_CVMFS_SERVER,
  flatPath,
  layerPath,
  runCli,
  startCli,
  suiteCleanup,
  tempDir,
  waitFor,
  wishlistYaml,
} from './cli-support.ts';

const run = promisify(execFile);

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

  it('cvmfs publisher: SIGKILL during an ingest; the next run takes over the lock of the dead process and publishes the layer whole', async (t) => {
    const dir = await tempDir(t, 'ducc-crash-cvmfs-');
    const mountRoot = join(dir, 'cvmfs');
    const state = join(dir, 'state');
    const repo = join(mountRoot, REPO);
    await mkdir(repo, { recursive: true });
    const config = join(dir, 'ducc.yaml');
    const lockDir = join(dir, 'lock');
    await mkdir(lockDir);
    await writeFile(
      config,
      ['publisher:', '  kind: cvmfs', `  mountRoot: '${mountRoot}'`, `  cvmfsServer: '${FAKE_CVMFS_SERVER}'`, `  lockDir: '${lockDir}'`, ''].join('\n'),
    );
    const env = { CVMFS_FAKE_ROOT: mountRoot, CVMFS_FAKE_STATE: state };
    const wishlist = join(dir, 'wishlist.yaml');
    await writeFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/crash/big:big`]));
    const args = ['convert', wishlist, '--config', config, '--skip-thin-image'];

    const doomed = startCli(args, { env });
    t.after(() => doomed.child.kill('SIGKILL'));
    // The stand-in extracts into <state>/staging.<its pid>: kill ducc once layer bytes arrive there.
    let ingestPid = 0;
    await waitFor(
      async () => {
        for (const name of await entriesOf(state)) {
          if (!name.startsWith('staging.')) continue;
          if ((await filesBelow(join(state, name))).some((file) => file.path.endsWith('blob.bin') && file.size > 0)) {
            ingestPid = Number(name.slice('staging.'.length));
            return true;
          }
        }
        return false;
      },
      30_000,
      'the ingest receiving layer bytes',
    );
    doomed.child.kill('SIGKILL');
    assert.equal((await doomed.done).signal, 'SIGKILL');
    // The orphaned cvmfs_server sees its input end in the middle of a file and gives up by itself.
    await waitFor(() => !alive(ingestPid), 20_000, 'the orphaned ingest to end');

    assert.equal(await exists(join(repo, layerPath(layer), '.metadata')), false);
    assert.equal(await exists(join(repo, registry.host)), false, 'no public symlink');
    assert.equal(await exists(join(repo, '.metadata', registry.host)), false, 'no manifest.json');
    // The dead process's repository lock (in the configured lockDir) would make the next run wait 20 s
    // for it to go stale: age it.
    const lock = join(lockDir, `ducc-gitops-${REPO}.lock`);
    assert.ok((await lstat(lock)).isDirectory(), 'the killed run left its lock in publisher.lockDir');
    const past = new Date(Date.now() - 60_000);
    await utimes(lock, past, past);

    const again = expectExit(await runCli(args, { env, timeoutMs: 30_000 }), 0);

    assert.equal(again.stdout, '1 converted, 0 up to date, 0 failed\n');
    assert.equal(await sha256File(join(repo, layerPath(layer), 'layerfs/data/blob.bin')), payloadHash);
    assert.equal(await sha256File(join(repo, registry.host, 'crash/big:big', 'data/blob.bin')), payloadHash);
    const { stdout: list } = await run(FAKE_CVMFS_SERVER, ['list'], { env: { ...process.env, ...env } });
    assert.doesNotMatch(list, /in transaction/);
    assert.deepEqual(
      (await entriesOf(state)).filter((name) => name.startsWith('staging.') || name.endsWith('.transaction')),
      [],
    );
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
