/**
 * No secret reaches a log, a commit status, a comment, the status page or an error message — also on
 * the failure paths, where errors carrying requests (and their Authorization headers) get logged whole.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { buildTar } from '../../support/build-tar.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { githubPush } from '../../support/bot-harness.ts';
import { githubRepoDouble, startApiDouble } from '../../support/forge-api-double.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { GitHubForge } from '../../../src/forge/github-forge.ts';
import { GitLabForge } from '../../../src/forge/gitlab-forge.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { abuseConfig, assertNoSecrets, postGitHub, SECRETS, startAbuseBot } from './support.ts';

it('a thin push refused for a wrong password names no password in statuses, reports, the status page or the log', async (t) => {
  const source = await startRegistry(t);
  const output = await startRegistry(t, { htpasswd: { username: 'pusher', password: 'the-registry-wants-another-one' } });
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, '1', [{ layers: [await buildTar([{ name: 'hello', content: 'world' }])] }]);
  await pushOciLayout(layout, '1', { host: source.host, repository: 'sci/a', tag: '1' });
  const repo = await createGitRepo(t);
  const sha = await repo.commit({
    'recipe.yaml': [
      'version: 1',
      'user: pusher',
      'cvmfs_repo: unpacked.example.org',
      `output_format: 'http://${output.host}/thin/$(image)'`,
      'input:',
      `  - 'http://${source.host}/sci/a:1'`,
      '',
    ].join('\n'),
  });
  const api = await startApiDouble(t);
  const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', pulls: [{ number: 3, headSha: sha, state: 'merged', mergeCommitSha: sha }] });
  const bot = await startAbuseBot(t, (root) =>
    abuseConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }], { convert: { skipThinImage: false, multiArch: false } }),
  );

  assert.equal((await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', sha))).status, 202);
  await bot.running.worker.onIdle();

  const final = github.statuses.at(-1)!;
  assert.equal(final.state, 'failure');
  const report = github.comments.find((c) => c.issueNumber === 3)!.body;
  assert.match(report, /sci\/a:1/);
  const page = await (await fetch(`${bot.url}/`)).text();
  const status = await (await fetch(`${bot.url}/status`)).text();
  const basic = Buffer.from(`pusher:${SECRETS.outputRegistryPass}`).toString('base64');
  for (const [where, text] of [
    ['statuses', JSON.stringify(github.statuses)],
    ['comments', JSON.stringify(github.comments)],
    ['the status page', page],
    ['/status', status],
    ['the log', bot.logs()],
  ] as const) {
    assertNoSecrets(text, where);
    assert.ok(!text.includes(basic), `${where} contains the Basic credentials`);
  }
  assert.match(bot.logs(), /conversion failed/);
});

it('forge API errors, logged whole at trace level, never carry the API token', async (t) => {
  const api = await startApiDouble(t, { failTestOnUnexpected: false });
  api.expect({ method: 'POST', path: /\/statuses\//, times: Infinity, reply: { status: 401, body: { message: 'Bad credentials' } } });
  api.expect({ method: 'GET', path: /\/collaborators\/|\/members\/all\//, times: Infinity, reply: { status: 500, body: { message: 'Server Error' } } });
  let text = '';
  const logger = createLogger({
    human: false,
    level: 'trace',
    stream: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString('utf8');
        callback();
      },
    }),
  });
  const githubForge = new GitHubForge({ baseUrl: api.url, token: SECRETS.githubApi, logger });
  const gitlabForge = new GitLabForge({ host: api.url, token: SECRETS.gitlabApi, logger });
  const failures: unknown[] = [];
  const status = { state: 'pending', context: 'ducc-gitops/publish', description: 'x' } as const;
  await githubForge.setCommitStatus('cern/wishlist', 'a'.repeat(40), status).catch((error: unknown) => failures.push(error));
  await githubForge.canWrite('cern/wishlist', { login: 'carol', isBot: false }).catch((error: unknown) => failures.push(error));
  await gitlabForge.setCommitStatus('unpacked/sync', 'a'.repeat(40), status).catch((error: unknown) => failures.push(error));
  await gitlabForge.canWrite('unpacked/sync', { login: 'carol', id: 13, isBot: false }).catch((error: unknown) => failures.push(error));
  assert.equal(failures.length, 4);
  for (const error of failures) logger.error({ err: error }, 'forge call failed');
  // The token did go out (the double saw it), and came back nowhere.
  assert.ok(api.requests.some((r) => JSON.stringify(r.headers).includes(SECRETS.githubApi)));
  assert.ok(api.requests.some((r) => JSON.stringify(r.headers).includes(SECRETS.gitlabApi)));
  assert.equal(text.match(/forge call failed/g)?.length, 4);
  assertNoSecrets(text, 'the log');
  for (const error of failures) assertNoSecrets(`${String(error)} ${JSON.stringify(error)} ${(error as Error).stack}`, 'an error');
});
