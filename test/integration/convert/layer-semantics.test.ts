/**
 * Layer semantics through a whole conversion (registry, download, digest checks, directory publisher):
 * images that umoci unpacks give the flat tree umoci gives, and images umoci refuses fail without
 * anything of them published beyond their valid layers.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildTar } from '../../support/build-tar.ts';
import { debianShellEntries } from '../../support/debian-base-layer.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout, type TestImageSpec } from '../../support/oci-image.ts';
import { snapshotTree } from '../../support/tree-snapshot.ts';
import { assertSameTree, hardLinkGroups, umociRootfs } from '../../support/umoci-oracle.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { tempDir, suiteCleanup } from '../../support/tmp-dir.ts';

const run = promisify(execFile);
const quietLogger = createLogger({ level: 'silent' });
const REPO = 'unpacked.example.org';

describe('layer semantics through ducc convert', () => {
  let registry: TestRegistry;
  const cleanup = suiteCleanup();
  before(async () => {
    registry = await startRegistry(cleanup as unknown as TestContext);
  });
  after(() => cleanup.runAll());

  /** Pushes the image as `test/<tag>:v1` (its OCI layout is returned for umoci) and converts it into a fresh repository. */
  async function convert(t: TestContext, tag: string, spec: TestImageSpec) {
    const layout = join(await tempDir(t), 'layout');
    const written = await writeOciLayout(layout, 'v1', [spec]);
    await pushOciLayout(layout, 'v1', { host: registry.host, repository: `test/${tag}`, tag: 'v1' });
    const root = await tempDir(t);
    const wishlist = parseWishlist(
      ['version: 1', 'user: pusher', `cvmfs_repo: '${REPO}'`, 'input:', `  - 'http://${registry.host}/test/${tag}:v1'`, ''].join('\n'),
      'w.yaml',
    );
    const summary = await runConversion(wishlist, { repoRoot: join(root, 'cvmfs'), skipThinImage: true }, {}, quietLogger);
    const repo = join(root, 'cvmfs', REPO);
    const publicName = join(repo, registry.host, `test/${tag}:v1`);
    return { summary, layout, repo, publicName, written: written.manifests[0]! };
  }

  it('hard links into lower layers replaced later, and a layer with data after its end-of-archive marker (in its diff_id): as umoci', async (t) => {
    const lower = await buildTar([
      { name: 'usr/', type: 'directory' },
      { name: 'usr/bin/', type: 'directory' },
      { name: 'usr/bin/perl', content: 'perl', mode: 0o755 },
      { name: 'usr/bin/cpan', content: 'cpan', mode: 0o755 },
    ]);
    const upper = Buffer.concat([
      await buildTar([
        { name: 'usr/bin/perl5', type: 'link', linkname: 'usr/bin/perl' },
        { name: 'usr/bin/perl5', content: 'a perl of its own', mode: 0o755 },
        { name: 'usr/bin/cpan5', type: 'link', linkname: 'usr/bin/cpan' },
        { name: 'usr/bin/cpan5.36', type: 'link', linkname: 'usr/bin/cpan5' },
      ]),
      await buildTar([{ name: 'appended', content: 'after the end-of-archive marker' }]),
    ]);
    const { summary, layout, publicName } = await convert(t, 'links-and-trailer', { layers: [lower, upper] });

    assert.deepEqual(summary.failures, []);
    const flat = await assertFlatLikeUmoci(t, publicName, layout);
    assert.deepEqual(await hardLinkGroups(flat), [['usr/bin/cpan', 'usr/bin/cpan5', 'usr/bin/cpan5.36']]);
  });

  it('merged /usr: a layer with lib/x86_64-linux-gnu/libextra.so.1 and no directory entries keeps lib -> usr/lib; chroot runs the shell', async (t) => {
    const base = await buildTar(debianShellEntries());
    const extra = await buildTar([
      { name: 'lib/x86_64-linux-gnu/libextra.so.1', content: 'not really a library', mode: 0o644 },
      { name: 'lib/x86_64-linux-gnu/libextra.so', type: 'symlink', linkname: 'libextra.so.1' },
    ]);
    const { summary, layout, publicName } = await convert(t, 'merged-usr', { layers: [base, extra], config: { Cmd: ['/bin/sh'] } });

    assert.deepEqual(summary.failures, []);
    const flat = await assertFlatLikeUmoci(t, publicName, layout);
    assert.ok((await lstat(join(flat, 'lib'))).isSymbolicLink(), 'lib is no longer a symlink');
    assert.ok((await lstat(join(flat, 'usr/lib/x86_64-linux-gnu/libextra.so.1'))).isFile());
    await run('chroot', [flat, '/bin/sh', '-c', 'true']);
  });

  it('a hard link to a target no layer holds fails the image, naming the layer and the entry; no flat tree, symlink or manifest is published', async (t) => {
    const lower = await buildTar([{ name: 'usr/bin/perl', content: 'perl', mode: 0o755 }]);
    const upper = await buildTar([{ name: 'usr/bin/perl5', type: 'link', linkname: 'usr/bin/nothere' }]);
    const { summary, layout, repo, publicName, written } = await convert(t, 'dangling-link', { layers: [lower, upper] });

    await assert.rejects(umociRootfs(t, layout, 'v1'), /umoci unpack failed/);
    assert.equal(summary.failed, 1);
    assert.match(
      summary.failures[0]!.message,
      new RegExp(`layer ${written.layerDigests[1]}, entry 'usr/bin/perl5': hard link to 'usr/bin/nothere', which no layer`),
    );
    const configHex = written.configDigest.slice('sha256:'.length);
    assert.equal(await lstat(join(repo, '.flat', configHex.slice(0, 2), configHex)).catch(() => undefined), undefined);
    assert.equal(await lstat(publicName).catch(() => undefined), undefined);
    assert.equal(await lstat(join(repo, '.metadata', registry.host, 'test/dangling-link:v1')).catch(() => undefined), undefined);
  });
});

/** Our flat tree of a converted image equals umoci's rootfs of it, hard-link groups included. */
async function assertFlatLikeUmoci(t: TestContext, publicName: string, layout: string): Promise<string> {
  const flat = join(publicName, '..', await readlink(publicName));
  const oracle = await umociRootfs(t, layout, 'v1');
  assertSameTree(await snapshotTree(flat), await snapshotTree(oracle));
  assert.deepEqual(await hardLinkGroups(flat), await hardLinkGroups(oracle));
  return flat;
}
