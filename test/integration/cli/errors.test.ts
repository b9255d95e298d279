/**
 * What `ducc convert` prints when things go wrong (issue 17 point 8): on a terminal a failure shows once
 * (not as an `error:` line and again as a log line), and a problem of the whole file (an unknown version)
 * stops the run before any conversion and is not counted as failed wishes.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, expectExit, runCli, tempDir, wishlistYaml } from './cli-support.ts';

const run = promisify(execFile);
const UNREACHABLE = 'http://127.0.0.1:1/sci/missing:1';

/** `'text'` for a POSIX shell (script(1) runs its command through one). */
const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

it('on a terminal, a failed wish is shown once', async (t) => {
  const dir = await tempDir(t, 'ducc-errors-tty-');
  const file = join(dir, 'wishlist.yaml');
  await writeFile(file, wishlistYaml('unpacked.example.org', [UNREACHABLE]));
  const command = [process.execPath, CLI, 'convert', file, '--repo-root', join(dir, 'cvmfs'), '--skip-thin-image'].map(quote).join(' ');

  // script(1) gives the command a terminal for stdout and stderr alike, as a user's shell has.
  const result = await run('script', ['--quiet', '--return', '--command', command, '/dev/null'], {
    env: { ...process.env, DUCC_REGISTRY_RETRIES: '0', SHELL: '/bin/sh' },
    timeout: 60_000,
  }).then(
    () => assert.fail('the conversion did not fail'),
    (error: { code: number; stdout: string }) => error,
  );
  const mentions = result.stdout.split(/\r?\n/).filter((line) => line.includes(UNREACHABLE));

  assert.equal(result.code, 1);
  assert.equal(mentions.length, 1, result.stdout);
  assert.match(mentions[0]!, new RegExp(`^error: ${file}:5: ${UNREACHABLE.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
  assert.match(result.stdout, /0 converted, 0 up to date, 1 failed/);
});

it('without a terminal the log still records the failure, as JSON', async (t) => {
  const dir = await tempDir(t, 'ducc-errors-json-');
  const file = join(dir, 'wishlist.yaml');
  await writeFile(file, wishlistYaml('unpacked.example.org', [UNREACHABLE]));

  const result = expectExit(
    await runCli(['convert', file, '--repo-root', join(dir, 'cvmfs'), '--skip-thin-image'], { env: { DUCC_REGISTRY_RETRIES: '0' } }),
    1,
  );

  assert.equal(result.stdout.split('\n').filter((line) => line.includes(UNREACHABLE)).length, 1);
  const logged = result.stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg: string; wish?: string });
  assert.ok(
    logged.some((record) => record.msg === 'conversion failed' && record.wish === UNREACHABLE),
    result.stderr,
  );
});

it('a wish list of an unknown version is not converted and its problem is not counted as failed wishes', async (t) => {
  const dir = await tempDir(t, 'ducc-errors-version-');
  const file = join(dir, 'wishlist.yaml');
  await writeFile(file, wishlistYaml('unpacked.example.org', [UNREACHABLE]).replace('version: 1', 'version: 2'));

  const result = expectExit(
    await runCli(['convert', file, '--repo-root', join(dir, 'cvmfs'), '--skip-thin-image'], { env: { DUCC_REGISTRY_RETRIES: '0' } }),
    1,
  );

  assert.deepEqual(result.stdout.trim().split('\n'), [
    `error: ${file}:1:10: error: unknown wish-list version '2' (only version 1 exists)`,
    `${file}: not converted: 1 error in the file`,
  ]);
  assert.doesNotMatch(result.stderr, /conversion failed/);
  assert.deepEqual(await readdir(join(dir, 'cvmfs')).catch(() => []), [], 'nothing was published');
});
