import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSourcesConfig } from '../../../src/config/sources-config.ts';
import { loadBotConfig } from '../../../src/config/load-bot-config.ts';

async function file(text: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'ducc-sources-config-')), 'ducc.yaml');
  await writeFile(path, text);
  return path;
}

describe('dogestryRemotes and cacheDir', () => {
  it('reads a directory remote and an S3 remote (bucket, prefix, region, endpoint)', async () => {
    const path = await file(
      [
        'cacheDir: /var/cache/ducc',
        'dogestryRemotes:',
        '  - {name: local, url: "file:///srv/dogestry"}',
        '  - {name: cloud, url: "s3://ops-goodies/docker-repo/", region: eu-west-1, endpoint: "https://s3.cern.ch"}',
      ].join('\n'),
    );

    const config = loadSourcesConfig(path, {});

    assert.equal(config.cacheDir, '/var/cache/ducc');
    assert.deepEqual(config.dogestryRemotes, [
      { name: 'local', kind: 'directory', path: '/srv/dogestry' },
      { name: 'cloud', kind: 's3', bucket: 'ops-goodies', prefix: 'docker-repo/', region: 'eu-west-1', endpoint: 'https://s3.cern.ch', forcePathStyle: true },
    ]);
    assert.equal(loadSourcesConfig(path, { DUCC_CACHE_DIR: '/tmp/elsewhere' }).cacheDir, '/tmp/elsewhere');
  });

  it('reports every bad remote with its key, line and column', async () => {
    const path = await file(
      [
        'dogestryRemotes:',
        '  - name: local',
        '    url: "file://host/srv"',
        '  - name: cloud',
        '    url: "s3://key:secret@bucket/p"',
        '  - name: cloud',
        '    url: "s3://b/p?region=us-east-1"',
        '    accessKey: AKIA',
      ].join('\n'),
    );

    assert.throws(
      () => loadSourcesConfig(path, {}),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'BOT_ERR_CONFIG');
        const lines = error.message.split('\n').slice(1);
        assert.match(lines[0]!, /dogestryRemotes\[0\]\.url: must be file:\/\/\/absolute\/directory \(no host\).*\(line 3, column 5\)/);
        assert.match(lines[1]!, /dogestryRemotes\[1\]\.url: must not contain credentials.*\(line 5, column 5\)/);
        assert.match(lines.join('\n'), /dogestryRemotes\[2\]\.accessKey: unknown key .*\(line 8, column 5\)/);
        assert.doesNotMatch(error.message, /secret@|AKIA/);
        return true;
      },
    );
  });

  it('refuses two remotes of one name', async () => {
    const path = await file('dogestryRemotes:\n  - {name: a, url: "file:///x"}\n  - {name: a, url: "file:///y"}\n');

    assert.throws(() => loadSourcesConfig(path, {}), {
      code: 'BOT_ERR_CONFIG',
      message: /dogestryRemotes\[1\]\.name: duplicate name "a" \(line 3, column 6\)/,
    });
  });

  it('is part of the file of ducc serve', async () => {
    const path = await file('dogestryRemotes:\n  - {name: local, url: "file:///srv/dogestry"}\n');

    assert.deepEqual(loadBotConfig({ file: path, env: {} }).dogestryRemotes, [{ name: 'local', kind: 'directory', path: '/srv/dogestry' }]);
  });
});
