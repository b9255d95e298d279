/**
 * The ways of turning a pushed image into files that are measured side by side:
 *
 * - `ducc`:          node bin/ducc.js convert (layers + flat tree, directory publisher, --skip-thin-image)
 * - `ducc-layers`:   the same with --skip-flat (layers only)
 * - `ducc-layers-oci`: the same, the image read from its OCI layout on disk (`oci:DIR:TAG`), the blobs the
 *                    floors read: no download, as for them
 * - `skopeo-umoci`:  skopeo copy docker://… oci:DIR:TAG, then umoci unpack --image DIR:TAG BUNDLE
 * - `floor-verified`: for each layer blob (already on disk), one pipeline of C tools: the blob through `tee`
 *                    into `openssl dgst -sha256` and `gzip -dc` (zstd -dc for zstd), whose output goes through
 *                    `tee` into a second `openssl dgst -sha256` and `tar -x -C DIR`; both digests are checked
 *                    against the image's (the floor a converter that verifies is compared with)
 * - `floor`:         the same without the digests: gzip -dc BLOB | tar -x -C DIR (for information)
 *
 * and, for information, `node-verify` (node-verify.js): Node reading the same blobs, checking both
 * digests and decompressing, writing nothing — the least a converter in Node that verifies must spend.
 *
 * Every measurement starts with the page cache's dirty pages flushed (`sync`, not timed) and a fresh,
 * empty output directory, which is removed afterwards (not timed).
 */
import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { BenchImage } from './images.ts';
import { measureCommand, measurePipeline, measureVerifiedPipeline, type Measurement } from './measure.ts';
import { REPO_ROOT, run } from './util.ts';

export type ToolKey = 'ducc' | 'ducc-layers' | 'ducc-layers-oci' | 'ducc-disk' | 'skopeo-umoci' | 'floor-verified' | 'floor' | 'node-verify';
export const TOOL_KEYS: ToolKey[] = ['ducc', 'ducc-layers', 'ducc-layers-oci', 'ducc-disk', 'skopeo-umoci', 'floor-verified', 'floor', 'node-verify'];
/** The `ducc convert` rows. */
export const DUCC_TOOL_KEYS = ['ducc', 'ducc-layers', 'ducc-layers-oci', 'ducc-disk'] as const;
export type DuccToolKey = (typeof DUCC_TOOL_KEYS)[number];
/** The layers-only rows, each compared with the verified floor. */
export const LAYERS_ONLY_TOOL_KEYS = ['ducc-layers', 'ducc-layers-oci'] as const;

export const TOOL_TITLES: Record<ToolKey, string> = {
  ducc: 'ducc convert (layers + flat)',
  'ducc-layers': 'ducc convert --skip-flat (layers only)',
  'ducc-layers-oci': "ducc convert --skip-flat from the OCI layout (the floor's input)",
  'ducc-disk': 'ducc convert (layers + flat), outputs on disk',
  'skopeo-umoci': 'skopeo copy + umoci unpack',
  'floor-verified': 'sha256 + decompress | tar -x (verified floor)',
  floor: 'decompress | tar -x (unverified)',
  'node-verify': 'Node: read + verify + decompress only',
};

/** The tool cannot handle this image at all (e.g. umoci 0.4 and zstd layers): reported as n/a, not as a failure. */
export class UnsupportedError extends Error {}

export interface ToolContext {
  registryHost: string;
  /** Scratch directory for outputs (a tmpfs by default, see README). */
  workDir: string;
  /** A directory on a disk-backed filesystem, for the `ducc-disk` row (peak RSS into a disk, issue 19). */
  diskDir: string;
  /** An empty DOCKER_CONFIG so that no personal registry credentials are read. */
  dockerConfigDir: string;
}

export const CVMFS_REPO = 'bench.example.org';

export function wishlistYaml(entries: string[]): string {
  return ['version: 1', 'user: bench', `cvmfs_repo: '${CVMFS_REPO}'`, 'input:', ...entries.map((e) => `  - '${e}'`), ''].join('\n');
}

export function imageUrl(registryHost: string, image: { repository: string; tag: string }): string {
  return `http://${registryHost}/${image.repository}:${image.tag}`;
}

/**
 * The `ducc convert` command line (run with process.execPath). `perModule`: run tsc's per-module output
 * (bench/lib/run-modules.js) instead of bin/ducc.js and its bundle, for a profile by module.
 */
export function duccConvertArgs(wishlist: string, repoRoot: string, extra: string[] = [], perModule = false): string[] {
  const entry = perModule ? join(REPO_ROOT, 'bench/lib/run-modules.js') : join(REPO_ROOT, 'bin/ducc.js');
  return [...duccNodeFlags(), entry, 'convert', wishlist, '--repo-root', repoRoot, '--skip-thin-image', ...extra];
}

/**
 * Node's flags on bin/ducc.js's first line (`#!/usr/bin/env -S node FLAGS`): the bench runs
 * `node FLAGS bin/ducc.js`, as the program runs when started by its name (npm bin link, systemd units).
 */
export function duccNodeFlags(): string[] {
  const first = readFileSync(join(REPO_ROOT, 'bin/ducc.js'), 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\/usr\/bin\/env -S node((?: --?[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (match === null) throw new Error(`bin/ducc.js: cannot read Node's flags from its first line '${first}'`);
  return match[1]!.trim().split(/\s+/).filter(Boolean);
}

export function duccEnv(ctx: ToolContext): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: ctx.dockerConfigDir };
  delete env['NODE_OPTIONS'];
  return env;
}

export async function measureTool(tool: ToolKey, image: BenchImage, ctx: ToolContext): Promise<Measurement> {
  const out = join(tool === 'ducc-disk' ? ctx.diskDir : ctx.workDir, `${tool}-${image.key}`);
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  await run('sync', []);
  try {
    switch (tool) {
      case 'ducc':
      case 'ducc-layers':
      case 'ducc-layers-oci':
      case 'ducc-disk':
        return await measureDucc(tool, image, ctx, out);
      case 'skopeo-umoci':
        return await measureSkopeoUmoci(image, ctx, out);
      case 'floor-verified':
        return await measureVerifiedFloor(image, out);
      case 'floor':
        return await measureFloor(image, out);
      case 'node-verify':
        return await measureNodeVerify(image, out);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

async function measureDucc(tool: DuccToolKey, image: BenchImage, ctx: ToolContext, out: string): Promise<Measurement> {
  const wishlist = join(out, 'wishlist.yaml');
  // From the OCI layout: the same blob files the floors read (bench/.cache, in the page cache).
  const source = tool === 'ducc-layers-oci' ? `oci:${resolve(image.layout.dir)}:${image.layout.tag}` : imageUrl(ctx.registryHost, image);
  await writeFile(wishlist, wishlistYaml([source]));
  const repoRoot = join(out, 'cvmfs');
  const layersOnly = (LAYERS_ONLY_TOOL_KEYS as readonly ToolKey[]).includes(tool);
  let output = '';
  const measurement = await measureCommand(process.execPath, duccConvertArgs(wishlist, repoRoot, layersOnly ? ['--skip-flat'] : []), {
    cwd: REPO_ROOT,
    env: duccEnv(ctx),
    onOutput: (text) => (output = text),
  });
  if (!/\b1 converted, 0 up to date, 0 failed\b/.test(output)) throw new Error(`ducc convert did not report one conversion:\n${output.slice(-4000)}`);
  // Sanity: the public symlink (full conversion) or the layer directories (layers only) are there.
  const repo = join(repoRoot, CVMFS_REPO);
  if (!layersOnly) {
    const link = await lstat(join(repo, ctx.registryHost, `${image.repository}:${image.tag}`));
    if (!link.isSymbolicLink()) throw new Error('ducc convert left no public symlink');
  } else {
    for (const layer of image.layout.layers) {
      const hex = layer.digest.slice('sha256:'.length);
      if (!existsSync(join(repo, '.layers', hex.slice(0, 2), hex, 'layerfs'))) throw new Error(`ducc convert --skip-flat left no layerfs for ${layer.digest}`);
    }
  }
  return measurement;
}

async function measureSkopeoUmoci(image: BenchImage, ctx: ToolContext, out: string): Promise<Measurement> {
  const layout = join(out, 'oci');
  const bundle = join(out, 'bundle');
  const copy = await measureCommand('skopeo', [
    'copy',
    '--quiet',
    '--src-tls-verify=false',
    '--src-no-creds',
    `docker://${ctx.registryHost}/${image.repository}:${image.tag}`,
    `oci:${layout}:${image.tag}`,
  ]);
  const rootless = process.getuid?.() === 0 ? [] : ['--rootless'];
  let unpack: Measurement;
  try {
    unpack = await measureCommand('umoci', ['unpack', ...rootless, '--image', `${layout}:${image.tag}`, bundle]);
  } catch (error) {
    const message = (error as Error).message;
    if (image.layout.layers.some((l) => l.compression === 'zstd') && /not correct mediatype.*zstd/.test(message)) {
      throw new UnsupportedError('n/a: this umoci cannot unpack zstd layers ("blob is not correct mediatype")');
    }
    throw error;
  }
  return {
    seconds: copy.seconds + unpack.seconds,
    maxRssKiB: Math.max(copy.maxRssKiB, unpack.maxRssKiB),
    cpuSeconds: copy.cpuSeconds + unpack.cpuSeconds,
    steps: [
      { name: 'skopeo copy', ...copy },
      { name: 'umoci unpack', ...unpack },
    ],
  };
}

async function measureFloor(image: BenchImage, out: string): Promise<Measurement> {
  const steps: NonNullable<Measurement['steps']> = [];
  for (const [index, layer] of image.layout.layers.entries()) {
    const dir = join(out, `layer-${index + 1}`);
    await mkdir(dir);
    const decompressor = layer.compression === 'gzip' ? ['gzip', '-dc', layer.blobPath] : ['zstd', '-dcq', layer.blobPath];
    const step = await measurePipeline(decompressor, ['-x', '-f', '-', '-C', dir]);
    steps.push({ name: `layer ${index + 1}`, ...step });
  }
  return {
    seconds: steps.reduce((s, x) => s + x.seconds, 0),
    maxRssKiB: Math.max(...steps.map((s) => s.maxRssKiB)),
    cpuSeconds: steps.reduce((s, x) => s + x.cpuSeconds, 0),
    steps,
  };
}

async function measureVerifiedFloor(image: BenchImage, out: string): Promise<Measurement> {
  const steps: NonNullable<Measurement['steps']> = [];
  for (const [index, layer] of image.layout.layers.entries()) {
    const dir = join(out, `layer-${index + 1}`);
    await mkdir(dir);
    const decompressor = layer.compression === 'gzip' ? ['gzip', '-dc'] : ['zstd', '-dcq'];
    const step = await measureVerifiedPipeline(layer.blobPath, decompressor, ['-x', '-f', '-', '-C', dir]);
    if (step.blobDigest !== layer.digest) throw new Error(`layer ${index + 1}: openssl gave ${step.blobDigest}, the image says ${layer.digest}`);
    if (step.tarDigest !== layer.diffId) throw new Error(`layer ${index + 1}: openssl gave ${step.tarDigest} for the tar, the image says ${layer.diffId}`);
    steps.push({ name: `layer ${index + 1}`, seconds: step.seconds, maxRssKiB: step.maxRssKiB, cpuSeconds: step.cpuSeconds });
  }
  return {
    seconds: steps.reduce((s, x) => s + x.seconds, 0),
    maxRssKiB: Math.max(...steps.map((s) => s.maxRssKiB)),
    cpuSeconds: steps.reduce((s, x) => s + x.cpuSeconds, 0),
    steps,
  };
}

async function measureNodeVerify(image: BenchImage, out: string): Promise<Measurement> {
  const layers = join(out, 'layers.json');
  await writeFile(layers, JSON.stringify(image.layout.layers.map(({ blobPath, digest, diffId, compression }) => ({ blobPath, digest, diffId, compression }))));
  return await measureCommand(process.execPath, [join(REPO_ROOT, 'bench/lib/node-verify.js'), layers]);
}
