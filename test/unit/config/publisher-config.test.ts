import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_PUBLISHER, loadPublisherConfig } from '../../../src/config/publisher-config.ts';

function configFile(t: TestContext, yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ducc-publisher-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ducc.yaml');
  writeFileSync(file, yaml);
  return file;
}

test('without a file or a publisher section: the directory publisher', (t) => {
  assert.deepEqual(loadPublisherConfig(undefined), DEFAULT_PUBLISHER);
  assert.deepEqual(loadPublisherConfig(configFile(t, 'listen: 127.0.0.1:9000\n')), DEFAULT_PUBLISHER);
});

test('directory publisher without flushing to disk', (t) => {
  const file = configFile(t, 'publisher:\n  kind: directory\n  root: /srv/images\n  sync: false\n');
  assert.deepEqual(loadPublisherConfig(file), { kind: 'directory', root: '/srv/images', sync: false });
});

test('cvmfs publisher with its lock directory and wait', (t) => {
  const file = configFile(t, ['publisher:', '  kind: cvmfs', '  mountRoot: /srv/cvmfs', '  lockDir: run/locks', '  lockWaitSeconds: 90', ''].join('\n'));
  assert.deepEqual(loadPublisherConfig(file), { kind: 'cvmfs', mountRoot: '/srv/cvmfs', lockDir: resolve('run/locks'), lockWaitSeconds: 90 });
  assert.deepEqual(loadPublisherConfig(configFile(t, 'publisher:\n  kind: cvmfs\n')), { kind: 'cvmfs', mountRoot: '/cvmfs' });
});

test('bad lock settings and kinds are config errors naming the file and key', (t) => {
  for (const [yaml, message] of [
    ['publisher:\n  kind: cvmfs\n  lockWaitSeconds: -1\n', /publisher\.lockWaitSeconds must be a positive number of seconds, not -1/],
    ['publisher:\n  kind: cvmfs\n  lockWaitSeconds: soon\n', /publisher\.lockWaitSeconds .* not "soon"/],
    ['publisher:\n  kind: cvmfs\n  lockDir: ""\n', /publisher\.lockDir must be a directory path/],
    ['publisher:\n  kind: s3\n', /publisher\.kind must be 'directory' or 'cvmfs'/],
    ['publisher:\n  kind: directory\n  sync: maybe\n', /publisher\.sync must be true or false, not "maybe"/],
  ] as const) {
    const file = configFile(t, yaml);
    assert.throws(() => loadPublisherConfig(file), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'BOT_ERR_CONFIG');
      assert.ok(error.message.startsWith(file), error.message);
      assert.match(error.message, message);
      return true;
    });
  }
});
