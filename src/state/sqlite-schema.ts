/** The schema of the SQLite state store, migrated forward in one transaction when it is opened. */
import type { DatabaseSync } from 'node:sqlite';
import { DuccError } from '../util/errors.ts';
import type { Row } from './rows.ts';

/**
 * Schema migrations, in order: migration `i` brings the database from version `i` to version `i + 1`
 * (PRAGMA user_version). Never edit a released migration; append a new one (e.g. `ALTER TABLE ... ADD
 * COLUMN ...`).
 */
const MIGRATIONS: readonly string[] = [
  // 1: initial schema.
  `
  CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX deliveries_received_at ON deliveries (received_at);

  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    dedup_key TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL
  );
  CREATE INDEX jobs_status_not_before ON jobs (status, not_before);
  CREATE INDEX jobs_dedup_key ON jobs (dedup_key);

  CREATE TABLE owned_statuses (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    forge TEXT NOT NULL,
    project TEXT NOT NULL,
    sha TEXT NOT NULL,
    context TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'success', 'failure', 'error')),
    UNIQUE (job_id, forge, project, sha, context)
  );

  CREATE TABLE published (
    wishlist TEXT NOT NULL,
    image TEXT NOT NULL,
    cvmfs_repo TEXT NOT NULL,
    input TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    public_path TEXT NOT NULL,
    flat_path TEXT NOT NULL,
    thin_name TEXT,
    thin_digest TEXT,
    commit_sha TEXT,
    updated_at INTEGER NOT NULL,
    last_result TEXT NOT NULL CHECK (last_result IN ('ok', 'error')),
    last_error TEXT,
    PRIMARY KEY (wishlist, image)
  );
  `,
  // 2: the jobs each delivery id queued (a redelivery of a failed delivery runs again), and what each
  // wish list's conversions came to (/metrics, the status page).
  `
  CREATE TABLE delivery_jobs (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (delivery_id, job_id)
  );
  CREATE INDEX delivery_jobs_job_id ON delivery_jobs (job_id);

  CREATE TABLE wishlist_stats (
    wishlist TEXT PRIMARY KEY,
    converted INTEGER NOT NULL DEFAULT 0,
    up_to_date INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    removed INTEGER NOT NULL DEFAULT 0,
    failed_jobs INTEGER NOT NULL DEFAULT 0,
    last_success_at INTEGER,
    last_failure_at INTEGER
  );
  `,
  // 3: the lane of each job (jobLane): claimNext never starts a job while one of its lane runs.
  `
  ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT '';
  UPDATE jobs SET lane = CASE kind
    WHEN 'registry-push' THEN 'registry:' || json_extract(payload, '$.registry') || '/' || json_extract(payload, '$.repository')
    WHEN 'gc' THEN 'gc:' || json_extract(payload, '$.cvmfsRepo')
    ELSE 'wishlist:' || json_extract(payload, '$.wishlist') END;
  CREATE INDEX jobs_lane_status ON jobs (lane, status);
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

export function userVersion(db: DatabaseSync): number {
  return (db.prepare('PRAGMA user_version').get() as Row).user_version as number;
}

/** Brings the schema up to SCHEMA_VERSION, in one transaction. */
export function migrate(db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    const current = userVersion(db);
    if (current > MIGRATIONS.length) {
      throw new DuccError('BOT_ERR_CONFIG', `state database schema version ${current} is newer than this ducc supports (${MIGRATIONS.length})`);
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      db.exec(MIGRATIONS[version] as string);
    }
    // PRAGMA takes no bound parameters; the value is an integer constant of this module, never input.
    if (current !== MIGRATIONS.length) db.exec(`PRAGMA user_version = ${Math.trunc(MIGRATIONS.length)}`);
    db.exec('COMMIT');
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}
