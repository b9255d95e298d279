/** `ducc convert-single-image IMAGE REPO` as a child process against the real registry. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import type { WrittenImage } from '../../support/oci-image.ts';
import { asTestContext, entriesOf, exists, expectExit, flatPath, layerPath, pushImage, runCli, suiteCleanup, tempDir } from './cli-support.ts';

const run = promisify(execFile);

describe('ducc convert-single-image', () => {
  let registry: TestRegistry;
  let image: WrittenImage;
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    image = await pushImage(suite, registry, 'single/tool', '3.1', [
      [
        { name: 'usr/', type: 'directory' },
        { name: 'usr/tool', content: 'tool', mode: 0o755 },
      ],
      [
        { name: 'etc/', type: 'directory' },
        { name: 'etc/tool.conf', content: 'conf' },
      ],
    ]);
  });
  after(() => suite.runAll());

  it('converts one image into <repo-root>/<repo>/ without a wish list; a second run is up to date', async (t) => {
    const root = await tempDir(t);
    const reference = `http://${registry.host}/single/tool:3.1`;

    const result = expectExit(await runCli(['convert-single-image', reference, 'single.example.org', '--repo-root', root, '--skip-thin-image']), 0);

    assert.equal(result.stdout, '1 converted, 0 up to date, 0 failed\n');
    const repo = join(root, 'single.example.org');
    assert.equal(await readlink(join(repo, registry.host, 'single/tool:3.1')), `../../${flatPath(image.configDigest)}`);
    assert.equal(await readFile(join(repo, flatPath(image.configDigest), 'usr/tool'), 'utf8'), 'tool');
    assert.equal(await readFile(join(repo, flatPath(image.configDigest), 'etc/tool.conf'), 'utf8'), 'conf');
    for (const digest of image.layerDigests) assert.ok(await exists(join(repo, layerPath(digest), 'layerfs/.cvmfscatalog')));
    const manifest = JSON.parse(await readFile(join(repo, '.metadata', registry.host, 'single/tool:3.1/manifest.json'), 'utf8'));
    assert.equal(manifest.Config.Digest, image.configDigest);
    assert.deepEqual(await entriesOf(join(root, '.ducc-staging', 'single.example.org')), []);

    const again = expectExit(await runCli(['convert-single-image', reference, 'single.example.org', '--repo-root', root, '--skip-thin-image']), 0);
    assert.equal(again.stdout, '0 converted, 1 up to date, 0 failed\n');
  });

  it('accepts a repository with a sub-directory', async (t) => {
    const root = await tempDir(t);

    expectExit(
      await runCli(['convert-single-image', `http://${registry.host}/single/tool:3.1`, 'single.example.org/images', '--repo-root', root, '--skip-thin-image']),
      0,
    );

    const repo = join(root, 'single.example.org', 'images');
    assert.equal(await readlink(join(repo, registry.host, 'single/tool:3.1')), `../../${flatPath(image.configDigest)}`);
    assert.ok(await exists(join(repo, '.metadata', registry.host, 'single/tool:3.1/manifest.json')));
    assert.deepEqual(await entriesOf(join(root, '.ducc-staging', 'single.example.org_images')), []);
  });

  it('pushes the thin image under --thin-image-name with the -u account', async (t) => {
    const output = await startRegistry(t, { htpasswd: { username: 'thin-pusher', password: 'thin-secret' } });
    const root = await tempDir(t);
    const thinName = `http://${output.host}/thin/tool:3.1-thin`;

    const result = await runCli(
      [
        'convert-single-image',
        `http://${registry.host}/single/tool:3.1`,
        'single.example.org',
        '--repo-root',
        root,
        '-u',
        'thin-pusher',
        '--thin-image-name',
        thinName,
      ],
      {
        env: { DUCC_OUTPUT_REGISTRY_PASS: 'thin-secret' },
      },
    );

    expectExit(result, 0);
    assert.doesNotMatch(result.stderr, /thin-secret/);
    const { stdout } = await run('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--creds',
      'thin-pusher:thin-secret',
      `docker://${output.host}/thin/tool:3.1-thin`,
    ]);
    const inspected = JSON.parse(stdout) as { Env: string[] };
    assert.ok(inspected.Env.includes('CVMFS_IMAGE=true'), stdout);
  });

  it('exits 1 with one error line for an image reference without registry, before converting anything', async (t) => {
    const root = await tempDir(t);

    const result = expectExit(await runCli(['convert-single-image', 'ubuntu:22.04', 'single.example.org', '--repo-root', root, '--skip-thin-image']), 1);

    // The argument is checked before anything starts: one error line naming it and the full form to use.
    assert.equal(result.stdout, '');
    assert.match(result.stderr.trim(), /^ducc: invalid image reference 'ubuntu:22\.04'.*https:\/\/registry\.hub\.docker\.com\/library\/ubuntu:22\.04'$/);
    assert.deepEqual(await entriesOf(join(root, 'single.example.org')), []);
  });
});
