/**
 * scripts/with-deps, the install step of the README, the systemd units and CI (issue 17 points 3-5): it
 * runs the command in the caller's directory, finds this project's ducc from anywhere, links the Node.js
 * it chose where the units look for it, and on a machine without Node.js or npm installs Debian's nodejs
 * and npm before it asks npm for Node.js 22.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from '../../support/tmp-dir.ts';

const run = promisify(execFile);
const CLONE = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const WITH_DEPS = join(CLONE, 'scripts/with-deps');

it('runs the command in the caller’s directory, and `npx ducc` finds this project’s ducc from there', async (t) => {
  const elsewhere = await tempDir(t, 'ducc-with-deps-cwd-');
  // No `input:`: check reports it against the file named relative to the caller's directory.
  await writeFile(join(elsewhere, 'wishlist.yaml'), 'version: 1\ncvmfs_repo: unpacked.example.org\n');

  const pwd = await run(WITH_DEPS, ['pwd'], { cwd: elsewhere, timeout: 300_000 });
  const check = await run(WITH_DEPS, ['npx', 'ducc', 'check', '--offline', 'wishlist.yaml'], { cwd: elsewhere, timeout: 300_000 }).then(
    () => assert.fail('ducc check accepted a wish list without input'),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );

  assert.equal(pwd.stdout.trim(), elsewhere);
  assert.equal(check.code, 1, check.stderr);
  assert.match(check.stdout, /^wishlist\.yaml:1:1: error: missing key 'input'/m);
});

it('links the Node.js it runs with as <clone>/.node/bin/node, the one the systemd units start', async (t) => {
  const elsewhere = await tempDir(t, 'ducc-with-deps-node-');

  const { stdout } = await run(WITH_DEPS, ['node', '-p', 'process.execPath + " " + process.versions.node'], { cwd: elsewhere, timeout: 300_000 });
  const [execPath, version] = stdout.trim().split(' ') as [string, string];
  const linked = await readlink(join(CLONE, '.node/bin/node'));

  assert.equal(linked, execPath);
  const [major, minor] = version.split('.').map(Number) as [number, number];
  assert.ok(major > 22 || (major === 22 && minor >= 19), `linked Node.js ${version}`);
});

it('on a machine without node and npm, installs Debian’s nodejs and npm first, then Node.js 22 from npm', async (t) => {
  // A PATH with every command of this machine except Node.js's, and a home without ~/.node22.
  const root = await tempDir(t, 'ducc-with-deps-fresh-');
  const bin = join(root, 'bin');
  await mkdir(bin);
  const hidden = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack']);
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (hidden.has(name)) continue;
      await symlink(join(dir, name), join(bin, name)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    }
  }
  const env = { PATH: bin, HOME: join(root, 'home'), LANG: 'C' };

  const { stderr } = await run(join(bin, 'bash'), [WITH_DEPS, '--dry-run', 'npx', 'ducc', 'version'], { cwd: root, env, timeout: 60_000 });
  const steps = stderr.split('\n').filter((line) => line.startsWith('with-deps: would run: '));

  const aptInstall = steps.findIndex((line) => / apt-get install .*\bnodejs npm\b/.test(line));
  const nodeInstall = steps.findIndex((line) => line.includes(`npm install --prefix ${CLONE}/.node22 --no-audit --no-fund node@22`));
  assert.ok(aptInstall >= 0, `no apt-get install of nodejs and npm in:\n${stderr}`);
  assert.ok(nodeInstall > aptInstall, `Node.js 22 is not installed after Debian's npm:\n${stderr}`);
  assert.match(stderr, new RegExp(`would link ${CLONE}/\\.node/bin/node to ${CLONE}/\\.node22/node_modules/\\.bin/node`));
  assert.match(steps.at(-1)!, new RegExp(`would run: npx ducc version \\(in ${root}\\)$`));
});
