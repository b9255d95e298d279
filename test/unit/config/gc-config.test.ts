import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBotConfig } from '../../../src/config/load-bot-config.ts';
import { DuccError } from '../../../src/util/errors.ts';

function load(t: { after(fn: () => void): void }, yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'ducc-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ducc.yaml'), yaml);
  return () => loadBotConfig({ file: join(dir, 'ducc.yaml'), env: {} });
}

test('gc: a schedule in hours, a grace period in days or with a unit, and cvmfs_server gc', (t) => {
  assert.deepEqual(load(t, 'gc:\n  intervalHours: 24\n  gracePeriod: 2\n  cvmfsGc: true\n')().gc, { intervalHours: 24, gracePeriod: '2', cvmfsGc: true });
  assert.deepEqual(load(t, 'gc:\n  gracePeriod: 36h\n')().gc, { intervalHours: 0, gracePeriod: '36h', cvmfsGc: false });
});

test('gc: every problem named with its key', (t) => {
  const run = load(t, 'gc:\n  intervalHours: -1\n  gracePeriod: soon\n  cvmfsGc: maybe\n  every: day\n');
  let message = '';
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof DuccError && error.code === 'BOT_ERR_CONFIG');
    message = error.message;
  }
  assert.match(message, /gc\.intervalHours: must be a number from 0 to 8784, got -1/);
  assert.match(message, /gc\.gracePeriod: gracePeriod must be a number of days or a duration such as 12h/);
  assert.match(message, /gc\.cvmfsGc: must be true or false/);
  assert.match(message, /gc\.every/);
});
