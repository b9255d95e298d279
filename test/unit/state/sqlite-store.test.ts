import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SCHEMA_VERSION, SqliteStateStore } from '../../../src/state/sqlite-store.ts';
import { published, storeContract, sync } from '../../support/state-store-contract.ts';

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

storeContract(async (t) => openTemp(t));

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
