// Expected strings marked "Go:" were produced with Go's json.Marshal(map[string]string), time.Format
// with DUCC's layout, and fmt.Sprintf("%f").
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatElapsedSeconds, formatNotification, formatNotificationTime, NotificationWriter } from '../../../src/metadata/notifications.ts';

let savedTz: string | undefined;
before(() => {
  savedTz = process.env.TZ;
});
after(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

const NOW = new Date('2024-03-05T13:03:02.123Z');

describe('formatNotificationTime (layout "_2 Jan 2006 - 15:04:05.000", local time)', () => {
  const expected: Record<string, [string, string]> = {
    'Europe/Zurich': [' 5 Mar 2024 - 14:03:02.123', '26 Dec 2024 - 00:59:59.007'],
    UTC: [' 5 Mar 2024 - 13:03:02.123', '25 Dec 2024 - 23:59:59.007'],
    'America/St_Johns': [' 5 Mar 2024 - 09:33:02.123', '25 Dec 2024 - 20:29:59.007'],
  };
  for (const [zone, [first, second]] of Object.entries(expected)) {
    it(`matches Go in ${zone} (Go)`, () => {
      process.env.TZ = zone;
      assert.equal(formatNotificationTime(NOW), first);
      assert.equal(formatNotificationTime(new Date('2024-12-25T23:59:59.007Z')), second);
    });
  }
});

describe('formatNotification (§9.6)', () => {
  it('sorts keys bytewise, stringifies values, escapes HTML, ends with a newline (Go)', () => {
    process.env.TZ = 'Europe/Zurich';
    const line = formatNotification(
      { action: 'end_layer_conversion', 'z\u00e9': '1', '\u{1F600}': 'emoji', '\uff5e': 'fullwidth', A: '<&>', size_bytes: 29536366 },
      NOW,
    );
    assert.equal(
      line,
      '{"A":"\\u003c\\u0026\\u003e","action":"end_layer_conversion","size_bytes":"29536366","time":" 5 Mar 2024 - 14:03:02.123","z\u00e9":"1","\uff5e":"fullwidth","\u{1F600}":"emoji"}\n',
    );
  });

  it('writes the ducc.md example line', () => {
    process.env.TZ = 'Europe/Zurich';
    const line = formatNotification(
      {
        action: 'end_layer_conversion',
        id: '6f1c',
        image: 'registry.hub.docker.com/library/ubuntu:latest',
        layer: 'ab12',
        size_bytes: 29536366,
        status: 'ok',
        time_elapsed_s: '12.345678',
      },
      new Date('2024-10-18T08:01:07.123Z'),
    );
    assert.equal(
      line,
      '{"action":"end_layer_conversion","id":"6f1c","image":"registry.hub.docker.com/library/ubuntu:latest","layer":"ab12","size_bytes":"29536366","status":"ok","time":"18 Oct 2024 - 10:01:07.123","time_elapsed_s":"12.345678"}\n',
    );
  });

  it('keeps a caller-provided time, replaces an empty one', () => {
    process.env.TZ = 'UTC';
    assert.equal(formatNotification({ time: 'mine' }, NOW), '{"time":"mine"}\n');
    assert.equal(formatNotification({ time: '' }, NOW), '{"time":" 5 Mar 2024 - 13:03:02.123"}\n');
  });

  it('prints non-integer numbers like Go %f (round half to even on the exact value) (Go)', () => {
    const cases: [number, string][] = [
      [12.345678, '12.345678'],
      [0.0078125, '0.007812'],
      [0.0234375, '0.023438'],
      [1.5, '1.500000'],
      [1234567.0000005, '1234567.000000'],
      [2.5e-7, '0.000000'],
      [123.4567895, '123.456789'],
    ];
    for (const [value, expected] of cases) {
      assert.equal(JSON.parse(formatNotification({ v: value, time: 't' }, NOW)).v, expected, String(value));
    }
    assert.equal(formatElapsedSeconds(12345.678), '12.345678');
  });
});

describe('NotificationWriter', () => {
  it('appends one line per notification, in order, to a 0660 file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ducc-notify-'));
    try {
      const path = join(dir, 'notifications.jsonl');
      const writer = await NotificationWriter.open(path);
      const pending = [writer.write({ action: 'a', time: 't1' }), writer.write({ action: 'b', time: 't2' })];
      await Promise.all(pending);
      await writer.close();
      const again = await NotificationWriter.open(path);
      await again.write({ action: 'c', time: 't3' });
      await again.close();
      assert.equal(await readFile(path, 'utf8'), '{"action":"a","time":"t1"}\n{"action":"b","time":"t2"}\n{"action":"c","time":"t3"}\n');
      assert.equal((await stat(path)).mode & 0o777, 0o660 & ~process.umask());
      await assert.rejects(again.write({ action: 'late' }));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('discard() accepts and writes nothing', async () => {
    const writer = NotificationWriter.discard();
    await writer.write({ action: 'x' });
    await writer.close();
  });
});
