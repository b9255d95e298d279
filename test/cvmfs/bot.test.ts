/**
 * `ducc serve` with the cvmfs publisher on a real CernVM-FS 2.12 stratum 0: a signed GitHub push
 * publishes into the repository and the commit status ends `success`; a push that drops an entry removes
 * its public name and metadata (the bot's removal path), in one classic transaction.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../support/build-tar.ts';
import { startRegistry } from '../support/registry.ts';
import { pushOciLayout, writeOciLayout } from '../support/oci-image.ts';
import { createGitRepo } from '../support/git-repo.ts';
import { tempDir } from '../support/tmp-dir.ts';
import { startApiDouble, githubRepoDouble } from '../support/forge-api-double.ts';
import { botConfig, githubPush, postGitHub, startTestBot } from '../support/bot-harness.ts';
import { cvmfsServerShim, createRepository } from '../support/stratum0.ts';

describe('ducc serve with the cvmfs publisher on a real stratum 0', () => {
  it('a signed push publishes two images (status success); a push dropping one removes its name and metadata', async (t) => {
    const registry = await startRegistry(t);
    const repo = await createRepository(t, 'bot');
    const work = await tempDir(t);
    const shim = await cvmfsServerShim(join(work, 'bin'));
    for (const name of ['a', 'b']) {
      const layout = join(work, `layout-${name}`);
      await writeOciLayout(layout, '1', [{ layers: [await buildTar([{ name: 'content', content: name }])], config: { Cmd: ['/bin/true'] } }]);
      await pushOciLayout(layout, '1', { host: registry.host, repository: `sci/${name}`, tag: '1' });
    }
    const wishlist = (images: string[]) =>
      ['version: 1', `cvmfs_repo: ${repo.name}`, 'input:', ...images.map((i) => `  - 'http://${registry.host}/${i}'`), ''].join('\n');
    const git = await createGitRepo(t);
    const base = await git.commit({ 'recipe.yaml': wishlist([]) });
    const both = await git.commit({ 'recipe.yaml': wishlist(['sci/a:1', 'sci/b:1']) });
    const api = await startApiDouble(t);
    const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
    const bot = await startTestBot(t, (root) =>
      botConfig(root, [{ apiUrl: api.url, cloneUrl: git.url }], {
        publisher: { kind: 'cvmfs', mountRoot: '/cvmfs', cvmfsServer: shim.command, lockDir: work, stagingDir: join(work, 'staging') },
      }),
    );

    assert.equal((await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', both, base))).status, 202);
    await bot.worker.onIdle();

    const first = github.statuses.filter((s) => s.sha === both);
    assert.deepEqual(
      first.map((s) => s.state),
      ['pending', 'success'],
    );
    assert.match(first[1]!.description ?? '', /^2 converted, 0 up to date, 0 failed$/);
    for (const name of ['a', 'b']) assert.equal(await readFile(join(repo.mount, registry.host, `sci/${name}:1`, 'content'), 'utf8'), name);

    const onlyA = await git.commit({ 'recipe.yaml': wishlist(['sci/a:1']) });
    const before = (await shim.calls()).length;
    await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', onlyA, both));
    await bot.worker.onIdle();

    const last = github.statuses.filter((s) => s.sha === onlyA).at(-1)!;
    assert.equal(last.state, 'success');
    assert.match(last.description ?? '', /0 converted, 1 up to date, 1 removed, 0 failed/);
    await assert.rejects(lstat(join(repo.mount, registry.host, 'sci/b:1')), { code: 'ENOENT' });
    await assert.rejects(lstat(join(repo.mount, '.metadata', registry.host, 'sci/b:1')), { code: 'ENOENT' });
    assert.equal(await readFile(join(repo.mount, registry.host, 'sci/a:1', 'content'), 'utf8'), 'a');
    const removal = (await shim.calls())
      .slice(before)
      .map((argv) => argv[0])
      .filter((command) => command !== 'list');
    assert.deepEqual(removal, ['transaction', 'publish'], 'the removal is one classic transaction');
    await repo.check();
  });
});
