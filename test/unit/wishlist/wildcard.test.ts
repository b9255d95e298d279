import { it } from 'node:test';
import assert from 'node:assert/strict';
import { matchWildcardTags } from '../../../src/wishlist/wildcard.ts';

// Vectors from DUCC's ducc/lib/image_test.go, plus the case where DUCC's unescaped regex was wrong.
it('a* matches tags starting with a', () => {
  assert.deepEqual(matchWildcardTags('a*', ['aaaa', 'aab.12-8', '2.3']), ['aaaa', 'aab.12-8']);
});
it('*-foo and *foo* match suffixes and infixes', () => {
  assert.deepEqual(matchWildcardTags('*-foo', ['a-foo', 'foo', 'a-foo-b']), ['a-foo']);
  assert.deepEqual(matchWildcardTags('*foo*', ['a-foo', 'foo', 'a-foo-b', 'bar']), ['a-foo', 'foo', 'a-foo-b']);
});
it('rhel7-m* selects only the rhel7-m tags; rhel7 matches exactly', () => {
  const tags = ['rhel6-m1', 'rhel7-m1', 'rhel7-m2', 'rhel7', 'rhel7-x'];
  assert.deepEqual(matchWildcardTags('rhel7-m*', tags), ['rhel7-m1', 'rhel7-m2']);
  assert.deepEqual(matchWildcardTags('rhel7', tags), ['rhel7']);
});
it('a dot is literal (DUCC matched 1.2* against 1x2)', () => {
  assert.deepEqual(matchWildcardTags('1.2*', ['1.2', '1.21', '1x2', '1.3']), ['1.2', '1.21']);
});
