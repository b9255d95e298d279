/**
 * A published repository is read by users other than the one that wrote it (CVMFS clients, Apptainer,
 * thin images): every directory the publisher creates is 0755, and what comes from an image keeps the
 * image's modes. The shared test images are converted (as root, as in production) and then read as
 * `nobody` (setpriv): nobody reaches and reads every published path, except what the image's own modes
 * close to others.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, lstat, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { debianLikeImage } from '../../support/test-images.ts';
import { suiteCleanup, tempDir } from '../../support/tmp-dir.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { createLogger } from '../../../src/util/logger.ts';

const run = promisify(execFile);
const IS_ROOT = process.getuid?.() === 0;
const AS_NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--'];
const REPO = 'unpacked.example.org';
const CLI = new URL('../../../bin/ducc.js', import.meta.url).pathname;

/** Image content: a layer's tree or a flat tree, and everything below (its modes are the image's). */
const IMAGE_CONTENT = /^(\.layers\/[0-9a-f]{2}\/[0-9a-f]{64}\/layerfs|\.flat\/[0-9a-f]{2}\/[0-9a-f]{64})(\/|$)/;

interface Entry {
  path: string;
  mode: number;
  kind: 'dir' | 'file' | 'other';
}

/** Every path below `root` (relative; the root itself as ''), as root sees it. */
async function walk(root: string, rel = ''): Promise<Entry[]> {
  const stat = await lstat(rel === '' ? root : join(root, rel));
  const entry: Entry = { path: rel, mode: stat.mode & 0o7777, kind: stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other' };
  if (entry.kind !== 'dir') return [entry];
  const entries = [entry];
  for (const name of (await readdir(join(root, rel))).sort()) entries.push(...(await walk(root, rel === '' ? name : `${rel}/${name}`)));
  return entries;
}

/** What `find` lists when run as nobody, and the files it cannot read (access(2), then reading them all). */
async function asNobody(root: string): Promise<{ listed: string[]; unreadable: string[] }> {
  const find = (args: string[]) =>
    run('setpriv', [...AS_NOBODY, 'find', root, ...args], { maxBuffer: 64 << 20 }).then(
      ({ stdout }) => stdout,
      // find exits 1 after "Permission denied" on a directory it cannot list; what it printed counts.
      (error: { stdout: string }) => error.stdout,
    );
  const listed = (await find(['-printf', '%P\\n'])).split('\n').filter((line) => line !== '');
  const unreadable = (await find(['-type', 'f', '!', '-readable', '-printf', '%P\\n'])).split('\n').filter((line) => line !== '');
  // And read every file it may (directories it may not enter are skipped): any failure of cat fails find.
  const closedDirectory = ['-type', 'd', '!', '(', '-readable', '-executable', ')', '-prune'];
  await run('setpriv', [...AS_NOBODY, 'find', root, '(', ...closedDirectory, ')', '-o', '(', '-type', 'f', '-readable', '-exec', 'cat', '{}', '+', ')'], {
    maxBuffer: 1 << 30,
  });
  return { listed: ['', ...listed].sort(), unreadable: unreadable.sort() };
}

describe('a published repository read by an unprivileged user', { skip: !IS_ROOT && 'needs root (setpriv to nobody)' }, () => {
  let registry: TestRegistry;
  const cleanup = suiteCleanup();
  before(async () => {
    registry = await startRegistry(cleanup as unknown as TestContext);
  });
  after(() => cleanup.runAll());

  /** Converts the shared Debian-like image into a fresh repository that others may reach; returns the repository. */
  async function convertDebianLike(t: TestContext, umask?: number): Promise<string> {
    const layout = join(await tempDir(t), 'layout');
    await writeOciLayout(layout, 'v1', [await debianLikeImage()]);
    await pushOciLayout(layout, 'v1', { host: registry.host, repository: 'test/debianish', tag: 'v1' });
    const root = await tempDir(t);
    // The test's own temporary directory is private (mkdtemp); the publisher makes everything below it.
    await chmod(root, 0o755);
    const text = ['version: 1', 'user: pusher', `cvmfs_repo: '${REPO}'`, 'input:', `  - 'http://${registry.host}/test/debianish:v1'`, ''].join('\n');
    if (umask === undefined) {
      const summary = await runConversion(
        parseWishlist(text, 'w.yaml'),
        { repoRoot: join(root, 'cvmfs'), skipThinImage: true },
        {},
        createLogger({ level: 'silent' }),
      );
      assert.deepEqual(summary.failures, []);
    } else {
      // A process of its own, started under that umask (as a service with UMask=0077 would be).
      await writeFile(join(root, 'wishlist.yaml'), text);
      const convert = [CLI, 'convert', join(root, 'wishlist.yaml'), '--repo-root', join(root, 'cvmfs'), '--skip-thin-image'];
      await run('sh', ['-c', `umask ${umask.toString(8).padStart(3, '0')} && exec "$@"`, 'sh', process.execPath, ...convert]);
    }
    return join(root, 'cvmfs', REPO);
  }

  /** Directories the publisher made are 0755, and nobody reads every path but what the image's own modes close. */
  async function assertReadableByOthers(repo: string): Promise<void> {
    const entries = await walk(repo);

    // Made by the publisher: 0755 directories (anything in the image keeps the image's modes).
    const made = entries.filter((entry) => entry.kind === 'dir' && !IMAGE_CONTENT.test(entry.path));
    assert.ok(made.some((entry) => /^\.layers\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(entry.path)));
    assert.deepEqual(
      made.filter((entry) => entry.mode !== 0o755).map((entry) => `${entry.path} ${entry.mode.toString(8)}`),
      [],
    );

    // What nobody can reach: paths below directories that others may list and search; of those files,
    // the ones others may read.
    const modes = new Map(entries.map((entry) => [entry.path, entry]));
    const reachable = (path: string): boolean => {
      for (let parent = path; parent !== '';) {
        parent = parent.includes('/') ? parent.slice(0, parent.lastIndexOf('/')) : '';
        if ((modes.get(parent)!.mode & 0o005) !== 0o005) return false;
      }
      return true;
    };
    const expectedListed = entries.filter((entry) => reachable(entry.path)).map((entry) => entry.path);
    const expectedUnreadable = entries
      .filter((entry) => entry.kind === 'file' && reachable(entry.path) && (entry.mode & 0o004) === 0)
      .map((entry) => entry.path);
    const seen = await asNobody(repo);
    assert.deepEqual(seen.listed, expectedListed.sort());
    assert.deepEqual(seen.unreadable, expectedUnreadable.sort());
    // Only the image's own modes close anything: its home/user (0750) and the file in it.
    const closed = entries.filter((entry) => !reachable(entry.path) || expectedUnreadable.includes(entry.path)).map((entry) => entry.path);
    assert.ok(closed.length > 0 && closed.every((path) => IMAGE_CONTENT.test(path) && /\/home\/user(\/|$)/.test(path)), closed.join('\n'));
  }

  it('every directory the publisher made is 0755; nobody reads every path but what the image itself closes', async (t) => {
    await assertReadableByOthers(await convertDebianLike(t));
  });

  it('the same under a umask of 077', async (t) => {
    await assertReadableByOthers(await convertDebianLike(t, 0o077));
  });
});
