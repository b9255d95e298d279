/**
 * `ducc serve` ends at once, with exit code 1 and a message naming the setting, on every fatal start-up
 * error (issue 17 points 1 and 6): systemd's Restart=on-failure and container restart policies only see a
 * process that exits. Run as the real command, `bin/ducc.js serve`.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, tempDir } from './cli-support.ts';

const SECRETS = { DUCC_GITHUB_WEBHOOK_SECRET: 'webhook-secret', DUCC_GITHUB_TOKEN: 'api-token' };

/** A config for `ducc serve` in `dir`, with one GitHub wish list; `extra` lines are appended. */
async function config(dir: string, extra: string[] = []): Promise<string> {
  const file = join(dir, 'ducc.yaml');
  await writeFile(
    file,
    [
      'listen: {host: 127.0.0.1, port: 0}',
      `statePath: ${join(dir, 'state/ducc.db')}`,
      `cacheDir: ${join(dir, 'cache')}`,
      `publisher: {kind: directory, root: ${join(dir, 'cvmfs')}}`,
      'wishlists:',
      '  - {name: unpacked, forge: github, project: cern/wishlist}',
      'reconcileMinutes: 0',
      ...extra,
      '',
    ].join('\n'),
  );
  return file;
}

/** Runs `ducc serve` with a clean environment for its variables; killed (signal, not exit code) if it hangs. */
function serve(file: string, env: Record<string, string | undefined>) {
  return runCli(['serve', '--config', file], {
    env: { DUCC_GITHUB_WEBHOOK_SECRET: undefined, DUCC_GITHUB_TOKEN: undefined, DUCC_LISTEN: undefined, DUCC_CONFIG: undefined, ...env },
    timeoutMs: 30_000,
  });
}

it('exits 1 when a webhook secret is missing, naming the variable, without listening', async (t) => {
  const dir = await tempDir(t, 'ducc-serve-start-');

  const result = await serve(await config(dir), { DUCC_GITHUB_TOKEN: 'api-token' });

  assert.equal(result.signal, null, 'ducc serve had to be killed');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /DUCC_GITHUB_WEBHOOK_SECRET \(or DUCC_GITHUB_WEBHOOK_SECRET_FILE\) is not set/);
  assert.doesNotMatch(result.stderr, /listening/);
  assert.doesNotMatch(result.stderr, /ExperimentalWarning/);
});

it('exits 1 when a forge token is missing, naming the variable', async (t) => {
  const dir = await tempDir(t, 'ducc-serve-start-');

  const result = await serve(await config(dir), { DUCC_GITHUB_WEBHOOK_SECRET: 'webhook-secret' });

  assert.equal(result.signal, null, 'ducc serve had to be killed');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /wish list 'unpacked': DUCC_GITHUB_TOKEN \(or DUCC_GITHUB_TOKEN_FILE\) is not set/);
});

it('exits 1 when its port is taken, naming listen and DUCC_LISTEN', async (t) => {
  const dir = await tempDir(t, 'ducc-serve-start-');
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const { port } = taken.address() as AddressInfo;

  const result = await serve(await config(dir), { ...SECRETS, DUCC_LISTEN: `127.0.0.1:${port}` });

  assert.equal(result.signal, null, 'ducc serve had to be killed');
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    new RegExp(
      `listen: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\(address already in use\\); change listen\\.host and listen\\.port .*DUCC_LISTEN`,
    ),
  );
});

it('exits 1 when a directory it writes cannot be made, naming the setting: statePath, cacheDir, publisher.root, .lockDir, .stagingDir', async (t) => {
  const dir = await tempDir(t, 'ducc-serve-start-');
  const file = join(dir, 'a-file');
  await writeFile(file, 'not a directory\n');
  const cases: [string, string, RegExp][] = [
    ['statePath', `statePath: ${file}/state/ducc.db`, new RegExp(`statePath "${file}/state/ducc\\.db": cannot create the directory ${file}/state: ENOTDIR`)],
    ['cacheDir', `cacheDir: ${file}/cache`, new RegExp(`cacheDir "${file}/cache": cannot create the directory: ENOTDIR`)],
    [
      'publisher.root',
      `publisher: {kind: directory, root: ${file}/cvmfs}`,
      new RegExp(`publisher\\.root "${file}/cvmfs": cannot create the directory: ENOTDIR`),
    ],
    [
      'publisher.lockDir',
      `publisher: {kind: cvmfs, lockDir: ${file}/locks}`,
      new RegExp(`publisher\\.lockDir "${file}/locks": cannot create the directory: ENOTDIR`),
    ],
    [
      'publisher.stagingDir',
      `publisher: {kind: cvmfs, stagingDir: ${file}/staging}`,
      new RegExp(`publisher\\.stagingDir "${file}/staging": cannot create the directory: ENOTDIR`),
    ],
  ];

  for (const [setting, line, expected] of cases) {
    const base = (await readFile(await config(dir), 'utf8')).replace(new RegExp(`^${setting.split('.')[0]}: .*$`, 'm'), line);
    await writeFile(join(dir, 'ducc.yaml'), base);
    const result = await serve(join(dir, 'ducc.yaml'), SECRETS);

    assert.equal(result.code, 1, `${setting}: ${result.stderr}`);
    assert.match(result.stderr, expected);
  }
});

it('exits 1 when a relative statePath cannot be created in the working directory, naming it and where it is', async (t) => {
  const dir = await tempDir(t, 'ducc-serve-start-');
  await writeFile(join(dir, 'var'), 'a file where ./var should be\n');
  const file = (await readFile(await config(dir), 'utf8')).replace(/^statePath: .*$/m, 'statePath: ./var/ducc-gitops.db');
  await writeFile(join(dir, 'ducc.yaml'), file);

  const result = await runCli(['serve', '--config', join(dir, 'ducc.yaml')], { env: { ...SECRETS, DUCC_LISTEN: undefined }, cwd: dir, timeoutMs: 30_000 });

  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`statePath "\\./var/ducc-gitops\\.db" \\(${dir}/var/ducc-gitops\\.db\\): cannot create the directory ${dir}/var: EEXIST`),
  );
});

it('ducc convert names --repo-root and publisher.root when the directory cannot be made', async (t) => {
  const dir = await tempDir(t, 'ducc-convert-root-');
  await writeFile(join(dir, 'a-file'), 'not a directory\n');
  const wishlist = join(dir, 'wishlist.yaml');
  await writeFile(wishlist, "version: 1\ncvmfs_repo: unpacked.example.org\ninput: ['http://127.0.0.1:1/sci/a:1']\n");
  await writeFile(join(dir, 'ducc.yaml'), `publisher: {kind: directory, root: ${dir}/a-file/cvmfs}\n`);

  const flag = await runCli(['convert', wishlist, '--repo-root', `${dir}/a-file/cvmfs`, '--skip-thin-image'], { timeoutMs: 30_000 });
  const setting = await runCli(['convert', wishlist, '--config', join(dir, 'ducc.yaml'), '--skip-thin-image'], { timeoutMs: 30_000 });

  assert.equal(flag.code, 1);
  assert.match(flag.stderr, new RegExp(`--repo-root "${dir}/a-file/cvmfs": cannot create the directory: ENOTDIR`));
  assert.equal(setting.code, 1);
  assert.match(setting.stderr, new RegExp(`publisher\\.root "${dir}/a-file/cvmfs": cannot create the directory: ENOTDIR`));
});
