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

  it('an s3 registry hook names an S3 remote of dogestryRemotes, which gives it bucket and prefix', async () => {
    const good = await file(
      ['dogestryRemotes:', '  - {name: cloud, url: "s3://ops/docker-repo"}', 'registryHooks:', '  - {name: builds, kind: s3, remote: cloud}', ''].join('\n'),
    );
    const bad = await file(
      [
        'dogestryRemotes:',
        '  - {name: local, url: "file:///srv/dogestry"}',
        'registryHooks:',
        '  - name: builds',
        '    kind: s3',
        '    remote: local',
        '  - name: other',
        '    kind: s3',
        '  - {name: reg, kind: distribution, remote: local}',
        '',
      ].join('\n'),
    );

    assert.deepEqual(loadBotConfig({ file: good, env: {} }).registryHooks, [
      { name: 'builds', kind: 's3', secretEnv: 'DUCC_REGISTRY_BUILDS_SECRET', remote: { name: 'cloud', bucket: 'ops', prefix: 'docker-repo/' } },
    ]);
    assert.throws(
      () => loadBotConfig({ file: bad, env: {} }),
      (error: Error) => {
        const lines = error.message.split('\n').slice(1);
        assert.equal(lines.length, 3);
        assert.match(
          lines[0]!,
          /registryHooks\[0\]\.remote: kind s3 needs 'remote': the name of an S3 remote of dogestryRemotes \(none is configured\), got "local" \(line 6, column 5\)/,
        );
        assert.match(lines[1]!, /registryHooks\[1\]\.kind: kind s3 needs 'remote'.* \(line 8, column 5\)/);
        assert.match(lines[2]!, /registryHooks\[2\]\.remote: is only for kind s3 \(line 9, column /);
        return true;
      },
    );
  });
});
