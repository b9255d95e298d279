/**
 * The cvmfs section (issue 14): ducc-gitops's cvmfs publisher and upstream DUCC (`cvmfs_ducc`) converting
 * the same images from the same registry into real CernVM-FS repositories on this machine's stratum 0.
 *
 * Every measured run gets a repository of its own (`cvmfs_server mkfs -o root -f overlayfs`, named
 * `bench-<tool>-<pid>-<hex>.ducc.bench`, not timed), which is removed afterwards (`rmfs -f`, not timed).
 * Both tools call `cvmfs_server` through the same logging shim placed in front of the real one (first on
 * PATH, and `publisher.cvmfsServer` for ducc-gitops): it records every call's subcommand, wall time and
 * CPU time, so that the report can say how many publishes (`ingest` and `publish` calls) each tool made
 * per image and how long it spent inside cvmfs_server.
 *
 * Both tools get their scratch space in the same place (ducc-gitops's `stagingDir`, DUCC's `-t`).
 *
 * The peak RSS GNU time reports here is that of the largest process of the tree, which during an ingest is
 * cvmfs_swissknife (about as large as the largest file it ingests); the ducc process's own peak is taken
 * separately, from process.resourceUsage() at its exit (bench/lib/rss-probe.js).
 */
import { readdirSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepository, onPath, stratum0Unavailable } from '../../test/support/stratum0.ts';
import type { BenchImage, ImageKey } from './images.ts';
import { measureCommand, type Measurement } from './measure.ts';
import { duccEnv, duccNodeFlags, imageUrl, type ToolContext } from './tools.ts';
import { REPO_ROOT, log, run } from './util.ts';
import { processAlive } from '../../src/util/process-alive.ts';

export type CvmfsToolKey = 'ducc-cvmfs' | 'cvmfs-ducc';
export const CVMFS_TOOL_KEYS: CvmfsToolKey[] = ['ducc-cvmfs', 'cvmfs-ducc'];
export const CVMFS_TOOL_TITLES: Record<CvmfsToolKey, string> = {
  'ducc-cvmfs': 'ducc convert, cvmfs publisher',
  'cvmfs-ducc': 'cvmfs_ducc convert (upstream DUCC)',
};

/** The repositories the bench makes end in this domain (never `.ducc.test`: test runs of other checkouts remove those). */
export const BENCH_REPOSITORY_DOMAIN = 'ducc.bench';

export interface CvmfsCall {
  subcommand: string;
  seconds: number;
  cpuSeconds: number;
}

export interface CvmfsMeasurement extends Measurement {
  /** Every cvmfs_server call, in order. */
  calls: CvmfsCall[];
  /** The ducc process's own peak RSS (KiB), without its children (cvmfs_server, swissknife); only for ducc-gitops. */
  ownMaxRssKiB?: number;
}

/** Calls that publish a revision: every `ingest` (a transaction and a publish of its own) and every `publish`. */
export function publishesOf(calls: CvmfsCall[]): number {
  return calls.filter((call) => call.subcommand === 'ingest' || call.subcommand === 'publish').length;
}

/** Why this section cannot run here (no stratum 0 can be made), or undefined. */
export async function cvmfsUnavailable(): Promise<string | undefined> {
  return stratum0Unavailable();
}

/** Why cvmfs_ducc cannot run here, or undefined. */
export async function cvmfsDuccUnavailable(): Promise<string | undefined> {
  return onPath('cvmfs_ducc').then(
    () => undefined,
    () => 'cvmfs_ducc is not installed (../shared/cvmfs/install.sh installs upstream DUCC)',
  );
}

/** Removes `*.ducc.bench` repositories whose bench process is gone (an earlier run that was killed). */
export async function removeStaleBenchRepositories(): Promise<void> {
  let names: string[];
  try {
    names = readdirSync('/etc/cvmfs/repositories.d');
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^[a-z0-9-]+-(\d+)-[0-9a-f]+\.ducc\.bench$/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || processAlive(pid)) continue;
    log(`removing ${name}, left by an earlier bench run`);
    await run('cvmfs_server', ['abort', '-f', name]).catch(() => undefined);
    await run('cvmfs_server', ['rmfs', '-f', name]).catch((error: unknown) => log(`cannot remove ${name}: ${(error as Error).message}`));
  }
}

/**
 * The logging shim: `cvmfs_server` in `dir`, which runs the real one under GNU time, appending
 * `<subcommand> <wall s> <user s> <system s>` for each call to `dir/calls`.
 */
async function writeShim(dir: string): Promise<{ dir: string; command: string; calls(): Promise<CvmfsCall[]> }> {
  await mkdir(dir, { recursive: true });
  const real = await onPath('cvmfs_server');
  const log = join(dir, 'calls');
  const command = join(dir, 'cvmfs_server');
  // "$1" is expanded by the shell into GNU time's format: subcommands are plain words (no '%').
  await writeFile(command, ['#!/bin/sh', `exec /usr/bin/time -a -o '${log}' -f "\${1:-none} %e %U %S" '${real}' "$@"`, ''].join('\n'), { mode: 0o755 });
  return {
    dir,
    command,
    calls: async () =>
      (await readFile(log, 'utf8').catch(() => ''))
        .split('\n')
        .map((line) => /^(\S+) ([\d.]+) ([\d.]+) ([\d.]+)$/.exec(line.trim()))
        .filter((match) => match !== null)
        .map((match) => ({ subcommand: match[1]!, seconds: Number(match[2]), cpuSeconds: Number(match[3]) + Number(match[4]) })),
  };
}

/**
 * One run of `tool` converting `image` into a new repository, removed afterwards. `scratch` is where the
 * tools keep their temporary files (ducc-gitops's staging, DUCC's -t).
 */
export async function measureCvmfs(tool: CvmfsToolKey, image: BenchImage, ctx: ToolContext, scratch: string): Promise<CvmfsMeasurement> {
  const out = join(ctx.workDir, `${tool}-${image.key}`);
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const temp = join(scratch, `${tool}-${image.key}-${process.pid}`);
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  const { repository, remove } = await makeRepository(tool === 'ducc-cvmfs' ? 'bench-ducc' : 'bench-cvmfsducc', { domain: BENCH_REPOSITORY_DOMAIN });
  try {
    const shim = await writeShim(join(out, 'shim'));
    const recipe = join(out, 'recipe.yaml');
    await writeFile(
      recipe,
      ['version: 1', 'user: bench', `cvmfs_repo: '${repository.name}'`, 'input:', `  - '${imageUrl(ctx.registryHost, image)}'`, ''].join('\n'),
    );
    const env = { ...duccEnv(ctx), PATH: `${shim.dir}:${process.env['PATH'] ?? ''}` };
    await run('sync', []);
    let measurement: Measurement;
    let ownMaxRssKiB: number | undefined;
    let output = '';
    if (tool === 'ducc-cvmfs') {
      const config = join(out, 'ducc.yaml');
      await writeFile(
        config,
        ['publisher:', '  kind: cvmfs', `  cvmfsServer: ${shim.command}`, `  stagingDir: ${join(temp, 'staging')}`, `  lockDir: ${out}`, ''].join('\n'),
      );
      const rssFile = join(out, 'rss');
      measurement = await measureCommand(
        process.execPath,
        [
          ...duccNodeFlags(),
          '--import',
          join(REPO_ROOT, 'bench/lib/rss-probe.js'),
          join(REPO_ROOT, 'bin/ducc.js'),
          'convert',
          recipe,
          '--config',
          config,
          '--skip-thin-image',
        ],
        { cwd: REPO_ROOT, env: { ...env, BENCH_RSS_FILE: rssFile }, onOutput: (text) => (output = text) },
      );
      if (!/\b1 converted, 0 up to date, 0 failed\b/.test(output)) throw new Error(`ducc convert did not report one conversion:\n${output.slice(-4000)}`);
      ownMaxRssKiB = Number((await readFile(rssFile, 'utf8')).trim());
    } else {
      measurement = await measureCommand('cvmfs_ducc', ['convert', '--skip-thin-image', '--skip-podman', '--temporary-dir', temp, recipe], {
        cwd: out,
        env: { ...env, DUCC_TMP_DIR: temp },
        onOutput: (text) => (output = text),
      });
    }
    // Both tools must have published the image under its public name (cvmfs_ducc exits 0 when an image fails).
    const link = join(repository.mount, ctx.registryHost, `${image.repository}:${image.tag}`);
    const target = await stat(link).catch(() => undefined);
    if (!target?.isDirectory()) throw new Error(`${tool} left no public name ${link} for ${image.key}:\n${output.slice(-3000)}`);
    const calls = await shim.calls();
    return { ...measurement, calls, ...(ownMaxRssKiB === undefined ? {} : { ownMaxRssKiB }) };
  } finally {
    await remove().catch((error: unknown) => log(`cannot remove repository ${repository.name}: ${(error as Error).message}`));
    await rm(out, { recursive: true, force: true });
    await rm(temp, { recursive: true, force: true });
  }
}

/** Whether cvmfs_ducc can convert this image at all (it cannot read zstd layers). */
export function cvmfsDuccSupports(image: BenchImage): string | undefined {
  return image.layout.layers.some((layer) => layer.compression === 'zstd') ? 'n/a: cvmfs_ducc (DUCC 2.12) cannot unpack zstd layers' : undefined;
}

export interface CvmfsToolResult {
  runs: CvmfsMeasurement[];
  error?: string;
  unsupported?: string;
}

export interface CvmfsSection {
  /** Why no stratum 0 could be made (the section did not run). */
  unavailable?: string;
  images: Partial<Record<ImageKey, Partial<Record<CvmfsToolKey, CvmfsToolResult>>>>;
}
