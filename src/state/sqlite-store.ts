import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { migrate, userVersion } from './sqlite-schema.ts';
export { SCHEMA_VERSION } from './sqlite-schema.ts';
import { publishedColumns, toJob, toOwnedStatus, toPublished, toWishlistStats, type Row } from './rows.ts';
import {
  jobLane,
  type ConversionCounts,
  type DeliveryState,
  type Job,
  type JobPayload,
  type JobStatus,
  type OwnedStatus,
  type PublishedImage,
  type QueueCounts,
  type StateStore,
  type WishlistStats,
} from './types.ts';

/** WAL pages after which a write checkpoints by itself (SQLite's default is 1,000). */
const WAL_AUTOCHECKPOINT_PAGES = 10_000;

/** The StateStore methods over the synchronous statements; `enter` says when a call may run. */
class SqliteAccess implements StateStore {
  readonly leaseMs = undefined;
  readonly #ops: SqliteOps;
  readonly #enter: <T>(fn: () => T) => Promise<T>;

  constructor(ops: SqliteOps, enter: <T>(fn: () => T) => Promise<T>) {
    this.#ops = ops;
    this.#enter = enter;
  }

  /** Inside a transaction already: `work` runs as part of it. */
  atomically<T>(work: (tx: StateStore) => Promise<T>): Promise<T> {
    return work(this);
  }

  checkpoint(): Promise<{ walFrames: number; checkpointed: number }> {
    return this.#enter(() => this.#ops.checkpoint());
  }

  recordDelivery(id: string, now?: number): Promise<boolean> {
    return this.#enter(() => this.#ops.recordDelivery(id, now));
  }

  deliveryState(id: string): Promise<DeliveryState> {
    return this.#enter(() => this.#ops.deliveryState(id));
  }

  linkDelivery(id: string, jobIds: number[]): Promise<void> {
    return this.#enter(() => this.#ops.linkDelivery(id, jobIds));
  }

  pruneDeliveries(maxAgeMs: number, now?: number): Promise<number> {
    return this.#enter(() => this.#ops.pruneDeliveries(maxAgeMs, now));
  }

  enqueue(payload: JobPayload, options?: { dedupKey?: string; notBefore?: number; now?: number }): Promise<{ job: Job; created: boolean }> {
    return this.#enter(() => this.#ops.enqueue(payload, options));
  }

  claimNext(now?: number): Promise<Job | undefined> {
    return this.#enter(() => this.#ops.claimNext(now));
  }

  renewLease(id: number): Promise<boolean> {
    return this.#enter(() => this.#ops.renewLease(id));
  }

  complete(id: number, now?: number): Promise<boolean> {
    return this.#enter(() => this.#ops.complete(id, now));
  }

  fail(id: number, error: string, now?: number): Promise<boolean> {
    return this.#enter(() => this.#ops.fail(id, error, now));
  }

  requeueRunning(now?: number): Promise<Job[]> {
    return this.#enter(() => this.#ops.requeueRunning(now));
  }

  requeue(id: number, options?: { notBefore?: number; error?: string; now?: number }): Promise<Job | undefined> {
    return this.#enter(() => this.#ops.requeue(id, options));
  }

  getJob(id: number): Promise<Job | undefined> {
    return this.#enter(() => this.#ops.getJob(id));
  }

  listJobs(options?: { status?: JobStatus; limit?: number }): Promise<Job[]> {
    return this.#enter(() => this.#ops.listJobs(options));
  }

  counts(): Promise<QueueCounts> {
    return this.#enter(() => this.#ops.counts());
  }

  queuedCount(): Promise<number> {
    return this.#enter(() => this.#ops.queuedCount());
  }

  pruneFinishedJobs(maxAgeMs: number, now?: number): Promise<number> {
    return this.#enter(() => this.#ops.pruneFinishedJobs(maxAgeMs, now));
  }

  recordStatus(status: OwnedStatus): Promise<void> {
    return this.#enter(() => this.#ops.recordStatus(status));
  }

  pendingStatuses(jobId: number): Promise<OwnedStatus[]> {
    return this.#enter(() => this.#ops.pendingStatuses(jobId));
  }

  countConversions(wishlist: string, counts: Partial<ConversionCounts>): Promise<void> {
    return this.#enter(() => this.#ops.countConversions(wishlist, counts));
  }

  recordPublishOutcome(wishlist: string, ok: boolean, at: number): Promise<void> {
    return this.#enter(() => this.#ops.recordPublishOutcome(wishlist, ok, at));
  }

  wishlistStats(): Promise<WishlistStats[]> {
    return this.#enter(() => this.#ops.wishlistStats());
  }

  listPublished(wishlist: string): Promise<PublishedImage[]> {
    return this.#enter(() => this.#ops.listPublished(wishlist));
  }

  upsertPublished(record: PublishedImage): Promise<void> {
    return this.#enter(() => this.#ops.upsertPublished(record));
  }

  removePublished(wishlist: string, image: string): Promise<void> {
    return this.#enter(() => this.#ops.removePublished(wishlist, image));
  }

  /** Closes the connection at once (a transaction still open is rolled back by SQLite). */
  async close(): Promise<void> {
    this.#ops.close();
  }
}

/**
 * StateStore on node:sqlite: one connection, for one process. Each call runs synchronously when it is
 * made, unless a transaction of `atomically` is open: then it runs once that transaction has ended (its
 * work may await between statements, and nothing else may slip into it).
 */
export class SqliteStateStore extends SqliteAccess {
  readonly #ops: SqliteOps;
  /** Settles when the open transaction of `atomically` ends; undefined when none is open. */
  #gate: Promise<void> | undefined;
  readonly #tx: SqliteAccess;

  private constructor(ops: SqliteOps) {
    super(ops, (fn) => this.#whenFree(fn));
    this.#ops = ops;
    this.#tx = new SqliteAccess(ops, async (fn) => fn());
  }

  /** Opens (creating it and its parent directories if needed) the database at `path`; `:memory:` for a throw-away one. */
  static open(path: string): SqliteStateStore {
    if (path !== ':memory:' && !path.startsWith('file:')) mkdirSync(dirname(path), { recursive: true });
    const db = new DatabaseSync(path, { enableForeignKeyConstraints: true, timeout: 5000 });
    try {
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      // SQLite copies the WAL back into the database (a checkpoint, with fsyncs) once it holds 1,000
      // pages by default, inside whatever write crosses that line: in `ducc serve` a webhook delivery,
      // whose answer then waits for the disk (~5 ms on the bench's virtual disk, far more on a busy
      // one), about every 100 deliveries. The job worker checkpoints after each job instead (see
      // checkpoint()); this limit (~40 MB of WAL) only catches a long run of deliveries without a job.
      db.exec(`PRAGMA wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      db.exec('PRAGMA busy_timeout = 5000');
      db.exec('PRAGMA foreign_keys = ON');
      migrate(db);
      return new SqliteStateStore(new SqliteOps(db));
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** The schema version of the open database (PRAGMA user_version). */
  get schemaVersion(): number {
    return this.#ops.schemaVersion;
  }

  override async atomically<T>(work: (tx: StateStore) => Promise<T>): Promise<T> {
    while (this.#gate) await this.#gate;
    let release!: () => void;
    this.#gate = new Promise((resolve) => (release = resolve));
    try {
      this.#ops.begin();
      try {
        const result = await work(this.#tx);
        this.#ops.commit();
        return result;
      } catch (error) {
        this.#ops.rollback();
        throw error;
      }
    } finally {
      this.#gate = undefined;
      release();
    }
  }

  async #whenFree<T>(fn: () => T): Promise<T> {
    while (this.#gate) await this.#gate;
    return fn();
  }
}

/** The statements of the SQLite store, run synchronously on its one connection (node:sqlite). */
class SqliteOps {
  readonly #db: DatabaseSync;
  readonly #stmt: ReturnType<typeof prepareAll>;
  #closed = false;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#stmt = prepareAll(db);
  }

  checkpoint(): { walFrames: number; checkpointed: number } {
    const row = this.#stmt.checkpoint.get() as Row;
    return { walFrames: Number(row.log), checkpointed: Number(row.checkpointed) };
  }

  recordDelivery(id: string, now = Date.now()): boolean {
    return this.#stmt.insertDelivery.run(id, now).changes === 1;
  }

  deliveryState(id: string): DeliveryState {
    const row = this.#stmt.deliveryState.get(id) as Row | undefined;
    if (row === undefined) return 'unseen';
    if (Number(row.pending) > 0) return 'pending';
    return Number(row.failed) > 0 ? 'failed' : 'done';
  }

  linkDelivery(id: string, jobIds: number[]): void {
    this.#transaction(() => {
      this.#stmt.unlinkDelivery.run(id);
      for (const jobId of jobIds) this.#stmt.linkDelivery.run(id, jobId);
    });
  }

  countConversions(wishlist: string, counts: Partial<ConversionCounts>): void {
    this.#stmt.countConversions.run({
      wishlist,
      converted: counts.converted ?? 0,
      up_to_date: counts.upToDate ?? 0,
      failed: counts.failed ?? 0,
      removed: counts.removed ?? 0,
      failed_jobs: counts.failedJobs ?? 0,
    });
  }

  recordPublishOutcome(wishlist: string, ok: boolean, at: number): void {
    this.#stmt.countConversions.run({ wishlist, converted: 0, up_to_date: 0, failed: 0, removed: 0, failed_jobs: 0 });
    (ok ? this.#stmt.lastSuccess : this.#stmt.lastFailure).run(at, wishlist);
  }

  wishlistStats(): WishlistStats[] {
    return this.#stmt.wishlistStats.all().map(toWishlistStats);
  }

  pruneDeliveries(maxAgeMs: number, now = Date.now()): number {
    return Number(this.#stmt.pruneDeliveries.run(now - maxAgeMs).changes);
  }

  enqueue(payload: JobPayload, options: { dedupKey?: string; notBefore?: number; now?: number } = {}): { job: Job; created: boolean } {
    const now = options.now ?? Date.now();
    const notBefore = options.notBefore ?? now;
    const dedupKey = options.dedupKey;
    return this.#transaction(() => {
      if (dedupKey !== undefined) {
        const existing = this.#stmt.queuedByDedupKey.get(dedupKey);
        if (existing) {
          const job = toJob(this.#stmt.debounce.get(notBefore, now, existing.id as number) as Row);
          return { job, created: false };
        }
      }
      const job = toJob(this.#stmt.insertJob.get(payload.kind, JSON.stringify(payload), dedupKey ?? null, now, now, notBefore, jobLane(payload)) as Row);
      return { job, created: true };
    });
  }

  claimNext(now = Date.now()): Job | undefined {
    return this.#transaction(() => {
      const next = this.#stmt.nextRunnable.get(now);
      if (!next) return undefined;
      return toJob(this.#stmt.markRunning.get(now, next.id as number) as Row);
    });
  }

  complete(id: number, now = Date.now()): boolean {
    return this.#stmt.complete.run(now, id).changes === 1;
  }

  fail(id: number, error: string, now = Date.now()): boolean {
    return this.#stmt.fail.run(error, now, id).changes === 1;
  }

  requeueRunning(now = Date.now()): Job[] {
    return this.#transaction(() =>
      this.#stmt.requeueRunning
        .all(now)
        .map(toJob)
        .sort((a, b) => a.id - b.id),
    );
  }

  requeue(id: number, options: { notBefore?: number; error?: string; now?: number } = {}): Job | undefined {
    const now = options.now ?? Date.now();
    const row = this.#stmt.requeue.get(options.notBefore ?? now, options.error ?? null, now, id);
    return row ? toJob(row) : undefined;
  }

  getJob(id: number): Job | undefined {
    const row = this.#stmt.getJob.get(id);
    return row ? toJob(row) : undefined;
  }

  listJobs(options: { status?: JobStatus; limit?: number } = {}): Job[] {
    const limit = options.limit === undefined ? -1 : Math.max(0, Math.trunc(options.limit));
    return this.#stmt.listJobs.all({ status: options.status ?? null, limit }).map(toJob);
  }

  counts(): QueueCounts {
    const counts: QueueCounts = { queued: 0, running: 0, done: 0, failed: 0 };
    for (const row of this.#stmt.counts.all()) counts[row.status as JobStatus] = row.n as number;
    return counts;
  }

  queuedCount(): number {
    return (this.#stmt.queuedCount.get() as Row).n as number;
  }

  pruneFinishedJobs(maxAgeMs: number, now = Date.now()): number {
    return Number(this.#stmt.pruneFinishedJobs.run(now - maxAgeMs).changes);
  }

  recordStatus(status: OwnedStatus): void {
    this.#stmt.upsertStatus.run(status.jobId, status.forge, status.project, status.sha, status.context, status.state);
  }

  pendingStatuses(jobId: number): OwnedStatus[] {
    return this.#stmt.pendingStatuses.all(jobId).map(toOwnedStatus);
  }

  listPublished(wishlist: string): PublishedImage[] {
    return this.#stmt.listPublished.all(wishlist).map(toPublished);
  }

  upsertPublished(record: PublishedImage): void {
    this.#stmt.upsertPublished.run(publishedColumns(record) as Record<string, SQLInputValue>);
  }

  removePublished(wishlist: string, image: string): void {
    this.#stmt.removePublished.run(wishlist, image);
  }

  renewLease(id: number): boolean {
    return (this.#stmt.getJob.get(id) as Row | undefined)?.status === 'running';
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  get isTransaction(): boolean {
    return this.#db.isTransaction;
  }

  get schemaVersion(): number {
    return userVersion(this.#db);
  }

  begin(): void {
    this.#stmt.begin.run();
  }

  commit(): void {
    this.#stmt.commit.run();
  }

  rollback(): void {
    if (this.#db.isTransaction) this.#stmt.rollback.run();
  }

  /** Runs `fn` in a transaction; inside one already, as part of it (the outermost commits or rolls back). */
  #transaction<T>(fn: () => T): T {
    if (this.#db.isTransaction) return fn();
    this.#stmt.begin.run();
    try {
      const result = fn();
      this.#stmt.commit.run();
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#stmt.rollback.run();
      throw error;
    }
  }
}

function prepareAll(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    // PASSIVE: copies what it can without waiting for other connections (the CLI may have the database open too).
    checkpoint: p('PRAGMA wal_checkpoint(PASSIVE)'),
    begin: p('BEGIN IMMEDIATE'),
    commit: p('COMMIT'),
    rollback: p('ROLLBACK'),

    insertDelivery: p('INSERT OR IGNORE INTO deliveries (id, received_at) VALUES (?, ?)'),
    pruneDeliveries: p('DELETE FROM deliveries WHERE received_at < ?'),
    deliveryState: p(
      `SELECT d.id,
         count(CASE WHEN j.status IN ('queued', 'running') THEN 1 END) AS pending,
         count(CASE WHEN j.status = 'failed' THEN 1 END) AS failed
       FROM deliveries d LEFT JOIN delivery_jobs l ON l.delivery_id = d.id LEFT JOIN jobs j ON j.id = l.job_id
       WHERE d.id = ? GROUP BY d.id`,
    ),
    unlinkDelivery: p('DELETE FROM delivery_jobs WHERE delivery_id = ?'),
    linkDelivery: p('INSERT OR IGNORE INTO delivery_jobs (delivery_id, job_id) VALUES (?, ?)'),
    countConversions: p(
      `INSERT INTO wishlist_stats (wishlist, converted, up_to_date, failed, removed, failed_jobs)
       VALUES (:wishlist, :converted, :up_to_date, :failed, :removed, :failed_jobs)
       ON CONFLICT (wishlist) DO UPDATE SET converted = converted + excluded.converted, up_to_date = up_to_date + excluded.up_to_date,
         failed = failed + excluded.failed, removed = removed + excluded.removed, failed_jobs = failed_jobs + excluded.failed_jobs`,
    ),
    lastSuccess: p('UPDATE wishlist_stats SET last_success_at = ? WHERE wishlist = ?'),
    lastFailure: p('UPDATE wishlist_stats SET last_failure_at = ? WHERE wishlist = ?'),
    wishlistStats: p('SELECT * FROM wishlist_stats ORDER BY wishlist'),

    queuedByDedupKey: p(`SELECT id FROM jobs WHERE dedup_key = ? AND status = 'queued' ORDER BY id LIMIT 1`),
    debounce: p('UPDATE jobs SET not_before = max(not_before, ?), updated_at = ? WHERE id = ? RETURNING *'),
    insertJob: p(
      `INSERT INTO jobs (kind, payload, status, attempts, dedup_key, created_at, updated_at, not_before, lane)
       VALUES (?, ?, 'queued', 0, ?, ?, ?, ?, ?) RETURNING *`,
    ),
    nextRunnable: p(
      `SELECT id FROM jobs j WHERE status = 'queued' AND not_before <= ?
         AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.lane = j.lane AND r.status = 'running')
       ORDER BY id LIMIT 1`,
    ),
    markRunning: p(`UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ? RETURNING *`),
    complete: p(`UPDATE jobs SET status = 'done', error = NULL, updated_at = ? WHERE id = ? AND status = 'running'`),
    fail: p(`UPDATE jobs SET status = 'failed', error = ?, updated_at = ? WHERE id = ? AND status = 'running'`),
    requeueRunning: p(`UPDATE jobs SET status = 'queued', updated_at = ? WHERE status = 'running' RETURNING *`),
    requeue: p(
      `UPDATE jobs SET status = 'queued', not_before = ?, error = coalesce(?, error), updated_at = ?
       WHERE id = ? AND status = 'running' RETURNING *`,
    ),
    getJob: p('SELECT * FROM jobs WHERE id = ?'),
    listJobs: p('SELECT * FROM jobs WHERE (:status IS NULL OR status = :status) ORDER BY id DESC LIMIT :limit'),
    counts: p('SELECT status, count(*) AS n FROM jobs GROUP BY status'),
    // A range of the (status, not_before) index: as cheap with a million finished jobs as with none.
    queuedCount: p(`SELECT count(*) AS n FROM jobs WHERE status = 'queued'`),
    pruneFinishedJobs: p(`DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < ?`),

    upsertStatus: p(
      `INSERT INTO owned_statuses (job_id, forge, project, sha, context, state) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (job_id, forge, project, sha, context) DO UPDATE SET state = excluded.state`,
    ),
    pendingStatuses: p(`SELECT * FROM owned_statuses WHERE job_id = ? AND state = 'pending' ORDER BY rowid`),

    listPublished: p('SELECT * FROM published WHERE wishlist = ? ORDER BY image'),
    upsertPublished: p(
      `INSERT INTO published (wishlist, image, cvmfs_repo, input, manifest_digest, config_digest, public_path, flat_path,
         thin_name, thin_digest, commit_sha, updated_at, last_result, last_error)
       VALUES (:wishlist, :image, :cvmfs_repo, :input, :manifest_digest, :config_digest, :public_path, :flat_path,
         :thin_name, :thin_digest, :commit_sha, :updated_at, :last_result, :last_error)
       ON CONFLICT (wishlist, image) DO UPDATE SET
         cvmfs_repo = excluded.cvmfs_repo, input = excluded.input, manifest_digest = excluded.manifest_digest, config_digest = excluded.config_digest,
         public_path = excluded.public_path, flat_path = excluded.flat_path, thin_name = excluded.thin_name,
         thin_digest = excluded.thin_digest, commit_sha = excluded.commit_sha, updated_at = excluded.updated_at,
         last_result = excluded.last_result, last_error = excluded.last_error`,
    ),
    removePublished: p('DELETE FROM published WHERE wishlist = ? AND image = ?'),
  };
}
