/**
 * A conversion run looks at the next images ahead of the one it converts (convertWishlist's lookahead):
 * outcomes and failures still come in the order of the wish list, an image that moved is converted, the
 * others are up to date without a blob request, and a tag that is missing fails on its own line.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { buildTar } from '../../support/build-tar.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';

it('a run looks ahead but reports in list order: moved tags converted, the rest up to date with no blob request, a missing tag failed on its line', async (t) => {
  const registry = await startRegistry(t);
  const root = await tempDir(t);
  const layout = join(root, 'layout');
  for (const [tag, content] of [
    ['one', 'first image'],
    ['two', 'second image'],
  ]) {
    await writeOciLayout(layout, tag!, [
      {
        layers: [
          await buildTar([
            { name: 'etc/', type: 'directory' },
            { name: 'etc/id', content: content! },
          ]),
        ],
        config: {},
      },
    ]);
  }
  const tags = Array.from({ length: 24 }, (_, i) => `t${String(i).padStart(2, '0')}`);
  for (const tag of tags) await pushOciLayout(layout, 'one', { host: registry.host, repository: `look/r${tag.at(-1)! < '5' ? 'a' : 'b'}`, tag });
  const entries = tags.map((tag) => `look/r${tag.at(-1)! < '5' ? 'a' : 'b'}:${tag}`);
  entries.splice(10, 0, 'look/ra:missing');
  const text = ['version: 1', "cvmfs_repo: 'look.example.org'", 'input:', ...entries.map((e) => `  - 'http://${registry.host}/${e}'`), ''].join('\n');
  const flags = { repoRoot: join(root, 'cvmfs'), skipThinImage: true };
  const logger = createLogger({ level: 'silent' });
  const convert = () => runConversion(parseWishlist(text, 'wishlist.yaml'), flags, {}, logger);

  const first = await convert();
  assert.equal(first.converted, 24);
  assert.equal(first.failed, 1);
  assert.match(first.failures[0]!.message, /^wishlist\.yaml:14: .*look\/ra:missing/);
  assert.deepEqual(
    first.results.map((r) => r.image.slice(r.image.indexOf(registry.host) + registry.host.length + 1)),
    entries.filter((e) => !e.endsWith(':missing')),
  );

  const noop = await convert();
  assert.equal(noop.upToDate, 24);
  assert.equal(noop.converted, 0);
  assert.equal(noop.blobRequests, 0);

  // Two tags move to the second image, one early and one late in the list.
  for (const entry of [entries[3]!, entries[20]!]) {
    const [repository, tag] = entry.split(':');
    await pushOciLayout(layout, 'two', { host: registry.host, repository: repository!, tag: tag! });
  }
  const moved = await convert();
  assert.equal(moved.converted, 2);
  assert.equal(moved.upToDate, 22);
  assert.deepEqual(
    moved.results.flatMap((r, index) => (r.status === 'converted' ? [index] : [])),
    [3, 19],
  );
  const repo = join(root, 'cvmfs', 'look.example.org', registry.host);
  const target = await readlink(join(repo, entries[20]!));
  assert.ok((await lstat(join(repo, entries[20]!, '..', target, 'etc/id'))).isFile());
});
