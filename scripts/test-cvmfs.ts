/**
 * `npm run test:cvmfs`: the tests of the cvmfs publisher against a real CernVM-FS stratum 0 (test/cvmfs/),
 * one file at a time (cvmfs keeps global state: /etc/cvmfs, /var/spool/cvmfs, /etc/fstab). Each test file
 * makes its own repositories and removes them; repositories left by an earlier run that was killed
 * (`<label>-<pid>-<hex>.ducc.test` whose process is gone) are removed first.
 *
 * With `--if-available` (as `npm test` runs it) a machine that cannot host a stratum 0 — not root, no
 * /dev/fuse, no overlayfs, no cvmfs_server — gets one line saying why, and the run succeeds; without
 * it, that is an error.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { stratum0Unavailable } from '../test/support/stratum0.ts';
import { processAlive } from '../src/util/process-alive.ts';

const ifAvailable = process.argv.includes('--if-available');
const reason = await stratum0Unavailable();
if (reason !== undefined) {
  console.log(`test:cvmfs: the real stratum-0 suite (test/cvmfs) did not run: ${reason}`);
  process.exit(ifAvailable ? 0 : 1);
}

for (const name of readdirSync('/etc/cvmfs/repositories.d', { withFileTypes: true })) {
  // `<label>-<pid>-<hex>.ducc.test` (test/support/stratum0.ts): only those of test processes that are gone.
  const pid = Number(/^[a-z0-9-]+-(\d+)-[0-9a-f]+\.ducc\.test$/.exec(name.name)?.[1]);
  if (!name.isDirectory() || !Number.isInteger(pid) || processAlive(pid)) continue;
  console.log(`test:cvmfs: removing ${name.name}, left by an earlier run`);
  spawnSync('cvmfs_server', ['abort', '-f', name.name], { stdio: 'ignore' }); // fails when no transaction is open: fine
  execFileSync('cvmfs_server', ['rmfs', '-f', name.name], { stdio: 'inherit' });
}

const files = readdirSync('test/cvmfs')
  .filter((file) => file.endsWith('.test.ts'))
  .map((file) => `test/cvmfs/${file}`);
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
