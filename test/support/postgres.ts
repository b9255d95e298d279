/**
 * A real PostgreSQL server for the tests: Debian's `postgresql` (scripts/with-deps installs it), made with
 * initdb and started with pg_ctl in a temporary directory, listening on a free port of 127.0.0.1 only,
 * with a password (SCRAM) for its one user. PostgreSQL refuses to run as root: as root, initdb and
 * pg_ctl run as the `postgres` system user (runuser), in a directory that user owns.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdtemp, readdir, rm, writeFile, appendFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Cleanup } from './tmp-dir.ts';

const run = promisify(execFile);

export interface PostgresServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** postgres://user@127.0.0.1:port/<database>, without the password. */
  urlOf(database: string): string;
  /** A new, empty database; its name. */
  createDatabase(prefix?: string): Promise<string>;
}

/** Where Debian puts the server's programs (not on PATH): the newest version installed. */
async function binDir(): Promise<string> {
  const versions = (await readdir('/usr/lib/postgresql').catch(() => [] as string[]))
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error("PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin): run the tests through scripts/with-deps");
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts a server for the test or suite; it is stopped and its directory removed by `cleanup`. */
export async function startPostgres(cleanup: Cleanup): Promise<PostgresServer> {
  const bin = await binDir();
  const root = await mkdtemp(join(tmpdir(), 'ducc-postgres-'));
  const asRoot = userInfo().uid === 0;
  // As root: the server's files belong to `postgres`, and its commands run as that user.
  const as = (program: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, program), ...args], { cwd: root }) : run(join(bin, program), args, { cwd: root });
  if (asRoot) await chown(root, ...(await postgresIds()));
  const data = join(root, 'data');
  const user = 'ducc_test';
  const password = randomBytes(12).toString('hex');
  const pwfile = join(root, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (asRoot) await chown(pwfile, ...(await postgresIds()));
  await as('initdb', ['--pgdata', data, '--username', user, '--pwfile', pwfile, '--auth', 'scram-sha-256', '--encoding', 'UTF8', '--locale', 'C', '--no-sync']);
  await rm(pwfile);
  let port = 0;
  let started = false;
  cleanup.after(async () => {
    if (started) await as('pg_ctl', ['--pgdata', data, '--mode', 'immediate', 'stop']).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  });
  // A port found free may be taken before the server binds it: then another one.
  for (let attempt = 0; attempt < 5 && !started; attempt++) {
    port = await freePort();
    await appendFile(
      join(data, 'postgresql.conf'),
      `\nlisten_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${root}'\nfsync = off\nmax_connections = 100\n`,
    );
    try {
      await as('pg_ctl', ['--pgdata', data, '--log', join(root, 'server.log'), '--wait', '--timeout', '60', 'start']);
      started = true;
    } catch (error) {
      if (attempt === 4) throw error;
    }
  }
  const host = '127.0.0.1';
  const urlOf = (database: string) => `postgres://${user}@${host}:${port}/${database}`;
  let databases = 0;
  return {
    host,
    port,
    user,
    password,
    urlOf,
    async createDatabase(prefix = 'ducc') {
      const name = `${prefix}_${process.pid}_${++databases}`;
      const client = new pg.Client({ host, port, user, password, database: 'postgres' });
      await client.connect();
      try {
        // A name made here of letters, digits and underscores: safe as an identifier.
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return name;
    },
  };
}

async function postgresIds(): Promise<[number, number]> {
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: group } = await run('id', ['-g', 'postgres']);
  return [Number(stdout.trim()), Number(group.trim())];
}
