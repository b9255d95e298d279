import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureBytes } from '../../fixtures/webhooks/index.ts';
import { HUB_SECRET, REGISTRY_SECRET, send, startTestServer, type TestServer } from './support.ts';

const post = (server: TestServer, path: string, body: Buffer, headers: Record<string, string> = {}) =>
  send(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

test('distribution: Authorization "Bearer <secret>" or the bare secret; events parsed; 202', async (t) => {
  const server = await startTestServer(t);
  const body = fixtureBytes('registry/distribution.push.json');
  const reply = await post(server, '/hooks/registry/distribution/local', body, {
    'content-type': 'application/vnd.docker.distribution.events.v2+json',
    authorization: `Bearer ${REGISTRY_SECRET}`,
  });
  assert.equal(reply.status, 202);
  assert.deepEqual(server.intake.deliveries[0]!.events, [
    {
      kind: 'registry-push',
      source: 'local',
      registry: 'registry.example.org:5000',
      repository: 'library/test',
      tag: 'latest',
      digest: 'sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf',
    },
  ]);
  // The registry retries the same envelope: duplicate.
  const again = await post(server, '/hooks/registry/distribution/local', body, { authorization: REGISTRY_SECRET });
  assert.equal(again.status, 200);
  assert.equal(again.body.outcome, 'duplicate');
});

test('harbor (default and CloudEvents) with the Authorization header', async (t) => {
  const server = await startTestServer(t);
  for (const file of ['registry/harbor.default.push.json', 'registry/harbor.cloudevents.push.json']) {
    const reply = await post(server, '/hooks/registry/harbor/harbor', fixtureBytes(file), { authorization: REGISTRY_SECRET });
    assert.equal(reply.status, 202, file);
  }
  assert.equal(server.intake.deliveries.length, 2);
});

test('docker hub and quay: the secret in the path', async (t) => {
  const server = await startTestServer(t);
  assert.equal((await post(server, `/hooks/registry/dockerhub/hub/${HUB_SECRET}`, fixtureBytes('registry/dockerhub.push.json'))).status, 202);
  assert.equal((await post(server, `/hooks/registry/quay/quay/${HUB_SECRET}`, fixtureBytes('registry/quay.repo-push.json'))).status, 202);
  assert.deepEqual(
    server.intake.deliveries.map((d) => d.events),
    [
      [{ kind: 'registry-push', source: 'hub', registry: 'registry.hub.docker.com', repository: 'svendowideit/testhook', tag: 'latest' }],
      [{ kind: 'registry-push', source: 'quay', registry: 'quay.io', repository: 'mynamespace/repository', tag: 'latest' }],
    ],
  );
});

test('wrong or missing secrets: 401; unknown hooks and wrong kinds or URL shapes: 404; intake never called', async (t) => {
  const server = await startTestServer(t);
  const body = fixtureBytes('registry/distribution.push.json');
  const hub = fixtureBytes('registry/dockerhub.push.json');
  const cases: [string, Buffer, Record<string, string>, number][] = [
    ['/hooks/registry/distribution/local', body, { authorization: 'Bearer wrong' }, 401],
    ['/hooks/registry/distribution/local', body, { authorization: `Basic ${REGISTRY_SECRET}` }, 401],
    ['/hooks/registry/distribution/local', body, {}, 401],
    ['/hooks/registry/harbor/harbor', body, { authorization: `${REGISTRY_SECRET}x` }, 401],
    [`/hooks/registry/dockerhub/hub/${HUB_SECRET}x`, hub, {}, 401],
    ['/hooks/registry/dockerhub/hub', hub, { authorization: HUB_SECRET }, 401],
    ['/hooks/registry/distribution/nope', body, { authorization: REGISTRY_SECRET }, 404],
    ['/hooks/registry/harbor/local', body, { authorization: REGISTRY_SECRET }, 404],
    [`/hooks/registry/distribution/local/${REGISTRY_SECRET}`, body, {}, 404],
    ['/hooks/registry/gcr/local', body, { authorization: REGISTRY_SECRET }, 404],
  ];
  for (const [path, payload, headers, status] of cases) {
    assert.equal((await post(server, path, payload, headers)).status, status, `${path} ${JSON.stringify(headers)}`);
  }
  assert.equal(server.intake.deliveries.length, 0);
});

test('secrets never appear in the logs (route patterns are logged, not URLs)', async (t) => {
  const server = await startTestServer(t);
  await post(server, `/hooks/registry/dockerhub/hub/${HUB_SECRET}`, fixtureBytes('registry/dockerhub.push.json'));
  await post(server, `/hooks/registry/dockerhub/hub/${HUB_SECRET}-typo`, fixtureBytes('registry/dockerhub.push.json'));
  await post(server, '/hooks/registry/distribution/local', fixtureBytes('registry/distribution.push.json'), { authorization: `Bearer ${REGISTRY_SECRET}` });
  await post(server, '/hooks/registry/distribution/local', Buffer.from('{'), { authorization: `Bearer ${REGISTRY_SECRET}-typo` });
  const logs = server.logs();
  assert.match(logs, /\/hooks\/registry\/:kind\/:name\/:secret/);
  assert.ok(!logs.includes(HUB_SECRET), logs);
  assert.ok(!logs.includes(REGISTRY_SECRET), logs);
});

test('a body that is not a notification is 200 ignored (the registry must not retry it forever)', async (t) => {
  const server = await startTestServer(t);
  const reply = await post(server, '/hooks/registry/distribution/local', Buffer.from('not json'), { authorization: REGISTRY_SECRET });
  assert.equal(reply.status, 200);
  assert.equal(reply.body.outcome, 'ignored');
});
