/**
 * `ducc serve` with a dogestry remote in S3 (s3rver on loopback): a wish list naming `dogestry://...:latest`
 * is published, the tag file is rewritten to a new image, and the S3 event notification the server emits
 * for it (its real record, forwarded to the bot's hook as a bucket notification would be) makes the bot
 * re-publish the wish. Only an authenticated notification is taken.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { startRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { waitFor } from '../../support/wait-for.ts';
import { startApiDouble, githubRepoDouble } from '../../support/forge-api-double.ts';
import { dogestryPushFromArchive, skopeoCopy, startS3 } from '../../support/image-sources.ts';
import { BOT_ENV, botConfig, githubPush, postGitHub, startTestBot, REGISTRY_SECRET } from '../../support/bot-harness.ts';

describe('ducc serve: S3 event notifications of a dogestry remote', () => {
  it('re-publishes the dogestry wish whose tag file was rewritten, on an authenticated notification only', async (t) => {
    const s3 = await startS3(t);
    const registry = await startRegistry(t);
    const work = await tempDir(t);
    const remoteDir = join(work, 'remote');
    await mkdir(remoteDir);
    // Two images pushed with dogestry: `latest` names the first.
    for (const version of ['one', 'two']) {
      const layout = join(work, `layout-${version}`);
      await writeOciLayout(layout, version, [{ layers: [await buildTar([{ name: 'version', content: version }])], config: { Cmd: ['/bin/true'] } }]);
      await pushOciLayout(layout, version, { host: registry.host, repository: 'sci/app', tag: version });
      await skopeoCopy(`docker://${registry.host}/sci/app:${version}`, `docker-archive:${work}/${version}.tar:example.org/sci/app:${version}`);
      await dogestryPushFromArchive(`${work}/${version}.tar`, remoteDir);
    }
    const idOne = await readFile(join(remoteDir, 'repositories/example.org/sci/app/one'), 'utf8');
    const idTwo = await readFile(join(remoteDir, 'repositories/example.org/sci/app/two'), 'utf8');
    await writeFile(join(remoteDir, 'repositories/example.org/sci/app/latest'), idOne);
    await s3.upload(remoteDir, 'repo/');

    const api = await startApiDouble(t);
    githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
    const repo = await createGitRepo(t);
    const bot = await startTestBot(
      t,
      (root) =>
        botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }], {
          dogestryRemotes: [
            { name: 'cloud', kind: 's3', bucket: s3.bucket, prefix: 'repo/', region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true },
          ],
          registryHooks: [{ name: 'builds', kind: 's3', secretEnv: 'TEST_REGISTRY_SECRET', remote: { name: 'cloud', bucket: s3.bucket, prefix: 'repo/' } }],
        }),
      undefined,
      { env: { ...BOT_ENV, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey } },
    );
    const sha = await repo.commit({
      'recipe.yaml': ['version: 1', 'cvmfs_repo: unpacked.example.org', 'input:', "  - 'dogestry://cloud/example.org/sci/app:latest'", ''].join('\n'),
    });
    await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha));
    await bot.worker.onIdle();
    const publicName = join(bot.root, 'cvmfs/unpacked.example.org/dogestry/cloud/example.org/sci/app:latest');
    const before = await readlink(publicName);

    // The tag moves; s3rver emits the notification of the new tag object.
    const eventsBefore = s3.events.length;
    const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'repo/repositories/example.org/sci/app/latest', Body: idTwo }));
    client.destroy();
    const notification = JSON.stringify(s3.events[eventsBefore]);
    const post = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${bot.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: notification });

    assert.equal((await post('/hooks/registry/s3/builds', { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await post('/hooks/registry/s3/builds/wrong')).status, 401);
    await bot.worker.onIdle();
    assert.equal(await readlink(publicName), before, 'an unauthenticated notification changes nothing');

    assert.equal((await post('/hooks/registry/s3/builds', { authorization: `Bearer ${REGISTRY_SECRET}` })).status, 202);
    await waitFor(async () => (await readlink(publicName)) !== before, 20_000, 'the public symlink to move after the S3 notification');
    await bot.worker.onIdle();
    assert.equal((await post(`/hooks/registry/s3/builds/${REGISTRY_SECRET}`)).status, 200, 'the same notification again is a duplicate');
  });
});
