import type { Actor, BotEvent, Delivery, RepoId } from './events.ts';
import { int, isRecord, rec, sha, str, ZERO_SHA } from './payload-fields.ts';

/**
 * Turns one verified GitHub webhook delivery into forge-neutral events. Pure: no I/O, never throws.
 * Anything it does not understand (ping, edited or deleted comments, issues, labels, tags, deleted
 * branches, payloads missing a field it needs) becomes a delivery without events, which the intake
 * answers with `ignored`.
 *
 * @param eventName `X-GitHub-Event`
 * @param deliveryId `X-GitHub-Delivery` (kept across manual redeliveries, so it is the de-duplication key)
 * @param payload the parsed JSON body, only after the signature was checked
 * @param options.botLogin the bot's own account: its comments are marked `isBot` (compared case-insensitively)
 */
export function parseGitHubWebhook(eventName: string, deliveryId: string, payload: unknown, options: { botLogin?: string } = {}): Delivery {
  const delivery: Delivery = { id: `github:${deliveryId}`, events: [] };
  if (!isRecord(payload)) return delivery;
  const event = parseEvent(eventName, payload, options);
  if (event !== undefined) delivery.events.push(event);
  return delivery;
}

function parseEvent(eventName: string, payload: Record<string, unknown>, options: { botLogin?: string }): BotEvent | undefined {
  switch (eventName) {
    case 'push':
      return parsePush(payload);
    case 'pull_request':
      return parsePullRequest(payload);
    case 'issue_comment':
      return parseIssueComment(payload, options);
    default:
      return undefined;
  }
}

function parsePush(payload: Record<string, unknown>): BotEvent | undefined {
  const ref = str(payload, 'ref');
  // Tags and other refs are not wish-list branches; a deleted branch has nothing to publish.
  if (ref === undefined || !ref.startsWith('refs/heads/') || payload['deleted'] === true) return undefined;
  const branch = ref.slice('refs/heads/'.length);
  const after = sha(str(payload, 'after'));
  const repo = repoOf(rec(payload, 'repository'));
  if (branch === '' || after === undefined || ZERO_SHA.test(after) || repo === undefined) return undefined;
  const before = sha(str(payload, 'before'));
  return { kind: 'push', repo, branch, after, ...(before !== undefined && !ZERO_SHA.test(before) ? { before } : {}) };
}

function parsePullRequest(payload: Record<string, unknown>): BotEvent | undefined {
  const pr = rec(payload, 'pull_request');
  if (pr === undefined) return undefined;
  let action: 'opened' | 'updated' | 'closed' | 'merged';
  switch (str(payload, 'action')) {
    // Drafts are validated like any other pull request: early feedback is the point.
    case 'opened':
    case 'reopened':
    case 'ready_for_review':
      action = 'opened';
      break;
    case 'synchronize':
      action = 'updated';
      break;
    case 'closed':
      action = pr['merged'] === true ? 'merged' : 'closed';
      break;
    default:
      return undefined;
  }
  const number = int(payload['number']) ?? int(pr['number']);
  const head = rec(pr, 'head');
  const base = rec(pr, 'base');
  const headSha = sha(head && str(head, 'sha'));
  const sourceBranch = head && str(head, 'ref');
  const targetBranch = base && str(base, 'ref');
  const baseRepo = base && rec(base, 'repo');
  const repo = repoOf(baseRepo) ?? repoOf(rec(payload, 'repository'));
  if (number === undefined || headSha === undefined || !sourceBranch || !targetBranch || repo === undefined) return undefined;
  // `head.repo` is null when the fork was deleted: that is still a fork.
  const headRepo = head && rec(head, 'repo');
  const headName = headRepo && str(headRepo, 'full_name');
  const fromFork = headName === undefined || headName.toLowerCase() !== repo.project.toLowerCase();
  return { kind: 'change-request', repo, number, action, headSha, sourceBranch, targetBranch, fromFork };
}

function parseIssueComment(payload: Record<string, unknown>, options: { botLogin?: string }): BotEvent | undefined {
  // Edits and deletions are not commands; comments on plain issues are not about a wish-list change.
  if (str(payload, 'action') !== 'created') return undefined;
  const issue = rec(payload, 'issue');
  const comment = rec(payload, 'comment');
  if (issue === undefined || comment === undefined || !isRecord(issue['pull_request'])) return undefined;
  const number = int(issue['number']);
  const commentId = int(comment['id']);
  const body = str(comment, 'body');
  const user = rec(comment, 'user');
  const login = user && str(user, 'login');
  const repo = repoOf(rec(payload, 'repository'));
  if (number === undefined || commentId === undefined || body === undefined || !login || repo === undefined) return undefined;
  const id = int(user['id']);
  const isOwn = options.botLogin !== undefined && options.botLogin !== '' && login.toLowerCase() === options.botLogin.toLowerCase();
  const author: Actor = { login, ...(id !== undefined ? { id } : {}), isBot: user['type'] === 'Bot' || isOwn };
  return { kind: 'comment', repo, number, commentId: String(commentId), author, body };
}

function repoOf(repository: Record<string, unknown> | undefined): RepoId | undefined {
  const fullName = repository && str(repository, 'full_name');
  if (fullName === undefined || !/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(fullName)) return undefined;
  return { forge: 'github', project: fullName };
}
