import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { shardOf } from '../../../src/convert/convert-wishlist.ts';
import { parseShard } from '../../../src/cli/run-conversion.ts';
import { DuccError } from '../../../src/util/errors.ts';

describe('--shard k/n', () => {
  it('splits images into n disjoint shares that together are all of them, the same on every worker', () => {
    const names = Array.from({ length: 300 }, (_, i) => `registry.example.org/group/image-${i}`);
    for (const count of [1, 2, 3, 5]) {
      const shares = Array.from({ length: count }, (_, k) => names.filter((name) => shardOf(name, count) === k + 1));
      assert.equal(shares.flat().length, names.length, 'every image in exactly one share');
      assert.deepEqual(new Set(shares.flat()), new Set(names));
      for (const share of shares) assert.ok(share.length > names.length / count / 2, `shares are of a similar size (${shares.map((s) => s.length)})`);
    }
    assert.equal(shardOf(names[42]!, 4), shardOf(names[42]!, 4));
  });

  it('reads k/n and refuses anything else, naming the flag', () => {
    assert.deepEqual(parseShard('2/3'), { index: 2, count: 3 });
    for (const bad of ['0/2', '3/2', '1/0', '1', 'a/b', '1/2/3']) {
      assert.throws(
        () => parseShard(bad),
        (error) => error instanceof DuccError && error.code === 'BOT_ERR_CONFIG' && error.message.includes('--shard'),
        bad,
      );
    }
  });
});
