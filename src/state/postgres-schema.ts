/**
 * The schema of the PostgreSQL state store, created and migrated forward at start by whichever replica
 * starts first: the migration runs in one transaction under an advisory lock, so replicas starting
 * together do not race (the second waits, then finds the schema current).
 */
import type { PoolClient } from 'pg';
import { DuccError } from '../util/errors.ts';

/** Advisory lock keys of ducc-gitops (first half: an arbitrary constant, 'ducc' in ASCII). */
export const LOCK_CLASS = 0x64756363;
export const MIGRATION_LOCK = 1;

/**
 * Migrations in order: migration `i` brings the schema from version `i` to `i + 1` (ducc_schema.version).
 * Never edit a released one; append. Times are milliseconds since the epoch (bigint), as in SQLite.
 */
const MIGRATIONS: readonly string[] = [
  // 1: the tables of the SQLite store (migrations 1-3 there), and the lease of a claimed job: which
  // replica runs it (claimed_by) and until when it is that replica's without a renewal (lease_until).
  `
  CREATE TABLE deliveries (
    id text PRIMARY KEY,
    received_at bigint NOT NULL
  );
  CREATE INDEX deliveries_received_at ON deliveries (received_at);

  CREATE TABLE jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    payload text NOT NULL,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    dedup_key text,
    error text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    not_before bigint NOT NULL,
    lane text NOT NULL,
    claimed_by text,
    lease_until bigint
  );
  CREATE INDEX jobs_status_not_before ON jobs (status, not_before);
  CREATE INDEX jobs_dedup_key ON jobs (dedup_key);
  CREATE INDEX jobs_lane_status ON jobs (lane, status);

  CREATE TABLE owned_statuses (
    seq bigserial PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    forge text NOT NULL,
    project text NOT NULL,
    sha text NOT NULL,
    context text NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'success', 'failure', 'error')),
    UNIQUE (job_id, forge, project, sha, context)
  );

  CREATE TABLE published (
    wishlist text NOT NULL,
    image text NOT NULL,
    cvmfs_repo text NOT NULL,
    input text NOT NULL,
    manifest_digest text NOT NULL,
    config_digest text NOT NULL,
    public_path text NOT NULL,
    flat_path text NOT NULL,
    thin_name text,
    thin_digest text,
    commit_sha text,
    updated_at bigint NOT NULL,
    last_result text NOT NULL CHECK (last_result IN ('ok', 'error')),
    last_error text,
    PRIMARY KEY (wishlist, image)
  );

  CREATE TABLE delivery_jobs (
    delivery_id text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    job_id bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (delivery_id, job_id)
  );
  CREATE INDEX delivery_jobs_job_id ON delivery_jobs (job_id);

  CREATE TABLE wishlist_stats (
    wishlist text PRIMARY KEY,
    converted bigint NOT NULL DEFAULT 0,
    up_to_date bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    removed bigint NOT NULL DEFAULT 0,
    failed_jobs bigint NOT NULL DEFAULT 0,
    last_success_at bigint,
    last_failure_at bigint
  );
  `,
];

/** The schema version this code writes. */
export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the schema up to PG_SCHEMA_VERSION on `client` (a connection of its own, not in a transaction). */
export async function migrate(client: PoolClient): Promise<number> {
  await client.query('BEGIN');
  try {
    // Held until COMMIT: a replica starting at the same moment waits here, then sees the new version.
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS ducc_schema (version integer NOT NULL)');
    const { rows } = await client.query<{ version: number }>('SELECT version FROM ducc_schema');
    const current = rows[0]?.version ?? 0;
    if (current > MIGRATIONS.length) {
      throw new DuccError('BOT_ERR_CONFIG', `state database schema version ${current} is newer than this ducc supports (${MIGRATIONS.length})`);
    }
    for (let version = current; version < MIGRATIONS.length; version++) await client.query(MIGRATIONS[version] as string);
    if (rows.length === 0) await client.query('INSERT INTO ducc_schema (version) VALUES ($1)', [MIGRATIONS.length]);
    else if (current !== MIGRATIONS.length) await client.query('UPDATE ducc_schema SET version = $1', [MIGRATIONS.length]);
    await client.query('COMMIT');
    return MIGRATIONS.length;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
