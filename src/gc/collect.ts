/**
 * `ducc gc`: removes what no public name, published manifest or thin image needs any more (scan.ts),
 * once it has been unreferenced for the grace period (schedule.ts), in batched publishes.
 *
 * Safety against conversions running at the same time: a real run decides and removes under the
 * publisher's exclusive lock (`Publisher.exclusive`), reading the repository again there; every
 * conversion publishes its flat tree, metadata and public name in a transaction that takes the same
 * lock and first checks (`Transaction.requires`) that the layers and the flat tree it references are
 * still there. So either the conversion publishes first, and the rescan under the lock sees its
 * references, or the gc removes first, and the conversion publishes nothing and is redone by the next
 * run. A crash leaves each batch published or not; nothing reachable is ever removed, so every public
 * name resolves, and the next gc starts from what is there.
 */
import type { Logger } from 'pino';
import type { Publisher } from '../publish/publisher.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { formatSchedule, parseSchedule, sameSchedule, type Schedule } from './schedule.ts';
import { GC_SCHEDULE_PATH, scanRepository, type RepositoryScan } from './scan.ts';
import { layerBytes, localTreeBytes, treeBytes } from './sizes.ts';

/** DUCC 2.11 kept unreferenced content 30 days (counted from its mtime), 2.12 defaults to 0; see README. */
export const DEFAULT_GRACE_PERIOD_MS = 7 * 24 * 3600 * 1000;
/** Directories removed per publish (`cvmfs_server ingest -d` of each; DUCC removed 50 per ingest). */
export const DEFAULT_BATCH_SIZE = 500;

export type GcItemKind = 'flat tree' | 'layer' | 'metadata' | 'staging';

export interface GcItem {
  /** Repository-relative, or an absolute path for staging. */
  path: string;
  kind: GcItemKind;
  /** Layers: their recorded size; flat trees: 0 (their files are their layers' files); others: their files. */
  bytes: number;
  /** When a gc first found it unreferenced. */
  since: number;
  /** When it may be removed. */
  dueAt: number;
}

export interface GcOptions {
  /** How long an item stays after a gc first found it unreferenced. */
  gracePeriodMs: number;
  /** Print what would go; change nothing (no lock, no schedule update, no recovery). */
  dryRun?: boolean;
  /** Directories removed per publish. */
  batchSize?: number;
  /** The clock (tests inject one). */
  now?: () => number;
  /** Absolute names under which symlinks may point into the repository, e.g. `/cvmfs/<cvmfs_repo>`. */
  absoluteRoots?: string[];
  logger?: Logger;
}

export interface GcReport {
  dryRun: boolean;
  /** When the plan was made. */
  at: number;
  gracePeriodMs: number;
  publicNames: number;
  /** Public names that resolve to nothing (not gc's doing: reported for the operator). */
  dangling: string[];
  manifests: number;
  flats: number;
  layers: number;
  /** Bytes of every layer present (repository content), and of those nothing needs. */
  layerBytes: number;
  /** Removed, or with `dryRun` what a real run would remove now. */
  removed: GcItem[];
  removedBytes: number;
  /** Garbage still in its grace period. */
  pending: GcItem[];
  pendingBytes: number;
  /** Why no layer was taken for garbage in this run, if so. */
  layersBlocked?: string;
  /** Publishes made (0 in a dry run). */
  publishes: number;
}

/** What a scan and the schedule say: the garbage, and the schedule as of `now`. */
interface GcPlan {
  scan: RepositoryScan;
  due: GcItem[];
  pending: GcItem[];
  schedule: Schedule;
  scheduleChanged: boolean;
  layerBytes: number;
}

/** Runs a garbage collection (or a dry run) of one repository; see the module comment. */
export async function collectGarbage(publisher: Publisher, options: GcOptions): Promise<GcReport> {
  const now = options.now?.() ?? Date.now();
  const log = options.logger;
  const staging = await measureStaging(publisher, now);
  if (options.dryRun) {
    const plan = await planGarbage(publisher, now, options);
    return report(plan, now, options, [...plan.due, ...staging], 0);
  }
  // A transaction a crashed gc (or conversion) left open is aborted; stale staging goes with it.
  await publisher.recover();
  const batchSize = Math.max(1, options.batchSize ?? DEFAULT_BATCH_SIZE);
  return publisher.exclusive(async () => {
    const plan = await planGarbage(publisher, now, options);
    const removed: GcItem[] = [...staging];
    let publishes = 0;
    const schedule = new Map(plan.schedule);
    if (plan.due.length === 0 && plan.scheduleChanged) {
      await publisher.transaction((tx) => tx.writeFile(GC_SCHEDULE_PATH, formatSchedule(schedule)));
      publishes++;
    }
    for (let start = 0; start < plan.due.length; start += batchSize) {
      const batch = plan.due.slice(start, start + batchSize);
      for (const item of batch) schedule.delete(item.path);
      try {
        await publisher.transaction(async (tx) => {
          for (const item of batch) await tx.remove(item.path);
          // In the same publish: the schedule without what this batch removes.
          await tx.writeFile(GC_SCHEDULE_PATH, formatSchedule(schedule));
        });
      } catch (error) {
        const done = removed.filter((item) => item.kind !== 'staging');
        throw new DuccError(
          'BOT_ERR_GC',
          `garbage collection of ${publisher.description} failed after removing ${done.length} of ${plan.due.length} items (${sum(done)} bytes): ${errorMessage(error)}`,
          { cause: error },
        );
      }
      publishes++;
      removed.push(...batch);
      log?.info({ removed: batch.length, bytes: sum(batch), done: removed.length, of: plan.due.length }, 'garbage removed');
    }
    return report(plan, now, options, removed, publishes);
  });
}

/** Reads the repository and the schedule; decides nothing is changed. */
async function planGarbage(publisher: Publisher, now: number, options: GcOptions): Promise<GcPlan> {
  const [scan, scheduleBytes] = await Promise.all([
    scanRepository(publisher, options.absoluteRoots ? { absoluteRoots: options.absoluteRoots } : {}),
    publisher.readFile(GC_SCHEDULE_PATH),
  ]);
  const previous = parseSchedule(scheduleBytes, `${publisher.description}: ${GC_SCHEDULE_PATH}`);
  const sizes = await layerBytes(publisher, scan.layers);
  const candidates: { path: string; kind: GcItemKind; bytes: () => Promise<number> }[] = [];
  for (const flat of scan.flats) if (!scan.reachable.has(flat)) candidates.push({ path: flat, kind: 'flat tree', bytes: async () => 0 });
  if (scan.layersBlocked === undefined) {
    for (const layer of scan.layers) if (!scan.reachable.has(layer)) candidates.push({ path: layer, kind: 'layer', bytes: async () => sizes.get(layer) ?? 0 });
    for (const dir of scan.metadataWithoutManifest) candidates.push({ path: dir, kind: 'metadata', bytes: () => treeBytes(publisher, dir) });
  } else {
    options.logger?.warn({ reason: scan.layersBlocked }, 'no layer is collected in this run');
  }
  const schedule: Schedule = new Map();
  const due: GcItem[] = [];
  const pending: GcItem[] = [];
  for (const candidate of candidates) {
    const known = previous.get(candidate.path);
    const since = known?.since ?? now;
    const bytes = await candidate.bytes();
    schedule.set(candidate.path, { since, bytes });
    const item: GcItem = { path: candidate.path, kind: candidate.kind, bytes, since, dueAt: since + options.gracePeriodMs };
    (item.dueAt <= now ? due : pending).push(item);
  }
  let total = 0;
  for (const size of sizes.values()) total += size;
  return { scan, due, pending, schedule, scheduleChanged: !sameSchedule(previous, schedule), layerBytes: total };
}

/** Staging of processes that are gone: removed by `recover()`, at once (it is outside the repository). */
async function measureStaging(publisher: Publisher, now: number): Promise<GcItem[]> {
  const items: GcItem[] = [];
  for (const path of await publisher.staleStaging()) items.push({ path, kind: 'staging', bytes: await localTreeBytes(path), since: now, dueAt: now });
  return items;
}

function report(plan: GcPlan, now: number, options: GcOptions, removed: GcItem[], publishes: number): GcReport {
  const { scan } = plan;
  return {
    dryRun: options.dryRun ?? false,
    at: now,
    gracePeriodMs: options.gracePeriodMs,
    publicNames: scan.publicNames.length,
    dangling: scan.publicNames.filter((name) => name.keeps.length === 0).map((name) => name.path),
    manifests: scan.manifests.length,
    flats: scan.flats.length,
    layers: scan.layers.length,
    layerBytes: plan.layerBytes,
    removed,
    removedBytes: sum(removed),
    pending: plan.pending,
    pendingBytes: sum(plan.pending),
    ...(scan.layersBlocked === undefined ? {} : { layersBlocked: scan.layersBlocked }),
    publishes,
  };
}

function sum(items: readonly GcItem[]): number {
  return items.reduce((total, item) => total + item.bytes, 0);
}
