import { mkdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import { DuccError, errorMessage } from '../util/errors.ts';

/** Commit ids as git prints them (SHA-1 or SHA-256 repositories). Anything else never reaches git. */
const COMMIT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const BRANCH = /^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$/;

/**
 * A local bare clone of a wish-list repository, kept in a cache directory and fetched on every trigger.
 * Files are read at an exact commit (`git show <sha>:<path>`), never from a working tree, so what is
 * published is what the pushed commit holds — not what a webhook's file list claims (GitLab caps it).
 * git runs through simple-git, without a shell; commit ids and branch names are validated first.
 */
export class WishlistRepository {
  private readonly dir: string;
  private readonly cloneUrl: string;
  private git: SimpleGit | undefined;
  /** Serialises git operations on this clone. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: { cacheDir: string; name: string; cloneUrl: string }) {
    this.dir = join(options.cacheDir, `${options.name}.git`);
    this.cloneUrl = options.cloneUrl;
  }

  /** Fetches branches and merge/pull request heads (GitHub `refs/pull/*`, GitLab `refs/merge-requests/*`). */
  fetch(): Promise<void> {
    return this.serialised(async () => {
      const git = await this.open();
      try {
        await git.raw([
          'fetch',
          '--prune',
          '--force',
          'origin',
          '+refs/heads/*:refs/heads/*',
          '+refs/pull/*/head:refs/pull/*/head',
          '+refs/merge-requests/*/head:refs/merge-requests/*/head',
        ]);
      } catch (error) {
        // Temporary (the repository or the network may be back later). The message says what failed in
        // words (it becomes a commit status); git's own output, with the local clone's path, is `detail`,
        // which the log shows. The cause is not kept: its message may hold the clone URL's credentials.
        throw Object.assign(new DuccError('BOT_ERR_GIT', 'cannot fetch the wish-list repository'), {
          detail: redactUrl(errorMessage(error)).trim(),
        });
      }
    });
  }

  /** Makes sure a commit is present, fetching it by id if the branch fetch did not bring it. */
  ensureCommit(sha: string): Promise<void> {
    assertCommitId(sha);
    return this.serialised(async () => {
      const git = await this.open();
      if (await hasCommit(git, sha)) return;
      await git.raw(['fetch', 'origin', sha]).catch(() => undefined);
      // Temporary: a forge may announce a commit before every mirror serves it.
      if (!(await hasCommit(git, sha))) throw new DuccError('BOT_ERR_GIT', `commit ${sha} is not in the wish-list repository`);
    });
  }

  /** The commit a branch points to in the clone (after `fetch`). */
  branchHead(branch: string): Promise<string | undefined> {
    if (!BRANCH.test(branch)) throw new DuccError('BOT_ERR_CONFIG', `invalid branch name '${branch}'`);
    return this.serialised(async () => {
      const git = await this.open();
      const out = await git.raw(['rev-parse', '--verify', '--quiet', `refs/heads/${branch}^{commit}`]).catch(() => '');
      const sha = out.trim();
      return COMMIT_ID.test(sha) ? sha : undefined;
    });
  }

  /** A file's text at a commit, or undefined when the file does not exist there. */
  readFile(sha: string, path: string): Promise<string | undefined> {
    assertCommitId(sha);
    if (path.startsWith('-') || path.includes('\0') || path.split('/').includes('..'))
      throw new DuccError('BOT_ERR_CONFIG', `invalid wish-list path '${path}'`);
    return this.serialised(async () => {
      const git = await this.open();
      try {
        return await git.show([`${sha}:${path}`]);
      } catch {
        return undefined;
      }
    });
  }

  private async open(): Promise<SimpleGit> {
    if (this.git) return this.git;
    const exists = await access(join(this.dir, 'HEAD')).then(
      () => true,
      () => false,
    );
    if (!exists) {
      await mkdir(this.dir, { recursive: true });
      await simpleGit().raw(['init', '--bare', '--quiet', this.dir]);
      await simpleGit(this.dir).raw(['remote', 'add', 'origin', this.cloneUrl]);
    } else {
      await simpleGit(this.dir).raw(['remote', 'set-url', 'origin', this.cloneUrl]);
    }
    this.git = simpleGit(this.dir);
    return this.git;
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

function assertCommitId(sha: string): void {
  if (!COMMIT_ID.test(sha)) throw new DuccError('BOT_ERR_CONFIG', `invalid commit id '${sha.slice(0, 80)}'`);
}

async function hasCommit(git: SimpleGit, sha: string): Promise<boolean> {
  return git.raw(['cat-file', '-e', `${sha}^{commit}`]).then(
    () => true,
    () => false,
  );
}

/** Clone URLs may carry credentials (`https://user:token@host`); never let them reach a message. */
export function redactUrl(text: string): string {
  return text.replace(/(\w+:\/\/)[^/@\s]+@/g, '$1[redacted]@');
}
