/**
 * The gc plan of a large repository: a synthetic directory-publisher repository with N published images
 * (public name, DUCC manifest, flat tree) sharing layers, plus N/2 flat trees and their own layers that
 * nothing references any more (tags that moved). Measured: `ducc gc --dry-run` as a child process
 * (Node start-up included) and the in-process plan (collectGarbage with dryRun). The in-process run goes
 * through a publisher that records every file it reads: only DUCC manifests, layers.json files and the
 * schedule may be read, never a file of an image.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { collectGarbage } from '../../src/gc/collect.ts';
import { formatDuccManifest } from '../../src/metadata/ducc-manifest.ts';
import { formatLayersJson } from '../../src/metadata/layer-metadata.ts';
import { DirectoryPublisher } from '../../src/publish/directory-publisher.ts';
import { measureCommand, type Measurement } from './measure.ts';
import { REPO_ROOT, log, secondsSince } from './util.ts';

export interface GcPlanResult {
  images: number;
  unreferencedFlats: number;
  layers: number;
  /** Items the plan found to remove (flat trees and layers). */
  garbage: number;
  buildSeconds: number;
  cli: Measurement[];
  inProcess: { seconds: number; filesRead: number; readsByName: Record<string, number> }[];
}

const REPO = 'gc-bench.example.org';
const REGISTRY = 'registry.bench.example.org';
/** Files of the image in each layer and flat tree: what the plan must never read. */
const FILES_PER_TREE = 8;

const hex = (text: string) => createHash('sha256').update(text).digest('hex');

/** Writes the synthetic repository under `root/REPO`. */
async function buildRepository(root: string, images: number, unreferenced: number): Promise<{ layers: number }> {
  const repo = join(root, REPO);
  const layerDigests = new Set<string>();
  const tree = async (dir: string, label: string) => {
    await mkdir(join(dir, 'usr/bin'), { recursive: true });
    for (let f = 0; f < FILES_PER_TREE; f++) await writeFile(join(dir, 'usr/bin', `tool-${f}`), `${label} ${f}\n`);
  };
  const layer = async (name: string) => {
    const h = hex(`layer ${name}`);
    if (layerDigests.has(h)) return `sha256:${h}`;
    layerDigests.add(h);
    const dir = join(repo, '.layers', h.slice(0, 2), h);
    await tree(join(dir, 'layerfs'), name);
    await mkdir(join(dir, '.metadata'), { recursive: true });
    await writeFile(
      join(dir, '.metadata', 'layers.json'),
      formatLayersJson({ diffId: `sha256:${hex(`diff ${name}`)}`, compressedDigest: `sha256:${h}`, diffSize: 10_000 + name.length, created: new Date(0) }),
    );
    return `sha256:${h}`;
  };
  const image = async (i: number, published: boolean) => {
    // Layers shared as in a real repository: 5 bases, 50 middles, one layer of its own.
    const layers = [await layer(`base-${i % 5}`), await layer(`middle-${i % 50}`), await layer(`own-${published ? 'p' : 'u'}-${i}`)];
    const config = hex(`config ${published ? 'p' : 'u'} ${i}`);
    const flat = `.flat/${config.slice(0, 2)}/${config}`;
    await tree(join(repo, flat), `image ${i}`);
    if (!published) return;
    const name = `${REGISTRY}/team-${i % 20}/app-${i}:v${i % 7}`;
    await mkdir(join(repo, '.metadata', name), { recursive: true });
    await writeFile(
      join(repo, '.metadata', name, 'manifest.json'),
      formatDuccManifest({ config: { size: 100, digest: `sha256:${config}` }, layers: layers.map((digest) => ({ size: 1000, digest })) }),
    );
    await mkdir(join(repo, REGISTRY, `team-${i % 20}`), { recursive: true });
    await symlink(`../../${flat}`, join(repo, name));
  };
  for (let i = 0; i < images; i++) await image(i, true);
  for (let i = 0; i < unreferenced; i++) await image(i, false);
  return { layers: layerDigests.size };
}

/** A directory publisher that counts what it is asked to read. */
class CountingPublisher extends DirectoryPublisher {
  readonly reads: string[] = [];
  override readFile(relPath: string): Promise<Buffer | undefined> {
    this.reads.push(relPath);
    return super.readFile(relPath);
  }
}

export async function measureGcPlan(workDir: string, runs: number, images: number): Promise<GcPlanResult> {
  const unreferenced = Math.floor(images / 2);
  const root = join(workDir, 'gc-repository');
  log(`building a synthetic repository of ${images} images and ${unreferenced} unreferenced flat trees`);
  const started = process.hrtime.bigint();
  const { layers } = await buildRepository(root, images, unreferenced);
  const result: GcPlanResult = { images, unreferencedFlats: unreferenced, layers, garbage: 0, buildSeconds: secondsSince(started), cli: [], inProcess: [] };
  for (let r = 0; r < runs; r++) {
    const publisher = new CountingPublisher({ root, repository: REPO, sync: false });
    const t0 = process.hrtime.bigint();
    const report = await collectGarbage(publisher, { gracePeriodMs: 0, dryRun: true });
    const seconds = secondsSince(t0);
    const readsByName: Record<string, number> = {};
    for (const path of publisher.reads) {
      const name = path.split('/').at(-1)!;
      if (!['manifest.json', 'layers.json', 'gc-schedule.json'].includes(name)) throw new Error(`the gc plan read ${path}, which is not metadata`);
      readsByName[name] = (readsByName[name] ?? 0) + 1;
    }
    const expected = unreferenced * 2; // each unreferenced image: its flat tree and its own layer
    if (report.removed.length !== expected) throw new Error(`the gc plan found ${report.removed.length} items to remove, expected ${expected}`);
    result.garbage = report.removed.length;
    result.inProcess.push({ seconds, filesRead: publisher.reads.length, readsByName });
    log(`gc plan in-process: ${seconds.toFixed(2)} s, ${report.removed.length} items, ${publisher.reads.length} files read`);
    let output = '';
    const m = await measureCommand(process.execPath, [join(REPO_ROOT, 'bin/ducc.js'), 'gc', REPO, '--repo-root', root, '--dry-run', '--grace-period', '0'], {
      onOutput: (text) => (output = text),
    });
    if (!output.includes(`dry run, nothing changed: ${expected} would be removed`)) throw new Error(`unexpected ducc gc output:\n${output.slice(-2000)}`);
    result.cli.push(m);
    log(`ducc gc --dry-run: ${m.seconds.toFixed(2)} s`);
  }
  return result;
}
