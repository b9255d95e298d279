/**
 * What every StateStore does, whatever keeps it: run against the SQLite store (test/unit/state) and the
 * PostgreSQL one (test/integration/state). `open` gives a new, empty store, closed when the test ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { JobPayload, PublishedImage, StateStore } from '../../src/state/types.ts';

/** A push of its own wish list (`w-<sha>`), so that jobs of different shas are in different lanes. */
export const sync = (sha: string): JobPayload => ({ kind: 'sync-branch', wishlist: `w-${sha}`, sha });

export function storeContract(open: (t: TestContext) => Promise<StateStore>): void {
  test('deliveries are recorded once and pruned by age', async (t) => {
    const store = await open(t);
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
    const store = await open(t);
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
    const store = await open(t);
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
    assert.equal((await store.claimNext(4000))?.id, afterRunning.job.id);
    await store.complete(afterRunning.job.id, 4100);
    assert.equal((await store.enqueue(sync('h'), { dedupKey: 'sync:main', now: 4200 })).created, true, 'finished jobs do not block');
  });

  test('listJobs: newest first, optional status filter and limit', async (t) => {
    const store = await open(t);
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

  test('owned statuses: upsert by (job, forge, project, sha, context); pendingStatuses', async (t) => {
    const store = await open(t);
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

  test('published images: upsert, list per wish list, remove', async (t) => {
    const store = await open(t);
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

  test('lanes: a job waits while another of its lane runs; other lanes go on', async (t) => {
    const store = await open(t);
    const first = (await store.enqueue({ kind: 'sync-branch', wishlist: 'main', sha: 'a' }, { now: 1 })).job;
    const second = (await store.enqueue({ kind: 'reconcile', wishlist: 'main' }, { now: 2 })).job;
    const gc = (await store.enqueue({ kind: 'gc', cvmfsRepo: 'unpacked.cern.ch' }, { now: 3 })).job;
    assert.equal((await store.claimNext(10))?.id, first.id);
    assert.equal((await store.claimNext(10))?.id, gc.id, 'the wish list main is busy: the gc of another lane goes first');
    assert.equal(await store.claimNext(10), undefined);
    assert.equal(await store.complete(first.id, 11), true);
    assert.equal((await store.claimNext(12))?.id, second.id);
  });

  test('only a running job is completed, failed or requeued', async (t) => {
    const store = await open(t);
    const job = (await store.enqueue(sync('a'), { now: 1 })).job;
    assert.equal(await store.complete(job.id, 2), false, 'queued');
    assert.equal(await store.fail(job.id, 'x', 2), false, 'queued');
    assert.equal(await store.renewLease(job.id, 2), false, 'queued');
    await store.claimNext(3);
    assert.equal(await store.renewLease(job.id, 4), true);
    assert.equal(await store.complete(job.id, 5), true);
    assert.equal(await store.fail(job.id, 'late', 6), false, 'done stays done');
    assert.equal(await store.requeue(job.id, { now: 7 }), undefined);
    assert.equal(await store.renewLease(job.id, 8), false);
    const job2 = (await store.enqueue(sync('b'), { now: 9 })).job;
    await store.claimNext(10);
    assert.equal(await store.fail(job2.id, 'boom', 11), true);
    assert.equal(await store.complete(job2.id, 12), false, 'failed stays failed');
    assert.deepEqual(await store.counts(), { queued: 0, running: 0, done: 1, failed: 1 });
  });

  test('atomically: all writes kept, or none when the work throws', async (t) => {
    const store = await open(t);
    const kept = await store.atomically(async (tx) => {
      assert.equal(await tx.recordDelivery('d1', 1), true);
      const { job } = await tx.enqueue(sync('a'), { now: 1 });
      await tx.linkDelivery('d1', [job.id]);
      return job.id;
    });
    await assert.rejects(
      store.atomically(async (tx) => {
        await tx.recordDelivery('d2', 2);
        await tx.enqueue(sync('b'), { now: 2 });
        throw new Error('half-way');
      }),
      /half-way/,
    );
    assert.equal(await store.deliveryState('d1'), 'pending');
    assert.equal(await store.deliveryState('d2'), 'unseen', 'rolled back');
    assert.deepEqual(
      (await store.listJobs()).map((job) => job.id),
      [kept],
    );
    assert.equal(await store.recordDelivery('d2', 3), true);
  });

  test('delivery state follows the jobs it queued: pending, done, failed; relinking replaces', async (t) => {
    const store = await open(t);
    assert.equal(await store.deliveryState('d'), 'unseen');
    await store.recordDelivery('d', 1);
    assert.equal(await store.deliveryState('d'), 'done', 'recorded, no jobs: nothing to do again');
    const a = (await store.enqueue(sync('a'), { now: 1 })).job;
    const b = (await store.enqueue(sync('b'), { now: 1 })).job;
    await store.linkDelivery('d', [a.id, b.id]);
    assert.equal(await store.deliveryState('d'), 'pending');
    await store.claimNext(2);
    await store.claimNext(2);
    assert.equal(await store.deliveryState('d'), 'pending', 'running');
    await store.complete(a.id, 3);
    await store.fail(b.id, 'boom', 3);
    assert.equal(await store.deliveryState('d'), 'failed');
    const c = (await store.enqueue(sync('c'), { now: 4 })).job;
    await store.linkDelivery('d', [c.id]);
    assert.equal(await store.deliveryState('d'), 'pending', 'the failed job is no longer linked');
    await store.linkDelivery('d', []);
    assert.equal(await store.deliveryState('d'), 'done');
  });

  test('wish-list counters add up; publish outcomes keep the latest time', async (t) => {
    const store = await open(t);
    await store.countConversions('w', { converted: 2, upToDate: 3 });
    await store.countConversions('w', { converted: 1, failed: 1, removed: 4, failedJobs: 1 });
    await store.recordPublishOutcome('w', true, 1000);
    await store.recordPublishOutcome('w', false, 2000);
    await store.recordPublishOutcome('v', true, 3000);
    assert.deepEqual(await store.wishlistStats(), [
      { wishlist: 'v', converted: 0, upToDate: 0, failed: 0, removed: 0, failedJobs: 0, lastSuccessAt: 3000 },
      { wishlist: 'w', converted: 3, upToDate: 3, failed: 1, removed: 4, failedJobs: 1, lastSuccessAt: 1000, lastFailureAt: 2000 },
    ]);
  });
}

export function published(image: string, extra: Partial<PublishedImage> = {}): PublishedImage {
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
