/**
 * `npm run bench [-- --runs N] [--quick] [--images a,b] [--skip sections] [--output FILE]`
 *
 * Benchmarks ducc-gitops against skopeo+umoci and against the verified floor (sha256 + decompress|tar) on realistic images,
 * times a no-op reconcile and the webhook acknowledgement of `ducc serve`, profiles a conversion, and
 * writes the results to bench/results.md (bench/results.quick.md in quick mode). See bench/README.md.
 */
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { TestContext } from 'node:test';
import { parseArgs } from 'node:util';
import { startRegistry } from '../test/support/registry.ts';
import { ensureDependencies } from './lib/deps.ts';
import { IMAGE_KEYS, needsDebootstrap, prepareImages, type BenchImage } from './lib/images.ts';
import { describeMachine } from './lib/machine.ts';
import { LoadSampler, codeFingerprint, gitState } from './lib/environment.ts';
import { cleanupMeasureScratch } from './lib/measure.ts';
import { profileConversion } from './lib/profile.ts';
import { measureReconcile, pushReconcileImages, pushWishImages } from './lib/reconcile.ts';
import { renderReport, type BenchResults } from './lib/report.ts';
import { imageUrl, measureTool, TOOL_KEYS, TOOL_TITLES, UnsupportedError, type ToolContext } from './lib/tools.ts';
import { measureDuringConversions, measureWebhooks } from './lib/webhooks.ts';
import {
  CVMFS_TOOL_KEYS,
  CVMFS_TOOL_TITLES,
  cvmfsDuccSupports,
  cvmfsDuccUnavailable,
  cvmfsUnavailable,
  measureCvmfs,
  publishesOf,
  removeStaleBenchRepositories,
  type CvmfsSection,
} from './lib/cvmfs.ts';
import { measureGcPlan } from './lib/gc.ts';
import { BENCH_DIR, CACHE_DIR, Cleanups, REPO_ROOT, formatSeconds, log, run, secondsSince } from './lib/util.ts';

const SECTIONS = ['conversion', 'cvmfs', 'reconcile', 'webhooks', 'gc', 'profile'] as const;
type Section = (typeof SECTIONS)[number];

const USAGE = `usage: npm run bench -- [options]

  --runs N          runs per measurement, the median is reported (default 3; 1 with --quick)
  --quick           smoke mode: small images (2,000 small files, a 64 MiB file), 20 wishes, 10 deliveries,
                    a reconcile of 5 repositories × 4 tags
  --images LIST     comma-separated subset of ${IMAGE_KEYS.join(',')}
  --cvmfs-images LIST  the images of the cvmfs section (default: all of --images)
  --skip LIST       comma-separated sections to skip: ${SECTIONS.join(',')}
  --wishes N        wishes in the wish list of the webhook measurement (default 100)
  --repositories N  repositories of the no-op reconcile (default 50)
  --tags N          tags per repository in the no-op reconcile (default 20: 1,000 wishes)
  --concurrency N   concurrent webhook deliveries (default 50)
  --work-dir DIR    where the measured commands write (default: /dev/shm when it is a tmpfs with room, see README)
  --on-disk         write the outputs under bench/.cache instead (the disk this checkout is on)
  --output FILE     where to write the Markdown results (default bench/results.md, bench/results.quick.md with --quick)
  -h, --help        this text
`;

function positive(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not '${value}'`);
  return n;
}

function list<T extends string>(value: string | undefined, allowed: readonly T[], name: string): T[] | undefined {
  if (value === undefined) return undefined;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`${name}: unknown '${item}' (known: ${allowed.join(', ')})`);
  return items as T[];
}

async function pushImage(image: BenchImage, registryHost: string): Promise<number> {
  const started = process.hrtime.bigint();
  // As test/support/oci-image.ts's pushOciLayout (--preserve-digests keeps the blobs byte for byte), with
  // a timeout long enough for the 1 GiB image.
  await run(
    'skopeo',
    [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      '--dest-no-creds',
      '--preserve-digests',
      `oci:${image.layout.dir}:${image.layout.tag}`,
      `docker://${registryHost}/${image.repository}:${image.tag}`,
    ],
    { timeoutMs: 30 * 60_000 },
  );
  return secondsSince(started);
}

const TMPFS_MAGIC = 0x01021994;

/**
 * Outputs go to a tmpfs by default: on virtual machines the guest's disk filesystem can cost more per
 * file than any of the tools compared (and vary a lot from run to run), hiding their differences. The
 * full mode needs a few GiB there at a time (the 1 GiB image unpacked, plus its OCI copy).
 */
async function defaultWorkParent(quick: boolean): Promise<string> {
  const needed = (quick ? 1 : 6) * 1024 ** 3;
  try {
    const stats = await statfs('/dev/shm');
    if (stats.type === TMPFS_MAGIC && stats.bavail * stats.bsize >= needed) return '/dev/shm';
    log(`/dev/shm is not a tmpfs with ${needed / 1024 ** 3} GiB free: outputs go to bench/.cache/work (on disk)`);
  } catch {
    log('no /dev/shm: outputs go to bench/.cache/work (on disk)');
  }
  return join(CACHE_DIR, 'work');
}

/**
 * The cvmfs section: for each image and run, ducc-gitops's cvmfs publisher and cvmfs_ducc in rotating
 * order, each into a repository of its own. `scratch` (on disk, as /var/tmp and /tmp on a stratum 0) holds
 * both tools' temporary files.
 */
async function measureCvmfsSection(images: BenchImage[], ctx: ToolContext, runs: number, scratch: string): Promise<CvmfsSection> {
  const unavailable = await cvmfsUnavailable();
  if (unavailable !== undefined) {
    log(`cvmfs section skipped: no CernVM-FS stratum 0 can be made here: ${unavailable}`);
    return { unavailable, images: {} };
  }
  await removeStaleBenchRepositories();
  await mkdir(scratch, { recursive: true });
  const section: CvmfsSection = { images: {} };
  const duccMissing = await cvmfsDuccUnavailable();
  for (let r = 0; r < runs; r++) {
    for (const image of images) {
      const order = CVMFS_TOOL_KEYS.map((_, i) => CVMFS_TOOL_KEYS[(i + r) % CVMFS_TOOL_KEYS.length]!);
      for (const tool of order) {
        const slot = ((section.images[image.key] ??= {})[tool] ??= { runs: [] });
        if (slot.error !== undefined || slot.unsupported !== undefined) continue;
        if (tool === 'cvmfs-ducc') {
          const reason = duccMissing ?? cvmfsDuccSupports(image);
          if (reason !== undefined) {
            slot.unsupported = reason;
            log(`${image.key} ${CVMFS_TOOL_TITLES[tool]}: not applicable: ${reason}`);
            continue;
          }
        }
        try {
          const m = await measureCvmfs(tool, image, ctx, scratch);
          slot.runs.push(m);
          log(
            `run ${r + 1}/${runs} ${image.key} ${CVMFS_TOOL_TITLES[tool]}: ${formatSeconds(m.seconds)} s, ${m.calls.length} cvmfs_server calls, ${publishesOf(m.calls)} publishes`,
          );
        } catch (error) {
          slot.error = errorText(error);
          log(`run ${r + 1}/${runs} ${image.key} ${CVMFS_TOOL_TITLES[tool]} FAILED: ${slot.error}`);
        }
      }
    }
  }
  return section;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      images: { type: 'string' },
      'cvmfs-images': { type: 'string' },
      skip: { type: 'string' },
      wishes: { type: 'string' },
      repositories: { type: 'string' },
      tags: { type: 'string' },
      concurrency: { type: 'string' },
      output: { type: 'string' },
      'work-dir': { type: 'string' },
      'on-disk': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const quick = values.quick;
  const runs = positive(values.runs, '--runs', quick ? 1 : 3);
  const imageKeys = list(values.images, IMAGE_KEYS, '--images') ?? IMAGE_KEYS;
  const cvmfsImageKeys = list(values['cvmfs-images'], IMAGE_KEYS, '--cvmfs-images') ?? imageKeys;
  const skip = new Set<Section>(list(values.skip, SECTIONS, '--skip') ?? []);
  const wishes = positive(values.wishes, '--wishes', quick ? 20 : 100);
  const repositories = positive(values.repositories, '--repositories', quick ? 5 : 50);
  const tagsPerRepository = positive(values.tags, '--tags', quick ? 4 : 20);
  const concurrency = positive(values.concurrency, '--concurrency', quick ? 10 : 50);
  const output = values.output ?? join(BENCH_DIR, quick ? 'results.quick.md' : 'results.md');
  const commandLine = ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');

  const started = process.hrtime.bigint();
  // bin/ducc.js runs the compiled dist/ only when it is newer than every source file, and the sources
  // otherwise (~0.3 s slower to start): build first, so that what is measured is what operators run.
  log('building dist/ (npm run build)');
  await run('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT });
  const fingerprintAtStart = await codeFingerprint();
  const git = await gitState();
  const load = new LoadSampler();
  load.start();
  const cleanups = new Cleanups();
  cleanups.after(async () => load.stop());
  const interrupted = (signal: string) => {
    log(`${signal}: cleaning up`);
    void cleanups.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => interrupted('SIGINT'));
  process.once('SIGTERM', () => interrupted('SIGTERM'));

  let workDir = '';
  try {
    const needImages =
      !skip.has('conversion') ||
      !skip.has('cvmfs') ||
      (!skip.has('webhooks') && imageKeys.some((key) => ['small-files', 'bigfile', 'debian-gzip'].includes(key))) ||
      (!skip.has('profile') && (imageKeys.includes('small-files') || imageKeys.includes('bigfile') || imageKeys.includes('debian-zstd')));
    const allImageKeys = [...new Set([...imageKeys, ...(skip.has('cvmfs') ? [] : cvmfsImageKeys)])];
    await ensureDependencies({ needDebootstrap: needImages && (await needsDebootstrap(allImageKeys)) });
    const workParent = values['work-dir'] ?? (values['on-disk'] ? join(CACHE_DIR, 'work') : await defaultWorkParent(quick));
    await mkdir(workParent, { recursive: true });
    workDir = await mkdtemp(join(workParent, 'ducc-bench-'));
    cleanups.after(() => rm(workDir, { recursive: true, force: true }));
    log(`outputs go to ${workDir}`);
    cleanups.after(cleanupMeasureScratch);
    const dockerConfigDir = join(workDir, 'docker-config');
    await mkdir(dockerConfigDir);

    const machine = await describeMachine(workDir, CACHE_DIR, tmpdir());
    const allImages = needImages ? await prepareImages(allImageKeys, quick) : [];
    const images = allImages.filter((image) => imageKeys.includes(image.key));

    // startRegistry only needs the after() hook of a node:test context.
    const registry = await startRegistry(cleanups as unknown as TestContext);
    log(`registry on ${registry.host}`);
    // The `ducc-disk` row writes to the disk this checkout is on (bench/.cache/work), whatever --work-dir says.
    await mkdir(join(CACHE_DIR, 'work'), { recursive: true });
    const diskDir = await mkdtemp(join(CACHE_DIR, 'work', 'ducc-bench-disk-'));
    cleanups.after(() => rm(diskDir, { recursive: true, force: true }));
    const ctx: ToolContext = { registryHost: registry.host, workDir, diskDir, dockerConfigDir };
    const results: BenchResults = {
      commandLine,
      quick,
      runs,
      machine,
      code: { head: git.head, changed: git.changed, fingerprintAtStart, fingerprintAtEnd: '' },
      images: skip.has('conversion') ? [] : images,
      pushSeconds: {},
      conversions: {},
      totalSeconds: 0,
    };
    for (const image of allImages) {
      log(`pushing ${image.key} (${(image.compressedBytes / 1024 / 1024).toFixed(0)} MiB)`);
      results.pushSeconds[image.key] = await pushImage(image, registry.host);
    }

    if (!skip.has('conversion')) {
      for (let r = 0; r < runs; r++) {
        for (const image of images) {
          // Rotate the order of the tools from run to run, so that no tool always comes first.
          const order = TOOL_KEYS.map((_, i) => TOOL_KEYS[(i + r) % TOOL_KEYS.length]!);
          for (const tool of order) {
            const slot = ((results.conversions[image.key] ??= {})[tool] ??= { runs: [] });
            if (slot.error || slot.unsupported) continue;
            try {
              const m = await measureTool(tool, image, ctx);
              slot.runs.push(m);
              log(`run ${r + 1}/${runs} ${image.key} ${TOOL_TITLES[tool]}: ${formatSeconds(m.seconds)} s, ${((m.maxRssKiB * 1024) / 1e6).toFixed(0)} MB`);
            } catch (error) {
              if (error instanceof UnsupportedError) {
                slot.unsupported = error.message;
                log(`${image.key} ${TOOL_TITLES[tool]}: not applicable: ${error.message}`);
                continue;
              }
              slot.error = errorText(error);
              log(`run ${r + 1}/${runs} ${image.key} ${TOOL_TITLES[tool]} FAILED: ${slot.error}`);
            }
          }
        }
      }
    }

    if (!skip.has('cvmfs')) {
      results.cvmfs = await measureCvmfsSection(
        allImages.filter((image) => cvmfsImageKeys.includes(image.key)),
        ctx,
        runs,
        join(CACHE_DIR, 'work'),
      );
    }

    let entries: string[] = [];
    if (!skip.has('webhooks')) entries = await pushWishImages(registry.host, wishes, workDir);
    if (!skip.has('reconcile')) {
      try {
        const pushStarted = process.hrtime.bigint();
        const reconcileEntries = await pushReconcileImages(registry.host, repositories, tagsPerRepository, workDir);
        results.reconcile = await measureReconcile(ctx, reconcileEntries, secondsSince(pushStarted), runs);
      } catch (error) {
        results.reconcile = { error: errorText(error) };
        log(`reconcile FAILED: ${results.reconcile.error}`);
      }
    }
    if (!skip.has('webhooks')) {
      try {
        results.webhooks = await measureWebhooks(cleanups, entries, runs, concurrency);
      } catch (error) {
        results.webhooks = { error: errorText(error) };
        log(`webhooks FAILED: ${results.webhooks.error}`);
      }
      // While `ducc serve` converts: the many-small-files image (synchronous file creation) and the 1 GiB
      // image (hashing and writing big chunks); freshness with the Debian image.
      const during = [
        { key: 'small-files', delayMs: 200 },
        { key: 'bigfile', delayMs: 1000 },
      ].flatMap(({ key, delayMs }) => {
        const image = images.find((i) => i.key === key);
        return image ? [{ key, delayMs, entry: imageUrl(registry.host, image) }] : [];
      });
      const fresh = images.find((i) => i.key === 'debian-gzip');
      if (during.length > 0 || fresh) {
        try {
          results.duringConversions = await measureDuringConversions({
            cleanup: cleanups,
            workDir,
            smallEntry: entries[0]!,
            images: during,
            freshness: fresh ? { key: fresh.key, entry: imageUrl(registry.host, fresh) } : undefined,
            runs,
            concurrency,
          });
        } catch (error) {
          results.duringConversions = { error: errorText(error) };
          log(`webhooks during conversions FAILED: ${results.duringConversions.error}`);
        }
      }
    }
    if (!skip.has('gc')) {
      try {
        results.gc = await measureGcPlan(workDir, runs, 1000);
      } catch (error) {
        results.gc = { error: errorText(error) };
        log(`gc plan FAILED: ${results.gc.error}`);
      }
    }
    if (!skip.has('profile')) {
      // Many small files: per-file costs (with a thread-pool size experiment); one big file: per-byte costs.
      for (const [key, threadPoolSizes] of [
        ['small-files', [16, 64]],
        ['bigfile', []],
        ['debian-zstd', []],
      ] as const) {
        const image = images.find((i) => i.key === key);
        if (!image) continue;
        log(`profiling ducc convert of ${key}`);
        try {
          (results.profiles ??= []).push(await profileConversion(image, ctx, [...threadPoolSizes]));
        } catch (error) {
          (results.profiles ??= []).push({ image: key, error: errorText(error) });
          log(`profile of ${key} FAILED: ${errorText(error)}`);
        }
      }
    }

    results.totalSeconds = secondsSince(started);
    results.code.fingerprintAtEnd = await codeFingerprint();
    const loadSummary = load.summary();
    if (loadSummary) results.load = loadSummary;
    if (results.code.fingerprintAtEnd !== fingerprintAtStart) log('warning: src/, bin/ or package.json changed during the run: the numbers mix code versions');
    const report = renderReport(results);
    await writeFile(output, `${report}\n`);
    process.stdout.write(`${report}\n`);
    log(`results written to ${relative(REPO_ROOT, output)}`);
    const failed =
      Object.values(results.conversions).some((tools) => Object.values(tools ?? {}).some((t) => t?.error)) ||
      Object.values(results.cvmfs?.images ?? {}).some((tools) => Object.values(tools ?? {}).some((t) => t?.error));
    return failed ? 1 : 0;
  } finally {
    await cleanups.run();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`bench: ${errorText(error)}\n`);
  process.exitCode = 2;
}
