/**
 * `Forge` on GitLab's REST API (v4) through `@gitbeaker/rest`.
 *
 * gitbeaker 43.x notes: its request handler retries 429 and 502 answers by itself (10 attempts,
 * 0.25·2^i ms apart) and no option turns that off; `rateLimits` is its client-side throttle (by default
 * GitLab.com's per-endpoint limits, e.g. 300 note creations a minute), which we keep; `queryTimeout` is
 * the per-request timeout (default 300 s, we use 30 s). Responses are not camelized (`camelize` unset),
 * so fields keep GitLab's snake_case names.
 */
import { Gitlab, GitbeakerRequestError, GitbeakerRetryError, GitbeakerTimeoutError } from '@gitbeaker/rest';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { DuccError, networkCause } from '../util/errors.ts';
import type { Actor, ForgeKind } from './events.ts';
import { REPORT_MARKER, type ChangeRequestInfo, type CommitState, type CommitStatus, type Forge } from './forge.ts';
import { mergeReportSection, type ReportSection } from './report-sections.ts';
import { ForgeError } from './forge-error.ts';
import { GITLAB_NOTE_MAX_CHARS, STATUS_FIELD_MAX_CHARS, truncateMarkdown, truncateText } from './limits.ts';

export interface GitLabForgeOptions {
  /** `https://gitlab.example.org` (without `/api/v4`), or a test double. */
  host: string;
  /** Personal, project or group access token with the `api` scope; never logged. */
  token: string;
  /** The bot's username: only its notes are taken for the report. */
  botUsername?: string;
  logger?: Logger;
  /** Waits before each retry of a status update answered with 409 Conflict (default 250, 500, 1000 ms). */
  conflictRetryDelaysMs?: readonly number[];
  /** Per-request timeout (gitbeaker `queryTimeout`), default 30 s. */
  requestTimeoutMs?: number;
}

/** GitLab `access_level` of a Developer: the lowest role that can push, and so run commands. */
const DEVELOPER_ACCESS = 30;
const DEFAULT_CONFLICT_RETRY_DELAYS_MS = [250, 500, 1000] as const;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Our states → GitLab's. `pending` means "we are working on it": GitLab's `pending` is "queued", `running` is closer. */
const GITLAB_STATE: Record<CommitState, 'running' | 'success' | 'failed'> = {
  pending: 'running',
  success: 'success',
  failure: 'failed',
  error: 'failed',
};

/** State-machine events in "Cannot transition status via :<event> from :<state>" and the state each leads to. */
const EVENT_TARGET: Record<string, string> = {
  enqueue: 'pending',
  run: 'running',
  succeed: 'success',
  drop: 'failed',
  cancel: 'canceled',
  skip: 'skipped',
};

interface RawNote {
  id: number;
  body?: string | null;
  system?: boolean;
  author?: { username?: string } | null;
}

interface RawMergeRequest {
  iid: number;
  sha: string;
  state: string;
  source_branch: string;
  target_branch: string;
  source_project_id: number;
  target_project_id: number;
}

interface RawMember {
  access_level?: number;
  state?: string;
}

export class GitLabForge implements Forge {
  readonly kind: ForgeKind = 'gitlab';
  readonly #api: InstanceType<typeof Gitlab<false>>;
  readonly #botUsername: string | undefined;
  readonly #log: Logger;
  readonly #conflictRetryDelaysMs: readonly number[];

  constructor(options: GitLabForgeOptions) {
    this.#botUsername = options.botUsername;
    this.#log = (options.logger ?? pino({ level: 'silent' })).child({ forge: 'gitlab' });
    this.#conflictRetryDelaysMs = options.conflictRetryDelaysMs ?? DEFAULT_CONFLICT_RETRY_DELAYS_MS;
    this.#api = new Gitlab({
      host: options.host.replace(/\/+$/, ''),
      token: options.token,
      queryTimeout: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    });
  }

  async setCommitStatus(project: string, sha: string, status: CommitStatus): Promise<void> {
    checkProject(project);
    const state = GITLAB_STATE[status.state];
    const targetUrl = status.targetUrl !== undefined && status.targetUrl.length <= STATUS_FIELD_MAX_CHARS ? status.targetUrl : undefined;
    if (status.targetUrl !== undefined && targetUrl === undefined) {
      this.#log.debug({ project, sha, context: status.context }, 'target_url longer than 255 characters left out');
    }
    const operation = `setting status ${status.context} on ${project}@${sha}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#api.Commits.editStatus(project, sha, state, {
          name: status.context,
          description: truncateText(status.description, STATUS_FIELD_MAX_CHARS),
          ...(targetUrl === undefined ? {} : { targetUrl }),
        });
        return;
      } catch (error) {
        const failure = toForgeError(operation, error);
        if (failure.status === 400 && isRepeatedTransition(apiMessageOf(error), state)) {
          // The status already has this state: GitLab refuses the no-op transition, we count it as done.
          this.#log.debug({ project, sha, context: status.context, state }, 'commit status already in this state');
          return;
        }
        const delay = this.#conflictRetryDelaysMs[attempt];
        if (failure.status === 409 && delay !== undefined) {
          // Two updates of the same status raced inside GitLab; the next one normally goes through.
          this.#log.debug({ project, sha, context: status.context, attempt: attempt + 1 }, 'commit status conflict, retrying');
          await sleep(delay);
          continue;
        }
        throw failure;
      }
    }
  }

  async upsertReport(project: string, number: number, body: string, section?: ReportSection): Promise<void> {
    checkProject(project);
    checkNumber(number);
    const existing = await this.#findReport(project, number);
    const merged = section === undefined ? body : mergeReportSection(existing?.body, section, body);
    const text = truncateMarkdown(`${REPORT_MARKER}\n${merged}`, GITLAB_NOTE_MAX_CHARS);
    if (existing !== undefined) {
      await this.#call(`editing report note ${existing.id} on ${project}!${number}`, () =>
        this.#api.MergeRequestNotes.edit(project, number, existing.id, { body: text }),
      );
      return;
    }
    await this.#call(`posting report note on ${project}!${number}`, () => this.#api.MergeRequestNotes.create(project, number, text));
  }

  async reply(project: string, number: number, body: string): Promise<void> {
    checkProject(project);
    checkNumber(number);
    await this.#call(`posting a note on ${project}!${number}`, () =>
      this.#api.MergeRequestNotes.create(project, number, truncateMarkdown(body, GITLAB_NOTE_MAX_CHARS)),
    );
  }

  async canWrite(project: string, user: Actor): Promise<boolean> {
    checkProject(project);
    const userId = user.id ?? (await this.#findUserId(user.login));
    if (userId === undefined) return false;
    let member: RawMember;
    try {
      // members/all includes memberships inherited from groups and shared groups.
      member = (await this.#api.ProjectMembers.show(project, userId, { includeInherited: true })) as unknown as RawMember;
    } catch (error) {
      const failure = toForgeError(`checking the access level of ${user.login} on ${project}`, error);
      if (failure.status === 404) return false;
      throw failure;
    }
    // `state` is "awaiting" for memberships not yet accepted (e.g. over the seat limit): not a developer yet.
    const active = member.state === undefined || member.state === 'active';
    return active && typeof member.access_level === 'number' && member.access_level >= DEVELOPER_ACCESS;
  }

  async getChangeRequest(project: string, number: number): Promise<ChangeRequestInfo> {
    checkProject(project);
    checkNumber(number);
    const mr = (await this.#call(`reading merge request ${project}!${number}`, () =>
      this.#api.MergeRequests.show(project, number),
    )) as unknown as RawMergeRequest;
    return {
      number: mr.iid,
      headSha: mr.sha,
      // `locked` is the short state while a merge is in progress.
      state: mr.state === 'merged' ? 'merged' : mr.state === 'closed' ? 'closed' : 'open',
      sourceBranch: mr.source_branch,
      targetBranch: mr.target_branch,
      fromFork: mr.source_project_id !== mr.target_project_id,
    };
  }

  async findMergedChangeRequest(project: string, sha: string): Promise<number | undefined> {
    checkProject(project);
    let mrs: RawMergeRequest[];
    try {
      mrs = (await this.#api.Commits.allMergeRequests(project, sha)) as unknown as RawMergeRequest[];
    } catch (error) {
      const failure = toForgeError(`listing the merge requests of ${project}@${sha}`, error);
      if (failure.status === 404) return undefined;
      throw failure;
    }
    return mrs.find((mr) => mr.state === 'merged')?.iid;
  }

  /** The bot's report note on the merge request, if there is one (the oldest when several). */
  async #findReport(project: string, number: number): Promise<{ id: number; body: string } | undefined> {
    const botUsername = this.#botUsername?.toLowerCase();
    const notes = (await this.#call(`listing the notes of ${project}!${number}`, () =>
      this.#api.MergeRequestNotes.all(project, number, { perPage: 100, sort: 'asc', orderBy: 'created_at' }),
    )) as unknown as RawNote[];
    const report = notes.find(
      (note) =>
        note.system !== true &&
        typeof note.body === 'string' &&
        note.body.includes(REPORT_MARKER) &&
        (botUsername === undefined || note.author?.username?.toLowerCase() === botUsername),
    );
    return report === undefined ? undefined : { id: report.id, body: report.body as string };
  }

  async #findUserId(username: string): Promise<number | undefined> {
    const users = (await this.#call(`looking up the user ${username}`, () => this.#api.Users.all({ username }))) as unknown as {
      id: number;
      username: string;
    }[];
    return users.find((user) => user.username.toLowerCase() === username.toLowerCase())?.id;
  }

  async #call<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw toForgeError(operation, error);
    }
  }
}

/** True for "Cannot transition status via :run from :running", i.e. posting the state the status already has. */
function isRepeatedTransition(message: string, state: string): boolean {
  if (!message.includes('Cannot transition status via')) return false;
  const match = /Cannot transition status via :(\w+) from :(\w+)/.exec(message);
  // Unparsable wording (another GitLab version): trust the phrase, as Atlantis does.
  if (!match) return true;
  const [, event, from] = match;
  return from === state || EVENT_TARGET[event!] === from;
}

function checkProject(project: string): void {
  if (project === '' || project.startsWith('/') || project.endsWith('/')) {
    throw new DuccError('BOT_ERR_CONFIG', `GitLab project '${project}' is not a path_with_namespace`);
  }
}

function checkNumber(number: number): void {
  if (!Number.isSafeInteger(number) || number <= 0) throw new DuccError('BOT_ERR_CONFIG', `merge request iid ${number} is not a positive integer`);
}

/** GitLab's own `message`/`error` text of a failed answer ('' when there is none). */
function apiMessageOf(error: unknown): string {
  return error instanceof GitbeakerRequestError ? error.message : '';
}

/**
 * gitbeaker's errors, reduced to the status and GitLab's message. GitbeakerRequestError's `cause` holds
 * the fetch Request, whose headers include PRIVATE-TOKEN, so it is deliberately dropped. A call that got
 * no answer says what failed (DNS, refused connection, timeout) and keeps only that network error.
 */
function toForgeError(operation: string, error: unknown): ForgeError {
  if (error instanceof ForgeError) return error;
  if (error instanceof GitbeakerRequestError) {
    const response = (error.cause as { response?: { status?: unknown } } | undefined)?.response;
    const status = typeof response?.status === 'number' ? response.status : undefined;
    return new ForgeError('gitlab', `${operation}: HTTP ${status ?? '?'}${error.message ? `: ${error.message}` : ''}`, status);
  }
  if (error instanceof GitbeakerRetryError || error instanceof GitbeakerTimeoutError) {
    return new ForgeError('gitlab', `${operation}: ${error.message}`, undefined);
  }
  const network = networkCause(error);
  if (network !== undefined) return new ForgeError('gitlab', `${operation}: no answer from the GitLab API: ${network.message}`, undefined, { cause: network });
  const reason = error instanceof Error ? error.message : String(error);
  return new ForgeError('gitlab', `${operation}: ${reason}`, undefined, { cause: error });
}
