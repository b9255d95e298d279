import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseS3Notification } from '../../../src/forge/parse-s3.ts';

const REMOTE = { name: 'cloud', bucket: 'ops-goodies', prefix: 'docker-repo/' };

/** An ObjectCreated record as AWS documents it (event message structure, version 2.1). */
function record(key: string, eventName = 'ObjectCreated:Put', bucket = 'ops-goodies') {
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: 'us-west-2',
    eventTime: '2024-01-02T03:04:05.000Z',
    eventName,
    s3: { s3SchemaVersion: '1.0', bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` }, object: { key, size: 64, sequencer: '0055AED6DCD90281E5' } },
  };
}

describe('parseS3Notification', () => {
  it('turns created tag files of the remote into registry-push hints named as wish lists name the image', () => {
    const body = JSON.stringify({
      Records: [
        record('docker-repo/repositories/example.org%3A5000/team/app/v1.0'),
        record('docker-repo/repositories/hipache/latest', 'ObjectCreated:CompleteMultipartUpload'),
        record('docker-repo/repositories/hipache/latest'),
      ],
    });

    const delivery = parseS3Notification(Buffer.from(body), 'builds', REMOTE);

    assert.match(delivery.id, /^s3:builds:[a-f0-9]{64}$/);
    assert.deepEqual(delivery.events, [
      { kind: 'registry-push', source: 'builds', registry: 'dogestry', repository: 'cloud/example.org:5000/team/app', tag: 'v1.0' },
      { kind: 'registry-push', source: 'builds', registry: 'dogestry', repository: 'cloud/hipache', tag: 'latest' },
    ]);
  });

  it('reads the Records of an SNS Notification envelope', () => {
    const body = JSON.stringify({ Type: 'Notification', MessageId: 'x', Message: JSON.stringify({ Records: [record('docker-repo/repositories/hipache/1')] }) });

    assert.deepEqual(parseS3Notification(body, 'builds', REMOTE).events, [
      { kind: 'registry-push', source: 'builds', registry: 'dogestry', repository: 'cloud/hipache', tag: '1' },
    ]);
  });

  it('ignores other buckets, other prefixes, images, checksums, deletions, bad names and garbage', () => {
    const body = JSON.stringify({
      Records: [
        record('docker-repo/repositories/hipache/1', 'ObjectCreated:Put', 'other-bucket'),
        record('elsewhere/repositories/hipache/1'),
        record('docker-repo/images/5d4e24b3d968cc6413a81f6f49566a0db80be401d647ade6d977a9dd9864569f/layer.tar'),
        record('docker-repo/repositories/hipache/1.sum'),
        record('docker-repo/repositories/hipache/1', 'ObjectRemoved:Delete'),
        record('docker-repo/repositories/../etc/1'),
        record('docker-repo/repositories/Hipache/1'),
        record('docker-repo/repositories/hipache/bad+tag'),
        'not a record',
      ],
    });

    assert.deepEqual(parseS3Notification(body, 'builds', REMOTE).events, []);
    assert.deepEqual(parseS3Notification('{not json', 'builds', REMOTE).events, []);
  });
});
