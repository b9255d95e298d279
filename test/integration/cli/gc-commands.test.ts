/**
 * `ducc gc` as a command (directory publisher): what it prints with --dry-run and for real, its flags
 * in --help, and its errors.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, exists, expectExit, flatPath, layerPath, pushImage, runCli, suiteCleanup, tempDir, wishlistYaml } from './cli-support.ts';

const REPO = 'cli-gc.example.org';

describe('ducc gc', () => {
  const suite = suiteCleanup();
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry(asTestContext(suite));
  });
  after(() => suite.runAll());

  it('--dry-run lists what would go with bytes; the real run removes it and says what it reclaimed', async (t) => {
    const dir = await tempDir(t);
    const root = join(dir, 'cvmfs');
    const list = join(dir, 'w.yaml');
    await writeFile(list, wishlistYaml(REPO, [`http://${registry.host}/cli/gc:1`]));
    const old = await pushImage(t, registry, 'cli/gc', '1', [[{ name: 'old', content: 'x'.repeat(1000) }]]);
    expectExit(await runCli(['convert', list, '--repo-root', root, '--skip-thin-image']), 0);
    const current = await pushImage(t, registry, 'cli/gc', '1', [[{ name: 'new', content: 'y' }]]);
    expectExit(await runCli(['convert', list, '--repo-root', root, '--skip-thin-image']), 0);

    const dry = expectExit(await runCli(['gc', REPO, '--repo-root', root, '--dry-run', '--grace-period', '0']), 0);
    const real = expectExit(await runCli(['garbage-collection', REPO, '--repo-root', root, '--grace-period', '0']), 0);
    const again = expectExit(await runCli(['gc', REPO, '--repo-root', root, '--grace-period', '0']), 0);

    const diffSize = 512 + 1024 + 1024; // one header, 1000 bytes in 1024, two zero blocks
    assert.match(dry.stdout, new RegExp(`^would remove flat tree ${flatPath(old.configDigest)} 0 B \\(unreferenced since `, 'm'));
    assert.match(dry.stdout, new RegExp(`^would remove layer ${layerPath(old.layerDigests[0]!)} 2\\.5 KiB \\(unreferenced since `, 'm'));
    assert.match(dry.stdout, new RegExp(`^gc ${REPO}: dry run, nothing changed: 2 would be removed, 2\\.5 KiB \\(${diffSize} bytes\\); `, 'm'));
    assert.match(real.stdout, new RegExp(`^removed layer ${layerPath(old.layerDigests[0]!)} `, 'm'));
    assert.match(
      real.stdout,
      new RegExp(
        `^gc ${REPO}: 2 removed, 2\\.5 KiB reclaimed \\(${diffSize} bytes\\) in 1 publish; nothing else in its grace period; grace period 0; 1 public names`,
        'm',
      ),
    );
    assert.match(again.stdout, new RegExp(`^gc ${REPO}: 0 removed, 0 B reclaimed \\(0 bytes\\) in 0 publishes; `, 'm'));
    assert.equal(await exists(join(root, REPO, flatPath(old.configDigest))), false);
    assert.equal(await exists(join(root, REPO, flatPath(current.configDigest))), true);
  });

  it('documents every flag in --help and refuses a bad grace period or --cvmfs-gc without the cvmfs publisher', async (t) => {
    const root = join(await tempDir(t), 'cvmfs');

    const help = expectExit(await runCli(['gc', '--help']), 0);
    const badGrace = await runCli(['gc', REPO, '--repo-root', root, '--grace-period', 'soon']);
    const noBackend = await runCli(['gc', REPO, '--repo-root', root, '--cvmfs-gc']);

    for (const flag of ['--dry-run', '--grace-period', '--cvmfs-gc', '--cvmfs-gc-keep-revisions', '--repo-root', '--config'])
      assert.ok(help.stdout.includes(flag), flag);
    assert.match(help.stdout, /default: "7d"/);
    assert.equal(badGrace.code, 1);
    assert.match(badGrace.stderr, /--grace-period must be a number of days or a duration such as 12h/);
    assert.equal(noBackend.code, 1);
    assert.match(noBackend.stderr, /--cvmfs-gc needs the cvmfs publisher/);
  });
});
