import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { parseDistributionNotification, parseDockerHub, parseHarbor, parseQuay } from '../../../src/forge/parse-registry.ts';
import { fixture, fixtureBytes } from '../../fixtures/webhooks/index.ts';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const MANIFEST = 'sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf';

test('distribution: only the tagged manifest push is kept; host from request.host, never target.url', () => {
  const delivery = parseDistributionNotification(fixtureBytes('registry/distribution.push.json'), 'local');
  assert.deepEqual(delivery.events, [
    { kind: 'registry-push', source: 'local', registry: 'registry.example.org:5000', repository: 'library/test', tag: 'latest', digest: MANIFEST },
  ]);
  // Several events: the id is derived from all their ids, stable across retries.
  assert.match(delivery.id, /^registry:local:[0-9a-f]{64}$/);
  assert.equal(parseDistributionNotification(fixture('registry/distribution.push.json'), 'local').id, delivery.id);
});

test('distribution: a single event keeps its id; an untagged index push is kept with its digest', () => {
  const envelope = fixture('registry/distribution.push.json');
  const event = envelope['events'][2];
  delete event.target.tag;
  event.target.mediaType = 'application/vnd.oci.image.index.v1+json';
  const delivery = parseDistributionNotification({ events: [event] }, 'local');
  assert.equal(delivery.id, `registry:local:${event.id}`);
  assert.deepEqual(delivery.events, [
    { kind: 'registry-push', source: 'local', registry: 'registry.example.org:5000', repository: 'library/test', digest: MANIFEST },
  ]);
});

test('distribution: bad names are dropped', () => {
  for (const [field, value] of [
    ['repository', '../etc'],
    ['repository', 'library/../test'],
    ['repository', '/library/test'],
    ['repository', 'library/test/'],
    ['repository', 'Library/Test'],
    ['tag', '-bad'],
    ['tag', 'a'.repeat(129)],
    ['tag', 'x;rm'],
  ] as const) {
    const envelope = fixture('registry/distribution.push.json');
    const event = envelope['events'][2];
    event.target[field] = value;
    event.target.mediaType = 'application/octet-stream';
    assert.deepEqual(parseDistributionNotification(envelope, 'local').events, [], `${field}=${value}`);
  }
  const envelope = fixture('registry/distribution.push.json');
  envelope['events'][2].request.host = 'evil host/x';
  assert.deepEqual(parseDistributionNotification(envelope, 'local').events, []);
});

test('harbor default format', () => {
  const body = fixtureBytes('registry/harbor.default.push.json');
  const delivery = parseHarbor(body, 'harbor');
  assert.equal(delivery.id, `registry:harbor:${sha256(body)}`);
  assert.deepEqual(delivery.events, [
    {
      kind: 'registry-push',
      source: 'harbor',
      registry: 'hub.harbor.com',
      repository: 'test-webhook/debian',
      tag: 'latest',
      digest: 'sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8',
    },
  ]);
  const other = fixture('registry/harbor.default.push.json');
  other['type'] = 'PULL_ARTIFACT';
  assert.deepEqual(parseHarbor(other, 'harbor').events, []);
});

test('harbor CloudEvents format: id from the event; a digest given as tag is not a tag', () => {
  const delivery = parseHarbor(fixtureBytes('registry/harbor.cloudevents.push.json'), 'harbor');
  assert.equal(delivery.id, 'registry:harbor:4b2f89a6-548d-4c12-9993-a1f5790b97d2');
  const digest = 'sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4';
  assert.deepEqual(delivery.events, [
    { kind: 'registry-push', source: 'harbor', registry: 'harbor.example.org', repository: 'library/nginx', tag: '1.2', digest },
    { kind: 'registry-push', source: 'harbor', registry: 'harbor.example.org', repository: 'library/nginx', digest },
  ]);
  const pulled = fixture('registry/harbor.cloudevents.push.json');
  pulled['type'] = 'harbor.artifact.pulled';
  assert.deepEqual(parseHarbor(pulled, 'harbor').events, []);
});

test('docker hub: registry.hub.docker.com, library/ for official images, no digest', () => {
  const body = fixtureBytes('registry/dockerhub.push.json');
  const delivery = parseDockerHub(body, 'hub');
  assert.equal(delivery.id, `registry:hub:${sha256(body)}`);
  assert.deepEqual(delivery.events, [
    { kind: 'registry-push', source: 'hub', registry: 'registry.hub.docker.com', repository: 'svendowideit/testhook', tag: 'latest' },
  ]);
  const official = fixture('registry/dockerhub.push.json');
  official['repository'].repo_name = 'redis';
  assert.equal((parseDockerHub(official, 'hub').events[0] as { repository: string }).repository, 'library/redis');
  official['push_data'].tag = '../../x';
  assert.deepEqual(parseDockerHub(official, 'hub').events, []);
});

test('quay: docker_url host and path, one event per updated tag', () => {
  const payload = fixture('registry/quay.repo-push.json');
  payload['updated_tags'] = ['latest', '1.0', 'bad tag', 7];
  assert.deepEqual(parseQuay(payload, 'quay').events, [
    { kind: 'registry-push', source: 'quay', registry: 'quay.io', repository: 'mynamespace/repository', tag: 'latest' },
    { kind: 'registry-push', source: 'quay', registry: 'quay.io', repository: 'mynamespace/repository', tag: '1.0' },
  ]);
});

test('garbage never throws and gives a stable id', () => {
  for (const parse of [parseDistributionNotification, parseHarbor, parseDockerHub, parseQuay]) {
    for (const body of ['not json', Buffer.from('{"events": 3}'), null, 5, [], {}]) {
      const a = parse(body, 'h');
      assert.deepEqual(a.events, []);
      assert.equal(parse(body, 'h').id, a.id);
    }
  }
});
