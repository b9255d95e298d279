/**
 * Test support: loopback HTTP doubles of the GitHub and GitLab REST APIs (atlantis' httptest pattern).
 *
 * A test registers the requests it expects; the double answers them in order of registration (the first
 * expectation that matches and is not used up wins). Any other request gets HTTP 500 and is recorded as a
 * failure, and the test fails when it ends (from `t.after`) even if the client swallowed the 500. So do a
 * body assertion that throws and a reply function that throws.
 *
 * `githubRepoDouble` and `gitlabProjectDouble` register stateful `times: Infinity` handlers for one
 * repository / project: commit statuses, PR comments / MR notes (list with pagination, create, edit in
 * place), permissions and pull / merge request lookups, and return the recorded state for assertions.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export interface DoubleReply {
  status: number;
  /** Sent as JSON (content-type application/json) unless undefined. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface ReceivedRequest {
  method: string;
  /** Path including the query string, exactly as the client sent it (percent-encoding kept). */
  path: string;
  /** Parsed JSON when the body is JSON, the text otherwise, undefined when empty. */
  body: unknown;
  headers: IncomingHttpHeaders;
}

export interface ExpectedRequest {
  method: string;
  /** Path incl. query as the client sends it; a string must match exactly. */
  path: string | RegExp;
  /** Asserts on the (JSON) body; throw to fail. */
  body?: (body: unknown) => void;
  reply: DoubleReply | ((req: { method: string; path: string; body: unknown }) => DoubleReply);
  /** How many requests this expectation answers: default 1; Infinity allowed. */
  times?: number;
}

export interface ApiDouble {
  /** `http://127.0.0.1:PORT` */
  url: string;
  expect(request: ExpectedRequest): void;
  /** Every request received, in order (unexpected ones included). */
  readonly requests: ReceivedRequest[];
  /** Requests that matched no expectation (they were answered with 500). */
  readonly unexpected: ReceivedRequest[];
  /** Everything that will fail the test: unexpected requests, failed body assertions, throwing reply functions. */
  readonly failures: string[];
  /** Throws if an expectation with a finite `times` was not fully used. */
  assertDone(): void;
  close(): Promise<void>;
}

export interface ApiDoubleOptions {
  /**
   * Default true: `failures` fail the test from `t.after`. Only the double's own tests turn this off, to
   * look at `unexpected` themselves.
   */
  failTestOnUnexpected?: boolean;
}

interface Expectation {
  request: ExpectedRequest;
  times: number;
  used: number;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

export async function startApiDouble(t: TestContext, options: ApiDoubleOptions = {}): Promise<ApiDouble> {
  const expectations: Expectation[] = [];
  const requests: ReceivedRequest[] = [];
  const unexpected: ReceivedRequest[] = [];
  const failures: string[] = [];

  const server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => {
      failures.push(`api double crashed on ${req.method} ${req.url}: ${String(error)}`);
      if (!res.headersSent) send(res, { status: 500, body: { message: 'api double crashed' } });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = req.url ?? '/';
    const body = await readBody(req);
    const received: ReceivedRequest = { method, path, body, headers: req.headers };
    requests.push(received);

    const match = expectations.find(
      (e) =>
        e.used < e.times &&
        e.request.method.toUpperCase() === method &&
        (typeof e.request.path === 'string' ? e.request.path === path : matches(e.request.path, path)),
    );
    if (match === undefined) {
      unexpected.push(received);
      failures.push(`unexpected request ${method} ${path}${body === undefined ? '' : ` ${preview(body)}`}`);
      send(res, { status: 500, body: { message: `api double: unexpected request ${method} ${path}` } });
      return;
    }
    match.used++;
    try {
      match.request.body?.(body);
    } catch (error) {
      failures.push(`body of ${method} ${path} rejected: ${error instanceof Error ? error.message : String(error)}`);
      send(res, { status: 500, body: { message: `api double: body assertion failed for ${method} ${path}` } });
      return;
    }
    let reply: DoubleReply;
    try {
      reply = typeof match.request.reply === 'function' ? match.request.reply({ method, path, body }) : match.request.reply;
    } catch (error) {
      failures.push(`reply function for ${method} ${path} threw: ${error instanceof Error ? error.message : String(error)}`);
      send(res, { status: 500, body: { message: `api double: reply failed for ${method} ${path}` } });
      return;
    }
    send(res, reply);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Clients keep connections alive; without this, close() waits for their idle timeout.
      server.closeAllConnections();
    });
    return closed;
  };

  const double: ApiDouble = {
    url: `http://127.0.0.1:${port}`,
    expect(request) {
      const times = request.times ?? 1;
      if (!(times > 0)) throw new Error(`api double: times must be positive (got ${times})`);
      expectations.push({ request, times, used: 0 });
    },
    requests,
    unexpected,
    failures,
    assertDone() {
      const pending = expectations.filter((e) => Number.isFinite(e.times) && e.used < e.times);
      if (pending.length > 0) {
        throw new Error(
          `api double: expected requests not received:\n${pending.map((e) => `  ${e.request.method} ${String(e.request.path)} (${e.used}/${e.times})`).join('\n')}`,
        );
      }
    },
    close,
  };

  t.after(async () => {
    await close();
    if (options.failTestOnUnexpected !== false && failures.length > 0) {
      throw new Error(`api double (${double.url}) saw ${failures.length} failure(s):\n${failures.map((f) => `  ${f}`).join('\n')}`);
    }
  });
  return double;
}

function matches(pattern: RegExp, path: string): boolean {
  pattern.lastIndex = 0; // a /g or /y pattern would otherwise remember the previous match
  return pattern.test(path);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error(`request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const text = Buffer.concat(chunks).toString('utf8');
  if (/json/i.test(req.headers['content-type'] ?? '')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

function send(res: ServerResponse, reply: DoubleReply): void {
  const headers: Record<string, string> = { ...reply.headers };
  let payload: string | undefined;
  if (reply.body !== undefined && reply.status !== 204 && reply.status !== 304) {
    payload = JSON.stringify(reply.body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json; charset=utf-8';
  }
  res.writeHead(reply.status, headers);
  res.end(payload);
}

function preview(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function queryOf(path: string): URLSearchParams {
  const q = path.indexOf('?');
  return new URLSearchParams(q === -1 ? '' : path.slice(q + 1));
}

/** Answers one page of `items` and, when more follow, a `Link: <…>; rel="next"` header (both forges use it). */
function pageOf<T>(items: T[], path: string, baseUrl: string, defaultPerPage: number): { page: T[]; headers: Record<string, string> } {
  const query = queryOf(path);
  const perPage = Math.max(1, Math.min(100, Number(query.get('per_page') ?? defaultPerPage) || defaultPerPage));
  const page = Math.max(1, Number(query.get('page') ?? 1) || 1);
  const slice = items.slice((page - 1) * perPage, page * perPage);
  const headers: Record<string, string> = {
    'x-total': String(items.length),
    'x-per-page': String(perPage),
    'x-page': String(page),
    'x-total-pages': String(Math.max(1, Math.ceil(items.length / perPage))),
  };
  if (page * perPage < items.length) {
    query.set('page', String(page + 1));
    query.set('per_page', String(perPage));
    const pathOnly = path.split('?')[0]!;
    headers.link = `<${baseUrl}${pathOnly}?${query.toString()}>; rel="next"`;
    headers['x-next-page'] = String(page + 1);
  }
  return { page: slice, headers };
}

const TIMESTAMP = '2025-01-01T00:00:00Z';

// ---- GitHub ---------------------------------------------------------------------------------------

export interface GitHubPullSpec {
  number: number;
  headSha: string;
  /** Default open. */
  state?: 'open' | 'closed' | 'merged';
  sourceBranch?: string;
  targetBranch?: string;
  /** The head branch lives in `contributor/<repo>`. */
  fromFork?: boolean;
  /** The fork was deleted: `head.repo` is null. */
  headRepoDeleted?: boolean;
  mergeCommitSha?: string;
}

export interface GitHubStatusRecord {
  sha: string;
  state: string;
  context: string;
  description?: string;
  target_url?: string;
}

export interface GitHubCommentRecord {
  id: number;
  issueNumber: number;
  body: string;
  login: string;
}

export interface GitHubRepoDoubleOptions {
  owner: string;
  repo: string;
  /** login → `admin` | `maintain` | `write` | `triage` | `read` | `none`; others answer 404 (not a collaborator). */
  permissions?: Record<string, string>;
  pulls?: GitHubPullSpec[];
  /** Author of comments created through the API (default `ducc-bot`). */
  botLogin?: string;
}

export interface GitHubRepoDouble {
  /** Statuses created, in order. */
  statuses: GitHubStatusRecord[];
  /** Issue comments of all pull requests, in creation order; edits change them in place. */
  comments: GitHubCommentRecord[];
  /** Mutable: tests may add pulls or permissions later. */
  pulls: GitHubPullSpec[];
  permissions: Record<string, string>;
  /** Seeds a comment as if someone had written it. */
  addComment(issueNumber: number, body: string, login: string): GitHubCommentRecord;
}

export function githubRepoDouble(double: ApiDouble, options: GitHubRepoDoubleOptions): GitHubRepoDouble {
  const { owner, repo } = options;
  const fullName = `${owner}/${repo}`;
  const botLogin = options.botLogin ?? 'ducc-bot';
  const prefix = escapeRegExp(`/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}`);
  let nextId = 1000;
  const state: GitHubRepoDouble = {
    statuses: [],
    comments: [],
    pulls: [...(options.pulls ?? [])],
    permissions: { ...options.permissions },
    addComment(issueNumber, body, login) {
      const comment = { id: nextId++, issueNumber, body, login };
      state.comments.push(comment);
      return comment;
    },
  };
  const commentJson = (c: GitHubCommentRecord) => ({
    id: c.id,
    node_id: `IC_${c.id}`,
    body: c.body,
    user: { login: c.login, type: c.login.endsWith('[bot]') ? 'Bot' : 'User' },
    html_url: `https://github.com/${fullName}/pull/${c.issueNumber}#issuecomment-${c.id}`,
    created_at: TIMESTAMP,
    updated_at: TIMESTAMP,
  });
  const pullJson = (p: GitHubPullSpec) => {
    const merged = p.state === 'merged';
    return {
      number: p.number,
      state: p.state === 'open' || p.state === undefined ? 'open' : 'closed',
      merged,
      merged_at: merged ? TIMESTAMP : null,
      merge_commit_sha: p.mergeCommitSha ?? null,
      head: {
        sha: p.headSha,
        ref: p.sourceBranch ?? `feature-${p.number}`,
        repo: p.headRepoDeleted ? null : { full_name: p.fromFork ? `contributor/${repo}` : fullName },
      },
      base: { ref: p.targetBranch ?? 'main', repo: { full_name: fullName } },
    };
  };
  const notFound = { status: 404, body: { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' } };

  double.expect({
    method: 'POST',
    path: new RegExp(`^${prefix}/statuses/([^/?]+)$`),
    times: Infinity,
    reply: ({ path, body }) => {
      const sha = decodeURIComponent(/\/statuses\/([^/?]+)$/.exec(path)![1]!);
      const b = body as Record<string, unknown>;
      const record: GitHubStatusRecord = { sha, state: String(b.state), context: String(b.context ?? 'default') };
      if (typeof b.description === 'string') record.description = b.description;
      if (typeof b.target_url === 'string') record.target_url = b.target_url;
      if (record.description !== undefined && record.description.length > 140) {
        return {
          status: 422,
          body: {
            message: 'Validation Failed',
            errors: [{ resource: 'Status', code: 'custom', field: 'description', message: 'description is too long (maximum is 140 characters)' }],
          },
        };
      }
      state.statuses.push(record);
      return { status: 201, body: { id: state.statuses.length, ...record, created_at: TIMESTAMP } };
    },
  });
  double.expect({
    method: 'GET',
    path: new RegExp(`^${prefix}/issues/(\\d+)/comments(\\?.*)?$`),
    times: Infinity,
    reply: ({ path }) => {
      const issueNumber = Number(/\/issues\/(\d+)\/comments/.exec(path)![1]);
      const all = state.comments.filter((c) => c.issueNumber === issueNumber);
      const { page, headers } = pageOf(all, path, double.url, 30);
      return { status: 200, body: page.map(commentJson), headers };
    },
  });
  double.expect({
    method: 'POST',
    path: new RegExp(`^${prefix}/issues/(\\d+)/comments$`),
    times: Infinity,
    reply: ({ path, body }) => {
      const issueNumber = Number(/\/issues\/(\d+)\/comments/.exec(path)![1]);
      const text = (body as { body?: unknown }).body;
      if (typeof text !== 'string' || text === '') return { status: 422, body: { message: 'Validation Failed' } };
      if (text.length > 65_536)
        return { status: 422, body: { message: 'Validation Failed', errors: [{ message: 'Body is too long (maximum is 65536 characters)' }] } };
      return { status: 201, body: commentJson(state.addComment(issueNumber, text, botLogin)) };
    },
  });
  double.expect({
    method: 'PATCH',
    path: new RegExp(`^${prefix}/issues/comments/(\\d+)$`),
    times: Infinity,
    reply: ({ path, body }) => {
      const id = Number(/\/comments\/(\d+)$/.exec(path)![1]);
      const comment = state.comments.find((c) => c.id === id);
      if (comment === undefined) return notFound;
      const text = (body as { body?: unknown }).body;
      if (typeof text !== 'string' || text === '') return { status: 422, body: { message: 'Validation Failed' } };
      if (text.length > 65_536)
        return { status: 422, body: { message: 'Validation Failed', errors: [{ message: 'Body is too long (maximum is 65536 characters)' }] } };
      comment.body = text;
      return { status: 200, body: commentJson(comment) };
    },
  });
  double.expect({
    method: 'GET',
    path: new RegExp(`^${prefix}/collaborators/([^/?]+)/permission$`),
    times: Infinity,
    reply: ({ path }) => {
      const login = decodeURIComponent(/\/collaborators\/([^/?]+)\/permission$/.exec(path)![1]!);
      const role = state.permissions[login];
      if (role === undefined) return notFound;
      // GitHub reports the fine-grained roles through the classic ones: maintain → write, triage → read.
      const permission = role === 'maintain' ? 'write' : role === 'triage' ? 'read' : role;
      return { status: 200, body: { permission, role_name: role, user: { login } } };
    },
  });
  double.expect({
    method: 'GET',
    path: new RegExp(`^${prefix}/pulls/(\\d+)$`),
    times: Infinity,
    reply: ({ path }) => {
      const number = Number(/\/pulls\/(\d+)$/.exec(path)![1]);
      const pull = state.pulls.find((p) => p.number === number);
      return pull === undefined ? notFound : { status: 200, body: pullJson(pull) };
    },
  });
  double.expect({
    method: 'GET',
    path: new RegExp(`^${prefix}/commits/([^/?]+)/pulls(\\?.*)?$`),
    times: Infinity,
    reply: ({ path }) => {
      const sha = decodeURIComponent(/\/commits\/([^/?]+)\/pulls/.exec(path)![1]!);
      const pulls = state.pulls.filter((p) => p.headSha === sha || p.mergeCommitSha === sha);
      return { status: 200, body: pulls.map(pullJson) };
    },
  });
  return state;
}

// ---- GitLab ---------------------------------------------------------------------------------------

export interface GitLabMergeRequestSpec {
  iid: number;
  sha: string;
  /** Default opened. */
  state?: 'opened' | 'closed' | 'merged' | 'locked';
  sourceBranch?: string;
  targetBranch?: string;
  /** The source branch lives in another project (a fork). */
  fromFork?: boolean;
  mergeCommitSha?: string;
}

export interface GitLabStatusRecord {
  sha: string;
  state: string;
  name: string;
  description?: string;
  target_url?: string;
}

export interface GitLabNoteRecord {
  id: number;
  mergeRequestIid: number;
  body: string;
  username: string;
  system: boolean;
}

export interface GitLabProjectDoubleOptions {
  /** path_with_namespace, e.g. `group/wishlist`. */
  project: string;
  /** Numeric project id (default 42); requests may use either. */
  projectId?: number;
  /** user id → access_level (10 guest … 50 owner); others answer 404. */
  members?: Record<number, number>;
  /** username → user id, for `GET /users?username=`. */
  users?: Record<string, number>;
  mergeRequests?: GitLabMergeRequestSpec[];
  /** Author of notes created through the API (default `ducc-bot`). */
  botUsername?: string;
}

export interface GitLabProjectDouble {
  /** Statuses accepted, in order (refused no-op transitions are not recorded). */
  statuses: GitLabStatusRecord[];
  /** MR notes of all merge requests, in creation order; edits change them in place. */
  comments: GitLabNoteRecord[];
  /** The same array as `comments`. */
  notes: GitLabNoteRecord[];
  mergeRequests: GitLabMergeRequestSpec[];
  members: Record<number, number>;
  users: Record<string, number>;
  /** Seeds a note as if someone (or GitLab itself, `system`) had written it. */
  addNote(mergeRequestIid: number, body: string, username: string, system?: boolean): GitLabNoteRecord;
}

/** GitLab's commit status events and the states they move to, for the "Cannot transition" answer. */
const GITLAB_EVENT_FOR_STATE: Record<string, string> = {
  pending: 'enqueue',
  running: 'run',
  success: 'succeed',
  failed: 'drop',
  canceled: 'cancel',
  skipped: 'skip',
};

export function gitlabProjectDouble(double: ApiDouble, options: GitLabProjectDoubleOptions): GitLabProjectDouble {
  const projectId = options.projectId ?? 42;
  const botUsername = options.botUsername ?? 'ducc-bot';
  const botId = 9000;
  const projectPattern = `(?:${escapeRegExp(encodeURIComponent(options.project))}|${projectId})`;
  const prefix = `/api/v4/projects/${projectPattern}`;
  let nextId = 500;
  const notes: GitLabNoteRecord[] = [];
  const state: GitLabProjectDouble = {
    statuses: [],
    comments: notes,
    notes,
    mergeRequests: [...(options.mergeRequests ?? [])],
    members: { ...options.members },
    users: { ...options.users },
    addNote(mergeRequestIid, body, username, system = false) {
      const note = { id: nextId++, mergeRequestIid, body, username, system };
      notes.push(note);
      return note;
    },
  };
  const noteJson = (n: GitLabNoteRecord) => ({
    id: n.id,
    type: null,
    body: n.body,
    author: { id: n.username === botUsername ? botId : 1, username: n.username },
    created_at: TIMESTAMP,
    updated_at: TIMESTAMP,
    system: n.system,
    noteable_type: 'MergeRequest',
    noteable_iid: n.mergeRequestIid,
  });
  const mrJson = (mr: GitLabMergeRequestSpec) => ({
    id: 10_000 + mr.iid,
    iid: mr.iid,
    project_id: projectId,
    state: mr.state ?? 'opened',
    sha: mr.sha,
    merge_commit_sha: mr.mergeCommitSha ?? null,
    source_branch: mr.sourceBranch ?? `feature-${mr.iid}`,
    target_branch: mr.targetBranch ?? 'main',
    source_project_id: mr.fromFork ? projectId + 1000 : projectId,
    target_project_id: projectId,
  });
  const notFound = (what: string) => ({ status: 404, body: { message: `404 ${what} Not Found` } });
  const noteBody = (body: unknown): string | undefined => {
    const text = (body as { body?: unknown } | undefined)?.body;
    return typeof text === 'string' && text !== '' && text.length <= 1_000_000 ? text : undefined;
  };

  double.expect({
    method: 'POST',
    path: new RegExp(`^${prefix}/statuses/([^/?]+)$`),
    times: Infinity,
    reply: ({ path, body }) => {
      const sha = decodeURIComponent(/\/statuses\/([^/?]+)$/.exec(path)![1]!);
      const b = body as Record<string, unknown>;
      const name = String(b.name ?? b.context ?? 'default');
      const newState = String(b.state);
      const previous = state.statuses.findLast((s) => s.sha === sha && s.name === name);
      // GitLab updates an unfinished status in place; moving it to the state it already has is refused.
      if (previous !== undefined && (previous.state === 'pending' || previous.state === 'running') && previous.state === newState) {
        return {
          status: 400,
          body: {
            message: `Cannot transition status via :${GITLAB_EVENT_FOR_STATE[newState]} from :${previous.state} (Reasons(s): Status cannot transition via "${GITLAB_EVENT_FOR_STATE[newState]}")`,
          },
        };
      }
      const record: GitLabStatusRecord = { sha, state: newState, name };
      if (typeof b.description === 'string') record.description = b.description;
      if (typeof b.target_url === 'string') record.target_url = b.target_url;
      if ((record.description?.length ?? 0) > 255 || (record.target_url?.length ?? 0) > 255) {
        return { status: 400, body: { message: { description: ['is too long (maximum is 255 characters)'] } } };
      }
      state.statuses.push(record);
      return {
        status: 201,
        body: { id: state.statuses.length, sha, status: newState, name, description: record.description ?? null, target_url: record.target_url ?? null },
      };
    },
  });
  double.expect({
    method: 'GET',
    path: new RegExp(`^${prefix}/merge_requests/(\\d+)/notes(\\?.*)?$`),
    times: Infinity,
    reply: ({ path }) => {
      const iid = Number(/\/merge_requests\/(\d+)\/notes/.exec(path)![1]);
      const all = notes.filter((n) => n.mergeRequestIid === iid);
      const { page, headers } = pageOf(all, path, double.url, 20);
      return { status: 200, body: page.map(noteJson), headers };
    },
  });
  double.expect({
    method: 'POST',
    path: new RegExp(`^${prefix}/merge_requests/(\\d+)/notes$`),
    times: Infinity,
    reply: ({ path, body }) => {
      const iid = Number(/\/merge_requests\/(\d+)\/notes/.exec(path)![1]);
      const text = noteBody(body);
      if (text === undefined) return { status: 400, body: { message: { note: ['is too long (maximum is 1000000 characters)'] } } };
      return { status: 201, body: noteJson(state.addNote(iid, text, botUsername)) };
    },
  });
  double.expect({
    method: 'PUT',
    path: new RegExp(`^${prefix}/merge_requests/(\\d+)/notes/(\\d+)$`),
    times: Infinity,
    reply: ({ path, body }) => {
      const [, iid, id] = /\/merge_requests\/(\d+)\/notes\/(\d+)$/.exec(path)!;
      const note = notes.find((n) => n.id === Number(id) && n.mergeRequestIid === Number(iid));
      if (note === undefined) return notFound('Note');
      if (note.username !== botUsername) return { status: 403, body: { message: '403 Forbidden' } };
      const text = noteBody(body);
      if (text === undefined) return { status: 400, body: { message: { note: ['is too long (maximum is 1000000 characters)'] } } };
      note.body = text;
      return { status: 200, body: noteJson(note) };
    },
  });
  double.expect({
    method: 'GET',
    path: new RegExp(`^${prefix}/members/all/(\\d+)$`),
    times: Infinity,
    reply: ({ path }) => {
      const id = Number(/\/members\/all\/(\d+)$/.exec(path)![1]);
      const level = state.members[id];
      if (level === undefined) return notFound('');
      const username = Object.entries(state.users).find(([, uid]) => uid === id)?.[0] ?? `user${id}`;
      return { status: 200, body: { id, username, access_level: level, state: 'active' } };
    },
  });
  double.expect({
    method: 'GET',
    path: /^\/api\/v4\/users\?/,
    times: Infinity,
    reply: ({ path }) => {
      const username = queryOf(path).get('username') ?? '';
      const id = Object.entries(state.users).find(([name]) => name.toLowerCase() === username.toLowerCase())?.[1];
      return { status: 200, body: id === undefined ? [] : [{ id, username, state: 'active' }] };
    },
  });
  double.expect({
    method: 'GET',
    path: new RegExp(`^${prefix}/merge_requests/(\\d+)$`),
    times: Infinity,
    reply: ({ path }) => {
      const iid = Number(/\/merge_requests\/(\d+)$/.exec(path)![1]);
      const mr = state.mergeRequests.find((m) => m.iid === iid);
      return mr === undefined ? notFound('Merge Request') : { status: 200, body: mrJson(mr) };
    },
  });
  double.expect({
    method: 'GET',
    path: new RegExp(`^${prefix}/repository/commits/([^/?]+)/merge_requests(\\?.*)?$`),
    times: Infinity,
    reply: ({ path }) => {
      const sha = decodeURIComponent(/\/commits\/([^/?]+)\/merge_requests/.exec(path)![1]!);
      return { status: 200, body: state.mergeRequests.filter((m) => m.sha === sha || m.mergeCommitSha === sha).map(mrJson) };
    },
  });
  return state;
}
