/**
 * The commands around registry-less sources: `ducc list-remote` (as `dogestry list`), `ducc check` resolving
 * layouts, archives and dogestry remotes with the line and column of each entry, and S3 credentials taken
 * from the environment only, never shown.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout, type WrittenImage } from '../../support/oci-image.ts';
import { buildTar } from '../../support/build-tar.ts';
import { dogestryPushFromArchive, skopeoCopy, startS3, type TestS3 } from '../../support/image-sources.ts';
import { asTestContext, expectExit, runCli, suiteCleanup, tempDir } from '../cli/cli-support.ts';

describe('list-remote, check and S3 credentials', () => {
  const suite = suiteCleanup();
  let registry: TestRegistry;
  let s3: TestS3;
  let root: string;
  let written: WrittenImage;
  let config: string;
  let env: Record<string, string>;

  before(async () => {
    const t = asTestContext(suite);
    registry = await startRegistry(t);
    s3 = await startS3(t);
    root = await tempDir(suite, 'ducc-sources-cli-');
    const layer = await buildTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hello', content: 'hi' },
    ]);
    written = (await writeOciLayout(join(root, 'origin'), 'v1', [{ layers: [layer] }])).manifests[0]!;
    await pushOciLayout(join(root, 'origin'), 'v1', { host: registry.host, repository: 'src/app', tag: 'v1' });
    await skopeoCopy(`docker://${registry.host}/src/app:v1`, `docker-archive:${root}/app.tar:example.org/team/app:v1`);
    await mkdir(join(root, 'dogestry'));
    await dogestryPushFromArchive(`${root}/app.tar`, join(root, 'dogestry'));
    // Another tag of the same image, and a checksum file as dogestry's S3 remote writes them.
    await copyFile(join(root, 'dogestry/repositories/example.org/team/app/v1'), join(root, 'dogestry/repositories/example.org/team/app/latest'));
    await writeFile(join(root, 'dogestry/repositories/example.org/team/app/latest.sum'), 'da39a3ee5e6b4b0d3255bfef95601890afd80709');
    await s3.upload(join(root, 'dogestry'), 'docker-repo/');
    config = join(root, 'ducc.yaml');
    await writeFile(
      config,
      [
        'dogestryRemotes:',
        `  - {name: central, url: "file://${root}/dogestry"}`,
        `  - {name: builds, url: "s3://${s3.bucket}/docker-repo", endpoint: "${s3.endpoint}"}`,
        '',
      ].join('\n'),
    );
    env = { DUCC_CACHE_DIR: join(root, 'cache'), AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
  });
  after(() => suite.runAll());

  it('list-remote prints repository and tag like dogestry list, for a directory and an S3 remote', async () => {
    const expected = ['REPOSITORY            TAG', 'example.org/team/app  latest', 'example.org/team/app  v1', ''].join('\n');

    assert.equal(expectExit(await runCli(['list-remote', 'central', '--config', config], { env }), 0).stdout, expected);
    assert.equal(expectExit(await runCli(['list-remote', 'builds', '--config', config], { env }), 0).stdout, expected);
  });

  it('list-remote names the configured remotes when the name is unknown', async () => {
    const result = await runCli(['list-remote', 'elsewhere', '--config', config], { env });

    assert.equal(result.code, 1);
    assert.match(result.stderr, /no dogestry remote 'elsewhere' in the configuration's dogestryRemotes \(configured: central, builds\)/);
  });

  it('S3 credentials come from the environment (also as _FILE), are required, and never shown', async () => {
    const secret = 'a-very-secret-value-0123456789';
    const missing = await runCli(['list-remote', 'builds', '--config', config], { env: { ...env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' } });
    const refused = await runCli(['list-remote', 'builds', '--config', config], {
      env: { ...env, AWS_ACCESS_KEY_ID: 'NOBODY', AWS_SECRET_ACCESS_KEY: secret },
    });
    await writeFile(join(root, 'secret'), `${s3.secretAccessKey}\n`);
    const fromFile = await runCli(['list-remote', 'builds', '--config', config], {
      env: { ...env, AWS_SECRET_ACCESS_KEY: '', AWS_SECRET_ACCESS_KEY_FILE: join(root, 'secret') },
    });

    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /dogestry remote 'builds' \(s3:\/\/images\/docker-repo\/\) needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /listing s3:\/\/images\/docker-repo\/\/repositories\/ on dogestry remote 'builds' .* failed: InvalidAccessKeyId/);
    assert.doesNotMatch(refused.stdout + refused.stderr, new RegExp(secret));
    assert.equal(expectExit(fromFile, 0).stdout.split('\n').length, 4);
  });

  it('check resolves layouts, archives and dogestry tags, with the line and column of each entry', async () => {
    await skopeoCopy(`docker://${registry.host}/src/app:v1`, `oci:${root}/layout:v1`);
    const wishlist = join(root, 'check.yaml');
    await writeFile(
      wishlist,
      [
        'version: 1',
        "cvmfs_repo: 'check.example.org'",
        'input:',
        `  - 'oci:${root}/layout:v1'`,
        `  - 'docker-archive:${root}/app.tar:example.org/team/app:v1'`,
        "  - 'dogestry://builds/example.org/team/app:*'",
        "  - 'dogestry://central/example.org/team/app:v9'",
        '',
      ].join('\n'),
    );

    const result = await runCli(['check', wishlist, '--config', config], { env });

    assert.equal(result.code, 1, result.stderr);
    const lines = result.stdout
      .trim()
      .split('\n')
      .filter((line) => !line.includes(': warning: '));
    assert.equal(lines[0], `${wishlist}:4:5: ok: oci:${root}/layout:v1 ${written.digest}`);
    assert.match(lines[1]!, new RegExp(`^${wishlist}:5:5: ok: docker-archive:${root}/app\\.tar:example\\.org/team/app:v1 sha256:[a-f0-9]{64}$`));
    assert.match(lines[2]!, /:6:5: ok: dogestry:\/\/builds\/example\.org\/team\/app:latest sha256:/);
    assert.match(lines[3]!, /:6:5: ok: dogestry:\/\/builds\/example\.org\/team\/app:v1 sha256:/);
    assert.match(lines[4]!, /:7:5: error: dogestry:\/\/central\/example\.org\/team\/app:v9: no tag example\.org\/team\/app:v9 on dogestry remote 'central'/);
  });
});
