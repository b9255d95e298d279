import type { Plan, PlanEntry } from './plan.ts';

/** Report sections longer than this many lines are folded into <details>, as Atlantis does. */
export const MAX_UNFOLDED_LINES = 12;

/** Text from wish lists and registries is untrusted: keep it inside a code span, on one line. */
export function code(text: string): string {
  const clean = text
    .replace(/[\r\n]+/g, ' ')
    .replace(/`/g, "'")
    .slice(0, 300);
  return `\`${clean}\``;
}

/** One table cell: no newlines, no pipes, bounded length. */
function cell(text: string): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .replace(/\|/g, '\\|')
    .replace(/</g, '&lt;')
    .slice(0, 500);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function fold(summary: string, lines: string[]): string[] {
  if (lines.length <= MAX_UNFOLDED_LINES) return lines;
  return ['<details>', `<summary>${summary}</summary>`, '', ...lines, '', '</details>'];
}

const ICON: Record<PlanEntry['action'], string> = { add: '➕ add', update: '🔄 update', unchanged: '· unchanged', remove: '➖ remove', error: '❌ error' };

/** The merge-request report: problems in the file, then the plan of changed entries. */
export function renderPlanReport(plan: Plan, context: { file: string; sha: string }): string {
  const changed = plan.entries.filter((entry) => entry.action !== 'unchanged');
  const count = (action: PlanEntry['action']) => changed.filter((entry) => entry.action === action).length;
  const errors = plan.problems.filter((problem) => problem.severity === 'error');
  const newLayers = changed.reduce((sum, entry) => sum + entry.newLayers, 0);
  const reused = changed.reduce((sum, entry) => sum + entry.reusedLayers, 0);
  const bytes = changed.reduce((sum, entry) => sum + entry.downloadBytes, 0);
  const lines = [
    `### ducc-gitops plan for ${code(context.file)} at ${code(context.sha.slice(0, 12))}`,
    '',
    `**${count('add')} to add, ${count('update')} to update, ${count('remove')} to remove, ${count('error') + errors.length} failed** — ${newLayers} new layers (${formatBytes(bytes)} to download), ${reused} already published; ${plan.entries.length - changed.length} entries unchanged.${
      plan.reclaimBytes === undefined ? '' : ` The removals free ${formatBytes(plan.reclaimBytes)} once gc runs after the grace period.`
    }`,
    '',
  ];
  if (plan.problems.length > 0) {
    const problemLines = plan.problems.map((problem) => `- line ${problem.line}: **${problem.severity}**: ${cell(problem.message)}`);
    lines.push(`#### Problems in ${code(context.file)}`, '', ...fold(`${plan.problems.length} problems`, problemLines), '');
  }
  if (changed.length > 0) {
    const rows = changed.map((entry) => {
      const what = entry.action === 'error' ? cell(entry.error ?? 'failed') : entry.images.length > 1 ? `${entry.images.length} tags` : '';
      const layers = entry.action === 'remove' || entry.action === 'error' ? '' : `${entry.newLayers} / ${entry.reusedLayers}`;
      const download =
        entry.action === 'remove'
          ? entry.reclaimBytes === undefined
            ? ''
            : `frees ${formatBytes(entry.reclaimBytes)} after gc`
          : entry.action === 'error'
            ? ''
            : formatBytes(entry.downloadBytes);
      return `| ${ICON[entry.action]} | ${code(entry.input)} | ${entry.line || ''} | ${layers} | ${download} | ${what} |`;
    });
    lines.push('| | Image | Line | Layers new / reused | Download | Notes |', '|---|---|---|---|---|---|', ...rows);
    if (rows.length > MAX_UNFOLDED_LINES) {
      // Tables cannot be split by <details> mid-way: fold the whole table.
      const tableStart = lines.length - rows.length - 2;
      const table = lines.splice(tableStart);
      lines.push(...fold(`${changed.length} changed entries`, table));
    }
  } else {
    lines.push('No image changes.');
  }
  return lines.join('\n');
}

export interface PublishOutcomeLine {
  image: string;
  status: 'converted' | 'up-to-date' | 'failed' | 'removed';
  detail?: string;
  /** A failure that may go away when tried again later (network, registry 5xx or 429). */
  temporary?: boolean;
  /** Where a converted image is now, for the people who asked for it. */
  published?: PublishedImageDetails;
}

export interface PublishedImageDetails {
  /** `/cvmfs/<cvmfs_repo>/<registry>/<repository>:<tag>` */
  path: string;
  /** The flat tree's digest: the image's config digest (`.flat/<xx>/<hex>`). */
  flatDigest: string;
  /** The thin image pushed: `http(s)://registry/repository:tag` and its manifest digest. */
  thinImage?: { name: string; digest: string };
  newLayers: number;
  newLayerBytes: number;
  reusedLayers: number;
  reusedLayerBytes: number;
}

/** What a push (or a /reconvert) published, for the merged merge request's report. */
export function renderPublishReport(title: string, counts: string, outcomes: PublishOutcomeLine[]): string {
  const interesting = outcomes.filter((outcome) => outcome.status !== 'up-to-date');
  const rows = interesting.map((outcome) => `| ${outcome.status} | ${code(outcome.image)} | ${cell(outcome.detail ?? '')} |`);
  const lines = [`### ${title}`, '', `**${counts}**`, ''];
  if (rows.length > 0) lines.push(...fold(`${rows.length} images`, ['| Result | Image | Details |', '|---|---|---|', ...rows]));
  const published = interesting.filter((outcome) => outcome.published !== undefined);
  if (published.length > 0) {
    const blocks = published.flatMap((outcome) => ['', ...renderPublishedImage(outcome.image, outcome.published!)]);
    // Shown open for a few images (what the author of the merge request came for), folded beyond.
    const details = blocks.slice(1);
    lines.push(
      '',
      ...(published.length <= 3
        ? details
        : ['<details>', `<summary>where to find the ${published.length} converted images</summary>`, '', ...details, '', '</details>']),
    );
  }
  return lines.join('\n');
}

/** One converted image: the path with an `apptainer exec` line, the thin image with a `docker run` line, the flat tree, the layers. */
function renderPublishedImage(image: string, details: PublishedImageDetails): string[] {
  const lines = [`#### ${code(image)}`, '', `- Path: ${code(details.path)}`, '', '  ```sh', `  apptainer exec ${shellWord(details.path)} /bin/sh`, '  ```'];
  if (details.thinImage !== undefined) {
    const pinned = `${details.thinImage.name.replace(/^https?:\/\//, '')}@${details.thinImage.digest}`;
    lines.push(`- Thin image: ${code(pinned)} (runs with the CernVM-FS graph driver)`, '', '  ```sh', `  docker run --rm -it ${shellWord(pinned)}`, '  ```');
  }
  lines.push(
    `- Flat tree: ${code(details.flatDigest)}`,
    `- Layers: ${details.newLayers} new (${formatBytes(details.newLayerBytes)}), ${details.reusedLayers} reused (${formatBytes(details.reusedLayerBytes)})`,
  );
  return lines;
}

/** A path or image name from a wish list, in a code block: only the characters of names and paths, else quoted. */
function shellWord(text: string): string {
  const clean = text.replace(/[\r\n`]/g, '');
  return /^[\w./:@+-]+$/.test(clean) ? clean : `'${clean.replace(/'/g, `'\\''`)}'`;
}
