/**
 * The directory publisher's repository lock: transactions hold it shared, `exclusive` alone, nested
 * sections do not wait for themselves, it dies with its process, and `requires` refuses a transaction
 * whose precondition is gone.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { FileLock } from '../../../src/publish/file-lock.ts';
import { DuccError, isTemporary } from '../../../src/util/errors.ts';
import { exists, tempDir } from '../../support/tmp-dir.ts';

const REPO = 'lock.example.org';

function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

it('exclusive keeps out the transactions of other publishers on the same root until it ends', async (t) => {
  const root = await tempDir(t);
  const gc = new DirectoryPublisher({ root, repository: REPO, sync: false });
  const converter = new DirectoryPublisher({ root, repository: REPO, sync: false });
  const events: string[] = [];
  const inside = latch();
  const release = latch();

  const section = gc.exclusive(async () => {
    events.push('exclusive starts');
    inside.open();
    await release.promise;
    events.push('exclusive ends');
  });
  await inside.promise;
  const transaction = converter.transaction(async (tx) => {
    events.push('transaction starts');
    await tx.writeFile('file', 'x');
  });
  // Let the transaction ask for the lock; the order below does not depend on how long this takes.
  await new Promise((resolve) => setTimeout(resolve, 200));
  release.open();
  await Promise.all([section, transaction]);

  assert.deepEqual(events, ['exclusive starts', 'exclusive ends', 'transaction starts']);
});

it('transactions hold the lock shared: two publish side by side', async (t) => {
  const root = await tempDir(t);
  const one = new DirectoryPublisher({ root, repository: REPO, sync: false });
  const two = new DirectoryPublisher({ root, repository: REPO, sync: false });
  const secondStarted = latch();

  await Promise.all([
    one.transaction(async (tx) => {
      await secondStarted.promise; // would never resolve if the lock were exclusive
      await tx.writeFile('one', '1');
    }),
    two.transaction(async (tx) => {
      secondStarted.open();
      await tx.writeFile('two', '2');
    }),
  ]);

  assert.equal(await readFile(join(root, REPO, 'one'), 'utf8'), '1');
  assert.equal(await readFile(join(root, REPO, 'two'), 'utf8'), '2');
});

it('a transaction inside exclusive runs at once (the section already holds the lock)', async (t) => {
  const root = await tempDir(t);
  const publisher = new DirectoryPublisher({ root, repository: REPO, sync: false, lockWaitMs: 2000 });

  await publisher.exclusive(() => publisher.transaction((tx) => tx.writeFile('nested', 'ok')));

  assert.equal(await readFile(join(root, REPO, 'nested'), 'utf8'), 'ok');
});

it('requires: a transaction whose precondition is gone publishes nothing and fails for now', async (t) => {
  const root = await tempDir(t);
  const publisher = new DirectoryPublisher({ root, repository: REPO, sync: false });
  await mkdir(join(root, REPO, '.flat', 'ab', 'present'), { recursive: true });

  await publisher.transaction(async (tx) => {
    await tx.requires('.flat/ab/present');
    await tx.symlink('kept', '.flat/ab/present');
  });
  const error = await publisher
    .transaction(async (tx) => {
      await tx.requires('.flat/ab/gone');
      await tx.symlink('dangling', '.flat/ab/gone');
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    );

  assert.ok(error instanceof DuccError);
  assert.equal(error.code, 'BOT_ERR_PUBLISH');
  assert.equal(isTemporary(error), true);
  assert.equal(await exists(join(root, REPO, 'kept')), true);
  assert.equal(await exists(join(root, REPO, 'dangling')), false);
});

it('the lock goes with its process: a SIGKILLed holder does not keep others waiting', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'repo.lock');
  const holder = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { FileLock } from ${JSON.stringify(new URL('../../../src/publish/file-lock.ts', import.meta.url).href)};
       await new FileLock(${JSON.stringify(path)}, { waitMs: 10000 }).run('exclusive', async () => { console.log('held'); await new Promise(() => {}); });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => holder.kill('SIGKILL'));
  await once(holder.stdout, 'data');
  const busy = await new FileLock(path, { waitMs: 1000 }).run('exclusive', async () => 'got it').catch((error: unknown) => error);
  holder.kill('SIGKILL');
  await once(holder, 'close');

  const after = await new FileLock(path, { waitMs: 30_000 }).run('exclusive', async () => 'got it');

  assert.ok(busy instanceof DuccError && /timed out after 1 s waiting for the repository lock/.test(busy.message), String(busy));
  assert.equal(after, 'got it');
});
