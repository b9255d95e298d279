/**
 * Forge-neutral events: every webhook (GitHub, GitLab, container registries) becomes one of these at the
 * edge, so the bot's logic never looks at a forge's payload shape.
 */

export type ForgeKind = 'github' | 'gitlab';

/** A wish-list repository on a forge: GitHub `owner/name`, GitLab `group/project` (path_with_namespace). */
export interface RepoId {
  forge: ForgeKind;
  project: string;
}

/** Someone who wrote a comment. `id` is GitLab's numeric user id (its member API needs it). */
export interface Actor {
  login: string;
  id?: number;
  /** True for bots and for the bot's own account (GitHub `type: Bot`, or the configured bot user). */
  isBot: boolean;
}

export type BotEvent =
  /** Commits pushed to a branch. `after` is the new head; deleted branches are not events. */
  | { kind: 'push'; repo: RepoId; branch: string; after: string; before?: string }
  /** A merge request / pull request opened, updated with new commits, closed or merged. */
  | {
      kind: 'change-request';
      repo: RepoId;
      number: number;
      action: 'opened' | 'updated' | 'closed' | 'merged';
      headSha: string;
      sourceBranch: string;
      targetBranch: string;
      /** True when the source branch lives in another repository (a fork). */
      fromFork: boolean;
    }
  /** A new comment on a merge request / pull request (edits and deletions are not events). */
  | { kind: 'comment'; repo: RepoId; number: number; commentId: string; author: Actor; body: string }
  /** A registry says a tag was pushed. Only a hint: the bot resolves the tag itself. */
  | { kind: 'registry-push'; source: string; registry: string; repository: string; tag?: string; digest?: string };

/** One verified webhook delivery, with the key used to process it only once. */
export interface Delivery {
  /** GitHub X-GitHub-Delivery, GitLab Idempotency-Key / X-Gitlab-Event-UUID, registry event id. */
  id: string;
  events: BotEvent[];
}
