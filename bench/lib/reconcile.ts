/**
 * No-op reconcile: a wish list of 1,000 wishes over 50 repositories (20 tags of one small image in each,
 * as issue 19 measured it), converted once; then converted again with everything up to date, which is
 * what `ducc loop`, the systemd timer and the bot's periodic reconcile do most of the time.
 *
 * Measured: the second conversion in-process (runConversion, which also returns the number of blob
 * requests) and as a `ducc convert` child process (Node start-up included, as the timer unit runs it).
 * An extra untimed run through a counting HTTP proxy in front of the registry tells which requests a
 * no-op reconcile makes.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { runConversion } from '../../src/cli/run-conversion.ts';
import { MANIFEST_ACCEPT } from '../../src/registry/types.ts';
import { createLogger } from '../../src/util/logger.ts';
import { parseWishlist } from '../../src/wishlist/wishlist.ts';
import { buildTar, type TarEntrySpec } from '../../test/support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../../test/support/oci-image.ts';
import { measureCommand, type Measurement } from './measure.ts';
import { duccConvertArgs, duccEnv, wishlistYaml, type ToolContext } from './tools.ts';
import { BENCH_DIR, REPO_ROOT, log, run, secondsSince } from './util.ts';

export interface ReconcileResult {
  wishes: number;
  /** Repositories the wishes are spread over. */
  repositories: number;
  pushSeconds: number;
  initialSeconds: number;
  /** In-process second runs. */
  inProcess: { seconds: number; blobRequests: number; upToDate: number }[];
  /** `ducc convert` child processes. */
  cli: Measurement[];
  /** CPU seconds the registry process spent during each of those (it shares the machine's cores). */
  registryCpu: number[];
  /**
   * The same manifest requests from a bare client process (bench/lib/manifest-floor.js: GET, sha256
   * check, nothing else), and the registry's CPU seconds during each: the least any client spends here.
   */
  bareClient?: Measurement[];
  bareClientRegistryCpu?: number[];
  /** HTTP requests of one no-op run, by kind and answer ("GET manifest 304", "GET blob 200", ...). */
  requests: Record<string, number>;
}

/**
 * One small image (two layers) pushed to `repositories` repositories (`bench/repo-NN`) under `tags` tags
 * each (`t00`, `t01`, …): skopeo pushes it once per repository, and the other tags are the same manifest
 * PUT again under their name. Returns the wish-list entries, repository by repository.
 */
export async function pushReconcileImages(registryHost: string, repositories: number, tags: number, workDir: string): Promise<string[]> {
  log(`pushing one small image to ${repositories} repositories × ${tags} tags for the reconcile measurement`);
  const layout = join(workDir, 'reconcile-image');
  await rm(layout, { recursive: true, force: true });
  const base: TarEntrySpec[] = [{ name: 'etc/', type: 'directory' }];
  for (let i = 0; i < 40; i++) base.push({ name: `etc/conf-${i}.conf`, content: `setting_${i} = ${'x'.repeat(200 + i)}\n` });
  const top = await buildTar([
    { name: 'srv/', type: 'directory' },
    { name: 'srv/data.txt', content: 'payload\n'.repeat(50) },
  ]);
  await writeOciLayout(layout, 'image', [{ layers: [await buildTar(base), top], config: { Cmd: ['/bin/sh'] } }]);
  const names = Array.from({ length: repositories }, (_, i) => `bench/repo-${String(i).padStart(2, '0')}`);
  const tagNames = Array.from({ length: tags }, (_, i) => `t${String(i).padStart(2, '0')}`);
  const limit = pLimit(4);
  await Promise.all(
    names.map((repository) =>
      limit(async () => {
        await pushOciLayout(layout, 'image', { host: registryHost, repository, tag: tagNames[0]! });
        const url = `http://${registryHost}/v2/${repository}/manifests/${tagNames[0]}`;
        const accept = 'application/vnd.oci.image.manifest.v1+json';
        const got = await fetch(url, { headers: { accept } });
        if (!got.ok) throw new Error(`GET ${url}: ${got.status}`);
        const type = got.headers.get('content-type') ?? accept;
        const body = Buffer.from(await got.arrayBuffer());
        for (const tag of tagNames.slice(1)) {
          const put = await fetch(`http://${registryHost}/v2/${repository}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': type }, body });
          if (!put.ok) throw new Error(`PUT ${repository}:${tag}: ${put.status} ${await put.text()}`);
        }
      }),
    ),
  );
  await rm(layout, { recursive: true, force: true });
  return names.flatMap((repository) => tagNames.map((tag) => `http://${registryHost}/${repository}:${tag}`));
}

/** Builds and pushes `count` small images (`bench/wish-NNN:1`); returns their wish-list entries (the webhook measurement's wish list). */
export async function pushWishImages(registryHost: string, count: number, workDir: string): Promise<string[]> {
  log(`pushing ${count} small images for the reconcile and webhook measurements`);
  const layout = join(workDir, 'wish-images');
  await rm(layout, { recursive: true, force: true });
  const base: TarEntrySpec[] = [{ name: 'etc/', type: 'directory' }];
  for (let i = 0; i < 40; i++) base.push({ name: `etc/conf-${i}.conf`, content: `setting_${i} = ${'x'.repeat(200 + i)}\n` });
  const baseTar = await buildTar(base);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = String(i).padStart(3, '0');
    const top = await buildTar([
      { name: 'srv/', type: 'directory' },
      { name: 'srv/id', content: `image ${id}\n` },
      { name: 'srv/data.txt', content: `payload of image ${id}\n`.repeat(50) },
    ]);
    await writeOciLayout(layout, `w${id}`, [{ layers: [baseTar, top], config: { Cmd: ['/bin/sh'] } }]);
    names.push(id);
  }
  const limit = pLimit(4);
  await Promise.all(names.map((id) => limit(() => pushOciLayout(layout, `w${id}`, { host: registryHost, repository: `bench/wish-${id}`, tag: '1' }))));
  await rm(layout, { recursive: true, force: true });
  return names.map((id) => `http://${registryHost}/bench/wish-${id}:1`);
}

/** `entries`: the wish-list entries of images already pushed (pushWishImages), `pushSeconds` how long that took. */
export async function measureReconcile(ctx: ToolContext, entries: string[], pushSeconds: number, runs: number): Promise<ReconcileResult> {
  const count = entries.length;
  const repositories = new Set(entries.map((entry) => entry.slice(0, entry.lastIndexOf(':')))).size;
  const dir = join(ctx.workDir, 'reconcile');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  let started: bigint;

  const wishlistFile = join(dir, 'wishlist.yaml');
  const text = wishlistYaml(entries);
  await writeFile(wishlistFile, text);
  // The bare client's input: each entry with the digest its tag names (asked once here, not timed).
  const entriesFile = join(dir, 'entries.json');
  const limit = pLimit(16);
  const named = await Promise.all(entries.map((entry) => limit(async () => ({ entry, digest: await tagDigest(entry) }))));
  await writeFile(entriesFile, JSON.stringify(named));
  const repoRoot = join(dir, 'cvmfs');
  const logger = createLogger({ level: 'silent' });
  const env = duccEnv(ctx);
  const flags = { repoRoot, skipThinImage: true };

  log(`reconcile: first conversion of ${count} wishes`);
  started = process.hrtime.bigint();
  const first = await runConversion(parseWishlist(text, wishlistFile), flags, env, logger);
  const initialSeconds = secondsSince(started);
  if (first.converted !== count || first.failed !== 0)
    throw new Error(`first conversion: ${first.converted} converted, ${first.failed} failed: ${first.failures.map((f) => f.message).join('; ')}`);

  const inProcess: ReconcileResult['inProcess'] = [];
  const cli: Measurement[] = [];
  const registryCpu: number[] = [];
  const bareClient: Measurement[] = [];
  const bareClientRegistryCpu: number[] = [];
  for (let r = 0; r < runs; r++) {
    started = process.hrtime.bigint();
    const summary = await runConversion(parseWishlist(text, wishlistFile), flags, env, logger);
    const seconds = secondsSince(started);
    if (summary.upToDate !== count || summary.failed !== 0)
      throw new Error(`no-op reconcile: ${summary.converted} converted, ${summary.upToDate} up to date, ${summary.failed} failed`);
    inProcess.push({ seconds, blobRequests: summary.blobRequests, upToDate: summary.upToDate });

    await run('sync', []);
    let output = '';
    const registryBefore = registryCpuSeconds(ctx.registryHost);
    cli.push(await measureCommand(process.execPath, duccConvertArgs(wishlistFile, repoRoot), { cwd: REPO_ROOT, env, onOutput: (o) => (output = o) }));
    registryCpu.push(registryCpuSeconds(ctx.registryHost) - registryBefore);
    if (!new RegExp(`\\b0 converted, ${count} up to date, 0 failed\\b`).test(output))
      throw new Error(`ducc convert (no-op) did not report ${count} up to date:\n${output.slice(-3000)}`);

    await run('sync', []);
    const bareBefore = registryCpuSeconds(ctx.registryHost);
    bareClient.push(
      await measureCommand(process.execPath, [join(BENCH_DIR, 'lib/manifest-floor.js'), entriesFile], { cwd: REPO_ROOT, onOutput: (o) => (output = o) }),
    );
    bareClientRegistryCpu.push(registryCpuSeconds(ctx.registryHost) - bareBefore);
    if (!output.includes(`${count} manifests checked`))
      throw new Error(`bench/lib/manifest-floor.js did not check ${count} manifests:\n${output.slice(-3000)}`);
    log(
      `reconcile run ${r + 1}/${runs}: in-process ${seconds.toFixed(2)} s, CLI ${cli.at(-1)!.seconds.toFixed(2)} s, bare client ${bareClient.at(-1)!.seconds.toFixed(2)} s`,
    );
  }

  // Untimed: which requests does a no-op run make? Same images through a counting proxy (its own repo root).
  const proxy = await countingProxy(ctx.registryHost);
  try {
    const proxied = text.replaceAll(ctx.registryHost, proxy.host);
    const proxiedFile = join(dir, 'wishlist-proxied.yaml');
    await writeFile(proxiedFile, proxied);
    const proxiedFlags = { repoRoot: join(dir, 'cvmfs-proxied'), skipThinImage: true };
    await runConversion(parseWishlist(proxied, proxiedFile), proxiedFlags, env, logger);
    proxy.counts.clear();
    await runConversion(parseWishlist(proxied, proxiedFile), proxiedFlags, env, logger);
    const requests = Object.fromEntries([...proxy.counts].sort());
    return { wishes: count, repositories, pushSeconds, initialSeconds, inProcess, cli, registryCpu, bareClient, bareClientRegistryCpu, requests };
  } finally {
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The Docker-Content-Digest of a wish-list entry's tag (http://HOST/REPOSITORY:TAG). */
async function tagDigest(entry: string): Promise<string> {
  const match = /^(https?):\/\/([^/]+)\/(.+):([^:/]+)$/.exec(entry);
  if (match === null) throw new Error(`not an http(s)://HOST/REPOSITORY:TAG entry: ${entry}`);
  const [, scheme, host, repository, tag] = match;
  const response = await fetch(`${scheme}://${host}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
  const digest = response.headers.get('docker-content-digest');
  if (!response.ok || digest === null) throw new Error(`HEAD ${entry}: ${response.status}, digest ${digest}`);
  return digest;
}

/**
 * CPU seconds (user + system) used so far by the docker-registry child of this process that listens on
 * `host`'s port (NaN if it cannot be found): the registry runs on the same 2 cores as ducc.
 */
function registryCpuSeconds(host: string): number {
  const port = host.split(':').at(-1);
  for (const task of readdirSync('/proc/self/task')) {
    const children = readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    for (const pid of children) {
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('docker-registry')) continue;
        const config = readFileSync(`/proc/${pid}/cmdline`, 'latin1')
          .split('\0')
          .find((arg) => arg.endsWith('.yml'));
        if (config !== undefined && !readFileSync(config, 'utf8').includes(`:${port}`)) continue;
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(fields[11]) + Number(fields[12])) / 100;
      } catch {
        // gone meanwhile
      }
    }
  }
  return Number.NaN;
}

/** A plain HTTP proxy in front of the registry that counts requests by method and kind. */
async function countingProxy(upstream: string): Promise<{ host: string; counts: Map<string, number>; close(): Promise<void> }> {
  const counts = new Map<string, number>();
  const [upstreamHost, upstreamPort] = upstream.split(':');
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    const kind = /\/manifests\//.test(path)
      ? 'manifest'
      : /\/blobs\//.test(path)
        ? 'blob'
        : /\/tags\/list/.test(path)
          ? 'tag list'
          : path === '/v2/'
            ? 'ping (/v2/)'
            : 'other';
    const forward = httpRequest({ host: upstreamHost, port: Number(upstreamPort), method: req.method, path, headers: req.headers }, (upstreamRes) => {
      // By answer too: a no-op run's conditional GETs show as "GET manifest 304".
      const key = `${req.method} ${kind} ${upstreamRes.statusCode}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      upstreamRes.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
