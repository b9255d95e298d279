/**
 * Where `ducc convert` spends its time: one conversion under `node --cpu-prof`, summarised as self time
 * by function and by area (our modules, npm packages, Node internals, garbage collection, idle), and
 * inclusive time of the main phases. "(idle)" is time the main thread waited, mostly for fs calls in
 * libuv's thread pool.
 */
import { readdir, readFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchImage } from './images.ts';
import { measureCommand, type Measurement } from './measure.ts';
import { duccConvertArgs, duccEnv, imageUrl, wishlistYaml, type ToolContext } from './tools.ts';
import { REPO_ROOT, run } from './util.ts';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  image: string;
  seconds: number;
  profiledMs: number;
  topSelf: { name: string; ms: number; share: number }[];
  areas: { name: string; ms: number; share: number }[];
  phases: { name: string; ms: number; share: number }[];
  /** Same conversion with more libuv threads, to show how much is fs latency. */
  threadPool: { size: number; seconds: number }[];
  /** The other JavaScript threads (the file writer): time not idle, and where it went. */
  otherThreads: { busyMs: number; topSelf: { name: string; ms: number; share: number }[] }[];
}

/**
 * Inclusive time by area: a sample counts for an area when any frame of its stack is in it. (Async
 * continuations start with a short stack, so this is "time in code of that area and what it calls
 * synchronously".)
 */
// The profile runs tsc's per-module dist/ (bench/lib/run-modules.js); the sources are matched too.
const PHASES: [string, RegExp][] = [
  ['unpack/extract-layer (unpacking layers)', /(src|dist)\/unpack\/extract-layer\.[jt]s/],
  ['unpack/file-writer (handing small files to the writer thread)', /(src|dist)\/unpack\/file-writer\.[jt]s/],
  ['unpack/flatten (reading layers back for the flat tree)', /(src|dist)\/unpack\/flatten\.[jt]s/],
  ['publish/directory-publisher (writing the flat tree, staging)', /(src|dist)\/publish\/directory-publisher\.[jt]s/],
  ['convert/layer-stream (digest check)', /(src|dist)\/convert\/layer-stream\.[jt]s/],
  ['unpack/tar-reader (reading layer tars)', /(src|dist)\/unpack\/tar-reader\.[jt]s/],
  ['tar-stream + streamx (tar packing: thin image)', /node_modules\/(tar-stream|streamx|b4a)\//],
  ['zlib (gunzip / zstd)', /node:zlib/],
  ['crypto hash (sha256)', /node:internal\/crypto\/hash/],
  ['fs/promises (async fs wrappers)', /node:internal\/fs\/promises/],
  ['undici (HTTP)', /node_modules\/undici\//],
  ['(garbage collector)', /^\(garbage collector\)$/],
  ['(idle): waiting, mostly for the libuv thread pool', /^\(idle\)$/],
  ['(program): native code outside JS', /^\(program\)$/],
];

function keyOf(frame: CpuProfileNode['callFrame']): string {
  const name = frame.functionName || '(anonymous)';
  if (frame.url === '') return name;
  const url = frame.url.replace(/^file:\/\//, '').replace(`${REPO_ROOT}/`, '');
  return `${name} ${url}:${frame.lineNumber + 1}`;
}

function areaOf(frame: CpuProfileNode['callFrame']): string {
  const name = frame.functionName;
  if (frame.url === '') return name.startsWith('(') ? name : `native: ${name || '(anonymous)'}`;
  const url = frame.url.replace(/^file:\/\//, '');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return `npm: ${pkg[1]}`;
  const src = /\/((?:src|dist)\/[^/]+\/[^/]+)$/.exec(url);
  if (src) return `ducc: ${src[1]}`;
  if (url.startsWith('node:')) return `node: ${url.slice(5).replace(/^internal\//, '')}`;
  return url;
}

export function summariseProfile(profile: CpuProfile): Omit<ProfileSummary, 'image' | 'seconds' | 'threadPool' | 'otherThreads'> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  // Duration of sample i: until the next sample (the last one gets the mean).
  const durations = profile.timeDeltas.slice(1).map((d) => Math.max(0, d));
  const mean = durations.length > 0 ? durations.reduce((a, b) => a + b, 0) / durations.length : 0;
  durations.push(mean);
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  const phases = new Map<string, number>();
  let total = 0;
  for (const [i, id] of profile.samples.entries()) {
    const us = durations[i] ?? 0;
    total += us;
    const node = byId.get(id)!;
    const key = keyOf(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + us);
    const area = areaOf(node.callFrame);
    areas.set(area, (areas.get(area) ?? 0) + us);
    // Inclusive phases: count each phase once per sample if any frame of the stack matches it.
    const hit = new Set<string>();
    for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) {
      const frameKey = keyOf(byId.get(cursor)!.callFrame);
      for (const [phase, pattern] of PHASES) if (pattern.test(frameKey)) hit.add(phase);
    }
    for (const phase of hit) phases.set(phase, (phases.get(phase) ?? 0) + us);
  }
  const list = (map: Map<string, number>, limit: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({ name, ms: us / 1000, share: total > 0 ? us / total : 0 }));
  return {
    profiledMs: total / 1000,
    topSelf: list(self, 25),
    areas: list(areas, 15),
    phases: PHASES.map(([name]) => ({ name, ms: (phases.get(name) ?? 0) / 1000, share: total > 0 ? (phases.get(name) ?? 0) / total : 0 })),
  };
}

export async function profileConversion(image: BenchImage, ctx: ToolContext, threadPoolSizes: number[]): Promise<ProfileSummary> {
  const dir = join(ctx.workDir, 'profile');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    const wishlist = join(dir, 'wishlist.yaml');
    await writeFile(wishlist, wishlistYaml([imageUrl(ctx.registryHost, image)]));
    const profiles = join(dir, 'cpuprofile');
    await run('sync', []);
    const measured = await measureCommand(
      process.execPath,
      ['--cpu-prof', `--cpu-prof-dir=${profiles}`, ...duccConvertArgs(wishlist, join(dir, 'cvmfs'), [], true)],
      { cwd: REPO_ROOT, env: duccEnv(ctx) },
    );
    // One file per JavaScript thread, CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main one.
    const files = (await readdir(profiles)).filter((name) => name.endsWith('.cpuprofile'));
    const mainFile = files.find((name) => /\.\d+\.0\.\d+\.cpuprofile$/.test(name));
    if (mainFile === undefined) throw new Error('node --cpu-prof wrote no profile of the main thread');
    const summary = summariseProfile(JSON.parse(await readFile(join(profiles, mainFile), 'utf8')) as CpuProfile);
    const otherThreads: ProfileSummary['otherThreads'] = [];
    for (const name of files.filter((f) => f !== mainFile)) {
      const other = summariseProfile(JSON.parse(await readFile(join(profiles, name), 'utf8')) as CpuProfile);
      const idle = other.topSelf.find((x) => x.name === '(idle)')?.ms ?? 0;
      otherThreads.push({ busyMs: other.profiledMs - idle, topSelf: other.topSelf.filter((x) => x.name !== '(idle)').slice(0, 6) });
    }
    await rm(join(dir, 'cvmfs'), { recursive: true, force: true });

    const threadPool: ProfileSummary['threadPool'] = [];
    for (const size of threadPoolSizes) {
      await run('sync', []);
      const m: Measurement = await measureCommand(process.execPath, duccConvertArgs(wishlist, join(dir, `cvmfs-${size}`)), {
        cwd: REPO_ROOT,
        env: { ...duccEnv(ctx), UV_THREADPOOL_SIZE: String(size) },
      });
      threadPool.push({ size, seconds: m.seconds });
      await rm(join(dir, `cvmfs-${size}`), { recursive: true, force: true });
    }
    return { image: `${image.key} (${image.title})`, seconds: measured.seconds, ...summary, threadPool, otherThreads };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
