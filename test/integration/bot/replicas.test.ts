/**
 * Two `ducc serve` processes (the built bin) on one PostgreSQL, behind "one webhook address": deliveries
 * are sent as a load balancer would, each to one of them, and some to both (a forge's redelivery, or a
 * retry after a timeout, reaching the other replica). Every delivery is processed exactly once; a replica
 * killed in the middle of a conversion has its job taken over by the other once the lease expires, and
 * the commit status ends final.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { buildTar } from '../../support/build-tar.ts';
import { freePort, startRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { waitFor } from '../../support/wait-for.ts';
import { startApiDouble, githubRepoDouble } from '../../support/forge-api-double.ts';
import { BOT_ENV, githubPush, postGitHub } from '../../support/bot-harness.ts';
import { startPostgres } from '../../support/postgres.ts';

const CLI = new URL('../../../bin/ducc.js', import.meta.url).pathname;
const LEASE_SECONDS = 2;

it('two replicas on one PostgreSQL process each delivery once, and finish the job of a replica killed mid-conversion', async (t) => {
  const registry = await startRegistry(t);
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, '1', [{ layers: [await buildTar([{ name: 'hello', content: 'hello\n' }])] }]);
  await pushOciLayout(layout, '1', { host: registry.host, repository: 'sci/small', tag: '1' });
  // Two large incompressible layers keep a conversion busy long enough to kill its replica in the middle.
  const bigLayout = join(await tempDir(t), 'big');
  const big = (name: string) => buildTar([{ name, content: randomBytes(48 * 1024 * 1024) }]);
  await writeOciLayout(bigLayout, '1', [{ layers: [await big('one'), await big('two')] }]);
  await pushOciLayout(bigLayout, '1', { host: registry.host, repository: 'sci/big', tag: '1' });

  const repo = await createGitRepo(t);
  const recipe = (images: string[], note: string) =>
    `version: 1\ncvmfs_repo: unpacked.example.org\n# ${note}\ninput:\n${images.map((image) => `  - 'http://${registry.host}/${image}'\n`).join('')}`;
  const shas: string[] = [];
  for (const note of ['one', 'two', 'three', 'four']) shas.push(await repo.commit({ 'recipe.yaml': recipe(['sci/small:1'], note) }));
  const bigSha = await repo.commit({ 'recipe.yaml': recipe(['sci/small:1', 'sci/big:1'], 'big') });

  const api = await startApiDouble(t);
  const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
  const postgres = await startPostgres(t);
  const database = await postgres.createDatabase('replicas');
  const root = await tempDir(t, 'ducc-replicas-');
  const ports = [await freePort(), await freePort()];
  const configFile = join(root, 'ducc.yaml');
  // One configuration for both, as on two hosts: the same wish list, publisher and database.
  await writeFile(
    configFile,
    stringify({
      state: { kind: 'postgres', url: postgres.urlOf(database), passwordEnv: 'TEST_STATE_PASSWORD', leaseSeconds: LEASE_SECONDS },
      publisher: { kind: 'directory', root: join(root, 'cvmfs') },
      reconcileMinutes: 0,
      convert: { skipThinImage: true },
      wishlists: [
        { name: 'unpacked', forge: 'github', apiUrl: api.url, project: 'cern/wishlist', cloneUrl: repo.url, tokenEnv: 'TEST_FORGE_TOKEN', botUser: 'ducc-bot' },
      ],
    }),
  );
  const children: ChildProcess[] = [];
  const logs = new Map<ChildProcess, string>();
  t.after(() => children.forEach((child) => child.kill('SIGKILL')));
  const serve = async (index: number): Promise<ChildProcess> => {
    const env = {
      ...process.env,
      ...BOT_ENV,
      TEST_STATE_PASSWORD: postgres.password,
      DUCC_LISTEN: `127.0.0.1:${ports[index]}`,
      DUCC_CACHE_DIR: join(root, `cache-${index}`),
    };
    const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    logs.set(child, '');
    child.stderr!.on('data', (chunk: Buffer) => logs.set(child, logs.get(child) + chunk.toString()));
    await waitFor(() => fetch(`http://127.0.0.1:${ports[index]}/healthz`).then((r) => r.ok), 30_000, `replica ${index} to answer /healthz`, {
      detail: () => logs.get(child) ?? '',
    });
    return child;
  };
  const replicas = await Promise.all([serve(0), serve(1)]);
  const bots = ports.map((port) => ({ url: `http://127.0.0.1:${port}` }));
  const deliver = (to: number[], sha: string, delivery: string) =>
    Promise.all(to.map((index) => postGitHub(bots[index]!, 'push', githubPush('cern/wishlist', 'main', sha), { delivery }).then((r) => r.status)));
  const statesOf = (sha: string) => github.statuses.filter((status) => status.sha === sha).map((status) => status.state);

  // Deliveries spread over the replicas, two of them to both at once.
  const answers = await Promise.all([
    deliver([0, 1], shas[0]!, 'd1'),
    deliver([1, 0], shas[1]!, 'd2'),
    deliver([0], shas[2]!, 'd3'),
    deliver([1], shas[3]!, 'd4'),
  ]);
  for (const pair of answers.slice(0, 2)) assert.deepEqual([...pair].sort(), [200, 202], 'one replica queues it, the other answers that it is a duplicate');
  assert.deepEqual(answers.slice(2), [[202], [202]]);
  await waitFor(() => shas.every((sha) => statesOf(sha).at(-1) === 'success'), 60_000, 'every push published', {
    detail: () => JSON.stringify(github.statuses) + [...logs.values()].join('\n'),
  });

  // A redelivery later, to either replica, is a duplicate: the jobs succeeded.
  assert.deepEqual(await deliver([1], shas[0]!, 'd1'), [200]);
  assert.deepEqual(await deliver([0], shas[3]!, 'd4'), [200]);

  // The big push, to both; the replica that claims it is killed while it converts.
  await deliver([0, 1], bigSha, 'd5');
  const db = new pg.Client({ host: postgres.host, port: postgres.port, user: postgres.user, password: postgres.password, database });
  // The server may stop before this client ends (cleanups run in order): that is no failure.
  db.on('error', () => undefined);
  await db.connect();
  t.after(() => db.end().catch(() => undefined));
  const staging = join(root, 'cvmfs', '.ducc-staging', 'unpacked.example.org');
  await waitFor(async () => (await readdir(staging).catch(() => [])).length > 0, 60_000, 'the big conversion to start writing into staging');
  const { rows } = await db.query<{ claimed_by: string }>(`SELECT claimed_by FROM jobs WHERE status = 'running'`);
  assert.equal(rows.length, 1);
  const victim = replicas.find((child) => rows[0]!.claimed_by.includes(`:${child.pid}:`))!;
  assert.ok(victim, `the running job's replica (${rows[0]!.claimed_by}) is one of the two`);
  const survivor = replicas.find((child) => child !== victim)!;
  victim.kill('SIGKILL');
  await new Promise((resolve) => victim.once('exit', resolve));
  assert.equal(statesOf(bigSha).at(-1), 'pending');

  await waitFor(() => statesOf(bigSha).at(-1) === 'success', 90_000, 'the other replica to take the job over and publish', {
    detail: () => JSON.stringify(statesOf(bigSha)) + (logs.get(survivor) ?? ''),
  });
  assert.match(github.statuses.filter((status) => status.sha === bigSha).at(-1)!.description ?? '', /^1 converted, 1 up to date, 0 failed$/);
  assert.ok((await lstat(join(root, 'cvmfs/unpacked.example.org', registry.host, 'sci/big:1'))).isSymbolicLink());
  assert.match(logs.get(survivor) ?? '', /"attempt":2/);

  // Exactly one job per delivery, each done; only the one taken over took two attempts. (The final status
  // is set before the job is recorded done.)
  await waitFor(
    async () => (await db.query<{ n: string }>(`SELECT count(*) AS n FROM jobs WHERE status <> 'done'`)).rows[0]!.n === '0',
    10_000,
    'every job recorded done',
  );
  const jobs = (await db.query<{ payload: string; status: string; attempts: number }>('SELECT payload, status, attempts FROM jobs ORDER BY id')).rows;
  assert.deepEqual(
    jobs.map((job) => [(JSON.parse(job.payload) as { sha: string }).sha, job.status, job.attempts]).sort(),
    [...shas.map((sha) => [sha, 'done', 1]), [bigSha, 'done', 2]].sort(),
  );
  // Each of the first pushes was published once: one pending and one success status, nothing more.
  for (const sha of shas) assert.deepEqual(statesOf(sha), ['pending', 'success'], `statuses of ${sha}`);
  assert.ok(!statesOf(bigSha).some((state) => state === 'failure' || state === 'error'), JSON.stringify(statesOf(bigSha)));
  // The password never reached a log.
  for (const log of logs.values()) assert.ok(!log.includes(postgres.password), 'a log holds the database password');

  survivor.kill('SIGTERM');
  assert.equal(await new Promise((resolve) => survivor.once('exit', resolve)), 0);
});
