/**
 * The source cache's memory is bounded (src/sources/cache.ts, MEMORY_BYTES): the entries used last stay,
 * the others are read back from their files, or, for a cache without a directory, are gone (a miss).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SourceCache } from '../../../src/sources/cache.ts';
import { tempDir } from '../../support/tmp-dir.ts';

const documentOf = (text: string) => {
  const bytes = Buffer.from(text.padEnd(40, '.'));
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
};

describe('source cache memory', () => {
  it('keeps at most its limit in memory, the entries used last', async () => {
    const cache = new SourceCache(undefined, undefined, { memoryBytes: 100 });
    const [a, b, c] = [documentOf('a'), documentOf('b'), documentOf('c')];
    await cache.putDocument(a.digest, a.bytes);
    await cache.putDocument(b.digest, b.bytes);
    // a is used again: b is now the oldest, and c pushes it out.
    assert.ok((await cache.getDocument(a.digest))?.equals(a.bytes));
    await cache.putDocument(c.digest, c.bytes);
    assert.ok(cache.memoryBytes <= 100, `${cache.memoryBytes} bytes in memory`);
    assert.equal(await cache.getDocument(b.digest), undefined);
    assert.ok((await cache.getDocument(a.digest))?.equals(a.bytes));
    assert.ok((await cache.getDocument(c.digest))?.equals(c.bytes));

    await cache.putRecord('tags/x', { digest: a.digest });
    assert.ok(cache.memoryBytes <= 100);
    assert.deepEqual(await cache.getRecord('tags/x'), { digest: a.digest });
  });

  it('with a directory, what left memory is read back from its file', async (t) => {
    const dir = await tempDir(t);
    const cache = new SourceCache(dir, undefined, { memoryBytes: 50 });
    const [a, b] = [documentOf('a'), documentOf('b')];
    await cache.putDocument(a.digest, a.bytes);
    await cache.putDocument(b.digest, b.bytes);
    assert.ok(cache.memoryBytes <= 50);
    assert.ok((await cache.getDocument(a.digest))?.equals(a.bytes));
    assert.ok((await cache.getDocument(b.digest))?.equals(b.bytes));
    await cache.putRecord('tags/y', { digest: b.digest });
    await cache.putRecord('tags/z', { digest: a.digest });
    assert.deepEqual(await cache.getRecord('tags/y'), { digest: b.digest });
  });
});
