/**
 * StateStore on PostgreSQL (node-postgres): one queue for several `ducc serve` replicas behind one webhook
 * address. What makes that safe:
 *
 * - Deliveries: a delivery id is inserted (ON CONFLICT DO NOTHING) and then locked inside the intake's
 *   transaction, so the same delivery reaching two replicas at once is decided by one of them; the other
 *   waits for that transaction and then sees the jobs it queued (a duplicate).
 * - Claims: `FOR UPDATE SKIP LOCKED` hands each queued job to one replica; the claim is a lease
 *   (claimed_by, lease_until) that the running worker renews. A replica that dies stops renewing: once the
 *   lease has expired, any replica takes the job over (attempts + 1), and its commit statuses end final.
 * - Finishing: complete, fail and requeue change a job only while the caller still holds its lease, so a
 *   replica that stalled past its lease cannot overwrite the outcome of the one that took over.
 * - Lanes (jobLane): a job is not claimed while one of its lane runs under a live lease, so two pushes of
 *   one wish list are published one after the other even on two replicas.
 *
 * Times are the callers' clocks (ms since the epoch), as with SQLite: the replicas' clocks must agree to
 * well within the lease (NTP does).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import type { Logger } from 'pino';
import { publishedColumns, toJob, toOwnedStatus, toPublished, toWishlistStats, type Row } from './rows.ts';
import { LOCK_CLASS, migrate } from './postgres-schema.ts';
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

/** Default lease of a claimed job: the worker renews it every third of that while the job runs. */
export const DEFAULT_LEASE_MS = 60_000;
/** Second key of the advisory locks that serialise claims per lane and enqueues per dedup key. */
const LANE_LOCK = 2;
const DEDUP_LOCK = 3;

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database`; the password, if not in it, comes as `password`. */
  url: string;
  password?: string;
  leaseMs?: number;
  /** Connections at most (default 10): webhooks, the worker, its heartbeat and the status page share them. */
  maxConnections?: number;
  /** For errors of idle connections (the server restarted): logged, the pool reconnects by itself. */
  logger?: Logger;
}

type Query = (sql: string, params?: unknown[]) => Promise<pg.QueryResult<Row>>;

/** Where statements go: the pool (each statement on its own) or one connection inside a transaction. */
interface Conn {
  query: Query;
  /** Runs `work` as one transaction (inside one already: as part of it). */
  transaction<T>(work: (query: Query) => Promise<T>): Promise<T>;
}

/** Who holds the lease of a claimed job, and for how long a claim lasts. */
interface Claims {
  replica: string;
  leaseMs: number;
}

class PostgresAccess implements StateStore {
  readonly leaseMs: number;
  protected readonly conn: Conn;
  protected readonly claims: Claims;

  constructor(conn: Conn, claims: Claims) {
    this.conn = conn;
    this.claims = claims;
    this.leaseMs = claims.leaseMs;
  }

  /** Inside a transaction already: `work` runs as part of it. */
  atomically<T>(work: (tx: StateStore) => Promise<T>): Promise<T> {
    return work(this);
  }

  /** PostgreSQL checkpoints by itself. */
  async checkpoint(): Promise<{ walFrames: number; checkpointed: number }> {
    return { walFrames: 0, checkpointed: 0 };
  }

  async recordDelivery(id: string, now = Date.now()): Promise<boolean> {
    return this.conn.transaction(async (query) => {
      const inserted = await query('INSERT INTO deliveries (id, received_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [id, now]);
      if (inserted.rowCount === 1) return true;
      // Seen before: the row is locked until this transaction ends, so that a replica deciding on the
      // same id now (e.g. running a failed delivery again) waits for this one's decision, and vice versa.
      await query('SELECT id FROM deliveries WHERE id = $1 FOR UPDATE', [id]);
      return false;
    });
  }

  async deliveryState(id: string): Promise<DeliveryState> {
    const { rows } = await this.conn.query(
      `SELECT d.id,
         count(CASE WHEN j.status IN ('queued', 'running') THEN 1 END) AS pending,
         count(CASE WHEN j.status = 'failed' THEN 1 END) AS failed
       FROM deliveries d LEFT JOIN delivery_jobs l ON l.delivery_id = d.id LEFT JOIN jobs j ON j.id = l.job_id
       WHERE d.id = $1 GROUP BY d.id`,
      [id],
    );
    const row = rows[0];
    if (row === undefined) return 'unseen';
    if (Number(row.pending) > 0) return 'pending';
    return Number(row.failed) > 0 ? 'failed' : 'done';
  }

  async linkDelivery(id: string, jobIds: number[]): Promise<void> {
    await this.conn.transaction(async (query) => {
      await query('DELETE FROM delivery_jobs WHERE delivery_id = $1', [id]);
      if (jobIds.length > 0) {
        await query('INSERT INTO delivery_jobs (delivery_id, job_id) SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING', [id, jobIds]);
      }
    });
  }

  async pruneDeliveries(maxAgeMs: number, now = Date.now()): Promise<number> {
    return (await this.conn.query('DELETE FROM deliveries WHERE received_at < $1', [now - maxAgeMs])).rowCount ?? 0;
  }

  async enqueue(payload: JobPayload, options: { dedupKey?: string; notBefore?: number; now?: number } = {}): Promise<{ job: Job; created: boolean }> {
    const now = options.now ?? Date.now();
    const notBefore = options.notBefore ?? now;
    const dedupKey = options.dedupKey ?? null;
    return this.conn.transaction(async (query) => {
      if (dedupKey !== null) {
        // Two replicas queueing the same key at once: one at a time, so the second finds the first's job.
        await query('SELECT pg_advisory_xact_lock($1, hashtext($2) # $3)', [LOCK_CLASS, dedupKey, DEDUP_LOCK]);
        const existing = await query(
          `UPDATE jobs SET not_before = greatest(not_before, $1), updated_at = $2
           WHERE id = (SELECT id FROM jobs WHERE dedup_key = $3 AND status = 'queued' ORDER BY id LIMIT 1) RETURNING *`,
          [notBefore, now, dedupKey],
        );
        if (existing.rows[0] !== undefined) return { job: toJob(existing.rows[0]), created: false };
      }
      const inserted = await query(
        `INSERT INTO jobs (kind, payload, status, attempts, dedup_key, created_at, updated_at, not_before, lane)
         VALUES ($1, $2, 'queued', 0, $3, $4, $4, $5, $6) RETURNING *`,
        [payload.kind, JSON.stringify(payload), dedupKey, now, notBefore, jobLane(payload)],
      );
      return { job: toJob(inserted.rows[0]!), created: true };
    });
  }

  async claimNext(now = Date.now()): Promise<Job | undefined> {
    const { replica, leaseMs } = this.claims;
    return this.conn.transaction(async (query) => {
      const busy: string[] = [];
      // Each round either claims a job or sets a lane aside; a handful of lanes are busy at most.
      for (let round = 0; round < 50; round++) {
        const { rows } = await query(
          `SELECT id, lane FROM jobs j
           WHERE ((status = 'queued' AND not_before <= $1) OR (status = 'running' AND lease_until < $1))
             AND NOT (lane = ANY ($2::text[]))
             AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.lane = j.lane AND r.id <> j.id AND r.status = 'running' AND r.lease_until >= $1)
           ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
          [now, busy],
        );
        const next = rows[0];
        if (next === undefined) return undefined;
        const lane = next.lane as string;
        // Two replicas may each pick a different job of one lane at the same moment (the older one is
        // row-locked by the first, so the second skips to the next): the lane's lock lets one through;
        // under it, a new statement sees whatever a claim that just committed took. A lane is claimed in
        // order: while an older job of it can still be claimed (by the replica that holds its row now),
        // this one waits, so two pushes of one wish list are never published newest first.
        const locked = await query('SELECT pg_try_advisory_xact_lock($1, hashtext($2) # $3) AS ok', [LOCK_CLASS, lane, LANE_LOCK]);
        const taken =
          locked.rows[0]?.ok !== true ||
          (
            await query(
              `SELECT 1 FROM jobs WHERE lane = $1 AND id <> $2
                 AND ((status = 'running' AND lease_until >= $3)
                   OR (id < $2 AND ((status = 'queued' AND not_before <= $3) OR (status = 'running' AND lease_until < $3))))
               LIMIT 1`,
              [lane, next.id, now],
            )
          ).rowCount !== 0;
        if (taken) {
          busy.push(lane);
          continue;
        }
        const claimed = await query(
          `UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = $1, claimed_by = $2, lease_until = $3
           WHERE id = $4 RETURNING *`,
          [now, replica, now + leaseMs, next.id],
        );
        return toJob(claimed.rows[0]!);
      }
      return undefined;
    });
  }

  async renewLease(id: number, now = Date.now()): Promise<boolean> {
    const { replica, leaseMs } = this.claims;
    const renewed = await this.conn.query(`UPDATE jobs SET lease_until = $1 WHERE id = $2 AND status = 'running' AND claimed_by = $3`, [
      now + leaseMs,
      id,
      replica,
    ]);
    return renewed.rowCount === 1;
  }

  async complete(id: number, now = Date.now()): Promise<boolean> {
    const done = await this.conn.query(
      `UPDATE jobs SET status = 'done', error = NULL, updated_at = $1, claimed_by = NULL, lease_until = NULL
       WHERE id = $2 AND status = 'running' AND claimed_by = $3`,
      [now, id, this.claims.replica],
    );
    return done.rowCount === 1;
  }

  async fail(id: number, error: string, now = Date.now()): Promise<boolean> {
    const failed = await this.conn.query(
      `UPDATE jobs SET status = 'failed', error = $1, updated_at = $2, claimed_by = NULL, lease_until = NULL
       WHERE id = $3 AND status = 'running' AND claimed_by = $4`,
      [error, now, id, this.claims.replica],
    );
    return failed.rowCount === 1;
  }

  /** Running jobs whose lease expired (their replica died or hung) go back to the queue. */
  async requeueRunning(now = Date.now()): Promise<Job[]> {
    const { rows } = await this.conn.query(
      `UPDATE jobs SET status = 'queued', updated_at = $1, claimed_by = NULL, lease_until = NULL
       WHERE status = 'running' AND lease_until < $1 RETURNING *`,
      [now],
    );
    return rows.map(toJob).sort((a, b) => a.id - b.id);
  }

  async requeue(id: number, options: { notBefore?: number; error?: string; now?: number } = {}): Promise<Job | undefined> {
    const now = options.now ?? Date.now();
    const { rows } = await this.conn.query(
      `UPDATE jobs SET status = 'queued', not_before = $1, error = coalesce($2, error), updated_at = $3, claimed_by = NULL, lease_until = NULL
       WHERE id = $4 AND status = 'running' AND claimed_by = $5 RETURNING *`,
      [options.notBefore ?? now, options.error ?? null, now, id, this.claims.replica],
    );
    return rows[0] === undefined ? undefined : toJob(rows[0]);
  }

  async getJob(id: number): Promise<Job | undefined> {
    const { rows } = await this.conn.query('SELECT * FROM jobs WHERE id = $1', [id]);
    return rows[0] === undefined ? undefined : toJob(rows[0]);
  }

  async listJobs(options: { status?: JobStatus; limit?: number } = {}): Promise<Job[]> {
    const limit = options.limit === undefined ? null : Math.max(0, Math.trunc(options.limit));
    const { rows } = await this.conn.query('SELECT * FROM jobs WHERE ($1::text IS NULL OR status = $1) ORDER BY id DESC LIMIT $2', [
      options.status ?? null,
      limit,
    ]);
    return rows.map(toJob);
  }

  async counts(): Promise<QueueCounts> {
    const counts: QueueCounts = { queued: 0, running: 0, done: 0, failed: 0 };
    for (const row of (await this.conn.query('SELECT status, count(*) AS n FROM jobs GROUP BY status')).rows) counts[row.status as JobStatus] = Number(row.n);
    return counts;
  }

  async queuedCount(): Promise<number> {
    return Number((await this.conn.query(`SELECT count(*) AS n FROM jobs WHERE status = 'queued'`)).rows[0]!.n);
  }

  async pruneFinishedJobs(maxAgeMs: number, now = Date.now()): Promise<number> {
    return (await this.conn.query(`DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < $1`, [now - maxAgeMs])).rowCount ?? 0;
  }

  async recordStatus(status: OwnedStatus): Promise<void> {
    await this.conn.query(
      `INSERT INTO owned_statuses (job_id, forge, project, sha, context, state) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (job_id, forge, project, sha, context) DO UPDATE SET state = excluded.state`,
      [status.jobId, status.forge, status.project, status.sha, status.context, status.state],
    );
  }

  async pendingStatuses(jobId: number): Promise<OwnedStatus[]> {
    const { rows } = await this.conn.query(`SELECT * FROM owned_statuses WHERE job_id = $1 AND state = 'pending' ORDER BY seq`, [jobId]);
    return rows.map(toOwnedStatus);
  }

  async countConversions(wishlist: string, counts: Partial<ConversionCounts>): Promise<void> {
    await this.conn.query(
      `INSERT INTO wishlist_stats AS s (wishlist, converted, up_to_date, failed, removed, failed_jobs) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (wishlist) DO UPDATE SET converted = s.converted + excluded.converted, up_to_date = s.up_to_date + excluded.up_to_date,
         failed = s.failed + excluded.failed, removed = s.removed + excluded.removed, failed_jobs = s.failed_jobs + excluded.failed_jobs`,
      [wishlist, counts.converted ?? 0, counts.upToDate ?? 0, counts.failed ?? 0, counts.removed ?? 0, counts.failedJobs ?? 0],
    );
  }

  async recordPublishOutcome(wishlist: string, ok: boolean, at: number): Promise<void> {
    // The column is one of two constants chosen here, never input.
    const column = ok ? 'last_success_at' : 'last_failure_at';
    await this.conn.query(
      `INSERT INTO wishlist_stats AS s (wishlist, ${column}) VALUES ($1, $2) ON CONFLICT (wishlist) DO UPDATE SET ${column} = excluded.${column}`,
      [wishlist, at],
    );
  }

  async wishlistStats(): Promise<WishlistStats[]> {
    return (await this.conn.query('SELECT * FROM wishlist_stats ORDER BY wishlist')).rows.map(toWishlistStats);
  }

  async listPublished(wishlist: string): Promise<PublishedImage[]> {
    return (await this.conn.query('SELECT * FROM published WHERE wishlist = $1 ORDER BY image', [wishlist])).rows.map(toPublished);
  }

  async upsertPublished(record: PublishedImage): Promise<void> {
    const values = publishedColumns(record);
    const columns = Object.keys(values);
    const updates = columns.filter((column) => column !== 'wishlist' && column !== 'image').map((column) => `${column} = excluded.${column}`);
    // Column names come from publishedColumns (constants), the values are parameters.
    await this.conn.query(
      `INSERT INTO published (${columns.join(', ')}) VALUES (${columns.map((_, index) => `$${index + 1}`).join(', ')})
       ON CONFLICT (wishlist, image) DO UPDATE SET ${updates.join(', ')}`,
      Object.values(values),
    );
  }

  async removePublished(wishlist: string, image: string): Promise<void> {
    await this.conn.query('DELETE FROM published WHERE wishlist = $1 AND image = $2', [wishlist, image]);
  }

  /** Inside a transaction: the store closes, not its transaction. */
  async close(): Promise<void> {}
}

/**
 * The store on a pool of connections. `atomically` takes one connection for its transaction; calls on
 * the store meanwhile run beside it on others (PostgreSQL's locks order what must be ordered).
 */
export class PostgresStateStore extends PostgresAccess {
  readonly #pool: pg.Pool;
  #closed: Promise<void> | undefined;

  private constructor(pool: pg.Pool, claims: Claims) {
    super(poolConn(pool), claims);
    this.#pool = pool;
  }

  /** Connects, and creates or migrates the schema (see postgres-schema.ts). Throws when the server cannot be reached. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStateStore> {
    const pool = new pg.Pool({
      connectionString: withPassword(options.url, options.password),
      max: options.maxConnections ?? 10,
      application_name: 'ducc-gitops',
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection the server dropped emits 'error' on the pool; unhandled, it would end the process.
    pool.on('error', (error) => options.logger?.warn({ err: error }, 'a connection to the PostgreSQL state database failed; reconnecting'));
    try {
      const client = await pool.connect();
      try {
        await migrate(client);
      } finally {
        client.release();
      }
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
    const replica = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    return new PostgresStateStore(pool, { replica, leaseMs: Math.max(1, options.leaseMs ?? DEFAULT_LEASE_MS) });
  }

  override async atomically<T>(work: (tx: StateStore) => Promise<T>): Promise<T> {
    return this.conn.transaction((query) => work(new PostgresAccess(txConn(query), this.claims)));
  }

  override close(): Promise<void> {
    this.#closed ??= this.#pool.end();
    return this.#closed;
  }
}

function poolConn(pool: pg.Pool): Conn {
  return {
    query: (sql, params) => pool.query<Row>(sql, params),
    async transaction(work) {
      const client = await pool.connect();
      const query: Query = (sql, params) => client.query<Row>(sql, params);
      let broken: unknown;
      try {
        await query('BEGIN');
        const result = await work(query);
        await query('COMMIT');
        return result;
      } catch (error) {
        await query('ROLLBACK').catch((rollbackError: unknown) => (broken = rollbackError));
        throw error;
      } finally {
        // A connection whose rollback failed is in an unknown state: destroyed, not reused.
        client.release(broken === undefined ? undefined : (broken as Error));
      }
    },
  };
}

function txConn(query: Query): Conn {
  return { query, transaction: (work) => work(query) };
}

/** The URL with the password from the environment put in (node-postgres prefers the URL's empty one). */
function withPassword(url: string, password: string | undefined): string {
  if (password === undefined) return url;
  const parsed = new URL(url);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}
