/** `ducc check WISHLIST [--offline]` as a child process against the real registry. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import type { WrittenImage } from '../../support/oci-image.ts';
import { asTestContext, expectExit, pushImage, runCli, suiteCleanup, tempDir, wishlistYaml } from './cli-support.ts';

const REPO = 'check.example.org';

/** A TCP server that counts connections and answers every request 404: a registry that must not be contacted. */
async function connectionCounter(): Promise<{ host: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { host: `127.0.0.1:${port}`, connections: () => connections, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('ducc check', () => {
  let registry: TestRegistry;
  let plain: WrittenImage;
  const versions: Record<string, WrittenImage> = {};
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    plain = await pushImage(suite, registry, 'chk/plain', 'latest', [[{ name: 'plain', content: 'p' }]]);
    for (const tag of ['1.0', '1.1', '2.0']) versions[tag] = await pushImage(suite, registry, 'chk/versions', tag, [[{ name: 'version', content: tag }]]);
  });
  after(() => suite.runAll());

  it('prints one ok line per resolved image, a wildcard expanding to its matching tags, and exits 0', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'wishlist.yaml');
    await writeFile(file, wishlistYaml(REPO, [`http://${registry.host}/chk/plain:latest`, `http://${registry.host}/chk/versions:1.*`]));

    const result = expectExit(await runCli(['check', file]), 0);

    const base = `http://${registry.host}/chk`;
    assert.deepEqual(result.stdout.trim().split('\n'), [
      `${file}:5:5: ok: ${base}/plain:latest ${plain.digest}`,
      `${file}:6:5: ok: ${base}/versions:1.0 ${versions['1.0']!.digest}`,
      `${file}:6:5: ok: ${base}/versions:1.1 ${versions['1.1']!.digest}`,
      `${file}: 2 entries, 3 resolved, 0 failed to resolve, 0 errors, 0 warnings`,
    ]);
  });

  it('exits 1 with file:line:col errors for a bad reference and a missing image, and still checks the rest', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'wishlist.yaml');
    await writeFile(
      file,
      wishlistYaml(REPO, [
        'ubuntu:22.04',
        `http://${registry.host}/chk/missing:1`,
        `http://${registry.host}/chk/versions:9.*`,
        `http://${registry.host}/chk/plain:latest`,
      ]),
    );

    const result = expectExit(await runCli(['check', file]), 1);

    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 5, result.stdout);
    assert.equal(lines.at(-1), `${file}: 3 entries, 1 resolved, 2 failed to resolve, 1 error, 0 warnings`);
    assert.match(
      lines.find((l) => l.includes('ubuntu:22.04'))!,
      new RegExp(`^${escape(file)}:5:5: error: .*'https://registry\\.hub\\.docker\\.com/library/ubuntu:22\\.04'$`),
    );
    assert.match(
      lines.find((l) => l.includes('chk/missing'))!,
      new RegExp(`^${escape(file)}:6:5: error: http://${escape(registry.host)}/chk/missing:1: .*not found`, 'i'),
    );
    assert.match(
      lines.find((l) => l.includes('9.*'))!,
      new RegExp(`^${escape(file)}:7:5: error: .*no tag of ${escape(registry.host)}/chk/versions matches '9\\.\\*'`),
    );
    assert.equal(
      lines.find((l) => l.includes('chk/plain')),
      `${file}:8:5: ok: http://${registry.host}/chk/plain:latest ${plain.digest}`,
    );
  });

  it('exits 1 with the position of a YAML syntax error', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'broken.yaml');
    await writeFile(
      file,
      ['version: 1', 'user: pusher', 'cvmfs_repo: check: example.org', 'input:', `  - 'http://${registry.host}/chk/plain:latest'`, ''].join('\n'),
    );

    const result = expectExit(await runCli(['check', file]), 1);

    assert.equal(
      result.stdout,
      `${file}:3:13: error: YAML syntax: Nested mappings are not allowed in compact mappings\n${file}: 0 entries, 0 resolved, 0 failed to resolve, 1 error, 0 warnings\n`,
    );
  });

  it('--offline checks the file without contacting any registry', async (t) => {
    const unreachable = await connectionCounter();
    t.after(() => unreachable.close());
    const dir = await tempDir(t);
    const good = join(dir, 'good.yaml');
    await writeFile(good, wishlistYaml(REPO, [`http://${unreachable.host}/chk/plain:latest`, `http://${unreachable.host}/chk/versions:1.*`]));
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, wishlistYaml(REPO, [`http://${unreachable.host}/chk/plain:latest`, 'library/ubuntu:latest']));

    const offline = expectExit(await runCli(['check', good, '--offline']), 0);
    assert.equal(offline.stdout, `${good}: 2 entries, not resolved (--offline), 0 errors, 0 warnings\n`);
    const offlineBad = expectExit(await runCli(['check', bad, '--offline']), 1);
    assert.match(offlineBad.stdout, new RegExp(`^${escape(bad)}:6:5: error: `));
    // The full form it suggests is itself a valid entry (a tag, here the one given).
    assert.match(offlineBad.stdout, /write it in full, e\.g\. 'https:\/\/registry\.hub\.docker\.com\/library\/ubuntu:latest'/);
    assert.deepEqual(offlineBad.stdout.trim().split('\n').slice(1), [`${bad}: 1 entry, not resolved (--offline), 1 error, 0 warnings`]);
    assert.equal(unreachable.connections(), 0, '--offline contacted the registry');

    // The same file online does contact it (so the count above proves something), and fails.
    const online = expectExit(await runCli(['check', good]), 1);
    assert.ok(unreachable.connections() > 0);
    assert.match(online.stdout, new RegExp(`^${escape(good)}:5:5: error: http://${escape(unreachable.host)}/chk/plain:latest: `, 'm'));
  });

  it('suggests a full form that is itself valid for a reference without registry and tag (library/ubuntu)', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'wishlist.yaml');
    await writeFile(file, wishlistYaml(REPO, ['library/ubuntu']));

    const result = expectExit(await runCli(['check', file, '--offline']), 1);
    const suggested = /e\.g\. '([^']+)'/.exec(result.stdout)?.[1];
    assert.ok(suggested, result.stdout);
    await writeFile(file, wishlistYaml(REPO, [suggested]));
    const again = expectExit(await runCli(['check', file, '--offline']), 0);

    assert.equal(suggested, 'https://registry.hub.docker.com/library/ubuntu:latest');
    assert.equal(again.stdout, `${file}: 1 entry, not resolved (--offline), 0 errors, 0 warnings\n`);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
