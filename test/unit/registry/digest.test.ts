import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DuccError } from '../../../src/util/errors.ts';
import { assertValidDigest, digestOf, isValidDigest, verifyDigest } from '../../../src/registry/digest.ts';
import { assertValidRef, classifyReference, isValidRepository, isValidTag } from '../../../src/registry/names.ts';

const hex64 = 'a'.repeat(64);

test('digest grammar', () => {
  assert.equal(isValidDigest(`sha256:${hex64}`), true);
  assert.equal(isValidDigest(`sha512:${'0'.repeat(128)}`), true);
  for (const bad of [
    `sha256:${'A'.repeat(64)}`,
    `sha256:${hex64}a`,
    `sha256:${hex64.slice(1)}`,
    `sha512:${hex64}`,
    `md5:${hex64}`,
    `sha256:${hex64.slice(2)}/..`,
    `sha256:../../${hex64}`,
    '',
    undefined,
    42,
  ]) {
    assert.equal(isValidDigest(bad), false, String(bad));
  }
  assert.throws(
    () => assertValidDigest('sha256:nothex', 'layer 0'),
    (e: unknown) => e instanceof DuccError && e.code === 'BOT_ERR_DIGEST_MISMATCH' && /layer 0/.test(e.message),
  );
  assert.throws(
    () => assertValidDigest('x', 'ref', 'BOT_ERR_REFERENCE'),
    (e: unknown) => e instanceof DuccError && e.code === 'BOT_ERR_REFERENCE',
  );
});

test('digestOf and verifyDigest', () => {
  const data = Buffer.from('hello');
  assert.equal(digestOf(data), 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  assert.match(digestOf(data, 'sha512'), /^sha512:[a-f0-9]{128}$/);
  verifyDigest(data, digestOf(data, 'sha512'), 'x');
  assert.throws(
    () => verifyDigest(Buffer.from('hellO'), digestOf(data), 'blob b'),
    (e: unknown) => e instanceof DuccError && e.code === 'BOT_ERR_DIGEST_MISMATCH' && /blob b/.test(e.message),
  );
});

test('references, repositories and registry hosts are validated before use in URLs', () => {
  assert.equal(classifyReference('latest'), 'tag');
  assert.equal(classifyReference('v1.2.3-rc_1'), 'tag');
  assert.equal(classifyReference(`sha256:${hex64}`), 'digest');
  for (const bad of ['', '-x', '.x', 'a/b', '../x', 'x'.repeat(129), `sha256:${hex64.slice(3)}`, 'a?b']) {
    assert.throws(
      () => classifyReference(bad),
      (e: unknown) => e instanceof DuccError && e.code === 'BOT_ERR_REFERENCE',
      bad,
    );
  }
  assert.equal(isValidTag('x'.repeat(128)), true);
  for (const good of ['library/ubuntu', 'a', 'team/sub-group/app_1', 'a__b', 'a.b', 'a--b']) assert.equal(isValidRepository(good), true, good);
  for (const bad of ['Upper', '/a', 'a/', 'a//b', '../a', 'a/../b', 'a b', 'a?b', '_a', 'a.', 'a%2fb']) assert.equal(isValidRepository(bad), false, bad);
  assertValidRef({ scheme: 'http', registry: '127.0.0.1:5000', repository: 'x/y' });
  assertValidRef({ scheme: 'https', registry: '[::1]:5000', repository: 'x' });
  for (const registry of ['', 'host/path', 'user@host', 'host:port', 'host:5000/x', 'ho st']) {
    assert.throws(
      () => assertValidRef({ scheme: 'https', registry, repository: 'x' }),
      (e: unknown) => e instanceof DuccError && e.code === 'BOT_ERR_REFERENCE',
      registry,
    );
  }
  assert.throws(
    () => assertValidRef({ scheme: 'ftp' as 'http', registry: 'h', repository: 'x' }),
    (e: unknown) => e instanceof DuccError && e.code === 'BOT_ERR_REFERENCE',
  );
});
