/**
 * A registry notification is a hint: the bot never fetches from a URL or host named in it (no SSRF to
 * cloud metadata or internal services), only from the registries its wish lists name. Names that would
 * form paths outside the repository are dropped at the edge.
 */
import { it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { lstat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { githubPush } from '../../support/bot-harness.ts';
import { githubRepoDouble, startApiDouble } from '../../support/forge-api-double.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import {
  abuseConfig,
  distributionPush,
  postGitHub,
  postGitLab,
  postRegistry,
  recordOutgoingRequests,
  SECRETS,
  startAbuseBot,
  type AbuseBot,
} from './support.ts';

/** A loopback server that must never be contacted; the test fails (from t.after) if it was. */
async function startTrap(t: TestContext): Promise<{ host: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    assert.deepEqual(requests, [], `the trap at ${host} was contacted`);
  });
  return { host, requests };
}

it('registry notifications never make the bot fetch from target.url or a host they name', async (t) => {
  const trap = await startTrap(t);
  const outgoing = recordOutgoingRequests(t);
  const source = await startRegistry(t);
  const output = await startRegistry(t, { htpasswd: { username: 'pusher', password: SECRETS.outputRegistryPass } });
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, '1', [{ layers: [await buildTar([{ name: 'hello', content: 'world' }])], config: { Cmd: ['/bin/true'] } }]);
  await pushOciLayout(layout, '1', { host: source.host, repository: 'sci/a', tag: '1' });
  const repo = await createGitRepo(t);
  await repo.commit({
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
  githubRepoDouble(api, { owner: 'cern', repo: 'wishlist' });
  const bot = await startAbuseBot(t, (root) =>
    abuseConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }], { convert: { skipThinImage: false, multiArch: false } }),
  );
  const digest = `sha256:${'c'.repeat(64)}`;

  // The wish's own repository and tag, but target.url points at the trap: converted from the wish list's registry.
  const first = await postRegistry(bot, {
    events: [distributionPush({ repository: 'sci/a', tag: '1', digest, url: `http://${trap.host}/v2/sci/a/manifests/${digest}` }, { host: source.host })],
  });
  assert.equal(first.status, 202);
  await bot.running.worker.onIdle();
  assert.ok((await lstat(join(bot.root, 'cvmfs', 'unpacked.example.org', source.host, 'sci/a:1'))).isSymbolicLink(), 'the hint was acted on');
  assert.match(bot.logs(), /"outcomes":\["converted"\],"msg":"registry push handled"/);

  // Hosts that no wish names: cloud metadata, the trap, Harbor and Quay payloads naming them.
  const hints: [string, unknown][] = [
    [
      '/hooks/registry/distribution/local',
      {
        events: [
          distributionPush(
            { repository: 'sci/a', tag: '1', url: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' },
            { host: '169.254.169.254' },
          ),
        ],
      },
    ],
    [
      '/hooks/registry/distribution/local',
      { events: [distributionPush({ repository: 'sci/a', tag: '1', url: `http://${trap.host}/v2/sci/a/manifests/1` }, { host: trap.host })] },
    ],
    [
      '/hooks/registry/harbor/harbor',
      {
        type: 'PUSH_ARTIFACT',
        occur_at: 1,
        operator: 'x',
        event_data: { resources: [{ digest, tag: '1', resource_url: `${trap.host}/sci/a:1` }], repository: { name: 'a', namespace: 'sci' } },
      },
    ],
    [
      '/hooks/registry/harbor/harbor',
      { type: 'PUSH_ARTIFACT', occur_at: 2, operator: 'x', event_data: { resources: [{ digest, tag: '1', resource_url: '169.254.169.254/sci/a:1' }] } },
    ],
    [
      `/hooks/registry/quay/quay/${SECRETS.registryPath}`,
      { repository: 'sci/a', docker_url: `${trap.host}/sci/a`, updated_tags: ['1'], homepage: `http://${trap.host}/` },
    ],
  ];
  for (const [path, body] of hints) {
    const reply = await postRegistry(bot, body, { path, ...(path.includes('/quay/') ? { authorization: null } : {}) });
    assert.equal(reply.status, 202, path);
  }
  await bot.running.worker.onIdle();

  assert.ok(
    outgoing.some((url) => url.includes(source.host)),
    'outgoing requests are recorded',
  );
  assert.ok(
    outgoing.some((url) => url.includes(output.host)),
    'the thin image was pushed',
  );
  const forbidden = outgoing.filter((url) => url.includes('169.254.169.254') || url.includes(trap.host));
  assert.deepEqual(forbidden, []);
  const queue = await bot.queue();
  assert.equal(queue.queued + queue.running + queue.failed, 0);
  // The hints name two images (sci/a:1 at 169.254.169.254 and at the trap): each was handled at least
  // once. Hints about an image that is still queued are merged into its job, and the worker waits for
  // deliveries to pause before it starts one, so how many merge depends on timing.
  assert.ok(queue.done >= 1 + 2 && queue.done <= 1 + hints.length, JSON.stringify(queue));
});

it('repository, tag and host names that would form paths outside the repository are dropped at the edge', async (t) => {
  const bot = await startAbuseBot(t, (root) => abuseConfig(root, [{}, { forge: 'gitlab' }]));
  const ignored = async (reply: Promise<{ status: number; body: any }>, name: string) => {
    const answer = await reply;
    assert.equal(answer.status, 200, name);
    assert.equal(answer.body.outcome, 'ignored', name);
  };
  const repositories = [
    '../../etc/passwd',
    'sci/../../etc',
    'sci/..%2F..%2Fetc',
    '..%2F..%2Fetc',
    '%2e%2e/%2e%2e/etc',
    '/etc/passwd',
    'sci/a/',
    'sci//a',
    'sci/./a',
    'sci\\..\\a',
  ];
  for (const repository of repositories) {
    await ignored(postRegistry(bot, { events: [distributionPush({ repository, tag: '1' })] }), `repository ${repository}`);
  }
  for (const tag of ['..', '../x', '..%2F..%2Fx', '/x', 'a/b', '.hidden']) {
    await ignored(postRegistry(bot, { events: [distributionPush({ repository: 'sci/a', tag, mediaType: 'application/octet-stream' })] }), `tag ${tag}`);
  }
  for (const host of ['../..', 'registry.example.org/../..', '/abs', '..%2F..']) {
    await ignored(postRegistry(bot, { events: [distributionPush({ repository: 'sci/a', tag: '1' }, { host })] }), `host ${host}`);
  }
  for (const url of [
    'registry.example.org/../../etc:1',
    'registry.example.org/%2e%2e/etc:1',
    '/etc/passwd:1',
    'registry.example.org/sci/a:../x',
    '../registry/sci/a:1',
  ]) {
    const body = { type: 'PUSH_ARTIFACT', event_data: { resources: [{ tag: '1', resource_url: url }] } };
    await ignored(postRegistry(bot, body, { path: '/hooks/registry/harbor/harbor' }), `Harbor ${url}`);
  }
  await ignored(
    postRegistry(
      bot,
      { docker_url: 'quay.io/../../etc', updated_tags: ['1'] },
      { path: `/hooks/registry/quay/quay/${SECRETS.registryPath}`, authorization: null },
    ),
    'Quay docker_url',
  );
  await ignored(
    postRegistry(
      bot,
      { docker_url: 'quay.io/sci/a', updated_tags: ['../x', '..'] },
      { path: `/hooks/registry/quay/quay/${SECRETS.registryPath}`, authorization: null },
    ),
    'Quay tags',
  );
  await ignored(
    postRegistry(
      bot,
      { push_data: { tag: '1' }, repository: { repo_name: '../../etc' } },
      { path: `/hooks/registry/dockerhub/hub/${SECRETS.registryPath}`, authorization: null },
    ),
    'Docker Hub repo_name',
  );
  await ignored(
    postRegistry(
      bot,
      { push_data: { tag: '../x' }, repository: { repo_name: 'sci/a' } },
      { path: `/hooks/registry/dockerhub/hub/${SECRETS.registryPath}`, authorization: null },
    ),
    'Docker Hub tag',
  );
  assertNoRegistryEvent(bot);
  // Forge payloads naming projects and branches: matched against the configuration, never used as
  // paths; nothing configured matches, so nothing is queued.
  await ignored(
    postGitHub(bot, 'push', { ...githubPush('cern/wishlist', 'main', 'd'.repeat(40)), repository: { id: 1, full_name: '../..' } }),
    'GitHub full_name',
  );
  await ignored(postGitHub(bot, 'push', githubPush('cern/wishlist', '../../main', 'd'.repeat(40))), 'GitHub branch');
  await ignored(
    postGitLab(bot, 'Push Hook', {
      object_kind: 'push',
      ref: 'refs/heads/main',
      after: 'd'.repeat(40),
      project: { id: 1, path_with_namespace: 'unpacked/../../sync' },
    }),
    'GitLab path_with_namespace',
  );
  // Hook names are looked up, never used as paths.
  assert.equal((await postRegistry(bot, { events: [] }, { path: '/hooks/registry/distribution/..%2F..%2Flocal' })).status, 404);
  assert.equal((await postRegistry(bot, { events: [] }, { path: '/hooks/registry/distribution/%2e%2e' })).status, 404);

  assertNoRegistryEvent(bot);
  assert.deepEqual(await bot.queue(), { queued: 0, running: 0, done: 0, failed: 0 });
});

function assertNoRegistryEvent(bot: AbuseBot): void {
  const withEvents = bot.accepted.filter((delivery) => delivery.id.startsWith('registry:') && delivery.events.length > 0);
  assert.deepEqual(withEvents, [], 'no registry event with such a name survived the edge');
}
