/**
 * The PostgreSQL state store on a real server (Debian's postgresql, test/support/postgres.ts): the
 * StateStore contract, then what several replicas on one database need — each job claimed once, leases
 * that expire and are taken over, deliveries decided once when they reach two replicas at the same time.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresStateStore } from '../../../src/state/postgres-store.ts';
import { PG_SCHEMA_VERSION } from '../../../src/state/postgres-schema.ts';
import { startPostgres, type PostgresServer } from '../../support/postgres.ts';
import { suiteCleanup, type Cleanup } from '../../support/tmp-dir.ts';
import { storeContract, sync } from '../../support/state-store-contract.ts';

const cleanup = suiteCleanup();
let server: PostgresServer;
before(async () => {
  server = await startPostgres(cleanup);
});
after(() => cleanup.runAll());

/** A store on `database` (a new one by default), closed when the test ends. */
async function openStore(t: Cleanup, options: { database?: string; leaseMs?: number } = {}): Promise<PostgresStateStore> {
  const database = options.database ?? (await server.createDatabase());
  const store = await PostgresStateStore.open({
    url: server.urlOf(database),
    password: server.password,
    ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}),
  });
  t.after(() => store.close());
  return store;
}

/** Two replicas' stores on one new database. */
async function twoReplicas(t: Cleanup, leaseMs?: number): Promise<[PostgresStateStore, PostgresStateStore]> {
  const database = await server.createDatabase();
  return Promise.all([openStore(t, { database, ...(leaseMs ? { leaseMs } : {}) }), openStore(t, { database, ...(leaseMs ? { leaseMs } : {}) })]);
}

describe('the StateStore contract', () => {
  storeContract((t) => openStore(t));
});

test('two replicas claiming at once take each job exactly once', async (t) => {
  const [a, b] = await twoReplicas(t);
  const ids = new Set<number>();
  for (let i = 0; i < 40; i++) ids.add((await a.enqueue(sync(String(i)), { now: 1 })).job.id);
  const claimed: number[] = [];
  const drain = async (store: PostgresStateStore) => {
    for (let job = await store.claimNext(2); job; job = await store.claimNext(2)) {
      claimed.push(job.id);
      assert.equal(await store.complete(job.id, 3), true);
    }
  };
  await Promise.all([drain(a), drain(b), drain(a), drain(b)]);
  assert.deepEqual(
    [...claimed].sort((x, y) => x - y),
    [...ids].sort((x, y) => x - y),
  );
  assert.deepEqual(await b.counts(), { queued: 0, running: 0, done: 40, failed: 0 });
});

test('a lane busy on one replica is busy on the other', async (t) => {
  const [a, b] = await twoReplicas(t);
  const first = (await a.enqueue({ kind: 'sync-branch', wishlist: 'main', sha: '1' }, { now: 1 })).job;
  const second = (await a.enqueue({ kind: 'sync-branch', wishlist: 'main', sha: '2' }, { now: 1 })).job;
  // Claimed at the same moment, at most one job of the lane is taken, and never the newer one: the replica
  // that picked the newer job (the older one row-locked by the other) waits for the older one. When the
  // two get in each other's way, neither claims in that round, and the next claim takes the older job.
  const [fromA, fromB] = await Promise.all([a.claimNext(2), b.claimNext(2)]);
  const claims = [fromA?.id, fromB?.id].filter((id) => id !== undefined);
  assert.ok(claims.length <= 1 && claims.every((id) => id === first.id), `claims ${JSON.stringify(claims)}: at most one, of the oldest job`);
  const x = claims.length === 0 ? await a.claimNext(2) : fromA;
  assert.equal((x ?? fromB)?.id, first.id);
  const holder = x ? a : b;
  assert.equal(await (holder === a ? b : a).claimNext(3), undefined);
  await holder.complete(first.id, 4);
  assert.equal((await (holder === a ? b : a).claimNext(5))?.id, second.id);
});

test('a lane is claimed in order: while its older job is held by a claim in progress, the newer one is not taken', async (t) => {
  const database = await server.createDatabase();
  const store = await openStore(t, { database });
  const first = (await store.enqueue({ kind: 'sync-branch', wishlist: 'main', sha: '1' }, { now: 1 })).job;
  await store.enqueue({ kind: 'sync-branch', wishlist: 'main', sha: '2' }, { now: 1 });
  // Another replica's claim, caught between its SELECT ... FOR UPDATE of the older job and its commit.
  const other = new pg.Client({ host: server.host, port: server.port, user: server.user, password: server.password, database });
  await other.connect();
  t.after(() => other.end());
  await other.query('BEGIN');
  await other.query('SELECT id FROM jobs WHERE id = $1 FOR UPDATE', [first.id]);

  assert.equal(await store.claimNext(2), undefined, 'the push of sha 2 must not be published before the one of sha 1');

  await other.query('ROLLBACK');
  assert.equal((await store.claimNext(3))?.id, first.id);
});

test('a lease not renewed expires: another replica takes the job over, and the first one’s outcome is refused', async (t) => {
  const [a, b] = await twoReplicas(t, 1000);
  assert.equal(a.leaseMs, 1000);
  const job = (await a.enqueue({ kind: 'sync-branch', wishlist: 'main', sha: '1' }, { now: 0 })).job;
  const waiting = (await a.enqueue({ kind: 'reconcile', wishlist: 'main' }, { now: 0 })).job;
  assert.equal((await a.claimNext(100))?.id, job.id);
  assert.equal(await a.renewLease(job.id, 900), true, 'renewed until 1900');
  assert.equal(await b.claimNext(1800), undefined, 'still held');
  assert.deepEqual(await b.requeueRunning(1800), []);
  const taken = await b.claimNext(1901);
  assert.equal(taken?.id, job.id, 'the oldest job first: the one whose replica stopped renewing');
  assert.equal(taken?.attempts, 2);
  assert.equal(await a.renewLease(job.id, 1950), false, 'the first replica learns that it lost the job');
  assert.equal(await a.complete(job.id, 2000), false);
  assert.equal(await a.fail(job.id, 'late', 2000), false);
  assert.equal(await a.requeue(job.id, { now: 2000 }), undefined);
  assert.equal(await a.claimNext(2000), undefined, 'its lane is busy again');
  assert.equal(await b.complete(job.id, 2100), true);
  assert.equal((await b.getJob(job.id))?.status, 'done');
  assert.equal((await a.claimNext(2200))?.id, waiting.id);
  // At start, a replica puts back what dead replicas held (it would be taken over anyway).
  assert.deepEqual(
    (await b.requeueRunning(4000)).map((requeued) => [requeued.id, requeued.status]),
    [[waiting.id, 'queued']],
  );
});

test('the same delivery reaching two replicas at once is decided by one; the other waits and sees its jobs', async (t) => {
  const [a, b] = await twoReplicas(t);
  // The intake's decision (Bot.accept): record the id, and run it only when new or failed before.
  const intake = (store: PostgresStateStore, id: string, hold?: Promise<void>) =>
    store.atomically(async (tx) => {
      if (!(await tx.recordDelivery(id, 1)) && (await tx.deliveryState(id)) !== 'failed') return 'duplicate';
      const { job } = await tx.enqueue(sync(id), { now: 1 });
      await tx.linkDelivery(id, [job.id]);
      await hold;
      return 'queued';
    });
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const first = intake(a, 'delivery-1', held);
  await new Promise((resolve) => setTimeout(resolve, 100));
  let secondDone = false;
  const second = intake(b, 'delivery-1').finally(() => (secondDone = true));
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(secondDone, false, 'the second replica waits for the first one’s transaction');
  release();
  assert.deepEqual(await Promise.all([first, second]), ['queued', 'duplicate']);

  // Its job failed for good: a redelivery reaching both replicas at once runs it again, once.
  const job = (await a.claimNext(2))!;
  await a.fail(job.id, 'boom', 3);
  const outcomes = await Promise.all([intake(a, 'delivery-1'), intake(b, 'delivery-1'), intake(a, 'delivery-1'), intake(b, 'delivery-1')]);
  assert.deepEqual([...outcomes].sort(), ['duplicate', 'duplicate', 'duplicate', 'queued']);
  assert.equal((await a.counts()).queued, 1);
});

test('the same dedup key queued by two replicas at once is one job', async (t) => {
  const [a, b] = await twoReplicas(t);
  const results = await Promise.all(
    [a, b, a, b].map((store, index) => store.enqueue({ kind: 'reconcile', wishlist: 'main' }, { dedupKey: 'reconcile:main', now: index })),
  );
  assert.equal(results.filter((result) => result.created).length, 1);
  assert.equal(new Set(results.map((result) => result.job.id)).size, 1);
});

test('replicas starting together create the schema once; a newer schema is refused', async (t) => {
  const database = await server.createDatabase();
  await Promise.all([1, 2, 3].map(() => openStore(t, { database })));
  const client = new pg.Client({ host: server.host, port: server.port, user: server.user, password: server.password, database });
  await client.connect();
  t.after(() => client.end());
  assert.deepEqual((await client.query('SELECT version FROM ducc_schema')).rows, [{ version: PG_SCHEMA_VERSION }]);
  await client.query('UPDATE ducc_schema SET version = $1', [PG_SCHEMA_VERSION + 1]);
  await assert.rejects(openStore(t, { database }), { code: 'BOT_ERR_CONFIG', message: /schema version \d+ is newer than this ducc supports/ });
});

test('a wrong password is refused without the password in the error', async (t) => {
  const database = await server.createDatabase();
  const wrong = 'not-the-password-5f2c';
  const error = await PostgresStateStore.open({ url: server.urlOf(database), password: wrong }).then(
    (store) => store.close().then(() => assert.fail('opened with a wrong password')),
    (caught: unknown) => caught as Error,
  );
  assert.match(error.message, /password authentication failed/);
  assert.doesNotMatch(`${error.message} ${error.stack ?? ''}`, new RegExp(wrong));
  void t;
});
