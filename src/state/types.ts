/** The durable state of `ducc serve`: SQLite by default, PostgreSQL for several replicas. */

/** Work the bot does, one job at a time per CVMFS repository; stored so that a restart resumes it. */
export type JobPayload =
  /** A push to a wish-list branch: publish the wish list at `sha`. */
  | { kind: 'sync-branch'; wishlist: string; sha: string }
  /** A merge/pull request opened or updated: validate and plan the wish list at `headSha`. */
  | { kind: 'check-change-request'; wishlist: string; number: number; headSha: string }
  /**
   * `/reconvert [image ...]` on a merge/pull request. The author's permission is checked when the job
   * runs (the forge API is not called inside a webhook request); `invalid` holds a parse error to answer.
   */
  | { kind: 'reconvert'; wishlist: string; number: number; images: string[]; author: { login: string; id?: number }; commentId: string; invalid?: string }
  /** A registry reported a push: re-resolve the tag and reconvert the wishes naming it if it moved. */
  | { kind: 'registry-push'; registry: string; repository: string; tag?: string }
  /** Periodic safety net: re-resolve every wish of a wish list and reconvert what moved. */
  | { kind: 'reconcile'; wishlist: string }
  /** Scheduled garbage collection of one repository the bot publishes into (config `gc:`). */
  | { kind: 'gc'; cvmfsRepo: string };

export type JobStatus = 'queued' | 'running' | 'done' | 'failed';

/**
 * The lane of a job: jobs of one lane never run at the same time, even on several replicas, so that two
 * pushes of one wish list are published in order and never into each other. A lane is a wish list, a
 * registry repository (push notifications) or a CVMFS repository (gc).
 */
export function jobLane(payload: JobPayload): string {
  switch (payload.kind) {
    case 'registry-push':
      return `registry:${payload.registry}/${payload.repository}`;
    case 'gc':
      return `gc:${payload.cvmfsRepo}`;
    default:
      return `wishlist:${payload.wishlist}`;
  }
}

export interface Job {
  id: number;
  payload: JobPayload;
  status: JobStatus;
  /** How many times the job was started (a restart after a crash counts as a new attempt). */
  attempts: number;
  /** Jobs with the same key are not queued twice (debounce / de-duplication). */
  dedupKey?: string;
  error?: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
  /** The job is not started before this time (debounce). */
  notBefore: number;
}

/** A commit status a job has set and must leave in a final state, even across crashes. */
export interface OwnedStatus {
  jobId: number;
  forge: 'github' | 'gitlab';
  project: string;
  sha: string;
  context: string;
  state: 'pending' | 'success' | 'failure' | 'error';
}

/** What is published for one image of a wish list (a wildcard wish has one record per tag). */
export interface PublishedImage {
  /** Name of the wish list in the bot config. */
  wishlist: string;
  /** The wish list's `cvmfs_repo` the image is published in (may carry a sub-directory). */
  cvmfsRepo: string;
  /** The entry as written in the wish list. */
  input: string;
  /** Whole name of the (expanded) image, `scheme://registry/repository:tag[@digest]`: the key. */
  image: string;
  manifestDigest: string;
  configDigest: string;
  publicPath: string;
  flatPath: string;
  thinName?: string;
  thinDigest?: string;
  /** Wish-list commit the image was last converted for. */
  commitSha?: string;
  updatedAt: number;
  lastResult: 'ok' | 'error';
  lastError?: string;
}

export type DeliveryState = 'unseen' | 'pending' | 'done' | 'failed';

/** Images per outcome since the state database was made, and jobs that failed for good. */
export interface ConversionCounts {
  converted: number;
  upToDate: number;
  failed: number;
  removed: number;
  failedJobs: number;
}

export interface WishlistStats extends ConversionCounts {
  wishlist: string;
  /** When a publish of the whole wish list (a push or a reconcile) last ended with nothing failed (ms). */
  lastSuccessAt?: number;
  lastFailureAt?: number;
}

export interface QueueCounts {
  queued: number;
  running: number;
  done: number;
  failed: number;
}

/**
 * Durable state of `ducc serve`: the embedded SQLite (one process) or PostgreSQL (several `ducc serve`
 * replicas on one queue). Every method is asynchronous; the SQLite store runs each one synchronously
 * (node:sqlite) at the call, or after the transaction of `atomically` that is open when it is called.
 */
export interface StateStore {
  /**
   * How long a claimed job stays its claimer's without renewLease (ms), after which another replica may
   * take it over; undefined when claims do not expire (SQLite: one process, whose restart requeues them).
   */
  readonly leaseMs?: number | undefined;

  /**
   * Copies the write-ahead log into the database file now, at a quiet moment, instead of inside some
   * later write (a webhook's answer would wait for it). Returns the log's size in frames and how many
   * of them are copied (PostgreSQL does this itself: zeros).
   */
  checkpoint(): Promise<{ walFrames: number; checkpointed: number }>;

  /**
   * Runs `work` as one transaction on `tx`: all of its writes are kept, or none if it throws. Calls on
   * the store itself (not on `tx`) made meanwhile wait until it ends, or run beside it on another
   * connection (PostgreSQL).
   */
  atomically<T>(work: (tx: StateStore) => Promise<T>): Promise<T>;

  /**
   * Records a delivery id; false if it was seen before. Inside `atomically`, the id is held until the
   * transaction ends: another transaction recording the same id (a redelivery reaching another replica)
   * waits for it, and then sees what it queued.
   */
  recordDelivery(id: string, now?: number): Promise<boolean>;
  /**
   * What became of a delivery id (or a comment key recorded like one): `unseen`; `pending` while a job it
   * queued is queued or running; `failed` when one of them failed for good (a redelivery must run it
   * again); else `done` (its jobs succeeded, or it queued none).
   */
  deliveryState(id: string): Promise<DeliveryState>;
  /** Says which jobs a delivery id queued, replacing what an earlier delivery of it queued. */
  linkDelivery(id: string, jobIds: number[]): Promise<void>;
  /** Forgets delivery ids older than `maxAgeMs` (kept at least 3 days by the caller). */
  pruneDeliveries(maxAgeMs: number, now?: number): Promise<number>;

  /**
   * Queues a job. With a `dedupKey`, nothing is queued while a queued (not yet running) job has the same
   * key; the existing job is returned instead and `notBefore` is pushed later (debounce).
   */
  enqueue(payload: JobPayload, options?: { dedupKey?: string; notBefore?: number; now?: number }): Promise<{ job: Job; created: boolean }>;
  /**
   * Takes the oldest queued job whose `notBefore` has passed and marks it running (attempts + 1), but
   * none while another job of its lane (see jobLane) runs. With leases (PostgreSQL), a running job whose
   * lease expired (its replica died) is taken over the same way, and its lane is free again.
   */
  claimNext(now?: number): Promise<Job | undefined>;
  /**
   * Extends the lease of a job this store claimed (the worker calls it while the job runs). False when the
   * job is no longer this store's to run (taken over after its lease expired, or finished): its handler
   * must stop and record nothing. Without leases: whether the job is running.
   */
  renewLease(id: number, now?: number): Promise<boolean>;
  /**
   * Marks a running job done, or failed for good. False (and nothing changed) when it is not running, or,
   * with leases, no longer this store's: another replica took it over and its outcome is the one to keep.
   */
  complete(id: number, now?: number): Promise<boolean>;
  fail(id: number, error: string, now?: number): Promise<boolean>;
  /**
   * Puts running jobs that nobody runs back in the queue (at start, after a crash) and returns them:
   * with SQLite every running job; with leases, those whose lease expired.
   */
  requeueRunning(now?: number): Promise<Job[]>;
  /**
   * Puts one running job back in the queue (a retry after a failed attempt, or a job interrupted on
   * shutdown), not to be started before `notBefore` (default: now). `attempts` is kept; `error`, when
   * given, records why. Returns the job, or undefined (and changes nothing) if it was not running.
   */
  requeue(id: number, options?: { notBefore?: number; error?: string; now?: number }): Promise<Job | undefined>;
  getJob(id: number): Promise<Job | undefined>;
  listJobs(options?: { status?: JobStatus; limit?: number }): Promise<Job[]>;
  /** Jobs per status (counts every job ever kept: for status pages and metrics, not for hot paths). */
  counts(): Promise<QueueCounts>;
  /** Jobs waiting in the queue; cheap whatever the history (the intake asks on every webhook). */
  queuedCount(): Promise<number>;
  /** Forgets done and failed jobs (and the statuses they owned) last updated more than `maxAgeMs` ago. */
  pruneFinishedJobs(maxAgeMs: number, now?: number): Promise<number>;

  /** Remembers the latest state a job set on a commit status. */
  recordStatus(status: OwnedStatus): Promise<void>;
  /** Statuses owned by a job that are still pending. */
  pendingStatuses(jobId: number): Promise<OwnedStatus[]>;

  /** Adds to the conversion counters of a wish list. */
  countConversions(wishlist: string, counts: Partial<ConversionCounts>): Promise<void>;
  /** Records that a publish of the whole wish list ended, without (`ok`) or with failures. */
  recordPublishOutcome(wishlist: string, ok: boolean, at: number): Promise<void>;
  /** The counters of every wish list that has any. */
  wishlistStats(): Promise<WishlistStats[]>;

  listPublished(wishlist: string): Promise<PublishedImage[]>;
  upsertPublished(record: PublishedImage): Promise<void>;
  removePublished(wishlist: string, image: string): Promise<void>;

  /** Closes the database (idempotent). */
  close(): Promise<void>;
}
