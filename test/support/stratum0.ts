/**
 * Test support: real CernVM-FS repositories on this machine's stratum 0, one per test file.
 *
 * cvmfs keeps global state (/etc/cvmfs, /var/spool/cvmfs, /srv/cvmfs, /cvmfs, /etc/fstab), so making
 * and removing repositories is serialised across test processes with a lock, every repository has a
 * name of its own, and each is removed (`rmfs -f`) when its test ends. The stratum 0 serves its
 * repositories through Apache; it is started here when it does not run.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import lockfile from 'proper-lockfile';
import { processAlive } from '../../src/util/process-alive.ts';

const run = promisify(execFile);
const GLOBAL_LOCK = '/var/lock/ducc-gitops-test-stratum0';

/** Why no stratum 0 can be made on this machine, or undefined when one can. */
export async function stratum0Unavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root (cvmfs_server mkfs needs root)';
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/fuse is missing';
  }
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  if (!/\boverlay\b/.test(filesystems)) return 'the kernel has no overlayfs';
  // Only whether it is installed: `cvmfs_server list` can fail for a moment while another test run on this
  // machine makes or removes a repository, and that must not make this suite skip.
  if (
    !(await onPath('cvmfs_server').then(
      () => true,
      () => false,
    ))
  )
    return 'cvmfs_server is not installed (CERN cvmfs-server package, or ../shared/cvmfs/install.sh)';
  return undefined;
}

export interface TestRepository {
  name: string;
  /** `/cvmfs/<name>`. */
  mount: string;
  /** `cvmfs_server <args>`; resolves with stdout. */
  server(args: string[]): Promise<string>;
  /** `cvmfs_server check <name>` output; rejects when it reports problems. */
  check(): Promise<string>;
  /** Paths of the nested catalogs (`cvmfs_server list-catalogs`), repository-relative, without the root. */
  catalogs(): Promise<string[]>;
  /** Whether `cvmfs_server list` shows this repository in a transaction (other test runs' repositories aside). */
  inTransaction(): Promise<boolean>;
}

/**
 * Makes a fresh repository (`cvmfs_server mkfs -o root -f overlayfs`), removed after the test (or suite).
 * With `garbageCollection`, the repository can be garbage-collected (`-z`) and makes no automatic tags
 * (`-g`: tagged revisions keep their objects from `cvmfs_server gc`).
 */
export async function createRepository(t: Pick<TestContext, 'after'>, label: string, options: { garbageCollection?: boolean } = {}): Promise<TestRepository> {
  const { repository, remove } = await makeRepository(label, options);
  t.after(remove);
  return repository;
}

/**
 * A fresh repository and the function that removes it (`rmfs -f`); the caller decides when. Its name is
 * `<label>-<pid>-<hex>.<domain>`; `domain` defaults to `ducc.test`, the names scripts/test-cvmfs.ts
 * cleans up (the bench uses `ducc.bench`, which it cleans up itself).
 */
export async function makeRepository(
  label: string,
  options: { garbageCollection?: boolean; domain?: string } = {},
): Promise<{ repository: TestRepository; remove: () => Promise<void> }> {
  const reason = await stratum0Unavailable();
  if (reason !== undefined) throw new Error(`cannot make a CernVM-FS stratum 0 here: ${reason}`);
  // The pid in the name tells scripts/test-cvmfs.ts whether the repository's test process is gone
  // (suites of several checkouts may run on one machine at once).
  const name = `${label}-${process.pid}-${randomBytes(3).toString('hex')}.${options.domain ?? 'ducc.test'}`;
  await withGlobalLock(async () => {
    await startApache();
    await run('cvmfs_server', ['mkfs', '-o', 'root', '-f', 'overlayfs', ...(options.garbageCollection ? ['-z', '-g'] : []), name], { maxBuffer: 16 << 20 });
  });
  const remove = async () => {
    await withGlobalLock(async () => {
      await run('cvmfs_server', ['abort', '-f', name]).catch(() => {});
      await run('cvmfs_server', ['rmfs', '-f', name], { maxBuffer: 16 << 20 });
    });
  };
  const server = async (args: string[]) => (await run('cvmfs_server', args, { maxBuffer: 64 << 20 })).stdout;
  const repository: TestRepository = {
    name,
    mount: `/cvmfs/${name}`,
    server,
    check: async () => {
      const output = await server(['check', name]);
      if (!/no problems found/.test(output)) throw new Error(`cvmfs_server check ${name} found problems:\n${output}`);
      return output;
    },
    inTransaction: async () => new RegExp(`^${name.replaceAll('.', '\\.')} .*in transaction`, 'm').test(await server(['list'])),
    catalogs: async () => {
      const output = await server(['list-catalogs', '-x', name]);
      return output
        .split('\n')
        .map((line) => /\/\S*$/.exec(line.trim())?.[0])
        .filter((path): path is string => path !== undefined && path !== '/')
        .map((path) => path.slice(1))
        .sort();
    },
  };
  return { repository, remove };
}

/**
 * A shim in front of the real `cvmfs_server`: it logs each call (one argv per line, tab-separated) so that
 * tests can count publishes, and fails on purpose the subcommands listed in the file `<dir>/fail` (one
 * per line) — the only thing the real tool cannot do for a test. A failing `ingest` reads its whole
 * input first, as a real ingest that fails late would. Everything else runs the real tool.
 */
export async function cvmfsServerShim(dir: string): Promise<{ command: string; calls(): Promise<string[][]>; failNext(subcommands: string[]): Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const log = join(dir, 'cvmfs_server.calls');
  const failFile = join(dir, 'fail');
  const command = join(dir, 'cvmfs_server');
  const real = await onPath('cvmfs_server');
  await writeFile(
    command,
    [
      '#!/bin/sh',
      `{ for a in "$@"; do printf '%s\t' "$a"; done; echo; } >> '${log}'`,
      `if [ -f '${failFile}' ] && grep -qx -- "$1" '${failFile}'; then`,
      '  [ "$1" = ingest ] && cat > /dev/null',
      `  echo "injected failure of '$1' (test shim)" >&2`,
      '  exit 1',
      'fi',
      `exec '${real}' "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return {
    command,
    calls: async () =>
      (await readFile(log, 'utf8').catch(() => ''))
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => line.split('\t').slice(0, -1)),
    failNext: async (subcommands) => writeFile(failFile, subcommands.map((sub) => `${sub}\n`).join('')),
  };
}

/** The absolute path of a command found on PATH. */
export async function onPath(command: string): Promise<string> {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir === '') continue;
    try {
      await access(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${command} is not on PATH`);
}

async function withGlobalLock<T>(work: () => Promise<T>): Promise<T> {
  await mkdir('/var/lock', { recursive: true });
  const release = await lockfile.lock(GLOBAL_LOCK, { realpath: false, stale: 60_000, retries: { retries: 600, minTimeout: 100, maxTimeout: 1000 } });
  try {
    return await work();
  } finally {
    await release();
  }
}

async function startApache(): Promise<void> {
  const pid = await readFile('/var/run/apache2/apache2.pid', 'utf8').catch(() => '');
  if (pid !== '' && processAlive(Number(pid.trim()))) return;
  // Modules cvmfs_server wants (it would enable them itself and restart Apache).
  await run('a2enmod', ['-q', 'headers', 'expires', 'proxy', 'proxy_http']);
  await writeFile('/etc/apache2/conf-available/servername.conf', 'ServerName localhost\n');
  await run('a2enconf', ['-q', 'servername']);
  await run('service', ['apache2', 'start']);
}
