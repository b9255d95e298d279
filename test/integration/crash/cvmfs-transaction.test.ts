/**
 * cvmfs publisher: `ducc convert` SIGKILLed inside the image's metadata transaction (writes done,
 * `cvmfs_server publish` not yet run) leaves the repository in a transaction. The next start finds it
 * (`cvmfs_server list`), aborts it (`abort -f`) before anything else, and converts the image to the very
 * tree a clean run publishes. Runs against the stand-in cvmfs_server (test/support/fake-cvmfs-server).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildTar } from '../../support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { assertSameTree, entries, exists, FAKE_CVMFS_SERVER, kill, repoSnapshot, runCli, startCli, waitFor } from './support.ts';

const run = promisify(execFile);

/**
 * Delegates to the stand-in, except for the `publish` of the transaction that wrote the image's
 * manifest.json: that one records its pid in $DUCC_TEST_STALL_DIR/held and waits (at most 30 s) for
 * $DUCC_TEST_STALL_DIR/released, then fails without publishing (creating $DUCC_TEST_STALL_DIR/gone
 * last: once its parent is killed it is nobody's child, and may linger as a zombie).
 */
const HOLDING_WRAPPER = `#!/usr/bin/env bash
set -u
if [ "\${1:-}" = publish ] && [ ! -e "$DUCC_TEST_STALL_DIR/released" ] \\
   && [ -n "$(find "$CVMFS_FAKE_ROOT" -path '*/.metadata/*' -name manifest.json -print -quit)" ]; then
  echo "$$" > "$DUCC_TEST_STALL_DIR/held.tmp" && mv "$DUCC_TEST_STALL_DIR/held.tmp" "$DUCC_TEST_STALL_DIR/held"
  for _ in $(seq 600); do [ -e "$DUCC_TEST_STALL_DIR/released" ] && break; sleep 0.05; done
  # Nothing on stdout/stderr: their reader was killed (a write would end this script with SIGPIPE).
  : > "$DUCC_TEST_STALL_DIR/gone"
  exit 1
fi
exec "$DUCC_TEST_FAKE_CVMFS_SERVER" "$@"
`;

it('a transaction left open by a SIGKILL is aborted at the next start, which then publishes the clean tree', async (t) => {
  const dir = await tempDir(t, 'ducc-crash-cvmfs-');
  // A name of its own: the repository lock (/var/lock/ducc-gitops-<repo>.lock) is shared by every process.
  const repo = `crash-tx-${randomBytes(4).toString('hex')}.example.org`;
  const lockFiles = ['/var/lock', tmpdir()].map((lockDir) => join(lockDir, `ducc-gitops-${repo}.lock`));
  t.after(() => Promise.all(lockFiles.map((path) => rm(path, { recursive: true, force: true }))));

  const registry = await startRegistry(t);
  const layout = join(dir, 'layout');
  await writeOciLayout(layout, '1', [
    {
      layers: [await buildTar([{ name: 'etc/', type: 'directory' }, ...Array.from({ length: 20 }, (_, i) => ({ name: `etc/f${i}`, content: `${i}\n` }))])],
      config: { Cmd: ['/bin/sh'] },
    },
  ]);
  await pushOciLayout(layout, '1', { host: registry.host, repository: 'sci/tx', tag: '1' });
  const wishlist = join(dir, 'wishlist.yaml');
  await writeFile(wishlist, `version: 1\ncvmfs_repo: '${repo}'\ninput:\n  - 'http://${registry.host}/sci/tx:1'\n`);
  const wrapper = join(dir, 'cvmfs_server');
  await writeFile(wrapper, HOLDING_WRAPPER);
  await chmod(wrapper, 0o755);

  /** A stand-in stratum 0: its /cvmfs, its state, and a config using `server` as cvmfs_server. */
  const stratum0 = async (name: string, server: string) => {
    const mountRoot = join(dir, name, 'cvmfs');
    const state = join(dir, name, 'state');
    await mkdir(join(mountRoot, repo), { recursive: true });
    const config = join(dir, name, 'ducc.yaml');
    await writeFile(config, `publisher:\n  kind: cvmfs\n  mountRoot: '${mountRoot}'\n  cvmfsServer: '${server}'\n`);
    const stallDir = join(dir, name, 'stall');
    await mkdir(stallDir);
    const env = { CVMFS_FAKE_ROOT: mountRoot, CVMFS_FAKE_STATE: state, DUCC_TEST_STALL_DIR: stallDir, DUCC_TEST_FAKE_CVMFS_SERVER: FAKE_CVMFS_SERVER };
    const list = async () => (await run(FAKE_CVMFS_SERVER, ['list'], { env: { ...process.env, ...env } })).stdout;
    const invocations = async () => (await readFile(join(state, 'invocations.log'), 'utf8')).split('\n').filter((line) => line !== '');
    return { root: join(mountRoot, repo), state, stallDir, env, args: ['convert', wishlist, '--config', config, '--skip-thin-image'], list, invocations };
  };

  const clean = await stratum0('clean', FAKE_CVMFS_SERVER);
  await runCli(t, clean.args, 0, { env: clean.env });
  const reference = await repoSnapshot(clean.root);

  const crashed = await stratum0('crashed', wrapper);
  const doomed = startCli(t, crashed.args, { env: crashed.env });
  await waitFor(() => exists(join(crashed.stallDir, 'held')), 30_000, 'the publish of the metadata transaction', doomed);
  assert.match(await crashed.list(), new RegExp(`^${repo.replaceAll('.', '\\.')} \\(stratum0 / local - in transaction\\)`, 'm'));
  await kill(doomed);
  // Let the orphaned `publish` go (it fails, publishing nothing) and wait until it is done.
  await writeFile(join(crashed.stallDir, 'released'), '');
  await waitFor(() => exists(join(crashed.stallDir, 'gone')), 10_000, 'the held cvmfs_server publish to end');
  assert.match(await crashed.list(), /- in transaction\)/, 'the crash left the transaction open');
  // The dead process's lock is taken over once stale (20 s without refresh): make it old rather than wait.
  const past = new Date(Date.now() - 60_000);
  for (const path of lockFiles) await utimes(path, past, past).catch(() => undefined);

  const before = (await crashed.invocations()).length;
  const rerun = await runCli(t, crashed.args, 0, { env: crashed.env });
  assert.equal(rerun.stdout, '1 converted, 0 up to date, 0 failed\n');
  const calls = (await crashed.invocations()).slice(before);
  assert.deepEqual(calls.slice(0, 2), ['list', `abort -f ${repo}`], 'the open transaction is aborted first');
  assert.ok(!calls.slice(2).includes(`abort -f ${repo}`), `nothing else was aborted: ${calls.join(' | ')}`);
  assert.match(rerun.stderr, /left in a transaction \(crash\?\); aborting it/);

  assertSameTree(await repoSnapshot(crashed.root), reference, 'the rerun published another tree than a clean run');
  assert.doesNotMatch(await crashed.list(), /in transaction/);
  assert.deepEqual(
    (await entries(crashed.state)).filter((name) => name.startsWith('staging.') || name.endsWith('.transaction')),
    [],
  );
});
