/**
 * Test support: the property test of garbage collection. A seeded random sequence of steps — tags moved
 * in a real registry, conversions, image removals, gc with random grace periods on an injected clock,
 * and crashes: `ducc convert` and `ducc gc` processes SIGKILLed at a random moment, and a conversion and
 * a gc running at once — checked after every step:
 *
 * - every public name resolves, and every published manifest's layers are there;
 * - a gc removes nothing that was reachable before it, and nothing before its grace period has passed
 *   since the schedule first recorded it;
 * - each tag last converted without a crash points at the flat trees of the image converted;
 *
 * and at the end, two gc runs with no grace period converge: the second removes nothing, and what is
 * left is exactly what is reachable, with no staging and an empty schedule.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { runConversion } from '../../src/cli/run-conversion.ts';
import { collectGarbage } from '../../src/gc/collect.ts';
import { deleteImages, nameOf } from '../../src/gc/images.ts';
import { GC_SCHEDULE_PATH, scanRepository } from '../../src/gc/scan.ts';
import { parseSchedule } from '../../src/gc/schedule.ts';
import type { Publisher } from '../../src/publish/publisher.ts';
import { parseImageReference } from '../../src/wishlist/image-reference.ts';
import { parseWishlist } from '../../src/wishlist/wishlist.ts';
import { startCli } from '../integration/cli/cli-support.ts';
import { buildTar } from './build-tar.ts';
import { buildImage, pushImage, type BuiltImage } from './direct-push.ts';
import { reachablePresent, repositoryProblems } from './gc-repo.ts';

export interface PropertyWorld {
  registryHost: string;
  cvmfsRepo: string;
  /** A fresh publisher on the repository (a new one after each crash, as a new process would have). */
  publisher(): Publisher;
  /** What selects the repository on the command line: `--repo-root DIR` or `--config FILE`. */
  publisherArgs: string[];
  /** Where a wish list file may be written. */
  workDir: string;
  /** Conversion flags for runConversion (repoRoot or config). */
  conversionFlags: { repoRoot?: string; config?: string };
  /** Staging directories that must be empty at the end. */
  stagingDirs: string[];
  logger: Logger;
}

const TAGS = ['prop/app:1', 'prop/app:2', 'prop/lib:1'];
const HOUR = 3600_000;

/** Eight images sharing some layers, then an index of two platforms (the last). */
export async function propertyImages(): Promise<BuiltImage[]> {
  const base = await buildTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/base', content: 'base\n' },
  ]);
  const own = (name: string) => buildTar([{ name, content: `${name}\n`.repeat(50) }]);
  const shared = await own('shared');
  const plain: BuiltImage[] = [];
  for (let i = 0; i < 8; i++) {
    // Every image has a layer of its own; some share a second one, most the base.
    const layers = [...(i % 4 === 3 ? [] : [base]), ...(i % 3 === 0 ? [shared] : []), await own(`own-${i}`)];
    plain.push(buildImage([{ layers, config: { Cmd: [`image ${i}`] } }]));
  }
  return [
    ...plain,
    buildImage([
      { layers: [base, await own('amd64')], platform: { os: 'linux', architecture: 'amd64' } },
      { layers: [base, await own('arm64')], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]),
  ];
}

/** mulberry32: a small seeded PRNG, so that a failing sequence can be replayed from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Step = 'push' | 'move' | 'convert' | 'delete' | 'gc' | 'crash-convert' | 'crash-gc' | 'convert-and-gc';

export async function runGcProperty(
  world: PropertyWorld,
  images: BuiltImage[],
  options: { seed: number; steps: number; weights: Partial<Record<Step, number>>; cleanup: { after(fn: () => unknown): void } },
): Promise<string[]> {
  const rand = random(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const history: string[] = [];
  const fail = (message: string): never => assert.fail(`seed ${options.seed}, after ${history.join(' → ')}: ${message}`);
  const registryTag = new Map<string, number>();
  /** What each tag was last converted from; undefined when a crash left it unknown. */
  const published = new Map<string, number | undefined>();
  let clock = Date.now();

  const image = (tag: string) => parseImageReference(`http://${world.registryHost}/${tag}`);
  const push = async (tag: string, index: number) => {
    const [repository, reference] = tag.split(':') as [string, string];
    await pushImage(world.registryHost, repository, reference, images[index]!);
    registryTag.set(tag, index);
  };
  const wishlistFile = async (tags: string[]) => {
    const { writeFile } = await import('node:fs/promises');
    const file = `${world.workDir}/wishes-${history.length}.yaml`;
    await writeFile(
      file,
      ['version: 1', `cvmfs_repo: ${world.cvmfsRepo}`, 'input:', ...tags.map((tag) => `  - 'http://${world.registryHost}/${tag}'`)].join('\n'),
    );
    return file;
  };
  const check = async (what: string) => {
    const problems = await repositoryProblems(world.publisher());
    if (problems.length > 0) fail(`${what}: ${problems.join('; ')}`);
    const scan = await scanRepository(world.publisher());
    for (const [tag, index] of published) {
      if (index === undefined) continue;
      const name = scan.publicNames.find((n) => n.path === `${world.registryHost}/${tag}`);
      const expected = images[index]!.configDigests.map((digest) => `.flat/${digest.slice(7, 9)}/${digest.slice(7)}`).sort();
      if (name === undefined) fail(`${what}: ${tag} has no public name`);
      else if (JSON.stringify(name.keeps) !== JSON.stringify(expected))
        fail(`${what}: ${tag} resolves to ${name.keeps.join(', ')}, not ${expected.join(', ')}`);
    }
  };
  const convertInProcess = async (tags: string[]) => {
    if (tags.length === 0) return;
    const text = ['version: 1', `cvmfs_repo: ${world.cvmfsRepo}`, 'input:', ...tags.map((tag) => `  - 'http://${world.registryHost}/${tag}'`)].join('\n');
    const summary = await runConversion(parseWishlist(text, 'w.yaml'), { ...world.conversionFlags, skipThinImage: true, multiArch: true }, {}, world.logger);
    if (summary.failed > 0) fail(`conversion of ${tags.join(' ')} failed: ${summary.failures.map((f) => f.message).join('; ')}`);
    for (const tag of tags) published.set(tag, registryTag.get(tag));
  };
  const gcInProcess = async (graceMs: number) => {
    const publisher = world.publisher();
    const before = await reachablePresent(publisher);
    const schedule = parseSchedule(await publisher.readFile(GC_SCHEDULE_PATH), 'schedule');
    const now = clock;
    const report = await collectGarbage(publisher, { gracePeriodMs: graceMs, now: () => now, batchSize: 2, logger: world.logger });
    for (const item of report.removed) {
      if (item.kind === 'staging') continue;
      if (before.has(item.path)) fail(`gc removed ${item.path}, which was reachable`);
      const since = schedule.get(item.path)?.since ?? now;
      if (since + graceMs > now)
        fail(`gc removed ${item.path} before its grace period: first seen ${new Date(since).toISOString()}, now ${new Date(now).toISOString()}`);
    }
    const after = await scanRepository(publisher);
    const present = new Set([...after.flats, ...after.layers]);
    for (const item of before) if (!present.has(item)) fail(`${item} was reachable before the gc and is gone`);
    return report;
  };
  /** Runs the CLI and SIGKILLs it after a random delay (it may have ended by then). */
  const crashCli = async (args: string[]) => {
    const running = startCli(args);
    options.cleanup.after(() => running.child.kill('SIGKILL'));
    const delay = Math.floor(rand() * 900);
    const timer = setTimeout(() => running.child.kill('SIGKILL'), delay);
    const result = await running.done;
    clearTimeout(timer);
    return `${result.signal === 'SIGKILL' ? 'killed' : `exit ${result.code}`} after ≤${delay} ms`;
  };

  for (const tag of TAGS) await push(tag, Math.floor(rand() * (images.length - 1)));
  let removedInProcess = 0;
  const weights = Object.entries(options.weights) as [Step, number][];
  const total = weights.reduce((sum, [, w]) => sum + w, 0);
  for (let i = 0; i < options.steps; i++) {
    let roll = rand() * total;
    const step = weights.find(([, w]) => (roll -= w) < 0)?.[0] ?? 'convert';
    clock += Math.floor(rand() * 3) * HOUR;
    let note = '';
    switch (step) {
      case 'push':
      case 'move': {
        const tag = pick(TAGS);
        // The multi-platform index (last) now and then: a tag that held it keeps its .multiarch/ names.
        const choices = [...images.keys()].filter((index) => index !== registryTag.get(tag));
        const index = rand() < 0.2 && choices.includes(images.length - 1) ? images.length - 1 : pick(choices.filter((i) => i < images.length - 1));
        await push(tag, index);
        // A move: the tag is converted at once, leaving its previous image behind.
        if (step === 'move') await convertInProcess([tag]);
        note = `${tag}=${index}`;
        break;
      }
      case 'convert': {
        const tags = TAGS.filter(() => rand() < 0.6);
        if (tags.length === 0) tags.push(pick(TAGS));
        await convertInProcess(tags);
        note = tags.join(',');
        break;
      }
      case 'delete': {
        const tags = [...published.keys()];
        if (tags.length === 0) break;
        const tag = pick(tags);
        const publisher = world.publisher();
        await publisher.recover(); // as ducc delete-image does at its start
        await deleteImages(publisher, [nameOf(image(tag))]);
        published.delete(tag);
        note = tag;
        break;
      }
      case 'gc': {
        const grace = pick([0, HOUR, 2 * HOUR]);
        const report = await gcInProcess(grace);
        removedInProcess += report.removed.length;
        note = `grace ${grace / HOUR}h: ${report.removed.length} removed, ${report.pending.length} pending`;
        break;
      }
      case 'crash-convert': {
        const tag = pick(TAGS);
        note = `${tag} ${await crashCli(['convert', await wishlistFile([tag]), ...world.publisherArgs, '--skip-thin-image', '-m'])}`;
        published.set(tag, undefined);
        break;
      }
      case 'crash-gc':
        note = await crashCli(['gc', world.cvmfsRepo, ...world.publisherArgs, '--grace-period', '0']);
        break;
      case 'convert-and-gc': {
        const tag = pick(TAGS);
        const conversion = startCli(['convert', await wishlistFile([tag]), ...world.publisherArgs, '--skip-thin-image', '-m']);
        const gc = startCli(['gc', world.cvmfsRepo, ...world.publisherArgs, '--grace-period', '0']);
        options.cleanup.after(() => conversion.child.kill('SIGKILL'));
        options.cleanup.after(() => gc.child.kill('SIGKILL'));
        const [converted, collected] = await Promise.all([conversion.done, gc.done]);
        if (collected.code !== 0) fail(`gc beside a conversion failed: ${collected.stderr}`);
        // The conversion may lose the race (what it reused was removed meanwhile): it then publishes
        // nothing of its image, and the checks below hold all the same; the end converts it again.
        published.set(tag, converted.code === 0 ? registryTag.get(tag) : undefined);
        note = `${tag} convert exit ${converted.code}`;
        break;
      }
    }
    history.push(`${step}${note ? ` (${note})` : ''}`);
    // What the next process would do first: abort a transaction a killed one left open.
    if (step === 'crash-convert' || step === 'crash-gc') await world.publisher().recover();
    await check(step);
  }

  // Convergence: every image is converted again (undoing what crashes left unknown), then two gc runs.
  await convertInProcess(TAGS.filter((tag) => published.has(tag)));
  const end = clock + 1000 * HOUR;
  const publisher = world.publisher();
  const last = await collectGarbage(publisher, { gracePeriodMs: 0, now: () => end });
  history.push(`final gc: ${last.removed.length} removed (${removedInProcess} by the gc steps)`);
  const second = await collectGarbage(world.publisher(), { gracePeriodMs: 0, now: () => end });
  if (second.removed.length > 0) fail(`a second gc still removed ${second.removed.map((item) => item.path).join(', ')}`);
  const scan = await scanRepository(world.publisher());
  const present = [...scan.flats, ...scan.layers].sort();
  assert.deepEqual(present, [...scan.reachable].filter((item) => present.includes(item)).sort(), `seed ${options.seed}: only what is reachable is left`);
  assert.deepEqual(second.pending, []);
  assert.deepEqual(parseSchedule(await world.publisher().readFile(GC_SCHEDULE_PATH), 'schedule'), new Map());
  for (const dir of world.stagingDirs) assert.deepEqual(await readdir(dir).catch(() => []), [], `staging ${dir} is empty`);
  await check('the end');
  return history;
}
