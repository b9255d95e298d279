import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
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

it('refuses a run that would push thin images without user or password before anything is downloaded, and says how to fix it', async (t) => {
  // Nothing listens on the image's registry: a run that asked it anything would fail otherwise.
  const root = await tempDir(t);
  const withUser = `version: 1\nuser: pusher\ncvmfs_repo: r.example.org\ninput:\n  - 'http://127.0.0.1:1/sci/nopass:1.0'\n`;
  const withoutUser = withUser.replace('user: pusher\n', '');

  const noPassword = runConversion(parseWishlist(withUser, 'w.yaml'), { repoRoot: join(root, 'cvmfs') }, {}, createLogger({ level: 'silent' }));
  const noUser = runConversion(
    parseWishlist(withoutUser, 'w.yaml'),
    { repoRoot: join(root, 'cvmfs') },
    { DUCC_OUTPUT_REGISTRY_PASS: 'p' },
    createLogger({ level: 'silent' }),
  );

  await assert.rejects(noPassword, {
    code: 'BOT_ERR_THIN',
    message: /needs DUCC_OUTPUT_REGISTRY_PASS \(or DUCC_OUTPUT_REGISTRY_PASS_FILE\); nothing was downloaded .*--skip-thin-image/,
  });
  await assert.rejects(noUser, { code: 'BOT_ERR_THIN', message: /needs the wish list's 'user'; nothing was downloaded/ });
  assert.deepEqual(await readdir(join(root, 'cvmfs')).catch(() => []), []);
});

it('the first push of a thin image for an image already published is not logged as pushed again', async (t) => {
  const source = await startRegistry(t);
  const output = await startRegistry(t);
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, '1.0', [{ layers: [await buildTar([{ name: 'a', content: 'a' }])] }]);
  await pushOciLayout(layout, '1.0', { host: source.host, repository: 'sci/later', tag: '1.0' });
  const root = await tempDir(t);
  const text = `version: 1\nuser: pusher\ncvmfs_repo: r.example.org\noutput_format: 'http://${output.host}/thin/$(image)'\ninput:\n  - 'http://${source.host}/sci/later:1.0'\n`;
  const records: { msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') records.push(JSON.parse(line) as { msg: string });
      callback();
    },
  });
  await runConversion(parseWishlist(text, 'w.yaml'), { repoRoot: join(root, 'cvmfs'), skipThinImage: true }, {}, createLogger({ level: 'silent' }));

  const summary = await runConversion(
    parseWishlist(text, 'w.yaml'),
    { repoRoot: join(root, 'cvmfs') },
    { DUCC_OUTPUT_REGISTRY_PASS: 'p' },
    createLogger({ level: 'info', human: false, stream }),
  );

  assert.equal(summary.results[0]?.thinImage?.name, `http://${output.host}/thin/sci/later:1.0`);
  assert.ok(
    records.some((r) => r.msg === 'thin image pushed (the image was already published)'),
    JSON.stringify(records),
  );
  assert.ok(!records.some((r) => /pushed again/.test(r.msg)));
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
