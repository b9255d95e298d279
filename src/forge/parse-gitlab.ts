import type { BotEvent, Delivery, RepoId } from './events.ts';
import { int, isRecord, rec, sha, str, ZERO_SHA } from './payload-fields.ts';

/**
 * Turns one authenticated GitLab webhook delivery into forge-neutral events. Pure: no I/O, never throws.
 * Handled: `Push Hook` (branches), `Merge Request Hook` (open, reopen, update with new commits, merge,
 * close) and `Note Hook` (new notes on merge requests). Everything else, and anything malformed, becomes
 * a delivery without events, because GitLab must get a 2xx for it (it disables hooks that answer 4xx).
 *
 * Field reference: GitLab docs `doc/user/project/integrations/webhook_events.md`.
 *
 * @param eventHeader `X-Gitlab-Event`, e.g. `Push Hook`
 * @param deliveryId `Idempotency-Key`, else `X-Gitlab-Event-UUID`, else a hash of the body
 * @param options.botUsername the bot's own GitLab user: its notes are marked `isBot`
 */
export function parseGitLabWebhook(eventHeader: string, deliveryId: string, payload: unknown, options: { botUsername?: string } = {}): Delivery {
  const delivery: Delivery = { id: `gitlab:${deliveryId}`, events: [] };
  if (!isRecord(payload)) return delivery;
  const event = parseEvent(eventHeader, payload, options);
  if (event !== undefined) delivery.events.push(event);
  return delivery;
}

function parseEvent(eventHeader: string, payload: Record<string, unknown>, options: { botUsername?: string }): BotEvent | undefined {
  // The header picks the parser; `object_kind` must agree (a mismatch is a forged or broken request).
  const kind = str(payload, 'object_kind');
  switch (eventHeader) {
    case 'Push Hook':
      return kind === undefined || kind === 'push' ? parsePush(payload) : undefined;
    case 'Merge Request Hook':
      return kind === undefined || kind === 'merge_request' ? parseMergeRequest(payload) : undefined;
    case 'Note Hook':
      return kind === undefined || kind === 'note' ? parseNote(payload, options) : undefined;
    default:
      return undefined;
  }
}

function parsePush(payload: Record<string, unknown>): BotEvent | undefined {
  const ref = str(payload, 'ref');
  if (ref === undefined || !ref.startsWith('refs/heads/')) return undefined;
  const branch = ref.slice('refs/heads/'.length);
  const after = sha(str(payload, 'after'));
  // A deleted branch: `after` is all zeros (and `checkout_sha` null).
  if (branch === '' || after === undefined || ZERO_SHA.test(after)) return undefined;
  const repo = repoOf(rec(payload, 'project'));
  if (repo === undefined) return undefined;
  const before = sha(str(payload, 'before'));
  return { kind: 'push', repo, branch, after, ...(before !== undefined && !ZERO_SHA.test(before) ? { before } : {}) };
}

function parseMergeRequest(payload: Record<string, unknown>): BotEvent | undefined {
  const attributes = rec(payload, 'object_attributes');
  if (attributes === undefined) return undefined;
  let action: 'opened' | 'updated' | 'closed' | 'merged';
  switch (str(attributes, 'action')) {
    case 'open':
    case 'reopen':
      action = 'opened';
      break;
    case 'update':
      // `oldrev` is present only when code changed; title, label or approval updates are not re-checked.
      if (sha(str(attributes, 'oldrev')) === undefined) return undefined;
      action = 'updated';
      break;
    case 'merge':
      action = 'merged';
      break;
    case 'close':
      action = 'closed';
      break;
    default:
      return undefined;
  }
  const number = int(attributes['iid']);
  const lastCommit = rec(attributes, 'last_commit');
  const headSha = sha(lastCommit && str(lastCommit, 'id'));
  const sourceBranch = str(attributes, 'source_branch');
  const targetBranch = str(attributes, 'target_branch');
  const repo = repoOf(rec(payload, 'project')) ?? repoOf(rec(attributes, 'target'));
  if (number === undefined || headSha === undefined || !sourceBranch || !targetBranch || repo === undefined) return undefined;
  return { kind: 'change-request', repo, number, action, headSha, sourceBranch, targetBranch, fromFork: isFork(attributes) };
}

function parseNote(payload: Record<string, unknown>, options: { botUsername?: string }): BotEvent | undefined {
  const attributes = rec(payload, 'object_attributes');
  if (attributes === undefined || str(attributes, 'noteable_type') !== 'MergeRequest') return undefined;
  // `action` exists since GitLab 16.11 (`create` | `update`); older versions only send new notes.
  const action = attributes['action'];
  if (action !== undefined && action !== null && action !== 'create') return undefined;
  // System notes ("added 1 commit") are GitLab's, not commands.
  if (attributes['system'] === true) return undefined;
  const mergeRequest = rec(payload, 'merge_request');
  const number = mergeRequest && int(mergeRequest['iid']);
  const commentId = int(attributes['id']);
  const body = str(attributes, 'note');
  const user = rec(payload, 'user');
  const login = user && str(user, 'username');
  const repo = repoOf(rec(payload, 'project'));
  if (number === undefined || commentId === undefined || body === undefined || !login || repo === undefined) return undefined;
  const id = int(user['id']);
  const isOwn = options.botUsername !== undefined && options.botUsername !== '' && login.toLowerCase() === options.botUsername.toLowerCase();
  return { kind: 'comment', repo, number, commentId: String(commentId), author: { login, ...(id !== undefined ? { id } : {}), isBot: isOwn }, body };
}

function isFork(attributes: Record<string, unknown>): boolean {
  const source = int(attributes['source_project_id']);
  const target = int(attributes['target_project_id']);
  if (source !== undefined && target !== undefined) return source !== target;
  // Without both ids we cannot prove it is not a fork: err on the safe side.
  return true;
}

function repoOf(project: Record<string, unknown> | undefined): RepoId | undefined {
  const path = project && str(project, 'path_with_namespace');
  if (path === undefined || !/^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)+$/.test(path)) return undefined;
  return { forge: 'gitlab', project: path };
}
