/**
 * bin/ducc.js keeps V8's compile cache in the user's own ~/.cache/ducc-gitops (never a shared temp
 * directory), creates no home directory that is missing, and honours NODE_DISABLE_COMPILE_CACHE.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, expectExit, runCli, tempDir } from './cli-support.ts';

it('the compile cache goes to ~/.cache/ducc-gitops/compile-cache, and nowhere without a home', async (t) => {
  const home = await tempDir(t, 'ducc-home-');
  const cache = join(home, '.cache/ducc-gitops/compile-cache');

  expectExit(await runCli(['version'], { env: { HOME: home, NODE_DISABLE_COMPILE_CACHE: '1' } }), 0);
  assert.equal(await exists(cache), false, 'NODE_DISABLE_COMPILE_CACHE=1 is honoured');

  expectExit(await runCli(['version'], { env: { HOME: home, NODE_DISABLE_COMPILE_CACHE: undefined } }), 0);
  assert.ok((await readdir(cache)).length > 0, 'the cache was written in the home directory');

  const missing = join(home, 'no-such-home');
  expectExit(await runCli(['version'], { env: { HOME: missing, NODE_DISABLE_COMPILE_CACHE: undefined } }), 0);
  assert.equal(await exists(missing), false, 'a missing home directory is not created');
});
