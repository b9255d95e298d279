import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildTar } from '../../support/build-tar.ts';
import { startRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { tempDir } from '../../support/tmp-dir.ts';

const run = promisify(execFile);

it('pushes a thin image that skopeo accepts and whose only file is thin.json pointing at the layers', async (t) => {
  const source = await startRegistry(t);
  const output = await startRegistry(t, { htpasswd: { username: 'pusher', password: 's3cret-pass' } });
  const layout = join(await tempDir(t), 'layout');
  const written = await writeOciLayout(layout, '1.0', [
    {
      layers: [await buildTar([{ name: 'hello', content: 'world' }]), await buildTar([{ name: 'second', content: '2' }])],
      config: {
        Env: ['PATH=/usr/bin', 'LANG=C.UTF-8'],
        Cmd: ['run', 'me'],
        Entrypoint: ['/entry'],
        WorkingDir: '/work',
        User: '1000:1000',
        Labels: { team: 'physics' },
      },
    },
  ]);
  await pushOciLayout(layout, '1.0', { host: source.host, repository: 'sci/app', tag: '1.0' });
  const root = await tempDir(t);
  const text = [
    'version: 1',
    'user: pusher',
    'cvmfs_repo: unpacked.example.org',
    `output_format: 'http://${output.host}/thin/$(image)'`,
    'input:',
    `  - 'http://${source.host}/sci/app:1.0'`,
  ].join('\n');

  const summary = await runConversion(
    parseWishlist(text, 'w.yaml'),
    { repoRoot: join(root, 'cvmfs') },
    { DUCC_OUTPUT_REGISTRY_PASS: 's3cret-pass' },
    createLogger({ level: 'silent' }),
  );

  assert.deepEqual(summary.failures, []);
  assert.equal(summary.results[0]?.thinImage?.name, `http://${output.host}/thin/sci/app:1.0`);
  const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', '--creds', 'pusher:s3cret-pass', `docker://${output.host}/thin/sci/app:1.0`]);
  const inspected = JSON.parse(stdout) as { Env: string[]; Digest: string; Labels: Record<string, string> };
  assert.ok(inspected.Env.includes('CVMFS_IMAGE=true'));
  assert.ok(inspected.Env.includes('LANG=C.UTF-8'));
  assert.equal(inspected.Labels.team, 'physics');
  assert.equal(inspected.Digest, summary.results[0]?.thinImage?.digest);

  const pulled = join(await tempDir(t), 'pulled');
  await run('skopeo', [
    'copy',
    '--src-tls-verify=false',
    '--src-creds',
    'pusher:s3cret-pass',
    `docker://${output.host}/thin/sci/app:1.0`,
    `oci:${pulled}:thin`,
  ]);
  const bundle = join(await tempDir(t), 'bundle');
  await run('umoci', ['unpack', '--image', `${pulled}:thin`, bundle]);
  const thin = JSON.parse(await readFile(join(bundle, 'rootfs/thin.json'), 'utf8'));
  const layers = written.manifests[0]!.layerDigests.map((digest) => digest.slice(7));
  assert.deepEqual(thin, {
    version: '1.0',
    origin: `http://${source.host}/sci/app:1.0`,
    layers: layers.map((hex) => ({ digest: hex, url: `cvmfs://unpacked.example.org/.layers/${hex.slice(0, 2)}/${hex}/layerfs` })),
  });
});

it('refuses to push without the output registry password and says how to fix it', async (t) => {
  const source = await startRegistry(t);
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, '1.0', [{ layers: [await buildTar([{ name: 'a', content: 'a' }])] }]);
  await pushOciLayout(layout, '1.0', { host: source.host, repository: 'sci/nopass', tag: '1.0' });
  const root = await tempDir(t);
  const text = `version: 1\nuser: pusher\ncvmfs_repo: r.example.org\ninput:\n  - 'http://${source.host}/sci/nopass:1.0'\n`;

  const summary = await runConversion(parseWishlist(text, 'w.yaml'), { repoRoot: join(root, 'cvmfs') }, {}, createLogger({ level: 'silent' }));

  assert.equal(summary.failed, 1);
  assert.match(summary.failures[0]!.message, /DUCC_OUTPUT_REGISTRY_PASS.*--skip-thin-image/);
});

it('reads the push password from DUCC_OUTPUT_REGISTRY_PASS_FILE (systemd credentials)', async (t) => {
  const { secretFromEnv } = await import('../../../src/util/secrets.ts');
  const { writeFile } = await import('node:fs/promises');
  const dir = await tempDir(t);
  await writeFile(join(dir, 'pass'), 'from-file\n');

  assert.equal(secretFromEnv({ DUCC_OUTPUT_REGISTRY_PASS_FILE: join(dir, 'pass') }, 'DUCC_OUTPUT_REGISTRY_PASS'), 'from-file');
  assert.equal(
    secretFromEnv({ DUCC_OUTPUT_REGISTRY_PASS: 'direct', DUCC_OUTPUT_REGISTRY_PASS_FILE: join(dir, 'pass') }, 'DUCC_OUTPUT_REGISTRY_PASS'),
    'direct',
  );
  assert.throws(() => secretFromEnv({ X_FILE: join(dir, 'missing') }, 'X'), /cannot read X_FILE .*ENOENT/);
});
