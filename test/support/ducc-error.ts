import assert from 'node:assert/strict';
import { DuccError } from '../../src/util/errors.ts';

/**
 * For assert.rejects / assert.throws: the error is a DuccError with `code`, its message matches `re`,
 * and it does not contain `secret`.
 */
export const hasCode = (code: string, re?: RegExp, secret?: string) => (error: unknown) => {
  assert.ok(error instanceof DuccError, `expected a DuccError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (re !== undefined) assert.match(error.message, re);
  if (secret !== undefined) assert.ok(!error.message.includes(secret), 'the secret is not in the message');
  return true;
};
