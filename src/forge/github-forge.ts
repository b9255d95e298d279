/**
 * `Forge` on GitHub's REST API through `@octokit/rest` (plain client: no retry or throttling plugins, so a
 * failed call fails at once and the caller decides what to retry).
 */
import { Octokit } from '@octokit/rest';
import { pino, type Logger } from 'pino';
import { DuccError, networkCause } from '../util/errors.ts';
import type { Actor, ForgeKind } from './events.ts';
import { REPORT_MARKER, type ChangeRequestInfo, type CommitStatus, type Forge } from './forge.ts';
import { mergeReportSection, type ReportSection } from './report-sections.ts';
import { ForgeError } from './forge-error.ts';
import { GITHUB_COMMENT_MAX_CHARS, GITHUB_STATUS_DESCRIPTION_MAX_CHARS, STATUS_FIELD_MAX_CHARS, truncateMarkdown, truncateText } from './limits.ts';

export interface GitHubForgeOptions {
  /** `https://api.github.com`, `https://ghe.example.org/api/v3`, or a test double. */
  baseUrl: string;
  /** Token with `statuses:write`, `issues:write` (PR comments) and `metadata:read`; never logged. */
  token: string;
  /** The bot's login (`name[bot]` for an App): only its comments are taken for the report. */
  botLogin?: string;
  logger?: Logger;
  /** How requests are sent (octokit's `request.fetch`); default the global fetch. For proxies and tests. */
  fetch?: typeof globalThis.fetch;
}

/** Collaborator permissions allowed to run commands; `maintain` is reported as `write` with `role_name: maintain`. */
const WRITE_PERMISSIONS = new Set(['admin', 'maintain', 'write']);

interface RawPull {
  number: number;
  state: string;
  merged_at?: string | null;
  head: { sha: string; ref: string; repo: { full_name: string } | null };
  base: { ref: string; repo: { full_name: string } | null };
}

export class GitHubForge implements Forge {
  readonly kind: ForgeKind = 'github';
  readonly #octokit: Octokit;
  readonly #botLogin: string | undefined;
  readonly #log: Logger;

  constructor(options: GitHubForgeOptions) {
    this.#botLogin = options.botLogin;
    this.#log = (options.logger ?? pino({ level: 'silent' })).child({ forge: 'github' });
    const log = this.#log;
    this.#octokit = new Octokit({
      auth: options.token,
      baseUrl: options.baseUrl.replace(/\/+$/, ''),
      userAgent: 'ducc-gitops',
      // Only meaningful with @octokit/plugin-retry; set so that adding the plugin later keeps calls single-shot.
      request: { retries: 0, ...(options.fetch ? { fetch: options.fetch } : {}) },
      log: {
        debug: (message: string) => log.debug({ octokit: message }, 'octokit'),
        info: (message: string) => log.debug({ octokit: message }, 'octokit'),
        warn: (message: string) => log.warn({ octokit: message }, 'octokit warning'),
        error: (message: string) => log.error({ octokit: message }, 'octokit error'),
      },
    });
  }

  async setCommitStatus(project: string, sha: string, status: CommitStatus): Promise<void> {
    const { owner, repo } = splitProject(project);
    const targetUrl = status.targetUrl !== undefined && status.targetUrl.length <= STATUS_FIELD_MAX_CHARS ? status.targetUrl : undefined;
    if (status.targetUrl !== undefined && targetUrl === undefined) {
      this.#log.debug({ project, sha, context: status.context }, 'target_url longer than 255 characters left out');
    }
    await this.#call(`setting status ${status.context} on ${project}@${sha}`, () =>
      this.#octokit.rest.repos.createCommitStatus({
        owner,
        repo,
        sha,
        state: status.state,
        context: status.context,
        description: truncateText(status.description, GITHUB_STATUS_DESCRIPTION_MAX_CHARS),
        ...(targetUrl === undefined ? {} : { target_url: targetUrl }),
      }),
    );
  }

  async upsertReport(project: string, number: number, body: string, section?: ReportSection): Promise<void> {
    const { owner, repo } = splitProject(project);
    checkNumber(number);
    const existing = await this.#findReport(owner, repo, number);
    const merged = section === undefined ? body : mergeReportSection(existing?.body, section, body);
    const text = truncateMarkdown(`${REPORT_MARKER}\n${merged}`, GITHUB_COMMENT_MAX_CHARS);
    if (existing !== undefined) {
      await this.#call(`editing report comment ${existing.id} on ${project}#${number}`, () =>
        this.#octokit.rest.issues.updateComment({ owner, repo, comment_id: existing.id, body: text }),
      );
      return;
    }
    await this.#call(`posting report comment on ${project}#${number}`, () =>
      this.#octokit.rest.issues.createComment({ owner, repo, issue_number: number, body: text }),
    );
  }

  async reply(project: string, number: number, body: string): Promise<void> {
    const { owner, repo } = splitProject(project);
    checkNumber(number);
    await this.#call(`posting a comment on ${project}#${number}`, () =>
      this.#octokit.rest.issues.createComment({ owner, repo, issue_number: number, body: truncateMarkdown(body, GITHUB_COMMENT_MAX_CHARS) }),
    );
  }

  async canWrite(project: string, user: Actor): Promise<boolean> {
    const { owner, repo } = splitProject(project);
    try {
      const { data } = await this.#octokit.rest.repos.getCollaboratorPermissionLevel({ owner, repo, username: user.login });
      const roleName = (data as { role_name?: unknown }).role_name;
      return WRITE_PERMISSIONS.has(data.permission) || (typeof roleName === 'string' && WRITE_PERMISSIONS.has(roleName));
    } catch (error) {
      // 404: the user is not a collaborator (or does not exist). Anything else: we cannot tell, so throw.
      if (statusOf(error) === 404) return false;
      throw toForgeError(`checking the permission of ${user.login} on ${project}`, error);
    }
  }

  async getChangeRequest(project: string, number: number): Promise<ChangeRequestInfo> {
    const { owner, repo } = splitProject(project);
    checkNumber(number);
    const { data } = await this.#call(`reading pull request ${project}#${number}`, () => this.#octokit.rest.pulls.get({ owner, repo, pull_number: number }));
    const pull = data as unknown as RawPull;
    return {
      number: pull.number,
      headSha: pull.head.sha,
      state: pull.merged_at ? 'merged' : pull.state === 'open' ? 'open' : 'closed',
      sourceBranch: pull.head.ref,
      targetBranch: pull.base.ref,
      // A deleted fork leaves head.repo null: still a fork, never trusted as our own branch.
      fromFork: pull.head.repo === null || pull.base.repo === null || pull.head.repo.full_name !== pull.base.repo.full_name,
    };
  }

  async findMergedChangeRequest(project: string, sha: string): Promise<number | undefined> {
    const { owner, repo } = splitProject(project);
    let pulls: RawPull[];
    try {
      const { data } = await this.#octokit.rest.repos.listPullRequestsAssociatedWithCommit({ owner, repo, commit_sha: sha, per_page: 100 });
      pulls = data as unknown as RawPull[];
    } catch (error) {
      // 422 "No commit found for SHA": an unknown commit has no pull request.
      const status = statusOf(error);
      if (status === 404 || status === 422) return undefined;
      throw toForgeError(`listing the pull requests of ${project}@${sha}`, error);
    }
    // The endpoint can also list pull requests of other repositories (forks) that contain the commit.
    const ours = pulls.filter(
      (pull) => pull.base.repo === null || pull.base.repo === undefined || pull.base.repo.full_name.toLowerCase() === project.toLowerCase(),
    );
    return ours.find((pull) => Boolean(pull.merged_at))?.number;
  }

  /** The bot's report comment on the pull request, if there is one (the oldest when several). */
  async #findReport(owner: string, repo: string, number: number): Promise<{ id: number; body: string } | undefined> {
    const botLogin = this.#botLogin?.toLowerCase();
    try {
      const pages = this.#octokit.paginate.iterator(this.#octokit.rest.issues.listComments, { owner, repo, issue_number: number, per_page: 100 });
      for await (const { data } of pages) {
        for (const comment of data) {
          if (!comment.body?.includes(REPORT_MARKER)) continue;
          if (botLogin !== undefined && comment.user?.login.toLowerCase() !== botLogin) continue;
          return { id: comment.id, body: comment.body };
        }
      }
    } catch (error) {
      throw toForgeError(`listing the comments of ${owner}/${repo}#${number}`, error);
    }
    return undefined;
  }

  async #call<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw toForgeError(operation, error);
    }
  }
}

function splitProject(project: string): { owner: string; repo: string } {
  const parts = project.split('/');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    throw new DuccError('BOT_ERR_CONFIG', `GitHub repository '${project}' is not of the form owner/name`);
  }
  return { owner: parts[0]!, repo: parts[1]! };
}

function checkNumber(number: number): void {
  if (!Number.isSafeInteger(number) || number <= 0) throw new DuccError('BOT_ERR_CONFIG', `pull request number ${number} is not a positive integer`);
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * Octokit's RequestError, reduced to the status and GitHub's message (its request headers are redacted
 * anyway). A call that got no answer is not an HTTP error, although octokit gives it status 500: it
 * says what failed instead (DNS, refused connection, timeout), and is temporary.
 */
function toForgeError(operation: string, error: unknown): ForgeError {
  if (error instanceof ForgeError) return error;
  const status = statusOf(error);
  const response = (error as { response?: { data?: unknown } } | null)?.response;
  const network = networkCause(error);
  if (network !== undefined || (status !== undefined && response === undefined)) {
    const reason = network?.message ?? (error instanceof Error ? error.message : String(error));
    return new ForgeError('github', `${operation}: no answer from the GitHub API: ${reason}`, undefined, { cause: network ?? error });
  }
  if (status === undefined || response === undefined) {
    return new ForgeError('github', `${operation}: ${error instanceof Error ? error.message : String(error)}`, undefined, { cause: error });
  }
  const data = response.data;
  const apiMessage =
    typeof data === 'object' && data !== null && typeof (data as { message?: unknown }).message === 'string'
      ? (data as { message: string }).message
      : undefined;
  const errors = typeof data === 'object' && data !== null ? (data as { errors?: unknown }).errors : undefined;
  const detail = Array.isArray(errors)
    ? ` (${errors.map((e) => (typeof e === 'object' && e !== null && 'message' in e ? String(e.message) : JSON.stringify(e))).join('; ')})`
    : '';
  return new ForgeError('github', `${operation}: HTTP ${status}${apiMessage ? `: ${apiMessage}` : ''}${detail}`, status);
}
