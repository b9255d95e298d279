/**
 * plainEntryName is the extractor's shortcut for names that need no normalising. Wherever it answers,
 * the answer must be what entryComponents (the full check) gives, joined by '/'; it may decline any name.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { entryComponents, plainEntryName } from '../../../src/unpack/entry-path.ts';
import { DEFAULT_EXTRACT_LIMITS, type ExtractLimits } from '../../../src/unpack/settings.ts';

/** Every string over `alphabet` up to `maxLength` characters. */
function* allStrings(alphabet: string[], maxLength: number): Generator<string> {
  let level = [''];
  yield '';
  for (let length = 1; length <= maxLength; length++) {
    const next: string[] = [];
    for (const prefix of level) for (const c of alphabet) next.push(prefix + c);
    yield* next;
    level = next;
  }
}

function assertAgrees(name: string, limits: ExtractLimits): 'plain' | 'declined' {
  const plain = plainEntryName(name, limits);
  if (plain === undefined) return 'declined';
  let components: string[];
  try {
    components = entryComponents(name, limits, 'entry');
  } catch (error) {
    assert.fail(`${JSON.stringify(name)}: plain ${JSON.stringify(plain)}, but entryComponents refuses it: ${(error as Error).message}`);
  }
  assert.equal(plain, components.join('/'), JSON.stringify(name));
  assert.ok(components.length > 0, `${JSON.stringify(name)} is the root, not plain`);
  return 'plain';
}

describe('plainEntryName', () => {
  it('takes the usual names as they are, without the trailing slash of a directory', () => {
    assert.equal(plainEntryName('usr/bin/ls', DEFAULT_EXTRACT_LIMITS), 'usr/bin/ls');
    assert.equal(plainEntryName('etc/', DEFAULT_EXTRACT_LIMITS), 'etc');
    assert.equal(plainEntryName('.hidden/..dots/...', DEFAULT_EXTRACT_LIMITS), '.hidden/..dots/...');
    assert.equal(plainEntryName('usr/.wh.gone', DEFAULT_EXTRACT_LIMITS), 'usr/.wh.gone');
  });

  it('declines names that need normalising or checking: ./, /, //, ., .., NUL, the root', () => {
    for (const name of ['./etc', '/etc', 'etc//x', 'etc/./x', 'etc/.', 'etc/..', '../x', 'a/../b', 'a\0b', '', '.', './', '/', 'a//']) {
      assert.equal(plainEntryName(name, DEFAULT_EXTRACT_LIMITS), undefined, JSON.stringify(name));
    }
  });

  it('agrees with entryComponents on every name of up to 7 characters over a / . \\0 é', () => {
    const seen = { plain: 0, declined: 0 };
    for (const name of allStrings(['a', '/', '.', '\0', 'é'], 7)) seen[assertAgrees(name, DEFAULT_EXTRACT_LIMITS)]++;
    assert.ok(seen.plain > 10_000 && seen.declined > 10_000, JSON.stringify(seen));
  });

  it('never answers for a name over the byte or depth limits', () => {
    const tight: ExtractLimits = { ...DEFAULT_EXTRACT_LIMITS, maxPathBytes: 12, maxDepth: 3 };
    const seen = { plain: 0, declined: 0 };
    for (const name of allStrings(['a', '/', 'é', '€'], 8)) seen[assertAgrees(name, tight)]++;
    assert.ok(seen.plain > 0, JSON.stringify(seen));
    assert.equal(plainEntryName('a/b/c/d', tight), undefined);
    assert.equal(plainEntryName('€€€€', tight), undefined);
  });
});
