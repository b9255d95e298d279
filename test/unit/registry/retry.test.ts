import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, isRetryableStatus, isTransientNetworkError, networkErrorCode, parseRetryAfter } from '../../../src/registry/transport/retry.ts';

test('Retry-After as delay-seconds', () => {
  assert.equal(parseRetryAfter('1'), 1000);
  assert.equal(parseRetryAfter(' 0 '), 0);
  assert.equal(parseRetryAfter(['7', '9']), 7000);
  assert.equal(parseRetryAfter('3600'), 60_000, 'capped at 60 s');
});

test('Retry-After as an HTTP date, relative to now', () => {
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', now), 5000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0, 'a past date means now');
  assert.equal(parseRetryAfter('Thu, 22 Oct 2015 07:28:00 GMT', now), 60_000, 'capped at 60 s');
});

test('absent or invalid Retry-After is undefined', () => {
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(parseRetryAfter(''), undefined);
  assert.equal(parseRetryAfter('-5'), undefined);
  assert.equal(parseRetryAfter('1.5'), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
});

test('backoff doubles per attempt, with jitter between half and the full value, capped', () => {
  assert.equal(
    backoffDelay(0, 500, () => 0),
    250,
  );
  assert.equal(
    backoffDelay(0, 500, () => 1),
    500,
  );
  assert.equal(
    backoffDelay(3, 500, () => 1),
    4000,
  );
  assert.equal(
    backoffDelay(3, 500, () => 0),
    2000,
  );
  assert.equal(
    backoffDelay(20, 500, () => 1),
    30_000,
  );
  for (let i = 0; i < 50; i++) {
    const d = backoffDelay(2, 100);
    assert.ok(d >= 200 && d <= 400, `${d} within [200, 400]`);
  }
});

test('retryable statuses', () => {
  for (const s of [429, 500, 502, 503, 504, 408]) assert.equal(isRetryableStatus(s), true, String(s));
  for (const s of [200, 400, 401, 403, 404, 501, 505]) assert.equal(isRetryableStatus(s), false, String(s));
});

test('network error classification looks through causes', () => {
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  const wrapped = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET', cause: reset });
  assert.equal(networkErrorCode(wrapped), 'ECONNRESET');
  assert.equal(isTransientNetworkError(wrapped), true);
  assert.equal(isTransientNetworkError(Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' })), true);
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  assert.equal(networkErrorCode(refused), 'ECONNREFUSED');
  assert.equal(isTransientNetworkError(refused), false);
  assert.equal(isTransientNetworkError(Object.assign(new Error('x'), { code: 'ENOTFOUND' })), false);
  assert.equal(isTransientNetworkError(new Error('plain')), false);
});
