/**
 * `npm run bench:gateway [-- --images N] [--runs R]`: publishing through the CernVM-FS repository gateway
 * (issue 21): N images converted by one worker and by two workers on two publisher nodes (`--shard 1/2`,
 * `--shard 2/2` at the same time), each through one gateway into a fresh repository, beside the local cvmfs
 * publisher (no gateway) on the same images. Prints seconds, seconds per image and the throughput ratio, and
 * writes bench/results-gateway.md. Needs what test/cvmfs needs: root, /dev/fuse, overlayfs, cvmfs_server
 * and cvmfs_gateway (scripts/with-deps installs the shared CernVM-FS runtime).
 *
 * The second node is a mount namespace of this machine (test/support/gateway.ts): both workers share its
 * 2 cores and its disk, so the ratio says how much of a worker's time is waiting (for the gateway, for
 * its own publishes), not what two machines would give.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildTar } from '../test/support/build-tar.ts';
import { createGatewayRepository, type PublisherNode } from '../test/support/gateway.ts';
import { pushOciLayout, writeOciLayout } from '../test/support/oci-image.ts';
import { startRegistry } from '../test/support/registry.ts';
import { createRepository, stratum0Unavailable } from '../test/support/stratum0.ts';
import type { TestContext } from 'node:test';
import { tempDir, type Cleanup } from '../test/support/tmp-dir.ts';

const CLI = new URL('../bin/ducc.js', import.meta.url).pathname;
const RESULTS = new URL('./results-gateway.md', import.meta.url).pathname;

const { values } = parseArgs({ options: { images: { type: 'string', default: '8' }, runs: { type: 'string', default: '3' } } });
const imageCount = Number(values.images);
const runs = Number(values.runs);

const reason = await stratum0Unavailable();
if (reason !== undefined) {
  console.log(`bench:gateway: not run: ${reason}`);
  process.exit(0);
}

const cleanups: (() => Promise<void>)[] = [];
const scope = { after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext & Cleanup;
try {
  const registry = await startRegistry(scope);
  const work = await tempDir(scope);
  const layout = join(work, 'layout');
  const wishes: string[] = [];
  // Each image: a base layer all share (as real images share their distribution), and 2,000 files of its own.
  const base = await buildTar([
    { name: 'usr/', type: 'directory' },
    ...Array.from({ length: 500 }, (_, i) => ({ name: `usr/base${i}`, content: `base ${i}\n`.repeat(200) })),
  ]);
  for (let i = 0; i < imageCount; i++) {
    const own = await buildTar([
      { name: 'app/', type: 'directory' },
      ...Array.from({ length: 2000 }, (_, j) => ({ name: `app/f${j}`, content: `image ${i} file ${j}\n`.repeat(50) })),
    ]);
    await writeOciLayout(layout, `i${i}`, [{ layers: [base, own], config: { Cmd: ['/bin/sh'], Labels: { image: String(i) } } }]);
    await pushOciLayout(layout, `i${i}`, { host: registry.host, repository: `bench/image${i}`, tag: 'v1' });
    wishes.push(`http://${registry.host}/bench/image${i}:v1`);
  }

  const convert = async (node: PublisherNode | undefined, repo: string, index: number, extra: string[]) => {
    const dir = join(work, `run-${repo}-${index}`);
    await mkdir(join(dir, 'locks'), { recursive: true });
    const wishlist = join(dir, 'wishlist.yaml');
    await writeFile(wishlist, ['version: 1', `cvmfs_repo: '${repo}'`, 'input:', ...wishes.map((w) => `  - '${w}'`), ''].join('\n'));
    const config = join(dir, 'ducc.yaml');
    await writeFile(config, ['publisher:', '  kind: cvmfs', `  lockDir: ${join(dir, 'locks')}`, `  stagingDir: ${join(dir, 'staging')}`, ''].join('\n'));
    const argv = [...(node?.prefix ?? []), process.execPath, CLI, 'convert', wishlist, '--config', config, '--skip-thin-image', ...extra];
    const started = process.hrtime.bigint();
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
      child.once('close', resolve);
    });
    if (code !== 0) throw new Error(`ducc convert ${extra.join(' ')} on ${repo} exited with ${code}`);
    return Number(process.hrtime.bigint() - started) / 1e9;
  };

  const rows: Record<string, number[]> = { 'local cvmfs publisher, one process': [], 'gateway, one worker': [], 'gateway, two workers on two nodes': [] };
  for (let run = 0; run < runs; run++) {
    const local = await createRepository(scope, 'benchlocal');
    rows['local cvmfs publisher, one process']!.push(await convert(undefined, local.name, run, []));
    const one = await createGatewayRepository(scope, 'benchgw1', { nodes: 1 });
    rows['gateway, one worker']!.push(await convert(one.nodes[0]!, one.name, run, []));
    const two = await createGatewayRepository(scope, 'benchgw2', { nodes: 2 });
    const started = process.hrtime.bigint();
    await Promise.all([convert(two.nodes[0]!, two.name, run, ['--shard', '1/2']), convert(two.nodes[1]!, two.name, run, ['--shard', '2/2'])]);
    rows['gateway, two workers on two nodes']!.push(Number(process.hrtime.bigint() - started) / 1e9);
    await two.check();
    console.log(
      `bench:gateway: run ${run + 1}: ${Object.entries(rows)
        .map(([name, times]) => `${name} ${times.at(-1)!.toFixed(1)} s`)
        .join('; ')}`,
    );
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  const oneWorker = median(rows['gateway, one worker']!);
  const twoWorkers = median(rows['gateway, two workers on two nodes']!);
  const lines = [
    '# Publishing through the repository gateway (`npm run bench:gateway`)',
    '',
    `${imageCount} images (a shared base layer of 500 files, 2,000 files of their own each), median of ${runs}, ` +
      `each run into fresh repositories; load average at the end ${load}; ${new Date().toISOString()}.`,
    '',
    '| Setup | Seconds (median) | Seconds per image | Runs |',
    '|---|---|---|---|',
    ...Object.entries(rows).map(
      ([name, times]) =>
        `| ${name} | ${median(times).toFixed(1)} | ${(median(times) / imageCount).toFixed(2)} | ${times.map((t) => t.toFixed(1)).join(', ')} |`,
    ),
    '',
    `Throughput of two workers against one, through the gateway: **${(oneWorker / twoWorkers).toFixed(2)}x** ` +
      "(both nodes share this machine's 2 cores and disk: see the header of bench/gateway.ts).",
    '',
  ];
  await writeFile(RESULTS, lines.join('\n'));
  console.log(lines.join('\n'));
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: Error) => console.error(`cleanup: ${error.message}`));
}
