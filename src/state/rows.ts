/**
 * Rows of the state database as the StateStore types, for both stores: the columns have the same names
 * in SQLite and PostgreSQL. Numbers go through Number() because PostgreSQL's bigint columns (times in
 * milliseconds, ids) reach JavaScript as strings (node-postgres does not guess that they fit a double).
 */
import type { Job, JobPayload, JobStatus, OwnedStatus, PublishedImage, WishlistStats } from './types.ts';

export type Row = Record<string, unknown>;

export function toJob(row: Row): Job {
  const job: Job = {
    id: Number(row.id),
    payload: JSON.parse(row.payload as string) as JobPayload,
    status: row.status as JobStatus,
    attempts: Number(row.attempts),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    notBefore: Number(row.not_before),
  };
  if (row.dedup_key !== null) job.dedupKey = row.dedup_key as string;
  if (row.error !== null) job.error = row.error as string;
  return job;
}

export function toOwnedStatus(row: Row): OwnedStatus {
  return {
    jobId: Number(row.job_id),
    forge: row.forge as OwnedStatus['forge'],
    project: row.project as string,
    sha: row.sha as string,
    context: row.context as string,
    state: row.state as OwnedStatus['state'],
  };
}

export function toPublished(row: Row): PublishedImage {
  const record: PublishedImage = {
    wishlist: row.wishlist as string,
    cvmfsRepo: row.cvmfs_repo as string,
    input: row.input as string,
    image: row.image as string,
    manifestDigest: row.manifest_digest as string,
    configDigest: row.config_digest as string,
    publicPath: row.public_path as string,
    flatPath: row.flat_path as string,
    updatedAt: Number(row.updated_at),
    lastResult: row.last_result as PublishedImage['lastResult'],
  };
  if (row.thin_name !== null) record.thinName = row.thin_name as string;
  if (row.thin_digest !== null) record.thinDigest = row.thin_digest as string;
  if (row.commit_sha !== null) record.commitSha = row.commit_sha as string;
  if (row.last_error !== null) record.lastError = row.last_error as string;
  return record;
}

export function toWishlistStats(row: Row): WishlistStats {
  return {
    wishlist: row.wishlist as string,
    converted: Number(row.converted),
    upToDate: Number(row.up_to_date),
    failed: Number(row.failed),
    removed: Number(row.removed),
    failedJobs: Number(row.failed_jobs),
    ...(row.last_success_at === null ? {} : { lastSuccessAt: Number(row.last_success_at) }),
    ...(row.last_failure_at === null ? {} : { lastFailureAt: Number(row.last_failure_at) }),
  };
}

/** The values of a PublishedImage's columns, by column name. */
export function publishedColumns(record: PublishedImage): Record<string, string | number | null> {
  return {
    wishlist: record.wishlist,
    image: record.image,
    cvmfs_repo: record.cvmfsRepo,
    input: record.input,
    manifest_digest: record.manifestDigest,
    config_digest: record.configDigest,
    public_path: record.publicPath,
    flat_path: record.flatPath,
    thin_name: record.thinName ?? null,
    thin_digest: record.thinDigest ?? null,
    commit_sha: record.commitSha ?? null,
    updated_at: record.updatedAt,
    last_result: record.lastResult,
    last_error: record.lastError ?? null,
  };
}
