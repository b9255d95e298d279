/**
 * The removal schedule of garbage collection, kept inside the repository (`.metadata/gc-schedule.json`,
 * modelled on DUCC's `remove-schedule.json`) so that every process and host that publishes the
 * repository sees the same one: for each garbage item, when a gc first found it unreferenced. An item
 * is removed once the grace period has passed since then; an item referenced again, or gone, leaves the
 * schedule at the next gc.
 *
 *     {"version":1,"items":{
 *     ".flat/ab/ab12…":{"since":"2026-05-01T10:00:00.000Z","bytes":0},
 *     ".layers/cd/cd34…":{"since":"2026-05-02T08:30:00.000Z","bytes":74157056}
 *     }}
 */
import { DuccError, errorMessage } from '../util/errors.ts';

export const SCHEDULE_VERSION = 1;

export interface ScheduledItem {
  /** When a gc first found the item unreferenced (milliseconds since the epoch). */
  since: number;
  /** Its bytes as found then (see plan.ts for what counts). */
  bytes: number;
}

export type Schedule = Map<string, ScheduledItem>;

/** Parses the schedule file; an absent file is an empty schedule. A damaged one is an error, never an empty schedule. */
export function parseSchedule(bytes: Buffer | undefined, where: string): Schedule {
  const schedule: Schedule = new Map();
  if (bytes === undefined) return schedule;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw damaged(where, `not JSON: ${errorMessage(error)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw damaged(where, 'not a JSON object');
  const { version, items } = value as { version?: unknown; items?: unknown };
  if (version !== SCHEDULE_VERSION) throw damaged(where, `unknown version ${JSON.stringify(version)} (this ducc-gitops reads version ${SCHEDULE_VERSION})`);
  if (typeof items !== 'object' || items === null || Array.isArray(items)) throw damaged(where, "'items' is not an object");
  for (const [path, item] of Object.entries(items)) {
    const { since, bytes: size } = (item ?? {}) as { since?: unknown; bytes?: unknown };
    const time = typeof since === 'string' ? Date.parse(since) : Number.NaN;
    if (Number.isNaN(time)) throw damaged(where, `item ${JSON.stringify(path)} has no valid 'since' time`);
    schedule.set(path, { since: time, bytes: typeof size === 'number' && Number.isSafeInteger(size) && size >= 0 ? size : 0 });
  }
  return schedule;
}

/** The file's bytes: one item per line, sorted, so that a change is easy to read in a diff. */
export function formatSchedule(schedule: Schedule): Buffer {
  const lines = [...schedule.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([path, item]) => `${JSON.stringify(path)}:${JSON.stringify({ since: new Date(item.since).toISOString(), bytes: item.bytes })}`);
  return Buffer.from(`{"version":${SCHEDULE_VERSION},"items":{${lines.length === 0 ? '' : `\n${lines.join(',\n')}\n`}}}\n`, 'utf8');
}

export function sameSchedule(a: Schedule, b: Schedule): boolean {
  if (a.size !== b.size) return false;
  for (const [path, item] of a) {
    const other = b.get(path);
    if (other === undefined || other.since !== item.since || other.bytes !== item.bytes) return false;
  }
  return true;
}

function damaged(where: string, why: string): DuccError {
  return new DuccError(
    'BOT_ERR_GC',
    `${where} is damaged (${why}); garbage collection stops rather than lose track of the grace periods: repair it, or remove it (every grace period then starts again)`,
    { temporary: false },
  );
}
