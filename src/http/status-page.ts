import type { BotConfig } from '../config/bot-config.ts';
import { formatBytes } from '../gc/format.ts';
import type { Job, JobPayload, PublishedImage, QueueCounts, WishlistStats } from '../state/types.ts';
import type { GcRunSummary } from '../gc/run-log.ts';

/** What the status page shows; gathered by the caller from the StateStore (read-only). */
export interface StatusPageData {
  version: string;
  shuttingDown: boolean;
  config: BotConfig;
  queue: QueueCounts;
  running: Job[];
  queued: Job[];
  failed: Job[];
  published: Map<string, PublishedImage[]>;
  /** Conversion counters per wish list. */
  stats?: WishlistStats[];
  /** The page reloads itself after this many seconds; 0: never. */
  refreshSeconds?: number;
  now: number;
  /** The last garbage collection of each repository (absent or empty: none yet). */
  gc?: GcRunSummary[];
}

/**
 * Escapes text for HTML element content and quoted attribute values. Every value on the page goes
 * through it: image names, errors and job payloads come from wish lists anyone may propose.
 */
export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The server-rendered status page (`GET /`): no scripts, inline styles only. */
export function renderStatusPage(data: StatusPageData): string {
  const e = escapeHtml;
  const sections = data.config.wishlists.map((wishlist) => {
    const images = data.published.get(wishlist.name) ?? [];
    const stats = data.stats?.find((row) => row.wishlist === wishlist.name);
    const lastFailed = stats?.lastFailureAt !== undefined && (stats.lastSuccessAt === undefined || stats.lastFailureAt > stats.lastSuccessAt);
    const history =
      stats === undefined
        ? ''
        : `<p class="${lastFailed ? 'failed' : 'ok'}">${e(stats.converted)} converted, ${e(stats.upToDate)} up to date, ${e(stats.failed)} failed, ${e(stats.removed)} removed, ${e(stats.failedJobs)} failed jobs. Last published without failures: ${stats.lastSuccessAt === undefined ? 'never' : `<time>${e(isoTime(stats.lastSuccessAt))}</time>`}${lastFailed ? `; last publish failed at <time>${e(isoTime(stats.lastFailureAt!))}</time>` : ''}.</p>`;
    const rows = images.map(
      (image) => `<tr class="${image.lastResult === 'ok' ? 'ok' : 'failed'}">
<td><code>${e(image.image)}</code>${image.input !== image.image ? `<br><small>from <code>${e(image.input)}</code></small>` : ''}</td>
<td><code>${e(image.publicPath)}</code></td>
<td><code title="${e(image.manifestDigest)}">${e(shortDigest(image.manifestDigest))}</code></td>
<td>${e(image.lastResult)}${image.lastError ? `<br><small>${e(truncate(image.lastError, 300))}</small>` : ''}</td>
<td><time datetime="${e(isoTime(image.updatedAt))}">${e(isoTime(image.updatedAt))}</time></td>
</tr>`,
    );
    return `<section>
<h2>${e(wishlist.name)}</h2>
<p>${e(wishlist.forge)} <code>${e(wishlist.project)}</code>, branch <code>${e(wishlist.branch)}</code>, ${e(images.length)} published image${images.length === 1 ? '' : 's'}</p>
${history}
${
  rows.length === 0
    ? '<p><em>Nothing published yet.</em></p>'
    : `<table><thead><tr><th>Image</th><th>Published at</th><th>Manifest digest</th><th>Last result</th><th>Updated</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>`
}
</section>`;
  });

  const jobRows = (jobs: Job[]) =>
    jobs
      .map(
        (job) =>
          `<tr class="${jobClass(job)}"><td>${e(job.id)}</td><td>${e(job.status)}</td><td>${e(describeJob(job.payload))}</td><td>${e(job.attempts)}</td><td>${e(isoTime(job.updatedAt))}</td><td>${e(job.error ? truncate(job.error, 300) : '')}</td></tr>`,
      )
      .join('\n');
  const jobs = [...data.running, ...data.queued, ...data.failed];

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${
  data.refreshSeconds === 0
    ? ''
    : `<meta http-equiv="refresh" content="${e(data.refreshSeconds ?? 30)}">
`
}<title>ducc-gitops status</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
tr.failed td, p.failed { background: #fdecea; }
tr.failed td:first-child { border-left: 4px solid #c62828; }
tr.retrying td { background: #fff8e1; }
code { font-size: 0.9em; word-break: break-all; }
small { color: #555; }
</style>
</head>
<body>
<h1>ducc-gitops</h1>
<p>Version ${e(data.version)}${data.shuttingDown ? ' — <strong>shutting down</strong>' : ''}. Page generated <time id="generated">${e(isoTime(data.now))}</time>${data.refreshSeconds === 0 ? '' : `, reloaded every ${e(data.refreshSeconds ?? 30)} s`}.</p>
<h2>Queue</h2>
<p>${e(data.queue.queued)} queued, ${e(data.queue.running)} running, ${e(data.queue.done)} done, ${e(data.queue.failed)} failed.</p>
${
  jobs.length === 0
    ? ''
    : `<table><thead><tr><th>Job</th><th>Status</th><th>What</th><th>Attempts</th><th>Updated</th><th>Error</th></tr></thead><tbody>
${jobRows(jobs)}
</tbody></table>`
}
${sections.join('\n')}
${gcSection(data.gc ?? [])}
</body>
</html>
`;
}

/** `failed` for a job that failed for good, `retrying` for one waiting to be tried again after an error. */
function jobClass(job: Job): string {
  if (job.status === 'failed') return 'failed';
  return job.status === 'queued' && job.error !== undefined ? 'retrying' : job.status;
}

/** One line per job payload, for people. */
export function describeJob(payload: JobPayload): string {
  switch (payload.kind) {
    case 'sync-branch':
      return `publish ${payload.wishlist} at ${String(payload.sha).slice(0, 12)}`;
    case 'check-change-request':
      return `check ${payload.wishlist} !${payload.number} at ${String(payload.headSha).slice(0, 12)}`;
    case 'reconvert': {
      const images = Array.isArray(payload.images) ? payload.images : [];
      return `reconvert on ${payload.wishlist} !${payload.number}${images.length ? `: ${images.join(' ')}` : ''}`;
    }
    case 'registry-push':
      return `registry push ${payload.registry}/${payload.repository}${payload.tag ? `:${payload.tag}` : ''}`;
    case 'reconcile':
      return `reconcile ${payload.wishlist}`;
    case 'gc':
      return `garbage collection of ${payload.cvmfsRepo}`;
    default:
      return (payload as { kind?: unknown }).kind === undefined ? 'job' : String((payload as { kind: unknown }).kind);
  }
}

/** The last gc of each repository: when, its result, what it removed, the garbage left, the repository's bytes. */
function gcSection(runs: GcRunSummary[]): string {
  if (runs.length === 0) return '';
  const e = escapeHtml;
  const rows = runs.map(
    (run) => `<tr class="${run.ok ? 'ok' : 'error'}">
<td><code>${e(run.repository)}</code></td>
<td><time datetime="${e(isoTime(run.at))}">${e(isoTime(run.at))}</time></td>
<td>${run.ok ? 'ok' : `failed<br><small>${e(truncate(run.error ?? '', 300))}</small>`}</td>
<td>${e(run.removed)} (${e(formatBytes(run.removedBytes))})</td>
<td>${e(run.pending)} (${e(formatBytes(run.pendingBytes))})</td>
<td>${e(formatBytes(run.repositoryBytes))}</td>
</tr>`,
  );
  return `<section>
<h2>Garbage collection</h2>
<table><thead><tr><th>Repository</th><th>Last run</th><th>Result</th><th>Removed</th><th>Garbage in its grace period</th><th>Repository bytes</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
</section>`;
}

function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return colon > 0 ? `${digest.slice(0, colon + 1)}${digest.slice(colon + 1, colon + 13)}` : digest;
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}
