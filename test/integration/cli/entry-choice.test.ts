/**
 * bin/ducc.js runs the bundle only while it is current: a source file or package-lock.json newer than
 * the build means the bundle holds old code or old packages, and the TypeScript sources run instead.
 * Checked on a copy of bin/ducc.js in a tree whose two entry points say which one ran.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from './cli-support.ts';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../bin/ducc.js', import.meta.url));

it('bin/ducc.js runs the bundle only when it is newer than src/ and package-lock.json', async (t) => {
  const root = await tempDir(t, 'ducc-entry-');
  for (const dir of ['bin', 'src/cli', 'dist/bundle']) await mkdir(join(root, dir), { recursive: true });
  await copyFile(BIN, join(root, 'bin/ducc.js'));
  await writeFile(join(root, 'package.json'), '{"type":"module"}\n');
  const entry = (name: string) => `export async function main() { console.log('${name}'); return 0; }\n`;
  await writeFile(join(root, 'src/cli/main.ts'), entry('sources'));
  await writeFile(join(root, 'dist/bundle/main.js'), entry('bundle'));
  await writeFile(join(root, 'package-lock.json'), '{}\n');
  await writeFile(join(root, 'dist/.build-stamp'), '');
  const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));
  const touch = (path: string, seconds: number) => utimes(join(root, path), at(seconds), at(seconds));
  const ran = async () =>
    (await run(process.execPath, [join(root, 'bin/ducc.js')], { env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' } })).stdout.trim();

  await touch('src/cli/main.ts', 1);
  await touch('package-lock.json', 1);
  await touch('dist/.build-stamp', 2);
  assert.equal(await ran(), 'bundle');

  await touch('src/cli/main.ts', 3);
  assert.equal(await ran(), 'sources', 'a source file changed after the build');

  await touch('src/cli/main.ts', 1);
  await touch('package-lock.json', 3);
  assert.equal(await ran(), 'sources', 'the dependencies changed after the build');

  await touch('dist/.build-stamp', 4);
  assert.equal(await ran(), 'bundle');
});
