/** `ducc loop` as a child process: rounds, re-reading the wish list, a failing round, SIGTERM between and during rounds. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readlink, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import type { WrittenImage } from '../../support/oci-image.ts';
import { asTestContext, entriesOf, exists, flatPath, pushImage, runCli, startCli, suiteCleanup, tempDir, waitFor, wishlistYaml } from './cli-support.ts';

const REPO = 'loop.example.org';

/** Replaces a file in one rename, so that the loop never reads half of it. */
async function replaceFile(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text);
  await rename(`${path}.new`, path);
}

describe('ducc loop', () => {
  let registry: TestRegistry;
  let alpha: WrittenImage;
  let beta: WrittenImage;
  let big: WrittenImage;
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    alpha = await pushImage(suite, registry, 'loop/alpha', '1', [[{ name: 'alpha', content: 'a' }]]);
    beta = await pushImage(suite, registry, 'loop/beta', '1', [[{ name: 'beta', content: 'b' }]]);
    // Big enough that a conversion is still running when the test sees its staging directory.
    big = await pushImage(suite, registry, 'loop/big', '1', [[{ name: 'blob.bin', content: randomBytes(24 * 1024 * 1024) }]]);
  });
  after(() => suite.runAll());

  it('converts, re-reads the wish list each round, survives a round without it, and exits 0 promptly on SIGTERM without leaving staging', async (t) => {
    const root = await tempDir(t);
    const repo = join(root, 'cvmfs', REPO);
    const wishlist = join(root, 'wishlist.yaml');
    await replaceFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/loop/alpha:1`]));

    const loop = startCli(['loop', wishlist, '--interval', '1', '--repo-root', join(root, 'cvmfs'), '--skip-thin-image']);
    t.after(() => loop.child.kill('SIGKILL'));
    const stdoutHas = (text: string) => () => loop.output().stdout.includes(text);

    await waitFor(stdoutHas('1 converted, 0 up to date, 0 failed\n'), 20_000, 'the first round');
    assert.equal(await readlink(join(repo, registry.host, 'loop/alpha:1')), `../../${flatPath(alpha.configDigest)}`);
    await replaceFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/loop/alpha:1`, `http://${registry.host}/loop/beta:1`]));
    await waitFor(stdoutHas('1 converted, 1 up to date, 0 failed\n'), 15_000, 'a round that sees the appended image');
    assert.equal(await readlink(join(repo, registry.host, 'loop/beta:1')), `../../${flatPath(beta.configDigest)}`);

    // A round that cannot read the wish list (replaced by a checkout, say) is reported, and the loop goes on.
    await rename(wishlist, `${wishlist}.away`);
    await waitFor(stdoutHas(`error: cannot read wish list ${wishlist}: ENOENT`), 15_000, 'a round without wish list');
    const seen = loop.output().stdout.length;
    await rename(`${wishlist}.away`, wishlist);
    await waitFor(() => loop.output().stdout.slice(seen).includes('0 converted, 2 up to date, 0 failed\n'), 15_000, 'a round after the wish list is back');
    assert.equal(loop.child.exitCode, null, 'the loop is still running');

    const signalled = Date.now();
    loop.child.kill('SIGTERM');
    const result = await loop.done;
    const elapsed = Date.now() - signalled;

    assert.equal(result.signal, null, `killed by ${result.signal}\n${result.stderr}`);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(elapsed < 3_000, `exit took ${elapsed} ms`);
    assert.deepEqual(await entriesOf(join(root, 'cvmfs', '.ducc-staging', REPO)), []);
  });

  it('ends at once with exit 1 when the first round cannot start (missing wish list)', async (t) => {
    const root = await tempDir(t);
    const result = await runCli(['loop', join(root, 'missing.yaml'), '--interval', '1', '--repo-root', join(root, 'cvmfs'), '--skip-thin-image'], {
      timeoutMs: 10_000,
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^ducc: cannot read wish list .*missing\.yaml: ENOENT/m);
  });

  it('on SIGTERM during a conversion finishes that image, starts no other, and exits 0', async (t) => {
    const root = await tempDir(t);
    const repo = join(root, 'cvmfs', REPO);
    const staging = join(root, 'cvmfs', '.ducc-staging', REPO);
    const wishlist = join(root, 'wishlist.yaml');
    await replaceFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/loop/big:1`, `http://${registry.host}/loop/alpha:1`]));

    const loop = startCli(['loop', wishlist, '--interval', '1', '--repo-root', join(root, 'cvmfs'), '--skip-thin-image']);
    t.after(() => loop.child.kill('SIGKILL'));
    await waitFor(async () => (await entriesOf(staging)).length > 0, 20_000, 'the big layer being staged');
    assert.equal(await exists(join(repo, registry.host, 'loop/big:1')), false, 'the test must signal before the image is done');
    loop.child.kill('SIGTERM');
    const timer = setTimeout(() => loop.child.kill('SIGKILL'), 15_000);
    const result = await loop.done;
    clearTimeout(timer);

    assert.equal(result.signal, null, `killed by ${result.signal}\n${result.stderr}`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '1 converted, 0 up to date, 0 failed\n');
    assert.equal(await readlink(join(repo, registry.host, 'loop/big:1')), `../../${flatPath(big.configDigest)}`);
    assert.equal(await exists(join(repo, registry.host, 'loop/alpha:1')), false, 'no image is started after SIGTERM');
    assert.deepEqual(await entriesOf(staging), []);
  });
});
