/**
 * The bundle `npm run build` makes (scripts/bundle.ts), which bin/ducc.js runs once built: it is bundled
 * here into a temp directory and must run on its own, with no node_modules beside it — report its
 * version (package.json found from a bundled module) and convert an image with enough small files in
 * one layer that the writer thread is used (its module found from whichever chunk holds the code that
 * starts it).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WRITER_THREAD_AFTER_FILES } from '../../../src/unpack/extract-layer.ts';
import { startRegistry } from '../../support/registry.ts';
import { layerPath, pushImage, tempDir, wishlistYaml } from './cli-support.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

it('the bundle runs on its own: version, and a conversion that uses the writer thread', async (t) => {
  const root = await tempDir(t, 'ducc-bundle-');
  await copyFile(join(REPO, 'package.json'), join(root, 'package.json'));
  await run(process.execPath, [join(REPO, 'scripts/bundle.ts'), join(root, 'dist/bundle')], { cwd: REPO });
  const runner = join(root, 'run.mjs');
  await writeFile(runner, "const { main } = await import('./dist/bundle/main.js');\nprocess.exitCode = await main(process.argv);\n");

  const { version } = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
  assert.equal((await run(process.execPath, [runner, '--version'])).stdout.trim(), version);

  const registry = await startRegistry(t);
  const files = WRITER_THREAD_AFTER_FILES + 300;
  const image = await pushImage(t, registry, 'test/many', 'v1', [
    [{ name: 'data/', type: 'directory' }, ...Array.from({ length: files }, (_, i) => ({ name: `data/f${i}`, content: `file ${i}\n` }))],
  ]);
  const wishlist = join(root, 'wishlist.yaml');
  await writeFile(wishlist, wishlistYaml('unpacked.example.org', [`http://${registry.host}/test/many:v1`]));
  const cvmfs = join(root, 'cvmfs');
  await mkdir(cvmfs);

  const { stdout } = await run(process.execPath, [runner, 'convert', wishlist, '--repo-root', cvmfs, '--skip-thin-image'], { timeout: 60_000 });

  assert.match(stdout, /1 converted, 0 up to date, 0 failed/);
  const layerfs = join(cvmfs, 'unpacked.example.org', layerPath(image.layerDigests[0]!), 'layerfs/data');
  assert.equal((await readdir(layerfs)).length, files);
  assert.equal(await readFile(join(layerfs, `f${files - 1}`), 'utf8'), `file ${files - 1}\n`);
});
