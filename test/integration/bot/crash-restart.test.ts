import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { buildTar } from '../../support/build-tar.ts';
import { freePort, startRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { waitFor } from '../../support/wait-for.ts';
import { startApiDouble, githubRepoDouble } from '../../support/forge-api-double.ts';
import { BOT_ENV, githubPush, postGitHub } from '../../support/bot-harness.ts';
import { SqliteStateStore } from '../../../src/state/sqlite-store.ts';

const CLI = new URL('../../../bin/ducc.js', import.meta.url).pathname;

it('kill -9 in the middle of a conversion, then a restart: the job completes and its status ends final', async (t) => {
  const registry = await startRegistry(t);
  const layout = join(await tempDir(t), 'layout');
  // Two large incompressible layers keep the conversion busy long enough to be killed in the middle.
  const big = (name: string) => buildTar([{ name, content: randomBytes(48 * 1024 * 1024) }]);
  await writeOciLayout(layout, '1', [{ layers: [await big('one'), await big('two')] }]);
  await pushOciLayout(layout, '1', { host: registry.host, repository: 'sci/big', tag: '1' });
  const repo = await createGitRepo(t);
  const sha = await repo.commit({ 'recipe.yaml': `version: 1\ncvmfs_repo: unpacked.example.org\ninput:\n  - 'http://${registry.host}/sci/big:1'\n` });
  const api = await startApiDouble(t);
  const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
  const root = await tempDir(t, 'ducc-crash-');
  const port = await freePort();
  const configFile = join(root, 'ducc.yaml');
  await writeFile(
    configFile,
    stringify({
      listen: { host: '127.0.0.1', port },
      statePath: join(root, 'state.db'),
      cacheDir: join(root, 'cache'),
      publisher: { kind: 'directory', root: join(root, 'cvmfs') },
      reconcileMinutes: 0,
      convert: { skipThinImage: true },
      wishlists: [
        { name: 'unpacked', forge: 'github', apiUrl: api.url, project: 'cern/wishlist', cloneUrl: repo.url, tokenEnv: 'TEST_FORGE_TOKEN', botUser: 'ducc-bot' },
      ],
    }),
  );
  const children: ChildProcess[] = [];
  t.after(() => children.forEach((child) => child.kill('SIGKILL')));
  const serve = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { env: { ...process.env, ...BOT_ENV }, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await waitFor(() => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok), 15_000, 'ducc serve to answer /healthz', { detail: () => stderr });
    return child;
  };
  const bot = { url: `http://127.0.0.1:${port}` };
  const staging = join(root, 'cvmfs', '.ducc-staging', 'unpacked.example.org');

  const first = await serve();
  assert.equal((await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha))).status, 202);
  await waitFor(async () => (await readdir(staging).catch(() => [])).length > 0, 30_000, 'the conversion to start writing into staging');
  first.kill('SIGKILL');
  await new Promise((resolve) => first.once('exit', resolve));

  assert.equal(github.statuses.at(-1)?.state, 'pending');
  await assert.rejects(lstat(join(root, 'cvmfs/unpacked.example.org', registry.host, 'sci/big:1')), { code: 'ENOENT' });
  const crashed = SqliteStateStore.open(join(root, 'state.db'));
  assert.equal((await crashed.counts()).running, 1);
  await crashed.close();

  const second = await serve();
  await waitFor(async () => github.statuses.filter((s) => s.sha === sha).at(-1)?.state === 'success', 60_000, 'a success status after the restart');

  assert.match(github.statuses.at(-1)!.description ?? '', /^1 converted, 0 up to date, 0 failed$/);
  assert.ok((await lstat(join(root, 'cvmfs/unpacked.example.org', registry.host, 'sci/big:1'))).isSymbolicLink());
  second.kill('SIGTERM');
  const code = await new Promise((resolve) => second.once('exit', resolve));
  assert.equal(code, 0);
  assert.deepEqual(await readdir(staging), []);
  const after = SqliteStateStore.open(join(root, 'state.db'));
  t.after(() => after.close());
  assert.deepEqual(await after.counts(), { queued: 0, running: 0, done: 1, failed: 0 });
});
