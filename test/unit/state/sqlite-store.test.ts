import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SCHEMA_VERSION, SqliteStateStore } from '../../../src/state/sqlite-store.ts';
import type { JobPayload, PublishedImage } from '../../../src/state/types.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ducc-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openTemp(t: { after: (fn: () => void) => void }): SqliteStateStore {
  const store = SqliteStateStore.open(join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  return store;
}

const sync = (sha: string): JobPayload => ({ kind: 'sync-branch', wishlist: 'main', sha });

test('open creates parent directories, sets the pragmas and the schema version', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'a', 'b', 'state.db');
  const store = SqliteStateStore.open(path);
  t.after(() => store.close());
  assert.ok(existsSync(path));
  assert.equal(store.schemaVersion, SCHEMA_VERSION);
  store.close();
  store.close(); // idempotent

  const db = new DatabaseSync(path);
  try {
    assert.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal');
    assert.equal(db.prepare('PRAGMA user_version').get()?.user_version, SCHEMA_VERSION);
    const tables = db
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
      .all()
      .map((r) => r.name);
    for (const name of ['deliveries', 'jobs', 'owned_statuses', 'published']) assert.ok(tables.includes(name), name);
  } finally {
    db.close();
  }
});

test('a database from a newer ducc is refused', (t) => {
  const path = join(tempDir(t), 'state.db');
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  assert.throws(() => SqliteStateStore.open(path), { code: 'BOT_ERR_CONFIG' });
});

test(':memory: works', () => {
  const store = SqliteStateStore.open(':memory:');
  try {
    assert.equal(store.enqueue(sync('a')).created, true);
    assert.equal(store.counts().queued, 1);
  } finally {
    store.close();
  }
});

test('deliveries are recorded once and pruned by age', (t) => {
  const store = openTemp(t);
  assert.equal(store.recordDelivery('d1', 1000), true);
  assert.equal(store.recordDelivery('d1', 2000), false);
  assert.equal(store.recordDelivery('d2', 5000), true);
  assert.equal(store.recordDelivery("x'); DROP TABLE deliveries; --", 5000), true);
  assert.equal(store.pruneDeliveries(3000, 6000), 1, 'only d1 (received at 1000) is older than 3 s');
  assert.equal(store.recordDelivery('d1', 7000), true, 'a pruned id is new again');
  assert.equal(store.recordDelivery('d2', 7000), false);
  assert.equal(store.pruneDeliveries(0, 100_000), 3);
});

test('jobs are claimed oldest first, once their notBefore has passed; attempts count claims', (t) => {
  const store = openTemp(t);
  const a = store.enqueue(sync('a'), { now: 100, notBefore: 500 }).job;
  const b = store.enqueue(sync('b'), { now: 200 }).job;
  const c = store.enqueue({ kind: 'reconcile', wishlist: 'main' }, { now: 300 }).job;
  assert.deepEqual({ ...a }, { id: a.id, payload: sync('a'), status: 'queued', attempts: 0, createdAt: 100, updatedAt: 100, notBefore: 500 });
  assert.equal(b.notBefore, 200, 'notBefore defaults to now');

  assert.equal(store.claimNext(150), undefined, 'nothing is runnable yet');
  const first = store.claimNext(400);
  assert.equal(first?.id, b.id, 'a waits for its notBefore');
  assert.equal(first?.status, 'running');
  assert.equal(first?.attempts, 1);
  assert.equal(first?.updatedAt, 400);
  assert.equal(store.claimNext(400)?.id, c.id);
  assert.equal(store.claimNext(400), undefined);
  assert.equal(store.claimNext(500)?.id, a.id);
  assert.equal(store.claimNext(10_000), undefined);
  assert.deepEqual(store.counts(), { queued: 0, running: 3, done: 0, failed: 0 });

  store.complete(b.id, 600);
  store.fail(c.id, 'boom', 700);
  assert.deepEqual(store.counts(), { queued: 0, running: 1, done: 1, failed: 1 });
  assert.equal(store.getJob(b.id)?.status, 'done');
  assert.equal(store.getJob(b.id)?.updatedAt, 600);
  assert.equal(store.getJob(c.id)?.status, 'failed');
  assert.equal(store.getJob(c.id)?.error, 'boom');
  assert.equal(store.getJob(9999), undefined);

  // A retry keeps the attempts and counts the next claim.
  const requeued = store.requeue(a.id, { notBefore: 2000, error: 'transient', now: 800 });
  assert.equal(requeued?.status, 'queued');
  assert.equal(requeued?.notBefore, 2000);
  assert.equal(requeued?.error, 'transient');
  assert.equal(store.requeue(a.id, { now: 800 }), undefined, 'only a running job can be requeued');
  assert.equal(store.requeue(b.id, { now: 800 }), undefined, 'a done job stays done');
  assert.equal(store.claimNext(1999), undefined);
  const again = store.claimNext(2000);
  assert.equal(again?.attempts, 2);
  assert.equal(again?.error, 'transient');
  store.complete(a.id, 2100);
  assert.equal(store.getJob(a.id)?.error, undefined, 'done clears the error of earlier attempts');
});

test('dedup: a queued job absorbs new ones and its notBefore moves later; a running one does not block', (t) => {
  const store = openTemp(t);
  const first = store.enqueue(sync('a'), { dedupKey: 'sync:main', now: 100, notBefore: 1000 });
  assert.equal(first.created, true);
  assert.equal(first.job.dedupKey, 'sync:main');

  const second = store.enqueue(sync('b'), { dedupKey: 'sync:main', now: 200, notBefore: 3000 });
  assert.equal(second.created, false);
  assert.equal(second.job.id, first.job.id);
  assert.equal(second.job.notBefore, 3000, 'debounced');
  assert.equal(second.job.updatedAt, 200);
  assert.deepEqual(second.job.payload, sync('a'), 'the queued job keeps its payload');

  const earlier = store.enqueue(sync('c'), { dedupKey: 'sync:main', now: 300, notBefore: 2000 });
  assert.equal(earlier.created, false);
  assert.equal(earlier.job.notBefore, 3000, 'never moved earlier');

  const other = store.enqueue(sync('d'), { dedupKey: 'sync:other', now: 300 });
  assert.equal(other.created, true);
  const plain = store.enqueue(sync('e'), { now: 300 });
  assert.equal(plain.created, true);
  assert.equal(plain.job.dedupKey, undefined);
  assert.equal(store.counts().queued, 3);

  assert.equal(store.claimNext(2999)?.id, other.job.id);
  assert.equal(store.claimNext(2999)?.id, plain.job.id);
  const running = store.claimNext(3000);
  assert.equal(running?.id, first.job.id);

  const afterRunning = store.enqueue(sync('f'), { dedupKey: 'sync:main', now: 3100 });
  assert.equal(afterRunning.created, true, 'a running job with the same key does not block a new queued one');
  assert.notEqual(afterRunning.job.id, first.job.id);
  const merged = store.enqueue(sync('g'), { dedupKey: 'sync:main', now: 3200, notBefore: 4000 });
  assert.equal(merged.created, false);
  assert.equal(merged.job.id, afterRunning.job.id);

  store.complete(first.job.id, 3300);
  store.complete(afterRunning.job.id, 3300);
  assert.equal(store.enqueue(sync('h'), { dedupKey: 'sync:main', now: 3400 }).created, true, 'finished jobs do not block');
});

test('listJobs: newest first, optional status filter and limit', (t) => {
  const store = openTemp(t);
  const ids = [1, 2, 3, 4].map((n) => store.enqueue(sync(String(n)), { now: n }).job.id);
  store.claimNext(10);
  store.complete(ids[0]!, 11);
  assert.deepEqual(
    store.listJobs().map((j) => j.id),
    [...ids].reverse(),
  );
  assert.deepEqual(
    store.listJobs({ limit: 2 }).map((j) => j.id),
    [ids[3], ids[2]],
  );
  assert.deepEqual(
    store.listJobs({ status: 'queued' }).map((j) => j.id),
    [ids[3], ids[2], ids[1]],
  );
  assert.deepEqual(
    store.listJobs({ status: 'queued', limit: 1 }).map((j) => j.id),
    [ids[3]],
  );
  assert.deepEqual(
    store.listJobs({ status: 'done' }).map((j) => j.id),
    [ids[0]],
  );
  assert.deepEqual(store.listJobs({ status: 'failed' }), []);
  assert.deepEqual(store.listJobs({ limit: 0 }), []);
});

test('state persists across reopening; running jobs are requeued after a crash', (t) => {
  const path = join(tempDir(t), 'state.db');
  const before = SqliteStateStore.open(path);
  before.recordDelivery('d1', 1);
  const a = before.enqueue(sync('a'), { now: 10, dedupKey: 'k' }).job;
  const b = before.enqueue(sync('b'), { now: 20 }).job;
  const c = before.enqueue(sync('c'), { now: 30 }).job;
  before.claimNext(40);
  before.claimNext(40);
  before.complete(b.id, 50);
  before.recordStatus({ jobId: a.id, forge: 'github', project: 'o/r', sha: 'abc', context: 'ducc', state: 'pending' });
  // "Crash": a second process opens the file while the first never completed job a (nor closed).
  const after = SqliteStateStore.open(path);
  t.after(() => {
    before.close();
    after.close();
  });
  assert.equal(after.recordDelivery('d1', 2), false);
  assert.deepEqual(after.counts(), { queued: 1, running: 1, done: 1, failed: 0 });
  const requeued = after.requeueRunning(60);
  assert.deepEqual(
    requeued.map((j) => [j.id, j.status, j.attempts, j.updatedAt]),
    [[a.id, 'queued', 1, 60]],
  );
  assert.deepEqual(after.requeueRunning(70), [], 'nothing left running');
  assert.equal(after.pendingStatuses(a.id).length, 1);
  const resumed = after.claimNext(80);
  assert.equal(resumed?.id, a.id, 'the interrupted job is resumed first');
  assert.equal(resumed?.attempts, 2, 'a restart counts as an attempt');
  assert.equal(resumed?.dedupKey, 'k');
  assert.equal(after.claimNext(80)?.id, c.id);
});

test('reopening a closed file keeps everything', (t) => {
  const path = join(tempDir(t), 'state.db');
  let store = SqliteStateStore.open(path);
  const job = store.enqueue({ kind: 'reconvert', wishlist: 'w', number: 7, images: ['x'], author: { login: 'me', id: 42 }, commentId: 'c1' }, { now: 1 }).job;
  store.upsertPublished(published('docker://r/a:1'));
  store.close();
  store = SqliteStateStore.open(path);
  t.after(() => store.close());
  assert.deepEqual(store.getJob(job.id), job);
  assert.equal(store.listPublished('w').length, 1);
  assert.equal(store.schemaVersion, SCHEMA_VERSION);
});

test('owned statuses: upsert by (job, forge, project, sha, context); pendingStatuses', (t) => {
  const store = openTemp(t);
  const j1 = store.enqueue(sync('a')).job.id;
  const j2 = store.enqueue(sync('b')).job.id;
  const base = { jobId: j1, forge: 'github', project: 'o/r', sha: 'abc', context: 'ducc/publish' } as const;
  store.recordStatus({ ...base, state: 'pending' });
  store.recordStatus({ ...base, context: 'ducc/plan', state: 'pending' });
  store.recordStatus({ ...base, forge: 'gitlab', state: 'pending' });
  store.recordStatus({ ...base, jobId: j2, state: 'pending' });
  assert.equal(store.pendingStatuses(j1).length, 3);
  store.recordStatus({ ...base, state: 'success' });
  store.recordStatus({ ...base, forge: 'gitlab', state: 'failure' });
  assert.deepEqual(store.pendingStatuses(j1), [{ ...base, context: 'ducc/plan', state: 'pending' }]);
  store.recordStatus({ ...base, state: 'pending' });
  assert.equal(store.pendingStatuses(j1).length, 2, 'upsert, not insert: still one row for the context');
  assert.deepEqual(store.pendingStatuses(j2), [{ ...base, jobId: j2, state: 'pending' }]);
  assert.deepEqual(store.pendingStatuses(9999), []);
});

function published(image: string, extra: Partial<PublishedImage> = {}): PublishedImage {
  return {
    wishlist: 'w',
    cvmfsRepo: 'unpacked.cern.ch',
    input: 'docker://r/a:*',
    image,
    manifestDigest: 'sha256:m',
    configDigest: 'sha256:c',
    publicPath: '/cvmfs/x/r/a:1',
    flatPath: '/cvmfs/x/.flat/ab/cd',
    updatedAt: 1,
    lastResult: 'ok',
    ...extra,
  };
}

test('published images: upsert, list per wish list, remove', (t) => {
  const store = openTemp(t);
  const b = published('docker://r/b:1', { thinName: 'r/b:1', thinDigest: 'sha256:t', commitSha: 'abc' });
  store.upsertPublished(b);
  store.upsertPublished(published('docker://r/a:1'));
  store.upsertPublished(published('docker://r/a:1', { wishlist: 'other' }));
  assert.deepEqual(
    store.listPublished('w').map((p) => p.image),
    ['docker://r/a:1', 'docker://r/b:1'],
  );
  assert.deepEqual(store.listPublished('w')[1], b);
  assert.deepEqual(store.listPublished('w')[0], published('docker://r/a:1'), 'absent optional fields stay absent');

  const updated = published('docker://r/b:1', {
    cvmfsRepo: 'other.cern.ch/sub',
    manifestDigest: 'sha256:m2',
    updatedAt: 2,
    lastResult: 'error',
    lastError: 'nope',
  });
  store.upsertPublished(updated);
  assert.deepEqual(store.listPublished('w')[1], updated, 'the optional fields of the old record are gone');
  assert.equal(store.listPublished('w').length, 2);

  store.removePublished('w', 'docker://r/a:1');
  store.removePublished('w', 'docker://r/unknown:1');
  assert.deepEqual(
    store.listPublished('w').map((p) => p.image),
    ['docker://r/b:1'],
  );
  assert.equal(store.listPublished('other').length, 1);
  assert.deepEqual(store.listPublished('none'), []);
});

test('deliveries do not checkpoint the log by themselves; checkpoint() does, at a moment of our choosing', (t) => {
  const store = openTemp(t);
  // SQLite's default would checkpoint (and fsync) inside the write that takes the log past 1,000 pages.
  for (let i = 0; i < 1000; i++) store.recordDelivery(`delivery-${i}`, 1_000 + i);
  const before = store.checkpoint();
  assert.ok(before.walFrames > 1_100, `the log was checkpointed during the deliveries: ${before.walFrames} frames left`);
  assert.equal(before.checkpointed, before.walFrames);
  // Still all there, and new writes start the log over.
  assert.equal(store.recordDelivery('delivery-0'), false);
  store.recordDelivery('delivery-new');
  assert.ok(store.checkpoint().walFrames < before.walFrames);
});
