import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_PUBLISHER, loadPublisherConfig } from '../../../src/config/publisher-config.ts';
import { tempDir } from '../../support/tmp-dir.ts';

async function configFile(t: TestContext, yaml: string): Promise<string> {
  const file = join(await tempDir(t, 'ducc-publisher-config-'), 'ducc.yaml');
  await writeFile(file, yaml);
  return file;
}

test('without a file or a publisher section: the directory publisher', async (t) => {
  assert.deepEqual(loadPublisherConfig(undefined), DEFAULT_PUBLISHER);
  assert.deepEqual(loadPublisherConfig(await configFile(t, 'listen: 127.0.0.1:9000\n')), DEFAULT_PUBLISHER);
});

test('directory publisher without flushing to disk', async (t) => {
  const file = await configFile(t, 'publisher:\n  kind: directory\n  root: /srv/images\n  sync: false\n');
  assert.deepEqual(loadPublisherConfig(file), { kind: 'directory', root: '/srv/images', sync: false });
});

test('cvmfs publisher with its lock directory and wait', async (t) => {
  const file = await configFile(t, ['publisher:', '  kind: cvmfs', '  mountRoot: /srv/cvmfs', '  lockDir: run/locks', '  lockWaitSeconds: 90', ''].join('\n'));
  assert.deepEqual(loadPublisherConfig(file), { kind: 'cvmfs', mountRoot: '/srv/cvmfs', lockDir: resolve('run/locks'), lockWaitSeconds: 90 });
  assert.deepEqual(loadPublisherConfig(await configFile(t, 'publisher:\n  kind: cvmfs\n')), { kind: 'cvmfs', mountRoot: '/cvmfs' });
});

// Refused sections: test/integration/cli/publisher-section.test.ts runs them through ducc convert and ducc serve.
