/**
 * Test support: a CernVM-FS repository published through the repository gateway, with publisher nodes.
 *
 * As the upstream integration tests set it up (and ../shared/cvmfs/gateway.sh): a stratum-0 repository
 * whose upstream is `gw,...,http://localhost:PORT/api/v1`, and `cvmfs_gateway` (with its receiver) writing
 * to the local storage. This machine is the first publisher node. Every further node lives in a mount
 * namespace of its own (`unshare -m`) with private /etc/cvmfs/repositories.d, /etc/cvmfs/keys,
 * /var/spool/cvmfs, /srv/cvmfs, /cvmfs and /etc/fstab, registered the way the CernVM-FS documentation
 * describes for a separate publisher: `cvmfs_server mkfs -w <stratum-0 URL> -u gw,<txn dir>,<gateway URL>
 * -k <keys> -o root <repo>`. Commands run in a node through `nsenter -t <pid> -m`.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, closeSync } from 'node:fs';
import { appendFile, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { makeRepository, onPath, type TestRepository } from './stratum0.ts';
import { waitFor } from './wait-for.ts';

const run = promisify(execFile);
const KEY_ID = 'key1';

export interface PublisherNode {
  /** 1 for this machine's own namespace, 2.. for the nodes in namespaces of their own. */
  index: number;
  /** The pid whose mount namespace is the node's (undefined for node 1). */
  pid: number | undefined;
  /** argv prefix that runs a command in the node: [] or ['nsenter', '-t', pid, '-m', '--']. */
  prefix: string[];
  /** `cvmfs_server <args>` on this node; resolves with stdout. */
  server(args: string[]): Promise<string>;
}

export interface GatewayRepository extends TestRepository {
  gatewayUrl: string;
  /** The gateway's log, for failure messages. */
  gatewayLog(): Promise<string>;
  nodes: PublisherNode[];
}

/**
 * A gateway repository with `nodes` publisher nodes (node 1 is this machine). Everything is removed when
 * the test (or suite) ends. `maxLeaseSeconds` is the gateway's lease lifetime.
 */
export async function createGatewayRepository(
  t: Pick<TestContext, 'after'>,
  label: string,
  options: { nodes?: number; maxLeaseSeconds?: number } = {},
): Promise<GatewayRepository> {
  const { repository: repo, remove } = await makeRepository(label);
  const name = repo.name;
  // One cleanup, in order: the nodes, the gateway, then the repository itself.
  const stops: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await remove();
  });
  const state = join(tmpdir(), `ducc-gateway-${name}`);
  await mkdir(join(state, 'work'), { recursive: true });
  const port = await freePort();
  const secret = randomBytes(16).toString('hex');
  const keyFile = `/etc/cvmfs/keys/${name}.gw`;
  await writeFile(keyFile, `plain_text ${KEY_ID} ${secret}\n`, { mode: 0o600 });
  const gatewayUrl = `http://localhost:${port}/api/v1`;

  // The repository's publisher goes through the gateway; the gateway's receiver writes the storage.
  const conf = `/etc/cvmfs/repositories.d/${name}/server.conf`;
  const original = /^CVMFS_UPSTREAM_STORAGE=(.*)$/m.exec(await readFile(conf, 'utf8'))?.[1];
  if (original === undefined) throw new Error(`${conf} has no CVMFS_UPSTREAM_STORAGE`);
  await appendFile(conf, `CVMFS_UPSTREAM_STORAGE=gw,/srv/cvmfs/${name}/data/txn,${gatewayUrl}\nTEST_CVMFS_RECEIVER_UPSTREAM_STORAGE=${original}\n`);
  const clientLocal = `/var/spool/cvmfs/${name}/client.local`;
  await writeFile(clientLocal, (await readFile(clientLocal, 'utf8')).replace(/^CVMFS_ROOT_HASH=.*$/m, ''));

  const receiver = await onPath('cvmfs_receiver');
  await writeFile(
    join(state, 'user.json'),
    JSON.stringify({
      max_lease_time: options.maxLeaseSeconds ?? 7200,
      port,
      num_receivers: 1,
      receiver_path: receiver,
      log_level: 'info',
      log_timestamps: true,
      work_dir: join(state, 'work'),
    }),
  );
  await writeFile(
    join(state, 'repo.json'),
    JSON.stringify({ version: 2, repos: [{ domain: name, keys: [{ id: KEY_ID, path: '/' }] }], keys: [{ type: 'file', file_name: keyFile }] }),
  );
  const log = join(state, 'gateway.log');
  const logFd = openSync(log, 'a');
  const gateway = spawn('cvmfs_gateway', ['--user_config_file', join(state, 'user.json'), '--access_config_file', join(state, 'repo.json')], {
    stdio: ['ignore', logFd, logFd],
    detached: true,
    env: { ...process.env, LD_LIBRARY_PATH: '/usr/lib' },
  });
  closeSync(logFd);
  stops.push(async () => {
    if (gateway.exitCode === null && gateway.signalCode === null) gateway.kill('SIGTERM');
    await rm(keyFile, { force: true });
    // The gateway's log outlives the test, for post-mortems: <tmp>/ducc-gateway-<repo>.log.
    await copyFile(log, `${state}.log`).catch(() => {});
    await rm(state, { recursive: true, force: true });
  });
  await waitFor(
    async () => {
      const response = await fetch(`${gatewayUrl}/repos`).catch(() => undefined);
      return response?.ok === true && (await response.text()).includes(name);
    },
    20_000,
    `cvmfs_gateway for ${name} on port ${port}`,
  );

  const nodes: PublisherNode[] = [{ index: 1, pid: undefined, prefix: [], server: repo.server }];
  for (let index = 2; index <= (options.nodes ?? 1); index++) {
    const { node, stop } = await publisherNode(index, name, state, gatewayUrl);
    nodes.push(node);
    stops.push(stop);
  }
  return { ...repo, gatewayUrl, gatewayLog: () => readFile(log, 'utf8').catch(() => ''), nodes };
}

/** A publisher node in a mount namespace of its own, registered with the gateway. */
async function publisherNode(index: number, name: string, state: string, gatewayUrl: string): Promise<{ node: PublisherNode; stop: () => Promise<void> }> {
  const root = join(state, `node${index}`);
  const dirs = { 'repositories.d': '/etc/cvmfs/repositories.d', keys: '/etc/cvmfs/keys', spool: '/var/spool/cvmfs', srv: '/srv/cvmfs', cvmfs: '/cvmfs' };
  for (const dir of Object.keys(dirs)) await mkdir(join(root, dir), { recursive: true });
  await copyFile('/etc/fstab', join(root, 'fstab'));
  const importKeys = join(root, 'import-keys');
  await mkdir(importKeys);
  for (const suffix of ['pub', 'crt', 'gw']) await copyFile(`/etc/cvmfs/keys/${name}.${suffix}`, join(importKeys, `${name}.${suffix}`));
  // The namespace first drops the repository mounts it inherited (a fuse daemon mounted in two namespaces
  // cannot be remounted by the stratum 0), then hides the machine's cvmfs state behind its own.
  const script = [
    'set -e',
    'mount --make-rprivate /',
    `for m in $(awk '$2 ~ "^(/cvmfs/|/var/spool/cvmfs/)" {print $2}' /proc/self/mounts | sort -r); do umount -l "$m"; done`,
    ...Object.entries(dirs).map(([dir, target]) => `mount --bind '${join(root, dir)}' '${target}'`),
    `mount --bind '${join(root, 'fstab')}' /etc/fstab`,
    'echo ready',
    'exec sleep 2147483647',
  ].join('\n');
  const holder = spawn('unshare', ['-m', '--', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  holder.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  holder.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(() => output.includes('ready') || holder.exitCode !== null, 10_000, `publisher node ${index}`);
  if (!output.includes('ready')) throw new Error(`publisher node ${index} did not start: ${output}`);
  const pid = holder.pid!;
  const prefix = ['nsenter', '-t', String(pid), '-m', '--'];
  const server = async (args: string[]) => (await run(prefix[0]!, [...prefix.slice(1), 'cvmfs_server', ...args], { maxBuffer: 64 << 20 })).stdout;
  const stratum0 = `http://localhost/cvmfs/${name}`;
  await server(['mkfs', '-w', stratum0, '-u', `gw,/srv/cvmfs/${name}/data/txn,${gatewayUrl}`, '-k', importKeys, '-o', 'root', '-p', name]);
  return {
    node: { index, pid, prefix, server },
    stop: async () => {
      await server(['abort', '-f', name]).catch(() => {});
      await server(['rmfs', '-f', name]).catch(() => {});
      holder.kill('SIGKILL');
    },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
