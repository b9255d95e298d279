import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiDouble } from '../../support/forge-api-double.ts';

const DOUBLE_MODULE = fileURLToPath(new URL('../../support/forge-api-double.ts', import.meta.url));

async function call(url: string, method = 'GET', body?: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

describe('forge API double', () => {
  it('answers expectations in order of registration, first unused match wins, and records requests', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'GET', path: '/a', reply: { status: 200, body: { n: 1 } } });
    double.expect({ method: 'GET', path: /^\/a/, times: 2, reply: ({ path }) => ({ status: 200, body: { n: 2, path } }) });
    double.expect({ method: 'POST', path: '/b', body: (b) => assert.deepEqual(b, { x: 1 }), reply: { status: 201, headers: { 'x-custom': 'y' } } });
    assert.deepEqual(await call(`${double.url}/a`), { status: 200, body: { n: 1 } });
    assert.deepEqual(await call(`${double.url}/a?q=1`), { status: 200, body: { n: 2, path: '/a?q=1' } });
    assert.deepEqual(await call(`${double.url}/a`), { status: 200, body: { n: 2, path: '/a' } });
    assert.deepEqual(await call(`${double.url}/b`, 'POST', { x: 1 }), { status: 201, body: undefined });
    double.assertDone();
    assert.deepEqual(
      double.requests.map((r) => [r.method, r.path, r.body]),
      [
        ['GET', '/a', undefined],
        ['GET', '/a?q=1', undefined],
        ['GET', '/a', undefined],
        ['POST', '/b', { x: 1 }],
      ],
    );
  });

  it('assertDone names expectations that were not used up', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'GET', path: '/once', reply: { status: 200 } });
    double.expect({ method: 'GET', path: '/twice', times: 2, reply: { status: 200 } });
    double.expect({ method: 'GET', path: '/any', times: Infinity, reply: { status: 200 } });
    await call(`${double.url}/twice`);
    assert.throws(() => double.assertDone(), /GET \/once \(0\/1\)[\s\S]*GET \/twice \(1\/2\)/);
  });

  it('an unexpected request gets a 500 and is recorded (checked here with failing turned off)', async (t) => {
    const double = await startApiDouble(t, { failTestOnUnexpected: false });
    double.expect({ method: 'GET', path: '/known', reply: { status: 200 } });
    const answer = await call(`${double.url}/unknown`, 'DELETE');
    assert.equal(answer.status, 500);
    assert.match(String((answer.body as { message: string }).message), /unexpected request DELETE \/unknown/);
    assert.deepEqual(
      double.unexpected.map((r) => `${r.method} ${r.path}`),
      ['DELETE /unknown'],
    );
    assert.match(double.failures[0]!, /unexpected request DELETE \/unknown/);
  });

  it('a failed body assertion answers 500 and is a failure', async (t) => {
    const double = await startApiDouble(t, { failTestOnUnexpected: false });
    double.expect({ method: 'POST', path: '/b', body: (b) => assert.deepEqual(b, { x: 1 }), reply: { status: 201 } });
    assert.equal((await call(`${double.url}/b`, 'POST', { x: 2 })).status, 500);
    assert.match(double.failures[0]!, /body of POST \/b rejected/);
  });

  it('an unexpected request really fails the test that made it, even when the client swallowed the 500', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'api-double-meta-'));
    try {
      const file = join(dir, 'meta.test.mts');
      await writeFile(
        file,
        [
          `import { it } from 'node:test';`,
          `import { startApiDouble } from ${JSON.stringify(DOUBLE_MODULE)};`,
          `it('makes an unexpected request and ignores the answer', async (t) => {`,
          `  const double = await startApiDouble(t);`,
          `  await fetch(double.url + '/repos/x/y/statuses/abc', { method: 'POST' }).catch(() => undefined);`,
          `});`,
          `it('a clean test still passes', async (t) => { await startApiDouble(t); });`,
          '',
        ].join('\n'),
      );
      // Without NODE_TEST_CONTEXT, which makes a child of `node --test` report to the parent instead of printing.
      const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
      const run = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { encoding: 'utf8', timeout: 60_000, env });
      assert.notEqual(run.status, 0, run.stdout);
      assert.match(run.stdout, /not ok 1 - makes an unexpected request/);
      assert.match(run.stdout, /unexpected request POST \/repos\/x\/y\/statuses\/abc/);
      assert.match(run.stdout, /^ok 2 - a clean test still passes/m);
      assert.match(run.stdout, /# pass 1\n# fail 1/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
