import { it } from 'node:test';
import assert from 'node:assert/strict';
import { formatSchedule, parseSchedule } from '../../../src/gc/schedule.ts';
import { formatDuration, parseDuration } from '../../../src/gc/format.ts';
import { DuccError } from '../../../src/util/errors.ts';

it('the schedule file reads back what was written, one item per line in path order', () => {
  const schedule = new Map([
    ['.layers/cd/cd', { since: Date.parse('2026-05-02T08:30:00Z'), bytes: 74157056 }],
    ['.flat/ab/ab', { since: Date.parse('2026-05-01T10:00:00Z'), bytes: 0 }],
  ]);

  const bytes = formatSchedule(schedule);

  assert.equal(
    bytes.toString(),
    '{"version":1,"items":{\n".flat/ab/ab":{"since":"2026-05-01T10:00:00.000Z","bytes":0},\n".layers/cd/cd":{"since":"2026-05-02T08:30:00.000Z","bytes":74157056}\n}}\n',
  );
  assert.deepEqual(parseSchedule(bytes, 'f'), schedule);
  assert.deepEqual(parseSchedule(undefined, 'f'), new Map());
  assert.equal(formatSchedule(new Map()).toString(), '{"version":1,"items":{}}\n');
});

it('a damaged schedule stops the gc with an error instead of passing for an empty one', () => {
  for (const text of ['', '[]', '{"version":2,"items":{}}', '{"version":1}', '{"version":1,"items":{"x":{"since":"yesterday"}}}']) {
    assert.throws(
      () => parseSchedule(Buffer.from(text), 'repo: .metadata/gc-schedule.json'),
      (error: unknown) => error instanceof DuccError && error.code === 'BOT_ERR_GC' && /repo: \.metadata\/gc-schedule\.json is damaged/.test(error.message),
      text,
    );
  }
});

it('grace periods: a bare number is days, as DUCC’s flag; units s, m, h, d, w', () => {
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('7'), 7 * 86_400_000);
  assert.equal(parseDuration('1.5'), 36 * 3_600_000);
  assert.equal(parseDuration('12h'), 12 * 3_600_000);
  assert.equal(parseDuration('30m'), 1_800_000);
  assert.equal(parseDuration('2w'), 14 * 86_400_000);
  for (const bad of ['', 'soon', '-1', '1y', '1 d 2 h']) assert.throws(() => parseDuration(bad), /--grace-period must be/);
  assert.equal(formatDuration(7 * 86_400_000), '7d');
  assert.equal(formatDuration(36 * 3_600_000), '36h');
  assert.equal(formatDuration(0), '0');
});
