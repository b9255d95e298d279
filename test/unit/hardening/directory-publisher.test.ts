/**
 * The directory publisher's own writes into a freshly unpacked layer (the `.cvmfscatalog` marker) and
 * its all-or-nothing publication, against layers that plant links where it writes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { buildTar } from '../../support/build-tar.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { DuccError } from '../../../src/util/errors.ts';
import { arena } from './arena.ts';

async function publisherIn(base: string) {
  const publisher = new DirectoryPublisher({ root: join(base, 'work'), repository: 'repo' });
  await publisher.recover();
  return publisher;
}

describe('DirectoryPublisher.publishLayer', () => {
  it('catalog-marker-not-written-through-symlink: a layer entry .cvmfscatalog -> <outside file> is replaced, the file untouched', async (t) => {
    const a = await arena(t);
    const before = await a.outsideState();
    const publisher = await publisherIn(a.base);
    const tar = await buildTar([
      { name: '.cvmfscatalog', type: 'symlink', linkname: join(a.outside, 'secret') },
      { name: 'sub/', type: 'directory' },
      { name: 'sub/.cvmfscatalog', type: 'symlink', linkname: '../../outside/secret' },
    ]);
    await publisher.publishLayer('.layers/ab/abcd', Readable.from([tar]), () => ({ 'layers.json': Buffer.from('{}') }));
    assert.equal(await a.outsideState(), before, 'the outside file was not truncated');
    const marker = join(a.base, 'work/repo/.layers/ab/abcd/layerfs/.cvmfscatalog');
    assert.ok((await lstat(marker)).isFile());
    assert.equal((await readFile(marker)).length, 0);
  });

  it('catalog-marker-not-written-through-hardlink: a .cvmfscatalog hard-linked to a layer file leaves that file intact', async (t) => {
    const a = await arena(t);
    const publisher = await publisherIn(a.base);
    const tar = await buildTar([
      { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
      { name: '.cvmfscatalog', type: 'link', linkname: 'etc/passwd' },
    ]);
    await publisher.publishLayer('.layers/cd/cdef', Readable.from([tar]), () => ({}));
    assert.equal(await readFile(join(a.base, 'work/repo/.layers/cd/cdef/layerfs/etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
  });

  it('nothing-visible-unless-verified: a stream that fails after its last entry publishes nothing and leaves no staging', async (t) => {
    const a = await arena(t);
    const publisher = await publisherIn(a.base);
    const tar = await buildTar([{ name: 'complete-looking', content: 'x' }]);
    // Like the digest check at the end of a layer: every byte passes, then the stream fails.
    const failing = new Transform({
      transform: (chunk, _encoding, callback) => callback(null, chunk),
      flush: (callback) => callback(new DuccError('BOT_ERR_DIGEST_MISMATCH', 'layer sha256:ef01: digest mismatch at the very end')),
    });
    failing.on('error', () => undefined); // as DigestingStream does: kept for the reader, never uncaught
    failing.end(tar);
    await assert.rejects(
      publisher.publishLayer('.layers/ef/ef01', failing, () => ({})),
      { code: 'BOT_ERR_DIGEST_MISMATCH' },
    );
    assert.deepEqual(await readdir(join(a.base, 'work/repo')), []);
    assert.deepEqual(await readdir(join(a.base, 'work/.ducc-staging/repo')), []);
  });

  it('stream-failed-before-reading: a tar stream that already failed is reported, not waited for forever', { timeout: 5000 }, async (t) => {
    const a = await arena(t);
    const publisher = await publisherIn(a.base);
    const failed = new Transform({ transform: (chunk, _encoding, callback) => callback(null, chunk) });
    failed.on('error', () => undefined);
    failed.destroy(new DuccError('BOT_ERR_DIGEST_MISMATCH', 'failed before the publisher started reading'));
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(
      publisher.publishLayer('.layers/12/1234', failed, () => ({})),
      { code: 'BOT_ERR_DIGEST_MISMATCH', message: /before the publisher/ },
    );
  });
});
