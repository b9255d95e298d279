/**
 * A writer thread that stops in the middle of a layer (a bug in it, an uncaught error), or whose module
 * cannot even be loaded, must fail that layer at once with a clear error, not leave the extractor
 * blocked until its 5-minute stall backstop; and later layers must still unpack, written by the
 * extractor itself. In its own file because it stops the process's writer threads for good.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { extractLayer } from '../../../src/unpack/extract-layer.ts';
import { failWriterThreadsForTest, fileWriterStats } from '../../../src/unpack/file-writer.ts';
import { buildTar } from '../../support/build-tar.ts';
import { arena, extraTarget } from '../hardening/arena.ts';

it('a writer thread that stops mid-layer fails that layer at once, and the next layer unpacks without it', async (t) => {
  const a = await arena(t);
  const tar = await buildTar(Array.from({ length: 2000 }, (_, i) => ({ name: `d${i % 10}/f${i}`, content: Buffer.alloc(3000, i % 251) })));
  const half = Math.floor(tar.length / 2 / 512) * 512;
  async function* stopsTheWriterHalfway(): AsyncGenerator<Buffer> {
    yield tar.subarray(0, half);
    // Let the session open and its first batches arrive before the thread fails.
    await sleep(100);
    assert.ok(fileWriterStats.filesHandedOver > 0, 'no file went to the writer thread before it was stopped');
    failWriterThreadsForTest();
    await sleep(100);
    yield tar.subarray(half);
  }
  const started = Date.now();
  await assert.rejects(
    extractLayer(Readable.from(stopsTheWriterHalfway()), await extraTarget(a, 1), {
      label: 'layer sha256:feed',
      writerThread: true,
      writerThreadAfterFiles: 0,
    }),
    /file-writer thread stopped with files of this layer not yet written/,
  );
  assert.ok(Date.now() - started < 30_000, 'the extractor waited for its stall backstop');

  const handedOverBefore = fileWriterStats.filesHandedOver;
  const next = await extraTarget(a, 2);
  await extractLayer(Readable.from([tar]), next, { label: 'layer sha256:beef', writerThread: true, writerThreadAfterFiles: 0 });
  assert.equal(fileWriterStats.filesHandedOver, handedOverBefore, 'a file went to a stopped writer thread');
  assert.equal((await readdir(join(next, 'd3'))).length, 200);
  assert.deepEqual(await readFile(join(next, 'd7/f1997')), Buffer.alloc(3000, 1997 % 251));
});

it('a writer module that cannot be loaded fails the files handed over within a second, naming why', async (t) => {
  // The unpack module and what it imports, copied without file-writer-worker.ts: what a packaging
  // mistake would ship (a bundle once looked for the worker next to a shared chunk).
  const a = await arena(t);
  const root = join(a.base, 'copy');
  await mkdir(join(root, 'unpack'), { recursive: true });
  await mkdir(join(root, 'util'), { recursive: true });
  await mkdir(join(root, 'registry'), { recursive: true });
  const source = new URL('../../../src/', import.meta.url);
  for (const file of [
    'unpack/file-writer.ts',
    'unpack/file-writer-protocol.ts',
    'unpack/settings.ts',
    'registry/limits.ts',
    'util/errors.ts',
    'util/yield-gate.ts',
  ])
    await copyFile(new URL(file, source), join(root, file));
  const copied = (await import(pathToFileURL(join(root, 'unpack/file-writer.ts')).href)) as typeof import('../../../src/unpack/file-writer.ts');
  const session = copied.FileWriterSession.open();
  assert.ok(session, 'no writer threads on this machine');
  const target = await extraTarget(a, 1);
  const started = Date.now();
  assert.throws(() => {
    for (let i = 0; i < 2000; i++) {
      session.begin({ path: join(target, `f${i}`), size: 3, createMode: 0o644, mode: 0o644, uid: -1, gid: -1, mtime: 0 }, `entry f${i}`);
      session.write(Buffer.from('abc'), 0, 3);
      session.end();
    }
    session.settle();
  }, /file-writer thread stopped with files of this layer not yet written: .*file-writer-worker/);
  assert.ok(Date.now() - started < 10_000, 'the session waited for its stall backstop');
  session.close();
});
