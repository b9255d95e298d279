import { DuccError } from '../util/errors.ts';
import type { GcItem, GcReport } from './collect.ts';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A grace period: a number of days as DUCC's `--grace-period <days>` takes it (`7`, `0`, `1.5`), or a
 * number with a unit `s`, `m`, `h`, `d` or `w` (`12h`, `30m`, `2w`).
 */
export function parseDuration(text: string, flag = '--grace-period'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$/.exec(text);
  if (match === null) throw new DuccError('BOT_ERR_CONFIG', `${flag} must be a number of days or a duration such as 12h, 30m, 2d or 1w, not '${text}'`);
  return Math.round(Number(match[1]) * UNITS[match[2] || 'd']!);
}

/** `12h`, `7d`, `90s`: the largest unit up to days that divides the duration. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNITS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function line(verb: string, item: GcItem): string {
  const since = item.kind === 'staging' ? 'of a process that is gone' : `unreferenced since ${new Date(item.since).toISOString()}`;
  return `${verb} ${item.kind} ${item.path} ${formatBytes(item.bytes)} (${since})`;
}

/** What `ducc gc` prints: one line per item removed (or that would be), then a summary line. */
export function formatGcReport(report: GcReport, repository: string): string[] {
  const lines: string[] = [];
  const verb = report.dryRun ? 'would remove' : 'removed';
  for (const item of report.removed) lines.push(line(verb, item));
  for (const name of report.dangling) lines.push(`warning: public name ${name} resolves to no flat tree or layer`);
  if (report.layersBlocked !== undefined) lines.push(`warning: no layer or metadata collected: ${report.layersBlocked}`);
  const pending =
    report.pending.length === 0
      ? 'nothing else in its grace period'
      : `${report.pending.length} in their grace period (${formatBytes(report.pendingBytes)}), the next due ${new Date(Math.min(...report.pending.map((item) => item.dueAt))).toISOString()}`;
  const content = `${report.publicNames} public names, ${report.manifests} manifests, ${report.flats} flat trees, ${report.layers} layers (${formatBytes(report.layerBytes)})`;
  const what = report.dryRun
    ? `dry run, nothing changed: ${report.removed.length} would be removed, ${formatBytes(report.removedBytes)} (${report.removedBytes} bytes)`
    : `${report.removed.length} removed, ${formatBytes(report.removedBytes)} reclaimed (${report.removedBytes} bytes) in ${report.publishes} publish${report.publishes === 1 ? '' : 'es'}`;
  lines.push(`gc ${repository}: ${what}; ${pending}; grace period ${formatDuration(report.gracePeriodMs)}; ${content}`);
  return lines;
}
