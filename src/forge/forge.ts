import type { Actor, ForgeKind } from './events.ts';
import type { ReportSection } from './report-sections.ts';

/** Our status states; each forge maps them to its own (GitLab: pending → running, failure → failed). */
export type CommitState = 'pending' | 'success' | 'failure' | 'error';

export interface CommitStatus {
  state: CommitState;
  /** e.g. `ducc-gitops/publish`, `ducc-gitops/plan` (at most 255 characters). */
  context: string;
  /** Cut to the forge's limit (GitHub 140 characters, GitLab 255) by the implementation. */
  description: string;
  targetUrl?: string;
}

export interface ChangeRequestInfo {
  number: number;
  headSha: string;
  state: 'open' | 'closed' | 'merged';
  sourceBranch: string;
  targetBranch: string;
  fromFork: boolean;
}

/**
 * What the bot needs from GitHub or GitLab. Implementations: `GitHubForge` (@octokit/rest) and
 * `GitLabForge` (@gitbeaker/rest). `project` is GitHub `owner/name` or GitLab `path_with_namespace`.
 */
export interface Forge {
  readonly kind: ForgeKind;

  /** Sets a commit status. Idempotent: repeating the current state is not an error (GitLab answers 400). */
  setCommitStatus(project: string, sha: string, status: CommitStatus): Promise<void>;

  /**
   * Creates or edits in place the bot's single report comment on a merge/pull request, found by a
   * hidden marker. With a `section`, only that section of the report is set and the others are kept
   * (report-sections.ts); without, the body replaces the report. The body is cut to the forge's limit
   * (GitHub 65,536 characters).
   */
  upsertReport(project: string, number: number, body: string, section?: ReportSection): Promise<void>;

  /** Posts a short new comment (answers to commands). */
  reply(project: string, number: number, body: string): Promise<void>;

  /**
   * Whether a user may run commands: GitHub collaborator permission `write` or `admin` (maintain too);
   * GitLab access level >= Developer (30), inherited memberships included. Throws when the forge cannot
   * tell (callers treat that as "no": fail closed).
   */
  canWrite(project: string, user: Actor): Promise<boolean>;

  getChangeRequest(project: string, number: number): Promise<ChangeRequestInfo>;

  /** The merged merge/pull request that produced a commit on the target branch, if any. */
  findMergedChangeRequest(project: string, sha: string): Promise<number | undefined>;
}

/** The hidden marker that identifies the bot's report comment. */
export const REPORT_MARKER = '<!-- ducc-gitops:report -->';
