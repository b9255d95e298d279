/**
 * The systemd units as written (issue 17 points 3 and 6): `systemd-analyze verify` finds nothing in them
 * (nor with the cvmfs publisher's drop-in), and their ExecStart lines run the way systemd would run them —
 * specifiers (%S, %C, %d) and ${VARIABLES} expanded, Environment= and EnvironmentFile= as the only
 * environment with systemd's default PATH (where `node` is this machine's older Debian Node.js), the
 * StateDirectory=/CacheDirectory= made, in WorkingDirectory=, the credentials in $CREDENTIALS_DIRECTORY —
 * all under a scratch root that stands for /, with /opt/ducc-gitops being this clone. As root: the units'
 * user does not exist here.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildTar } from '../../support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { waitFor } from '../../support/wait-for.ts';

const run = promisify(execFile);
const CLONE = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const INSTALL_DIR = '/opt/ducc-gitops';
/** systemd's PATH for system services. */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Unit {
  name: string;
  /** Every `Key=value` of [Service], in order. */
  service: [string, string][];
}

async function readUnit(name: string): Promise<Unit> {
  const text = await readFile(join(CLONE, 'systemd', name), 'utf8');
  const service: [string, string][] = [];
  let section = '';
  for (const line of text.split('\n')) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) section = header[1]!;
    else if (section === 'Service' && /^\w+=/.test(line)) service.push([line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]);
  }
  return { name, service };
}

/** The unit's ExecStart as systemd would start it, under `root` standing for /. */
async function execution(unit: Unit, root: string, envFile: Record<string, string>) {
  const values = (key: string) => unit.service.filter(([k]) => k === key).map(([, v]) => v);
  const credentials = join(root, 'run/credentials', unit.name);
  const specifiers = (text: string) => text.replaceAll('%S', join(root, 'var/lib')).replaceAll('%C', join(root, 'var/cache')).replaceAll('%d', credentials);
  const paths = (text: string) => text.replaceAll(INSTALL_DIR, CLONE).replaceAll('/etc/ducc-gitops', join(root, 'etc/ducc-gitops'));
  for (const dir of values('StateDirectory')) await mkdir(join(root, 'var/lib', dir), { recursive: true });
  for (const dir of values('CacheDirectory')) await mkdir(join(root, 'var/cache', dir), { recursive: true });
  await mkdir(credentials, { recursive: true });
  const env: Record<string, string> = { PATH: SYSTEMD_PATH, LANG: 'C.UTF-8', CREDENTIALS_DIRECTORY: credentials };
  for (const assignment of values('Environment')) {
    const [name, ...rest] = paths(specifiers(assignment)).split('=');
    env[name!] = rest.join('=');
  }
  if (values('EnvironmentFile').length > 0) Object.assign(env, envFile);
  const [execStart] = values('ExecStart');
  assert.ok(execStart, `${unit.name} has an ExecStart`);
  const argv = paths(specifiers(execStart))
    .split(/\s+/)
    .map((word) => word.replace(/^\$\{(\w+)\}$/, (_, name: string) => env[name] ?? assert.fail(`${unit.name}: \${${name}} is not set`)));
  const [workingDirectory] = values('WorkingDirectory');
  assert.ok(workingDirectory, `${unit.name} sets WorkingDirectory= (the config's relative paths are relative to it)`);
  return { argv, env, cwd: specifiers(workingDirectory), credentials };
}

/** Starts a unit's command; `stop()` sends SIGTERM and resolves with its exit code. */
function start(exec: { argv: string[]; env: Record<string, string>; cwd: string }) {
  const child = spawn(exec.argv[0]!, exec.argv.slice(1), { cwd: exec.cwd, env: exec.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.once('close', (c) => resolve((code = c))));
  return {
    output: () => ({ stdout, stderr }),
    exitCode: () => code,
    exited,
    kill: () => child.kill('SIGKILL'),
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

async function pushSmallImage(t: TestContext, registry: TestRegistry): Promise<void> {
  const layout = join(await tempDir(t), 'layout');
  await writeOciLayout(layout, '1', [{ layers: [await buildTar([{ name: 'hello', content: 'from a unit' }])], config: { Cmd: ['/bin/true'] } }]);
  await pushOciLayout(layout, '1', { host: registry.host, repository: 'sci/app', tag: '1' });
}

describe('the systemd units', () => {
  it('pass `systemd-analyze verify`, alone and with the cvmfs publisher drop-in', async (t) => {
    const dir = await tempDir(t, 'ducc-units-');
    const names = (await readdir(join(CLONE, 'systemd'))).filter((name) => /\.(service|timer)$/.test(name));
    for (const name of names) await writeFile(join(dir, name), (await readFile(join(CLONE, 'systemd', name), 'utf8')).replaceAll(INSTALL_DIR, CLONE));
    const dropIn = (await readFile(join(CLONE, 'systemd/cvmfs-publisher.conf'), 'utf8')).replaceAll(INSTALL_DIR, CLONE);
    for (const name of names.filter((n) => n.endsWith('.service'))) {
      await mkdir(join(dir, `${name}.d`));
      await writeFile(join(dir, `${name}.d`, 'cvmfs-publisher.conf'), dropIn);
    }

    const alone = await run('systemd-analyze', ['verify', '--man=no', ...names.map((name) => join(dir, name))]);
    const withDropIn = await run('systemd-analyze', ['verify', '--man=no', ...names], { env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` }, cwd: dir });

    assert.equal(alone.stderr + alone.stdout, '');
    assert.equal(withDropIn.stderr + withDropIn.stdout, '');
    assert.ok(names.includes('ducc-convert.timer') && names.length === 4, names.join(' '));
  });

  it('run the Node.js that scripts/with-deps linked, not the `node` on PATH', async () => {
    for (const name of ['ducc-serve.service', 'ducc-loop.service', 'ducc-convert.service']) {
      const unit = await readUnit(name);
      const execStart = unit.service.find(([key]) => key === 'ExecStart')![1];

      assert.match(execStart, new RegExp(`^${INSTALL_DIR}/\\.node/bin/node (--[\\w-]+=\\S+ )*${INSTALL_DIR}/bin/ducc\\.js `));
      for (const [key, value] of unit.service) {
        if (key === 'Environment') assert.doesNotMatch(value, /^\w*(PASS|TOKEN|SECRET)=(?!%d\/)/, `${name} puts a secret in the unit`);
      }
    }
    const linked = await stat(join(CLONE, '.node/bin/node'));
    assert.ok(linked.isFile(), 'scripts/with-deps made .node/bin/node');
  });

  it('ducc-serve.service starts, keeps its state in StateDirectory= and its clones in CacheDirectory=, and stops on SIGTERM', async (t) => {
    const root = await tempDir(t, 'ducc-unit-serve-');
    await mkdir(join(root, 'etc/ducc-gitops'), { recursive: true });
    // The operator's config: relative paths (the directory publisher's default root) land in WorkingDirectory=.
    await writeFile(
      join(root, 'etc/ducc-gitops/ducc.yaml'),
      ['listen: {host: 127.0.0.1, port: 0}', 'wishlists:', '  - {name: unpacked, forge: github, project: cern/wishlist}', 'reconcileMinutes: 0', ''].join('\n'),
    );
    const exec = await execution(await readUnit('ducc-serve.service'), root, {});
    await writeFile(join(exec.credentials, 'github-webhook-secret'), 'webhook-secret\n');
    await writeFile(join(exec.credentials, 'github-token'), 'api-token\n');

    const serve = start(exec);
    t.after(() => serve.kill());
    const listening = () =>
      serve
        .output()
        .stderr.split('\n')
        .find((line) => line.includes('"msg":"ducc serve listening"'));
    await waitFor(() => listening() !== undefined, 120_000, 'ducc serve to listen', {
      detail: () => serve.output().stderr,
      abortIf: () => (serve.exitCode() === undefined ? undefined : `ducc serve exited with ${serve.exitCode()}`),
    });
    const { port } = JSON.parse(listening()!) as { port: number };
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    const code = await serve.stop();

    assert.equal(health.status, 200);
    assert.equal(code, 0, serve.output().stderr);
    assert.ok((await stat(join(root, 'var/lib/ducc-gitops/ducc-gitops.db'))).isFile(), 'the state is in StateDirectory=');
    assert.ok((await stat(join(root, 'var/cache/ducc-gitops/wishlists'))).isDirectory(), 'the clones go to CacheDirectory=');
    assert.ok((await stat(join(root, 'var/lib/ducc-gitops/var/cvmfs'))).isDirectory(), 'relative paths are in the state directory');
  });

  it('ducc-convert.service and ducc-loop.service convert the wish list of their environment file into the state directory', async (t) => {
    const registry = await startRegistry(t);
    await pushSmallImage(t, registry);
    for (const name of ['ducc-convert.service', 'ducc-loop.service']) {
      const root = await tempDir(t, 'ducc-unit-convert-');
      await mkdir(join(root, 'etc/ducc-gitops'), { recursive: true });
      await mkdir(join(root, 'srv/wishlist'), { recursive: true });
      const wishlist = join(root, 'srv/wishlist/recipe.yaml');
      await writeFile(
        wishlist,
        [
          'version: 1',
          'user: pusher',
          'cvmfs_repo: unpacked.example.org',
          `output_format: 'http://${registry.host}/thin/$(image)'`,
          'input:',
          `  - 'http://${registry.host}/sci/app:1'`,
          '',
        ].join('\n'),
      );
      await writeFile(join(root, 'etc/ducc-gitops/ducc.yaml'), 'publisher:\n  kind: directory\n');
      const envFile = { DUCC_WISHLIST: wishlist, DUCC_CONFIG: join(root, 'etc/ducc-gitops/ducc.yaml'), DUCC_INTERVAL: '3600' };
      const exec = await execution(await readUnit(name), root, envFile);
      await writeFile(join(exec.credentials, 'output-registry-pass'), 'push-password\n');

      const unit = start(exec);
      t.after(() => unit.kill());
      await waitFor(() => /converted, \d+ up to date, \d+ failed/.test(unit.output().stdout), 120_000, `${name} to finish a round`, {
        detail: () => `${unit.output().stdout}\n${unit.output().stderr}`,
        abortIf: () => (unit.exitCode() === undefined || name === 'ducc-convert.service' ? undefined : `${name} exited with ${unit.exitCode()}`),
      });
      const code = name === 'ducc-loop.service' ? await unit.stop() : await unit.exited;

      assert.equal(code, 0, `${name}:\n${unit.output().stdout}\n${unit.output().stderr}`);
      assert.match(unit.output().stdout, /^1 converted, 0 up to date, 0 failed$/m);
      const published = join(root, 'var/lib/ducc-gitops/var/cvmfs/unpacked.example.org', registry.host, 'sci/app:1');
      assert.ok((await lstat(published)).isSymbolicLink(), `${name} published into the state directory`);
      assert.equal(await readFile(join(published, 'hello'), 'utf8'), 'from a unit');
    }
  });
});
