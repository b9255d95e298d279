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

test('open creates parent directories, sets the pragmas and the schema version', async (t) => {
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

test('a database from a newer ducc is refused', async (t) => {
  const path = join(tempDir(t), 'state.db');
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  assert.throws(() => SqliteStateStore.open(path), { code: 'BOT_ERR_CONFIG' });
});

test(':memory: works', async () => {
  const store = SqliteStateStore.open(':memory:');
  try {
    assert.equal((await store.enqueue(sync('a'))).created, true);
    assert.equal((await store.counts()).queued, 1);
  } finally {
    store.close();
  }
});

test('deliveries are recorded once and pruned by age', async (t) => {
  const store = openTemp(t);
  assert.equal(await store.recordDelivery('d1', 1000), true);
  assert.equal(await store.recordDelivery('d1', 2000), false);
  assert.equal(await store.recordDelivery('d2', 5000), true);
  assert.equal(await store.recordDelivery("x'); DROP TABLE deliveries; --", 5000), true);
  assert.equal(await store.pruneDeliveries(3000, 6000), 1, 'only d1 (received at 1000) is older than 3 s');
  assert.equal(await store.recordDelivery('d1', 7000), true, 'a pruned id is new again');
  assert.equal(await store.recordDelivery('d2', 7000), false);
  assert.equal(await store.pruneDeliveries(0, 100_000), 3);
});

test('jobs are claimed oldest first, once their notBefore has passed; attempts count claims', async (t) => {
  const store = openTemp(t);
  const a = (await store.enqueue(sync('a'), { now: 100, notBefore: 500 })).job;
  const b = (await store.enqueue(sync('b'), { now: 200 })).job;
  const c = (await store.enqueue({ kind: 'reconcile', wishlist: 'main' }, { now: 300 })).job;
  assert.deepEqual({ ...a }, { id: a.id, payload: sync('a'), status: 'queued', attempts: 0, createdAt: 100, updatedAt: 100, notBefore: 500 });
  assert.equal(b.notBefore, 200, 'notBefore defaults to now');

  assert.equal(await store.claimNext(150), undefined, 'nothing is runnable yet');
  const first = await store.claimNext(400);
  assert.equal(first?.id, b.id, 'a waits for its notBefore');
  assert.equal(first?.status, 'running');
  assert.equal(first?.attempts, 1);
  assert.equal(first?.updatedAt, 400);
  assert.equal((await store.claimNext(400))?.id, c.id);
  assert.equal(await store.claimNext(400), undefined);
  assert.equal((await store.claimNext(500))?.id, a.id);
  assert.equal(await store.claimNext(10_000), undefined);
  assert.deepEqual(await store.counts(), { queued: 0, running: 3, done: 0, failed: 0 });

  await store.complete(b.id, 600);
  await store.fail(c.id, 'boom', 700);
  assert.deepEqual(await store.counts(), { queued: 0, running: 1, done: 1, failed: 1 });
  assert.equal((await store.getJob(b.id))?.status, 'done');
  assert.equal((await store.getJob(b.id))?.updatedAt, 600);
  assert.equal((await store.getJob(c.id))?.status, 'failed');
  assert.equal((await store.getJob(c.id))?.error, 'boom');
  assert.equal(await store.getJob(9999), undefined);

  // A retry keeps the attempts and counts the next claim.
  const requeued = await store.requeue(a.id, { notBefore: 2000, error: 'transient', now: 800 });
  assert.equal(requeued?.status, 'queued');
  assert.equal(requeued?.notBefore, 2000);
  assert.equal(requeued?.error, 'transient');
  assert.equal(await store.requeue(a.id, { now: 800 }), undefined, 'only a running job can be requeued');
  assert.equal(await store.requeue(b.id, { now: 800 }), undefined, 'a done job stays done');
  assert.equal(await store.claimNext(1999), undefined);
  const again = await store.claimNext(2000);
  assert.equal(again?.attempts, 2);
  assert.equal(again?.error, 'transient');
  await store.complete(a.id, 2100);
  assert.equal((await store.getJob(a.id))?.error, undefined, 'done clears the error of earlier attempts');
});

test('dedup: a queued job absorbs new ones and its notBefore moves later; a running one does not block', async (t) => {
  const store = openTemp(t);
  const first = await store.enqueue(sync('a'), { dedupKey: 'sync:main', now: 100, notBefore: 1000 });
  assert.equal(first.created, true);
  assert.equal(first.job.dedupKey, 'sync:main');

  const second = await store.enqueue(sync('b'), { dedupKey: 'sync:main', now: 200, notBefore: 3000 });
  assert.equal(second.created, false);
  assert.equal(second.job.id, first.job.id);
  assert.equal(second.job.notBefore, 3000, 'debounced');
  assert.equal(second.job.updatedAt, 200);
  assert.deepEqual(second.job.payload, sync('a'), 'the queued job keeps its payload');

  const earlier = await store.enqueue(sync('c'), { dedupKey: 'sync:main', now: 300, notBefore: 2000 });
  assert.equal(earlier.created, false);
  assert.equal(earlier.job.notBefore, 3000, 'never moved earlier');

  const other = await store.enqueue(sync('d'), { dedupKey: 'sync:other', now: 300 });
  assert.equal(other.created, true);
  const plain = await store.enqueue(sync('e'), { now: 300 });
  assert.equal(plain.created, true);
  assert.equal(plain.job.dedupKey, undefined);
  assert.equal((await store.counts()).queued, 3);

  assert.equal((await store.claimNext(2999))?.id, other.job.id);
  assert.equal((await store.claimNext(2999))?.id, plain.job.id);
  const running = await store.claimNext(3000);
  assert.equal(running?.id, first.job.id);

  const afterRunning = await store.enqueue(sync('f'), { dedupKey: 'sync:main', now: 3100 });
  assert.equal(afterRunning.created, true, 'a running job with the same key does not block a new queued one');
  assert.notEqual(afterRunning.job.id, first.job.id);
  const merged = await store.enqueue(sync('g'), { dedupKey: 'sync:main', now: 3200, notBefore: 4000 });
  assert.equal(merged.created, false);
  assert.equal(merged.job.id, afterRunning.job.id);

  await store.complete(first.job.id, 3300);
  await store.complete(afterRunning.job.id, 3300);
  assert.equal((await store.enqueue(sync('h'), { dedupKey: 'sync:main', now: 3400 })).created, true, 'finished jobs do not block');
});

test('listJobs: newest first, optional status filter and limit', async (t) => {
  const store = openTemp(t);
  const ids: number[] = [];
  for (const n of [1, 2, 3, 4]) ids.push((await store.enqueue(sync(String(n)), { now: n })).job.id);
  await store.claimNext(10);
  await store.complete(ids[0]!, 11);
  assert.deepEqual(
    (await store.listJobs()).map((j) => j.id),
    [...ids].reverse(),
  );
  assert.deepEqual(
    (await store.listJobs({ limit: 2 })).map((j) => j.id),
    [ids[3], ids[2]],
  );
  assert.deepEqual(
    (await store.listJobs({ status: 'queued' })).map((j) => j.id),
    [ids[3], ids[2], ids[1]],
  );
  assert.deepEqual(
    (await store.listJobs({ status: 'queued', limit: 1 })).map((j) => j.id),
    [ids[3]],
  );
  assert.deepEqual(
    (await store.listJobs({ status: 'done' })).map((j) => j.id),
    [ids[0]],
  );
  assert.deepEqual(await store.listJobs({ status: 'failed' }), []);
  assert.deepEqual(await store.listJobs({ limit: 0 }), []);
});

test('state persists across reopening; running jobs are requeued after a crash', async (t) => {
  const path = join(tempDir(t), 'state.db');
  const before = SqliteStateStore.open(path);
  await before.recordDelivery('d1', 1);
  const a = (await before.enqueue(sync('a'), { now: 10, dedupKey: 'k' })).job;
  const b = (await before.enqueue(sync('b'), { now: 20 })).job;
  const c = (await before.enqueue(sync('c'), { now: 30 })).job;
  await before.claimNext(40);
  await before.claimNext(40);
  await before.complete(b.id, 50);
  await before.recordStatus({ jobId: a.id, forge: 'github', project: 'o/r', sha: 'abc', context: 'ducc', state: 'pending' });
  // "Crash": a second process opens the file while the first never completed job a (nor closed).
  const after = SqliteStateStore.open(path);
  t.after(() => {
    before.close();
    after.close();
  });
  assert.equal(await after.recordDelivery('d1', 2), false);
  assert.deepEqual(await after.counts(), { queued: 1, running: 1, done: 1, failed: 0 });
  const requeued = await after.requeueRunning(60);
  assert.deepEqual(
    requeued.map((j) => [j.id, j.status, j.attempts, j.updatedAt]),
    [[a.id, 'queued', 1, 60]],
  );
  assert.deepEqual(await after.requeueRunning(70), [], 'nothing left running');
  assert.equal((await after.pendingStatuses(a.id)).length, 1);
  const resumed = await after.claimNext(80);
  assert.equal(resumed?.id, a.id, 'the interrupted job is resumed first');
  assert.equal(resumed?.attempts, 2, 'a restart counts as an attempt');
  assert.equal(resumed?.dedupKey, 'k');
  assert.equal((await after.claimNext(80))?.id, c.id);
});

test('reopening a closed file keeps everything', async (t) => {
  const path = join(tempDir(t), 'state.db');
  let store = SqliteStateStore.open(path);
  const job = (
    await store.enqueue({ kind: 'reconvert', wishlist: 'w', number: 7, images: ['x'], author: { login: 'me', id: 42 }, commentId: 'c1' }, { now: 1 })
  ).job;
  await store.upsertPublished(published('docker://r/a:1'));
  store.close();
  store = SqliteStateStore.open(path);
  t.after(() => store.close());
  assert.deepEqual(await store.getJob(job.id), job);
  assert.equal((await store.listPublished('w')).length, 1);
  assert.equal(store.schemaVersion, SCHEMA_VERSION);
});

test('owned statuses: upsert by (job, forge, project, sha, context); pendingStatuses', async (t) => {
  const store = openTemp(t);
  const j1 = (await store.enqueue(sync('a'))).job.id;
  const j2 = (await store.enqueue(sync('b'))).job.id;
  const base = { jobId: j1, forge: 'github', project: 'o/r', sha: 'abc', context: 'ducc/publish' } as const;
  await store.recordStatus({ ...base, state: 'pending' });
  await store.recordStatus({ ...base, context: 'ducc/plan', state: 'pending' });
  await store.recordStatus({ ...base, forge: 'gitlab', state: 'pending' });
  await store.recordStatus({ ...base, jobId: j2, state: 'pending' });
  assert.equal((await store.pendingStatuses(j1)).length, 3);
  await store.recordStatus({ ...base, state: 'success' });
  await store.recordStatus({ ...base, forge: 'gitlab', state: 'failure' });
  assert.deepEqual(await store.pendingStatuses(j1), [{ ...base, context: 'ducc/plan', state: 'pending' }]);
  await store.recordStatus({ ...base, state: 'pending' });
  assert.equal((await store.pendingStatuses(j1)).length, 2, 'upsert, not insert: still one row for the context');
  assert.deepEqual(await store.pendingStatuses(j2), [{ ...base, jobId: j2, state: 'pending' }]);
  assert.deepEqual(await store.pendingStatuses(9999), []);
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

test('published images: upsert, list per wish list, remove', async (t) => {
  const store = openTemp(t);
  const b = published('docker://r/b:1', { thinName: 'r/b:1', thinDigest: 'sha256:t', commitSha: 'abc' });
  await store.upsertPublished(b);
  await store.upsertPublished(published('docker://r/a:1'));
  await store.upsertPublished(published('docker://r/a:1', { wishlist: 'other' }));
  assert.deepEqual(
    (await store.listPublished('w')).map((p) => p.image),
    ['docker://r/a:1', 'docker://r/b:1'],
  );
  assert.deepEqual((await store.listPublished('w'))[1], b);
  assert.deepEqual((await store.listPublished('w'))[0], published('docker://r/a:1'), 'absent optional fields stay absent');

  const updated = published('docker://r/b:1', {
    cvmfsRepo: 'other.cern.ch/sub',
    manifestDigest: 'sha256:m2',
    updatedAt: 2,
    lastResult: 'error',
    lastError: 'nope',
  });
  await store.upsertPublished(updated);
  assert.deepEqual((await store.listPublished('w'))[1], updated, 'the optional fields of the old record are gone');
  assert.equal((await store.listPublished('w')).length, 2);

  await store.removePublished('w', 'docker://r/a:1');
  await store.removePublished('w', 'docker://r/unknown:1');
  assert.deepEqual(
    (await store.listPublished('w')).map((p) => p.image),
    ['docker://r/b:1'],
  );
  assert.equal((await store.listPublished('other')).length, 1);
  assert.deepEqual(await store.listPublished('none'), []);
});

test('deliveries do not checkpoint the log by themselves; checkpoint() does, at a moment of our choosing', async (t) => {
  const store = openTemp(t);
  // SQLite's default would checkpoint (and fsync) inside the write that takes the log past 1,000 pages.
  for (let i = 0; i < 1000; i++) await store.recordDelivery(`delivery-${i}`, 1_000 + i);
  const before = await store.checkpoint();
  assert.ok(before.walFrames > 1_100, `the log was checkpointed during the deliveries: ${before.walFrames} frames left`);
  assert.equal(before.checkpointed, before.walFrames);
  // Still all there, and new writes start the log over.
  assert.equal(await store.recordDelivery('delivery-0'), false);
  await store.recordDelivery('delivery-new');
  assert.ok((await store.checkpoint()).walFrames < before.walFrames);
});
