/**
 * SIGKILL of `ducc convert` (and of a removal) at the worst moments, on a real CernVM-FS 2.12 stratum 0:
 * in the middle of the tar of a layer ingest, inside the image's ingest, inside a classic transaction.
 * Nothing of a cut tar is ever published; the next start aborts the transaction left open and finishes
 * the work; `cvmfs_server check` passes and every public name resolves.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile, readlink, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTar } from '../support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { createRepository, type TestRepository } from '../support/stratum0.ts';
import { tempDir } from '../support/tmp-dir.ts';
import { waitFor as sharedWaitFor } from '../support/wait-for.ts';
import { kill, runCli, startCli, type StallSpec } from '../integration/crash/support.ts';

const STALL_HOOK = fileURLToPath(new URL('../integration/crash/stall-hook.ts', import.meta.url));
const REMOVE_SCRIPT = fileURLToPath(new URL('./remove-in-transaction.ts', import.meta.url));

describe('cvmfs publisher on a real stratum 0: crashes', () => {
  let registry: TestRegistry;
  let repo: TestRepository;
  let work: string;
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext;

  before(async () => {
    registry = await startRegistry(suite);
    repo = await createRepository(suite, 'crash');
    work = await tempDir(suite);
    const layout = join(work, 'layout');
    // Two layers of 300 small files each: the tar of their ingest is long enough to be cut in the middle.
    const files = (prefix: string) => Array.from({ length: 300 }, (_, i) => ({ name: `${prefix}/f${i}`, content: `${prefix} ${i}\n`.repeat(20) }));
    for (const [tag, seed] of [
      ['one', 'a'],
      ['two', 'b'],
    ] as const) {
      await writeOciLayout(layout, tag, [
        {
          layers: [
            await buildTar([{ name: `${seed}1/`, type: 'directory' }, ...files(`${seed}1`)]),
            await buildTar([{ name: `${seed}2/`, type: 'directory' }, ...files(`${seed}2`)]),
          ],
          config: { Cmd: ['/bin/sh'] },
        },
      ]);
      await pushOciLayout(layout, tag, { host: registry.host, repository: 'crash/image', tag });
    }
    await writeFile(join(work, 'ducc.yaml'), ['publisher:', '  kind: cvmfs', `  lockDir: ${work}`, `  stagingDir: ${join(work, 'staging')}`, ''].join('\n'));
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const convertArgs = async (tag: string) => {
    const wishlist = join(work, `${tag}.yaml`);
    await writeFile(wishlist, `version: 1\ncvmfs_repo: '${repo.name}'\ninput:\n  - 'http://${registry.host}/crash/image:${tag}'\n`);
    return ['convert', wishlist, '--config', join(work, 'ducc.yaml'), '--skip-thin-image'];
  };
  const stallAt = (spec: Omit<StallSpec, 'marker'>, name: string): StallSpec => ({ ...spec, marker: join(work, `${name}.stalled`) });
  const inTransaction = () => repo.inTransaction();
  /** Every public name of the repository resolves to a readable flat tree. */
  const publicNamesResolve = async () => {
    const dir = join(repo.mount, registry.host, 'crash');
    for (const name of await readdir(dir).catch((): string[] => [])) {
      const flat = await realpath(join(dir, name));
      assert.ok((await readdir(flat)).length > 0, `${name} -> ${await readlink(join(dir, name))} is empty`);
    }
  };
  const killAt = async (t: TestContext, args: string[], stall: StallSpec) => {
    const running = startCli(t, args, { stall });
    await sharedWaitFor(
      () =>
        stat(stall.marker).then(
          () => true,
          () => false,
        ),
      60_000,
      `the kill point ${stall.fn}(${stall.match.source})`,
      {
        detail: () => running.output(),
      },
    );
    // Frozen: the ingest goes on reading what is already in the pipes, and opens its transaction.
    await sharedWaitFor(inTransaction, 30_000, 'the ingest holding its transaction while ducc is frozen', { detail: () => running.output() });
    await kill(running);
    await sharedWaitFor(async () => !(await guardRunning(repo.name)), 30_000, 'the guard gone');
  };

  it('SIGKILL in the middle of a layer ingest: the guard kills the ingest, nothing is published, the next run completes', async (t) => {
    const args = await convertArgs('one');
    // Frozen while the ingest opens the 500th of 600 staged files for reading: the tar is cut in the middle of the layers.
    await killAt(
      t,
      args,
      stallAt({ module: 'fs', fn: 'openSync', arg: 0, match: /\/staging\/.*\/layerfs\//, also: { arg: 1, match: '^r$' }, nth: 500 }, 'layer-ingest'),
    );

    assert.equal(await inTransaction(), true, 'the killed ingest left its transaction open');
    assert.deepEqual(await readdir(join(repo.mount, '.layers')).catch(() => []), [], 'no layer published from a cut tar');

    const result = await runCli(t, args, 0);
    assert.match(result.stdout, /1 converted, 0 up to date, 0 failed/);
    assert.equal(await inTransaction(), false);
    await repo.check();
    await publicNamesResolve();
  });

  it('SIGKILL inside the image ingest (flat tree, metadata, public name): the next run publishes the image', async (t) => {
    const args = await convertArgs('two');
    await killAt(t, args, stallAt({ module: 'fs/promises', fn: 'lstat', arg: 0, match: /\/\.flat\/\.cvmfscatalog$/, nth: 1 }, 'image-ingest'));
    assert.equal(await inTransaction(), true, 'the killed ingest left its transaction open');
    assert.equal((await readdir(join(repo.mount, registry.host, 'crash')).catch((): string[] => [])).includes('image:two'), false);

    const result = await runCli(t, args, 0);
    assert.match(result.stdout, /1 converted/);
    assert.equal(await inTransaction(), false);
    await repo.check();
    await publicNamesResolve();
    assert.ok((await readdir(join(repo.mount, registry.host, 'crash'))).includes('image:two'));
  });

  it('SIGKILL inside a classic transaction (removing a public name): recover() aborts it and the name still resolves', async (t) => {
    const name = `${registry.host}/crash/image:one`;
    const marker = join(work, 'remove.stalled');
    const child = spawn(process.execPath, ['--import', STALL_HOOK, REMOVE_SCRIPT, repo.name, name, work], {
      env: {
        ...process.env,
        DUCC_TEST_STALL: JSON.stringify({ module: 'fs/promises', fn: 'rm', arg: 0, match: `${name.replaceAll('.', '\\.')}$`, nth: 1, marker }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise((resolve) => child.once('close', resolve));
    t.after(() => child.kill('SIGKILL'));
    await sharedWaitFor(
      () =>
        stat(marker).then(
          () => true,
          () => false,
        ),
      60_000,
      'the removal inside its transaction',
      { detail: () => output },
    );
    assert.equal(await inTransaction(), true);
    child.kill('SIGKILL');
    await exited;

    const result = await runCli(t, await convertArgs('one'), 0);
    assert.match(result.stdout, /0 converted, 1 up to date, 0 failed/);
    assert.equal(await inTransaction(), false);
    await repo.check();
    assert.ok((await readFile(join(repo.mount, name, 'a1/f0'), 'utf8')).startsWith('a1 0'));
    await publicNamesResolve();
  });
});

/**
 * Whether an ingest guard of `repository` runs (node -e GUARD_SOURCE -- cvmfs_server ingest ... REPO). Only
 * this repository's: test suites of other checkouts on the machine run guards of their own meanwhile.
 */
async function guardRunning(repository: string): Promise<boolean> {
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      const argv = cmdline.split('\0');
      if (argv.some((arg) => arg.endsWith('cvmfs_server')) && argv.includes('ingest') && argv.at(-2) === repository && cmdline.includes('createReadStream'))
        return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}
