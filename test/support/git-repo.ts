import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A real bare git repository on disk (the "forge" side) with a work clone the test commits from. */
export interface TestGitRepo {
  /** file:// URL of the bare repository, what the bot clones. */
  url: string;
  /** Writes files, commits them on `branch` (created from `from` if new) and pushes; returns the commit id. */
  commit(files: Record<string, string>, options?: { branch?: string; from?: string; message?: string }): Promise<string>;
  /** Publishes a commit as GitHub `refs/pull/<n>/head` or GitLab `refs/merge-requests/<n>/head`. */
  pushChangeRequestRef(ref: string, sha: string): Promise<void>;
}

export async function createGitRepo(t: TestContext | { after: (fn: () => Promise<void>) => void }): Promise<TestGitRepo> {
  const root = await mkdtemp(join(tmpdir(), 'ducc-git-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const bare = join(root, 'origin.git');
  const work = join(root, 'work');
  const git = (cwd: string, ...args: string[]) =>
    run('git', args, {
      cwd,
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 'Test',
        GIT_AUTHOR_EMAIL: 'test@example.org',
        GIT_COMMITTER_NAME: 'Test',
        GIT_COMMITTER_EMAIL: 'test@example.org',
      },
    });
  await run('git', ['init', '--bare', '--quiet', '--initial-branch=main', bare]);
  await run('git', ['init', '--quiet', '--initial-branch=main', work]);
  await git(work, 'remote', 'add', 'origin', bare);
  let current = 'main';
  return {
    url: `file://${bare}`,
    async commit(files, options = {}) {
      const branch = options.branch ?? 'main';
      if (branch !== current) {
        const exists = await git(work, 'rev-parse', '--verify', '--quiet', `refs/heads/${branch}`).then(
          () => true,
          () => false,
        );
        if (exists) await git(work, 'checkout', '--quiet', branch);
        else await git(work, 'checkout', '--quiet', '-b', branch, ...(options.from ? [options.from] : []));
        current = branch;
      }
      for (const [path, content] of Object.entries(files)) {
        await mkdir(dirname(join(work, path)), { recursive: true });
        await writeFile(join(work, path), content);
        await git(work, 'add', path);
      }
      await git(work, 'commit', '--quiet', '--allow-empty', '-m', options.message ?? 'update wish list');
      await git(work, 'push', '--quiet', '--force', 'origin', `${branch}:refs/heads/${branch}`);
      return (await git(work, 'rev-parse', 'HEAD')).stdout.trim();
    },
    async pushChangeRequestRef(ref, sha) {
      await git(work, 'push', '--quiet', '--force', 'origin', `${sha}:${ref}`);
    },
  };
}
