/**
 * The bot's intake (Bot.accept, run inside webhook requests) against a real state database: what it
 * records, and that a failure half-way records nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Bot } from '../../../src/bot/bot.ts';
import type { Delivery } from '../../../src/forge/events.ts';
import type { RegistryClient } from '../../../src/registry/client.ts';
import { SqliteStateStore } from '../../../src/state/sqlite-store.ts';
import { botConfig } from '../../support/bot-harness.ts';

function setUp(t: { after: (fn: () => void) => void }) {
  const root = mkdtempSync(join(tmpdir(), 'ducc-intake-'));
  const config = botConfig(root, [{}]);
  const store = SqliteStateStore.open(config.statePath);
  t.after(() => {
    store.close();
    rmSync(root, { recursive: true, force: true });
  });
  let pokes = 0;
  const bot = new Bot({
    config,
    env: {},
    store,
    // The intake never talks to a forge or a registry.
    forgeFor: () => assert.fail('the intake asked for a forge'),
    client: {} as RegistryClient,
    logger: pino({ level: 'silent' }),
    onEnqueued: () => pokes++,
  });
  return { bot, store, pokes: () => pokes };
}

const push = (id: string, after: string): Delivery => ({
  id,
  events: [{ kind: 'push', repo: { forge: 'github', project: 'cern/wishlist' }, branch: 'main', after }],
});

test('a push is queued once; its redelivery is a duplicate, and the worker is woken only for the first', async (t) => {
  const { bot, store, pokes } = setUp(t);
  const first = await bot.accept(push('d-1', 'a'.repeat(40)));
  assert.equal(first.outcome, 'queued');
  assert.deepEqual(await bot.accept(push('d-1', 'a'.repeat(40))), { outcome: 'duplicate' });
  assert.equal(await store.queuedCount(), 1);
  assert.equal(pokes(), 1);
});

test('a delivery whose job cannot be queued is not recorded either: its retry is queued, not taken for a duplicate', async (t) => {
  const { bot, store, pokes } = setUp(t);
  // The intake writes through the transaction's view of the store: its enqueue fails there.
  const atomically = store.atomically.bind(store);
  store.atomically = (work) =>
    atomically((tx) =>
      work(
        new Proxy(tx, {
          get: (target, property) => {
            if (property === 'enqueue') return () => Promise.reject(new Error('disk full (test)'));
            const value: unknown = Reflect.get(target, property);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
      ),
    );
  await assert.rejects(bot.accept(push('d-2', 'b'.repeat(40))), /disk full/);
  assert.equal(await store.queuedCount(), 0);
  assert.equal(pokes(), 0);
  store.atomically = atomically;
  const retry = await bot.accept(push('d-2', 'b'.repeat(40)));
  assert.equal(retry.outcome, 'queued');
  assert.equal(await store.queuedCount(), 1);
});
