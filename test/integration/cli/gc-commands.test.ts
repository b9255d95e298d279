/**
 * `ducc gc`, `ducc delete-image` and `ducc prune` as commands (directory publisher): what they print,
 * dry runs, their flags in --help, and their errors.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, exists, expectExit, flatPath, layerPath, pushImage, runCli, suiteCleanup, tempDir, wishlistYaml } from './cli-support.ts';

const REPO = 'cli-gc.example.org';

describe('ducc gc, delete-image, prune', () => {
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

  it('delete-image removes one image’s names; prune the images no wish list names, --max at a time', async (t) => {
    const dir = await tempDir(t);
    const root = join(dir, 'cvmfs');
    const all = join(dir, 'all.yaml');
    const some = join(dir, 'some.yaml');
    const broken = join(dir, 'broken.yaml');
    const names = ['keep:1', 'drop:1', 'drop:2', 'dele:1'];
    const inputs = names.map((name) => `http://${registry.host}/cli/${name}`);
    for (const [i, name] of names.entries()) {
      const [repository, tag] = name.split(':') as [string, string];
      await pushImage(t, registry, `cli/${repository}`, tag, [[{ name: `f${i}`, content: name }]]);
    }
    await writeFile(all, wishlistYaml(REPO, inputs));
    await writeFile(some, wishlistYaml(REPO, [inputs[0]!, inputs[3]!]));
    await writeFile(broken, wishlistYaml(REPO, [inputs[0]!, 'ubuntu:22.04']));
    expectExit(await runCli(['convert', all, '--repo-root', root, '--skip-thin-image']), 0);

    const dryDelete = expectExit(await runCli(['delete-image', REPO, inputs[3]!, '--repo-root', root, '--dry-run']), 0);
    const deleted = expectExit(await runCli(['delete-image', REPO, inputs[3]!, '--repo-root', root]), 0);
    const notThere = await runCli(['delete-image', REPO, inputs[3]!, '--repo-root', root]);
    const refused = await runCli(['prune', broken, '--repo-root', root]);
    const pruned = expectExit(await runCli(['prune', some, '--repo-root', root, '--max', '1']), 0);
    const rest = expectExit(await runCli(['prune', some, '--repo-root', root]), 0);

    const host = registry.host.replaceAll('.', '\\.');
    assert.match(dryDelete.stdout, new RegExp(`^would remove ${host}/cli/dele:1$`, 'm'));
    assert.match(dryDelete.stdout, /would be removed \(dry run, nothing changed\)/);
    assert.match(deleted.stdout, new RegExp(`^removed ${host}/cli/dele:1\nremoved \\.metadata/${host}/cli/dele:1\n`, 'm'));
    assert.equal(await exists(join(root, REPO, registry.host, 'cli/dele:1')), false);
    assert.equal(notThere.code, 1);
    assert.match(notThere.stderr, /is not published in directory .*: nothing to delete/);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /refusing to prune with a wish list that has errors:\n.*broken\.yaml:\d+:\d+: error: invalid image reference 'ubuntu:22\.04'/);
    assert.match(pruned.stdout, new RegExp(`^removed ${host}/cli/drop:1 \\(${host}/cli/drop:1, \\.metadata/${host}/cli/drop:1\\)$`, 'm'));
    assert.match(pruned.stdout, new RegExp(`^left for the next run \\(--max 1\\): ${host}/cli/drop:2$`, 'm'));
    assert.match(pruned.stdout, new RegExp(`^prune ${REPO}: 1 removed, 1 left for the next run, 1 still wished; `, 'm'));
    assert.match(rest.stdout, new RegExp(`^prune ${REPO}: 1 removed, 0 left for the next run, 1 still wished; `, 'm'));
    assert.equal(await exists(join(root, REPO, registry.host, 'cli/keep:1')), true);
    assert.equal(await exists(join(root, REPO, registry.host, 'cli/drop:2')), false);
  });

  it('documents every flag in --help and refuses a bad grace period or --cvmfs-gc without the cvmfs publisher', async (t) => {
    const root = join(await tempDir(t), 'cvmfs');

    const help = expectExit(await runCli(['gc', '--help']), 0);
    const badGrace = await runCli(['gc', REPO, '--repo-root', root, '--grace-period', 'soon']);
    const noBackend = await runCli(['gc', REPO, '--repo-root', root, '--cvmfs-gc']);

    for (const flag of ['--dry-run', '--grace-period', '--cvmfs-gc', '--cvmfs-gc-keep-revisions', '--repo-root', '--config'])
      assert.ok(help.stdout.includes(flag), flag);
    assert.match(help.stdout, /default: "7d"/);
    const deleteHelp = expectExit(await runCli(['delete-image', '--help']), 0);
    const pruneHelp = expectExit(await runCli(['prune', '--help']), 0);
    for (const flag of ['--dry-run', '--repo-root', '--config']) assert.ok(deleteHelp.stdout.includes(flag), `delete-image ${flag}`);
    for (const flag of ['--dry-run', '--max', '--repo-root', '--config']) assert.ok(pruneHelp.stdout.includes(flag), `prune ${flag}`);
    assert.match(pruneHelp.stdout, /default: "50"/);
    assert.equal(badGrace.code, 1);
    assert.match(badGrace.stderr, /--grace-period must be a number of days or a duration such as 12h/);
    assert.equal(noBackend.code, 1);
    assert.match(noBackend.stderr, /--cvmfs-gc needs the cvmfs publisher/);
  });
});
