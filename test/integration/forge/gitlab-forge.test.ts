import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GitLabForge } from '../../../src/forge/gitlab-forge.ts';
import { REPORT_MARKER, type CommitState } from '../../../src/forge/forge.ts';
import { ForgeError } from '../../../src/forge/forge-error.ts';
import { gitlabProjectDouble, startApiDouble } from '../../support/forge-api-double.ts';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const SHA = 'c'.repeat(40);
const TOKEN = 'glpat-test-token-never-logged';
const PROJECT = 'cvmfs/unpacked-wishlist';
const ENCODED = 'cvmfs%2Funpacked-wishlist';
const API = `/api/v4/projects/${ENCODED}`;

function forgeFor(url: string, extra: { botUsername?: string; conflictRetryDelaysMs?: number[] } = {}): GitLabForge {
  return new GitLabForge({ host: url, token: TOKEN, conflictRetryDelaysMs: [1, 1, 1], ...extra });
}

describe('GitLabForge.setCommitStatus', () => {
  const mapping: [CommitState, string][] = [
    ['pending', 'running'],
    ['success', 'success'],
    ['failure', 'failed'],
    ['error', 'failed'],
  ];
  for (const [ours, theirs] of mapping) {
    it(`maps ${ours} to ${theirs}, sends name, description and target_url to the URL-encoded project`, async (t) => {
      const double = await startApiDouble(t);
      double.expect({
        method: 'POST',
        path: `${API}/statuses/${SHA}`,
        body: (body) =>
          assert.deepEqual(body, { state: theirs, name: 'ducc-gitops/publish', description: 'Publishing', target_url: 'https://bot.example.org/jobs/2' }),
        reply: { status: 201, body: { id: 1, status: theirs } },
      });
      await forgeFor(double.url).setCommitStatus(PROJECT, SHA, {
        state: ours,
        context: 'ducc-gitops/publish',
        description: 'Publishing',
        targetUrl: 'https://bot.example.org/jobs/2',
      });
      double.assertDone();
      assert.equal(double.requests[0]!.headers['private-token'], TOKEN);
    });
  }

  it('cuts the description to 255 characters ending with …', async (t) => {
    const double = await startApiDouble(t);
    const project = gitlabProjectDouble(double, { project: PROJECT });
    await forgeFor(double.url).setCommitStatus(PROJECT, SHA, { state: 'failure', context: 'c', description: 'z'.repeat(400) });
    assert.equal(project.statuses[0]!.description, `${'z'.repeat(254)}…`);
    assert.equal(project.statuses[0]!.state, 'failed');
  });

  it('a 400 "Cannot transition status via :run from :running" counts as success', async (t) => {
    const double = await startApiDouble(t);
    double.expect({
      method: 'POST',
      path: `${API}/statuses/${SHA}`,
      reply: { status: 400, body: { message: 'Cannot transition status via :run from :running (Reasons(s): Status cannot transition via "run")' } },
    });
    await forgeFor(double.url).setCommitStatus(PROJECT, SHA, { state: 'pending', context: 'c', description: 'again' });
    double.assertDone();
  });

  it('with the stateful double: repeating running is accepted, then success goes through', async (t) => {
    const double = await startApiDouble(t);
    const project = gitlabProjectDouble(double, { project: PROJECT });
    const forge = forgeFor(double.url);
    await forge.setCommitStatus(PROJECT, SHA, { state: 'pending', context: 'ducc-gitops/publish', description: 'working' });
    await forge.setCommitStatus(PROJECT, SHA, { state: 'pending', context: 'ducc-gitops/publish', description: 'still working' });
    await forge.setCommitStatus(PROJECT, SHA, { state: 'success', context: 'ducc-gitops/publish', description: 'done' });
    assert.deepEqual(
      project.statuses.map((s) => s.state),
      ['running', 'success'],
    );
    assert.deepEqual(
      double.requests.map((r) => r.method),
      ['POST', 'POST', 'POST'],
    );
  });

  it('other 400s throw, including a transition that is not a repeat', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'POST', path: `${API}/statuses/${SHA}`, reply: { status: 400, body: { message: { description: ['is too long'] } } } });
    double.expect({
      method: 'POST',
      path: `${API}/statuses/${SHA}`,
      reply: { status: 400, body: { message: 'Cannot transition status via :run from :success' } },
    });
    const forge = forgeFor(double.url);
    await assert.rejects(
      forge.setCommitStatus(PROJECT, SHA, { state: 'success', context: 'c', description: 'd' }),
      (error: unknown) => error instanceof ForgeError && error.status === 400,
    );
    await assert.rejects(
      forge.setCommitStatus(PROJECT, SHA, { state: 'pending', context: 'c', description: 'd' }),
      /Cannot transition status via :run from :success/,
    );
    double.assertDone();
  });

  it('a 409 Conflict is retried, then succeeds', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'POST', path: `${API}/statuses/${SHA}`, times: 2, reply: { status: 409, body: { message: '409 Conflict' } } });
    double.expect({ method: 'POST', path: `${API}/statuses/${SHA}`, reply: { status: 201, body: { id: 1 } } });
    await forgeFor(double.url).setCommitStatus(PROJECT, SHA, { state: 'success', context: 'c', description: 'd' });
    double.assertDone();
    assert.equal(double.requests.length, 3);
  });

  it('a 409 that persists is retried 3 times, then thrown', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'POST', path: `${API}/statuses/${SHA}`, times: 4, reply: { status: 409, body: { message: '409 Conflict' } } });
    await assert.rejects(
      forgeFor(double.url).setCommitStatus(PROJECT, SHA, { state: 'success', context: 'c', description: 'd' }),
      (error: unknown) => error instanceof ForgeError && error.status === 409,
    );
    double.assertDone();
  });

  it('errors never carry the token (gitbeaker’s cause holds the request and its PRIVATE-TOKEN)', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'POST', path: `${API}/statuses/${SHA}`, reply: { status: 403, body: { message: '403 Forbidden' } } });
    const { inspect } = await import('node:util');
    await assert.rejects(forgeFor(double.url).setCommitStatus(PROJECT, SHA, { state: 'success', context: 'c', description: 'd' }), (error: unknown) => {
      assert.ok(error instanceof ForgeError);
      assert.equal(error.status, 403);
      assert.doesNotMatch(inspect(error, { depth: 10 }), new RegExp(TOKEN));
      return true;
    });
  });

  it('gitbeaker itself retries a 502 (no option disables it in 43.x): pinned so an upgrade that changes it is noticed', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'POST', path: `${API}/statuses/${SHA}`, reply: { status: 502, body: { message: 'Bad Gateway' } } });
    double.expect({ method: 'POST', path: `${API}/statuses/${SHA}`, reply: { status: 201, body: { id: 1 } } });
    await forgeFor(double.url).setCommitStatus(PROJECT, SHA, { state: 'success', context: 'c', description: 'd' });
    double.assertDone();
  });
});

describe('GitLabForge.upsertReport', () => {
  it('creates the note, then edits the same note in place (PUT, not a second POST)', async (t) => {
    const double = await startApiDouble(t);
    const list = `${API}/merge_requests/3/notes?per_page=100&sort=asc&order_by=created_at`;
    const system = { id: 1, body: `changed ${REPORT_MARKER}`, system: true, author: { username: 'ducc-bot' } };
    double.expect({ method: 'GET', path: list, reply: { status: 200, body: [system] } });
    double.expect({
      method: 'POST',
      path: `${API}/merge_requests/3/notes`,
      body: (body) => assert.deepEqual(body, { body: `${REPORT_MARKER}\nplan` }),
      reply: { status: 201, body: { id: 77 } },
    });
    double.expect({
      method: 'GET',
      path: list,
      reply: { status: 200, body: [system, { id: 77, body: `${REPORT_MARKER}\nplan`, system: false, author: { username: 'ducc-bot' } }] },
    });
    double.expect({
      method: 'PUT',
      path: `${API}/merge_requests/3/notes/77`,
      body: (body) => assert.deepEqual(body, { body: `${REPORT_MARKER}\nresult` }),
      reply: { status: 200, body: { id: 77 } },
    });
    const forge = forgeFor(double.url, { botUsername: 'ducc-bot' });
    await forge.upsertReport(PROJECT, 3, 'plan');
    await forge.upsertReport(PROJECT, 3, 'result');
    double.assertDone();
    assert.deepEqual(
      double.requests.map((r) => r.method),
      ['GET', 'POST', 'GET', 'PUT'],
    );
  });

  it('with the stateful double: paginated notes, system notes and other authors ignored, one note kept', async (t) => {
    const double = await startApiDouble(t);
    const project = gitlabProjectDouble(double, { project: PROJECT, botUsername: 'ducc-bot' });
    for (let i = 0; i < 130; i++) project.addNote(3, `discussion ${i}`, 'alice');
    project.addNote(3, `${REPORT_MARKER} pasted`, 'mallory');
    project.addNote(3, `${REPORT_MARKER} system`, 'ducc-bot', true);
    const forge = forgeFor(double.url, { botUsername: 'ducc-bot' });
    await forge.upsertReport(PROJECT, 3, 'v1');
    await forge.upsertReport(PROJECT, 3, 'v2');
    const ours = project.comments.filter((n) => n.username === 'ducc-bot' && !n.system);
    assert.equal(ours.length, 1);
    assert.equal(ours[0]!.body, `${REPORT_MARKER}\nv2`);
    assert.equal(double.requests.filter((r) => r.method === 'PUT').length, 1);
    assert.ok(double.requests.some((r) => /[?&]page=2/.test(r.path)));
  });

  it('cuts the note to 1,000,000 − 100 characters with the marker kept', async (t) => {
    const double = await startApiDouble(t);
    const project = gitlabProjectDouble(double, { project: PROJECT });
    await forgeFor(double.url).upsertReport(PROJECT, 3, 'y'.repeat(1_200_000));
    const body = project.comments[0]!.body;
    assert.ok(body.length <= 999_900);
    assert.ok(body.length > 999_000);
    assert.ok(body.startsWith(`${REPORT_MARKER}\nyyy`));
    assert.match(body, /report truncated/);
  });
});

describe('GitLabForge.reply', () => {
  it('posts a new note', async (t) => {
    const double = await startApiDouble(t);
    double.expect({
      method: 'POST',
      path: `${API}/merge_requests/9/notes`,
      body: (body) => assert.deepEqual(body, { body: 'ok' }),
      reply: { status: 201, body: { id: 1 } },
    });
    await forgeFor(double.url).reply(PROJECT, 9, 'ok');
    double.assertDone();
  });
});

describe('GitLabForge.canWrite', () => {
  for (const [level, expected] of [
    [10, false],
    [20, false],
    [30, true],
    [40, true],
    [50, true],
  ] as const) {
    it(`access_level ${level} → ${expected}`, async (t) => {
      const double = await startApiDouble(t);
      double.expect({
        method: 'GET',
        path: `${API}/members/all/17`,
        reply: { status: 200, body: { id: 17, username: 'alice', access_level: level, state: 'active' } },
      });
      assert.equal(await forgeFor(double.url).canWrite(PROJECT, { login: 'alice', id: 17, isBot: false }), expected);
      double.assertDone();
    });
  }

  it('a membership awaiting acceptance does not count', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'GET', path: `${API}/members/all/17`, reply: { status: 200, body: { id: 17, access_level: 40, state: 'awaiting' } } });
    assert.equal(await forgeFor(double.url).canWrite(PROJECT, { login: 'alice', id: 17, isBot: false }), false);
  });

  it('404 (not a member) → false', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'GET', path: `${API}/members/all/18`, reply: { status: 404, body: { message: '404 Not found' } } });
    assert.equal(await forgeFor(double.url).canWrite(PROJECT, { login: 'bob', id: 18, isBot: false }), false);
  });

  it('500 → throws (the caller fails closed)', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'GET', path: `${API}/members/all/17`, reply: { status: 500, body: { message: '500 Internal Server Error' } } });
    await assert.rejects(
      forgeFor(double.url).canWrite(PROJECT, { login: 'alice', id: 17, isBot: false }),
      (error: unknown) => error instanceof ForgeError && error.status === 500 && error.temporary,
    );
  });

  it('without Actor.id, looks the user up by username first', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'GET', path: '/api/v4/users?username=alice', reply: { status: 200, body: [{ id: 17, username: 'alice' }] } });
    double.expect({ method: 'GET', path: `${API}/members/all/17`, reply: { status: 200, body: { id: 17, access_level: 30, state: 'active' } } });
    assert.equal(await forgeFor(double.url).canWrite(PROJECT, { login: 'alice', isBot: false }), true);
    double.assertDone();
  });

  it('with the stateful double: unknown users and non-members are refused', async (t) => {
    const double = await startApiDouble(t);
    gitlabProjectDouble(double, { project: PROJECT, users: { alice: 17, bob: 18 }, members: { 17: 30 } });
    const forge = forgeFor(double.url);
    assert.equal(await forge.canWrite(PROJECT, { login: 'alice', isBot: false }), true);
    assert.equal(await forge.canWrite(PROJECT, { login: 'bob', isBot: false }), false);
    assert.equal(await forge.canWrite(PROJECT, { login: 'nobody', isBot: false }), false);
    assert.deepEqual(
      double.requests.map((r) => r.path),
      ['/api/v4/users?username=alice', `${API}/members/all/17`, '/api/v4/users?username=bob', `${API}/members/all/18`, '/api/v4/users?username=nobody'],
    );
  });
});

describe('GitLabForge.getChangeRequest', () => {
  it('reads sha, state, branches; same project is not a fork, another source project is', async (t) => {
    const double = await startApiDouble(t);
    gitlabProjectDouble(double, {
      project: PROJECT,
      mergeRequests: [
        { iid: 1, sha: SHA, sourceBranch: 'add-root', targetBranch: 'master' },
        { iid: 2, sha: SHA, fromFork: true, state: 'closed' },
        { iid: 3, sha: SHA, state: 'merged' },
        { iid: 4, sha: SHA, state: 'locked' },
      ],
    });
    const forge = forgeFor(double.url);
    assert.deepEqual(await forge.getChangeRequest(PROJECT, 1), {
      number: 1,
      headSha: SHA,
      state: 'open',
      sourceBranch: 'add-root',
      targetBranch: 'master',
      fromFork: false,
    });
    const fork = await forge.getChangeRequest(PROJECT, 2);
    assert.equal(fork.fromFork, true);
    assert.equal(fork.state, 'closed');
    assert.equal((await forge.getChangeRequest(PROJECT, 3)).state, 'merged');
    assert.equal((await forge.getChangeRequest(PROJECT, 4)).state, 'open');
    assert.equal(double.requests[0]!.path, `${API}/merge_requests/1`);
  });
});

describe('GitLabForge.findMergedChangeRequest', () => {
  it('returns the first merged merge request of the commit', async (t) => {
    const double = await startApiDouble(t);
    double.expect({
      method: 'GET',
      path: `${API}/repository/commits/${SHA}/merge_requests`,
      reply: {
        status: 200,
        body: [
          { iid: 5, state: 'opened' },
          { iid: 6, state: 'merged' },
          { iid: 7, state: 'merged' },
        ],
      },
    });
    assert.equal(await forgeFor(double.url).findMergedChangeRequest(PROJECT, SHA), 6);
    double.assertDone();
  });

  it('undefined when none is merged or the commit is unknown (404)', async (t) => {
    const double = await startApiDouble(t);
    gitlabProjectDouble(double, { project: PROJECT, mergeRequests: [{ iid: 1, sha: SHA }] });
    double.expect({
      method: 'GET',
      path: `/api/v4/projects/other%2Fp/repository/commits/${SHA}/merge_requests`,
      reply: { status: 404, body: { message: '404 Commit Not Found' } },
    });
    const forge = forgeFor(double.url);
    assert.equal(await forge.findMergedChangeRequest(PROJECT, SHA), undefined);
    assert.equal(await forge.findMergedChangeRequest('other/p', SHA), undefined);
  });

  it('with the stateful double: found by merge commit', async (t) => {
    const double = await startApiDouble(t);
    const merge = 'd'.repeat(40);
    gitlabProjectDouble(double, { project: PROJECT, mergeRequests: [{ iid: 11, sha: SHA, state: 'merged', mergeCommitSha: merge }] });
    assert.equal(await forgeFor(double.url).findMergedChangeRequest(PROJECT, merge), 11);
  });
});

describe('GitLabForge logging', () => {
  it('never writes the token, even at trace level and on failures', async (t) => {
    const double = await startApiDouble(t);
    gitlabProjectDouble(double, { project: PROJECT, users: { alice: 17 }, members: { 17: 30 } });
    double.expect({ method: 'GET', path: `${API}/members/all/18`, reply: { status: 500, body: { message: 'boom' } } });
    let output = '';
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output += chunk.toString();
        callback();
      },
    });
    const forge = new GitLabForge({ host: double.url, token: TOKEN, logger: pino({ level: 'trace' }, stream) });
    await forge.setCommitStatus(PROJECT, SHA, { state: 'pending', context: 'c', description: 'd' });
    await forge.setCommitStatus(PROJECT, SHA, { state: 'pending', context: 'c', description: 'd' });
    await forge.upsertReport(PROJECT, 1, 'r');
    await forge.canWrite(PROJECT, { login: 'alice', isBot: false });
    await forge.canWrite(PROJECT, { login: 'bob', id: 18, isBot: false }).catch(() => undefined);
    assert.match(output, /commit status already in this state/);
    assert.doesNotMatch(output, new RegExp(TOKEN));
  });
});

describe('GitLabForge when the API cannot be reached', () => {
  it('a refused connection is a temporary ForgeError that names it, without the token', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;

    const failure = await forgeFor(url)
      .setCommitStatus(PROJECT, SHA, { state: 'pending', context: 'c', description: 'd' })
      .then(
        () => assert.fail('the call succeeded'),
        (error: unknown) => error,
      );

    assert.ok(failure instanceof ForgeError);
    assert.equal(failure.status, undefined);
    assert.equal(failure.temporary, true);
    assert.match(failure.message, /^setting status c on .*: no answer from the GitLab API: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    assert.doesNotMatch(`${failure.message} ${String((failure.cause as Error).message)}`, new RegExp(TOKEN));
  });
});

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
