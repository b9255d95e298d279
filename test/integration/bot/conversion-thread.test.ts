/**
 * `ducc serve` converts on a thread of its own (src/bot/conversion-thread.ts): the images of a push are
 * published as before, a failing image is a failed line with the thread's error, the thread's log records
 * come out of the serve's logger with the job's fields, and the thread is started once and kept.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { conversionThreadStats } from '../../../src/bot/conversion-thread.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { buildTar } from '../../support/build-tar.ts';
import { botConfig, githubPush, postGitHub, startTestBot } from '../../support/bot-harness.ts';
import { githubRepoDouble, startApiDouble } from '../../support/forge-api-double.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';

it('ducc serve converts on its conversion thread: images published, a failure reported, the thread logs through the job', async (t) => {
  const registry = await startRegistry(t);
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, '1', [
    {
      layers: [
        await buildTar([
          { name: 'etc/', type: 'directory' },
          { name: 'etc/a', content: 'a\n' },
        ]),
      ],
      config: {},
    },
  ]);
  await pushOciLayout(layout, '1', { host: registry.host, repository: 'sci/a', tag: '1' });
  const list = (images: string[]) =>
    ['version: 1', 'cvmfs_repo: unpacked.example.org', 'input:', ...images.map((i) => `  - 'http://${registry.host}/${i}'`), ''].join('\n');
  const repo = await createGitRepo(t);
  const first = await repo.commit({ 'recipe.yaml': list(['sci/a:1']) });
  const second = await repo.commit({ 'recipe.yaml': list(['sci/a:1', 'sci/missing:1']) });
  const api = await startApiDouble(t);
  const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    human: false,
    stream: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
        callback();
      },
    }),
  });
  const before = { ...conversionThreadStats };
  const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }]), logger);

  assert.equal((await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', first))).status, 202);
  await bot.worker.onIdle();
  assert.equal(github.statuses.filter((s) => s.sha === first).at(-1)?.state, 'success');
  assert.ok((await lstat(join(bot.root, 'cvmfs', 'unpacked.example.org', registry.host, 'sci/a:1'))).isSymbolicLink());

  assert.equal((await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', second, first))).status, 202);
  await bot.worker.onIdle();
  const final = github.statuses.filter((s) => s.sha === second).at(-1);
  assert.equal(final?.state, 'failure');
  assert.match(final?.description ?? '', /^0 converted, 1 up to date, 1 failed$/);

  assert.equal(conversionThreadStats.started - before.started, 1, 'one thread, kept for every conversion');
  assert.equal(conversionThreadStats.conversions - before.conversions, 3);
  // The thread's own record of the conversion, with the job's fields the main thread's logger adds.
  const converted = lines.find((line) => line['msg'] === 'converted' && String(line['image']).endsWith(`${registry.host}/sci/a:1`));
  assert.ok(converted, 'the thread logged no "converted" record');
  assert.equal(typeof converted['jobId'], 'number');
  assert.equal(converted['kind'], 'sync-branch');
  const failed = lines.find((line) => line['msg'] === 'conversion failed');
  assert.match(String(failed?.['err']), /sci\/missing/);
});
