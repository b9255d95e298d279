import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobStatus, StateStore } from '../state/types.ts';
import type { GcRunLog } from '../gc/run-log.ts';

/** Prometheus metrics of `ducc serve`, in their own registry (never prom-client's global one). */
export interface BotMetrics {
  registry: Registry;
  /** `ducc_webhooks_total{source,outcome}`: every webhook request, by sender and what became of it. */
  webhooks: Counter<'source' | 'outcome'>;
  /** `ducc_webhook_duration_seconds{source}`: time to answer a webhook request. */
  webhookDuration: Histogram<'source'>;
}

const JOB_STATUSES: JobStatus[] = ['queued', 'running', 'done', 'failed'];

export function createMetrics(options: {
  store: StateStore;
  version: string;
  isShuttingDown?: () => boolean;
  gcRuns?: GcRunLog;
  wishlists?: string[];
}): BotMetrics {
  const registry = new Registry();
  // Process metrics (CPU, memory, event-loop lag, ...), prefixed like ours.
  collectDefaultMetrics({ register: registry, prefix: 'ducc_' });
  const webhooks = new Counter({
    name: 'ducc_webhooks_total',
    help: 'Webhook requests by source (github, gitlab, registry/<kind>) and outcome (queued, duplicate, ignored, overloaded, unauthorized, ...)',
    labelNames: ['source', 'outcome'] as const,
    registers: [registry],
  });
  const webhookDuration = new Histogram({
    name: 'ducc_webhook_duration_seconds',
    help: 'Time to answer a webhook request',
    labelNames: ['source'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  new Gauge({
    name: 'ducc_jobs',
    help: 'Jobs in the state database by status (read on every scrape)',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const counts = await options.store.counts();
      for (const status of JOB_STATUSES) this.set({ status }, counts[status]);
    },
  });
  new Gauge({
    name: 'ducc_shutting_down',
    help: '1 while ducc serve drains before exiting',
    registers: [registry],
    collect() {
      this.set(options.isShuttingDown?.() ? 1 : 0);
    },
  });
  if (options.gcRuns !== undefined) registerGcMetrics(registry, options.gcRuns);
  // Per wish list, from the state database (so they survive restarts): read on every scrape. Every
  // configured wish list is listed, with zeros until it has converted something.
  const stats = async () => {
    const known = new Map((await options.store.wishlistStats()).map((row) => [row.wishlist, row]));
    for (const name of options.wishlists ?? []) {
      if (!known.has(name)) known.set(name, { wishlist: name, converted: 0, upToDate: 0, failed: 0, removed: 0, failedJobs: 0 });
    }
    return [...known.values()];
  };
  new Counter({
    name: 'ducc_images_total',
    help: 'Images of a wish list by what their conversion came to: converted, up_to_date, failed, removed',
    labelNames: ['wishlist', 'result'] as const,
    registers: [registry],
    async collect() {
      const rows = await stats();
      this.reset();
      for (const row of rows) {
        for (const [result, value] of [
          ['converted', row.converted],
          ['up_to_date', row.upToDate],
          ['failed', row.failed],
          ['removed', row.removed],
        ] as const) {
          this.inc({ wishlist: row.wishlist, result }, value);
        }
      }
    },
  });
  new Counter({
    name: 'ducc_failed_jobs_total',
    help: 'Jobs of a wish list that failed for good (after their retries)',
    labelNames: ['wishlist'] as const,
    registers: [registry],
    async collect() {
      const rows = await stats();
      this.reset();
      for (const row of rows) this.inc({ wishlist: row.wishlist }, row.failedJobs);
    },
  });
  new Gauge({
    name: 'ducc_wishlist_last_success_timestamp_seconds',
    help: 'When a publish of the whole wish list (a push or a reconcile) last ended with nothing failed; absent before the first',
    labelNames: ['wishlist'] as const,
    registers: [registry],
    async collect() {
      const rows = await stats();
      this.reset();
      for (const row of rows) if (row.lastSuccessAt !== undefined) this.set({ wishlist: row.wishlist }, row.lastSuccessAt / 1000);
    },
  });
  new Gauge({
    name: 'ducc_wishlist_last_failure_timestamp_seconds',
    help: 'When a publish of the whole wish list last ended with a failed image or file problem; absent before the first',
    labelNames: ['wishlist'] as const,
    registers: [registry],
    async collect() {
      const rows = await stats();
      this.reset();
      for (const row of rows) if (row.lastFailureAt !== undefined) this.set({ wishlist: row.wishlist }, row.lastFailureAt / 1000);
    },
  });
  const info = new Gauge({ name: 'ducc_build_info', help: 'Version of ducc-gitops (always 1)', labelNames: ['version'] as const, registers: [registry] });
  info.set({ version: options.version }, 1);
  return { registry, webhooks, webhookDuration };
}

/**
 * Garbage collection, per repository, from its last run (config `gc:`): `ducc_repository_bytes`,
 * `ducc_garbage_bytes`, `ducc_gc_last_run_timestamp_seconds`, `ducc_gc_last_run_success`,
 * `ducc_gc_last_removed_bytes`.
 */
function registerGcMetrics(registry: Registry, gcRuns: GcRunLog): void {
  const gauge = (name: string, help: string, value: (run: ReturnType<GcRunLog['list']>[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['repository'] as const,
      registers: [registry],
      collect() {
        for (const run of gcRuns.list()) this.set({ repository: run.repository }, value(run));
      },
    });
  gauge('ducc_repository_bytes', 'Bytes of every layer of the repository (layers.json diff-size), as the last gc found them', (run) => run.repositoryBytes);
  gauge('ducc_garbage_bytes', 'Bytes of the garbage still in its grace period after the last gc', (run) => run.pendingBytes);
  gauge('ducc_gc_last_run_timestamp_seconds', 'When the last gc of the repository ended', (run) => run.at / 1000);
  gauge('ducc_gc_last_run_success', '1 if the last gc of the repository succeeded, else 0', (run) => (run.ok ? 1 : 0));
  gauge('ducc_gc_last_removed_bytes', 'Bytes the last gc of the repository removed', (run) => run.removedBytes);
}
