import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GitHubForge } from '../../../src/forge/github-forge.ts';
import { REPORT_MARKER } from '../../../src/forge/forge.ts';
import { ForgeError } from '../../../src/forge/forge-error.ts';
import { githubRepoDouble, startApiDouble } from '../../support/forge-api-double.ts';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';

const SHA = 'a'.repeat(40);
const TOKEN = 'ghp_test-token-never-logged';

function forgeFor(url: string, botLogin?: string): GitHubForge {
  return new GitHubForge({ baseUrl: url, token: TOKEN, ...(botLogin === undefined ? {} : { botLogin }) });
}

describe('GitHubForge.setCommitStatus', () => {
  for (const state of ['pending', 'success', 'failure', 'error'] as const) {
    it(`posts state ${state} with context, description and target_url`, async (t) => {
      const double = await startApiDouble(t);
      double.expect({
        method: 'POST',
        path: `/repos/cern/wishlist/statuses/${SHA}`,
        body: (body) =>
          assert.deepEqual(body, { state, context: 'ducc-gitops/publish', description: 'Publishing 3 images', target_url: 'https://bot.example.org/jobs/1' }),
        reply: { status: 201, body: { id: 1, state } },
      });
      await forgeFor(double.url).setCommitStatus('cern/wishlist', SHA, {
        state,
        context: 'ducc-gitops/publish',
        description: 'Publishing 3 images',
        targetUrl: 'https://bot.example.org/jobs/1',
      });
      double.assertDone();
      const request = double.requests[0]!;
      assert.equal(request.headers.authorization, `token ${TOKEN}`);
    });
  }

  it('cuts the description to 140 characters ending with … and leaves out a target_url over 255', async (t) => {
    const double = await startApiDouble(t);
    const repo = githubRepoDouble(double, { owner: 'cern', repo: 'wishlist' });
    const long = 'x'.repeat(139) + '🙂🙂🙂';
    await forgeFor(double.url).setCommitStatus('cern/wishlist', SHA, {
      state: 'failure',
      context: 'ducc-gitops/plan',
      description: long,
      targetUrl: `https://e.org/${'p'.repeat(300)}`,
    });
    assert.equal(repo.statuses.length, 1);
    const description = repo.statuses[0]!.description!;
    assert.equal(description.length, 140);
    assert.ok(description.endsWith('…'));
    assert.equal(description, `${'x'.repeat(139)}…`);
    assert.equal(repo.statuses[0]!.target_url, undefined);
    assert.equal(Object.hasOwn(double.requests[0]!.body as object, 'target_url'), false);
  });

  it('keeps a description of exactly 140 characters and does not split a surrogate pair', async (t) => {
    const double = await startApiDouble(t);
    const repo = githubRepoDouble(double, { owner: 'cern', repo: 'wishlist' });
    const forge = forgeFor(double.url);
    await forge.setCommitStatus('cern/wishlist', SHA, { state: 'success', context: 'c', description: 'y'.repeat(140) });
    await forge.setCommitStatus('cern/wishlist', SHA, { state: 'success', context: 'c', description: `${'y'.repeat(138)}🙂🙂` });
    assert.equal(repo.statuses[0]!.description, 'y'.repeat(140));
    // 138 + '🙂' (2 code units) would end at 140 before the ellipsis, so the pair is dropped whole.
    assert.equal(repo.statuses[1]!.description, `${'y'.repeat(138)}…`);
  });

  it('throws a ForgeError with GitHub’s message on a 422', async (t) => {
    const double = await startApiDouble(t);
    double.expect({
      method: 'POST',
      path: `/repos/cern/wishlist/statuses/${SHA}`,
      reply: { status: 422, body: { message: 'Validation Failed', errors: [{ message: 'No commit found for SHA' }] } },
    });
    await assert.rejects(forgeFor(double.url).setCommitStatus('cern/wishlist', SHA, { state: 'success', context: 'c', description: 'd' }), (error: unknown) => {
      assert.ok(error instanceof ForgeError);
      assert.equal(error.status, 422);
      assert.equal(error.temporary, false);
      assert.match(error.message, /Validation Failed.*No commit found/);
      assert.doesNotMatch(error.message + String(error.stack), new RegExp(TOKEN));
      return true;
    });
  });
});

describe('GitHubForge.upsertReport', () => {
  it('creates the report, then edits the same comment in place (PATCH, not a second POST)', async (t) => {
    const double = await startApiDouble(t);
    double.expect({
      method: 'GET',
      path: '/repos/cern/wishlist/issues/7/comments?per_page=100',
      reply: { status: 200, body: [{ id: 1, body: 'looks good', user: { login: 'alice' } }] },
    });
    double.expect({
      method: 'POST',
      path: '/repos/cern/wishlist/issues/7/comments',
      body: (body) => assert.deepEqual(body, { body: `${REPORT_MARKER}\nfirst report` }),
      reply: { status: 201, body: { id: 42, body: `${REPORT_MARKER}\nfirst report`, user: { login: 'ducc-bot' } } },
    });
    double.expect({
      method: 'GET',
      path: '/repos/cern/wishlist/issues/7/comments?per_page=100',
      reply: {
        status: 200,
        body: [
          { id: 1, body: 'looks good', user: { login: 'alice' } },
          { id: 42, body: `${REPORT_MARKER}\nfirst report`, user: { login: 'ducc-bot' } },
        ],
      },
    });
    double.expect({
      method: 'PATCH',
      path: '/repos/cern/wishlist/issues/comments/42',
      body: (body) => assert.deepEqual(body, { body: `${REPORT_MARKER}\nsecond report` }),
      reply: { status: 200, body: { id: 42 } },
    });
    const forge = forgeFor(double.url, 'ducc-bot');
    await forge.upsertReport('cern/wishlist', 7, 'first report');
    await forge.upsertReport('cern/wishlist', 7, 'second report');
    double.assertDone();
    assert.deepEqual(
      double.requests.map((r) => r.method),
      ['GET', 'POST', 'GET', 'PATCH'],
    );
  });

  it('with the stateful double: one comment, edited in place, found across pages, others’ markers ignored', async (t) => {
    const double = await startApiDouble(t);
    const repo = githubRepoDouble(double, { owner: 'cern', repo: 'wishlist', botLogin: 'ducc-bot' });
    for (let i = 0; i < 120; i++) repo.addComment(7, `chatter ${i}`, 'alice');
    repo.addComment(7, `quoting: ${REPORT_MARKER}`, 'mallory');
    repo.addComment(8, `${REPORT_MARKER}\nreport of another PR`, 'ducc-bot');
    const forge = forgeFor(double.url, 'ducc-bot');
    await forge.upsertReport('cern/wishlist', 7, 'v1');
    await forge.upsertReport('cern/wishlist', 7, 'v2');
    await forge.upsertReport('cern/wishlist', 7, 'v3');
    const ours = repo.comments.filter((c) => c.login === 'ducc-bot' && c.issueNumber === 7);
    assert.equal(ours.length, 1);
    assert.equal(ours[0]!.body, `${REPORT_MARKER}\nv3`);
    assert.equal(repo.comments.find((c) => c.login === 'mallory')!.body, `quoting: ${REPORT_MARKER}`);
    assert.equal(double.requests.filter((r) => r.method === 'POST').length, 1);
    assert.equal(double.requests.filter((r) => r.method === 'PATCH').length, 2);
    // 122 comments at 100 a page: each search reads page 2 by following the Link header.
    assert.ok(double.requests.some((r) => r.method === 'GET' && /[?&]page=2/.test(r.path)));
  });

  it('cuts the report to 65,536 characters, keeps the marker and the head, and closes an open fence', async (t) => {
    const double = await startApiDouble(t);
    const repo = githubRepoDouble(double, { owner: 'cern', repo: 'wishlist' });
    const body = `# Report\n\n<details><summary>log</summary>\n\n\`\`\`text\n${'line of conversion output\n'.repeat(5000)}\`\`\`\n</details>\n`;
    assert.ok(body.length > 65_536);
    await forgeFor(double.url).upsertReport('cern/wishlist', 3, body);
    const posted = repo.comments[0]!.body;
    assert.ok(posted.length <= 65_536, `length ${posted.length}`);
    assert.ok(posted.length > 60_000);
    assert.ok(posted.startsWith(`${REPORT_MARKER}\n# Report\n`));
    assert.match(posted, /```\n<\/details>\n\n…report truncated: the first \d+ of \d+ characters are shown\.\n$/);
    assert.equal((posted.match(/```/g) ?? []).length % 2, 0);
  });
});

describe('GitHubForge.reply', () => {
  it('posts a new comment', async (t) => {
    const double = await startApiDouble(t);
    double.expect({
      method: 'POST',
      path: '/repos/cern/wishlist/issues/5/comments',
      body: (body) => assert.deepEqual(body, { body: 'Reconverting 2 images.' }),
      reply: { status: 201, body: { id: 9 } },
    });
    await forgeFor(double.url).reply('cern/wishlist', 5, 'Reconverting 2 images.');
    double.assertDone();
  });
});

describe('GitHubForge.canWrite', () => {
  const cases: [string, Record<string, unknown>, boolean][] = [
    ['admin', { permission: 'admin', role_name: 'admin' }, true],
    ['write', { permission: 'write', role_name: 'write' }, true],
    ['maintain', { permission: 'write', role_name: 'maintain' }, true],
    ['maintain (old answer)', { permission: 'maintain' }, true],
    ['triage', { permission: 'read', role_name: 'triage' }, false],
    ['read', { permission: 'read', role_name: 'read' }, false],
    ['none', { permission: 'none', role_name: 'none' }, false],
  ];
  for (const [name, answer, expected] of cases) {
    it(`${name} → ${expected}`, async (t) => {
      const double = await startApiDouble(t);
      double.expect({
        method: 'GET',
        path: '/repos/cern/wishlist/collaborators/alice/permission',
        reply: { status: 200, body: { ...answer, user: { login: 'alice' } } },
      });
      assert.equal(await forgeFor(double.url).canWrite('cern/wishlist', { login: 'alice', isBot: false }), expected);
      double.assertDone();
    });
  }

  it('404 (not a collaborator) → false', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'GET', path: '/repos/cern/wishlist/collaborators/stranger/permission', reply: { status: 404, body: { message: 'Not Found' } } });
    assert.equal(await forgeFor(double.url).canWrite('cern/wishlist', { login: 'stranger', isBot: false }), false);
  });

  it('500 → throws (the caller fails closed)', async (t) => {
    const double = await startApiDouble(t);
    double.expect({ method: 'GET', path: '/repos/cern/wishlist/collaborators/alice/permission', reply: { status: 500, body: { message: 'Server Error' } } });
    await assert.rejects(forgeFor(double.url).canWrite('cern/wishlist', { login: 'alice', isBot: false }), (error: unknown) => {
      assert.ok(error instanceof ForgeError);
      assert.equal(error.status, 500);
      assert.equal(error.temporary, true);
      return true;
    });
  });

  it('a login is sent percent-encoded, never as extra path', async (t) => {
    const double = await startApiDouble(t);
    const repo = githubRepoDouble(double, { owner: 'cern', repo: 'wishlist', permissions: { 'ducc-bot[bot]': 'write' } });
    assert.equal(await forgeFor(double.url).canWrite('cern/wishlist', { login: 'ducc-bot[bot]', isBot: true }), true);
    assert.equal(await forgeFor(double.url).canWrite('cern/wishlist', { login: '../../x', isBot: false }), false);
    assert.equal(double.requests[1]!.path, '/repos/cern/wishlist/collaborators/..%2F..%2Fx/permission');
    assert.equal(repo.statuses.length, 0);
  });
});

describe('GitHubForge.getChangeRequest', () => {
  it('reads head sha, branches and state; a PR from the same repository is not a fork', async (t) => {
    const double = await startApiDouble(t);
    githubRepoDouble(double, { owner: 'cern', repo: 'wishlist', pulls: [{ number: 4, headSha: SHA, sourceBranch: 'add-root', targetBranch: 'main' }] });
    assert.deepEqual(await forgeFor(double.url).getChangeRequest('cern/wishlist', 4), {
      number: 4,
      headSha: SHA,
      state: 'open',
      sourceBranch: 'add-root',
      targetBranch: 'main',
      fromFork: false,
    });
  });

  it('detects forks, deleted forks, merged and closed pull requests', async (t) => {
    const double = await startApiDouble(t);
    githubRepoDouble(double, {
      owner: 'cern',
      repo: 'wishlist',
      pulls: [
        { number: 5, headSha: SHA, fromFork: true },
        { number: 6, headSha: SHA, headRepoDeleted: true, state: 'closed' },
        { number: 7, headSha: SHA, state: 'merged' },
      ],
    });
    const forge = forgeFor(double.url);
    const fork = await forge.getChangeRequest('cern/wishlist', 5);
    assert.equal(fork.fromFork, true);
    assert.equal(fork.state, 'open');
    const deleted = await forge.getChangeRequest('cern/wishlist', 6);
    assert.equal(deleted.fromFork, true);
    assert.equal(deleted.state, 'closed');
    const merged = await forge.getChangeRequest('cern/wishlist', 7);
    assert.equal(merged.fromFork, false);
    assert.equal(merged.state, 'merged');
  });

  it('a missing pull request throws a ForgeError with status 404', async (t) => {
    const double = await startApiDouble(t);
    githubRepoDouble(double, { owner: 'cern', repo: 'wishlist' });
    await assert.rejects(forgeFor(double.url).getChangeRequest('cern/wishlist', 99), (error: unknown) => error instanceof ForgeError && error.status === 404);
  });
});

describe('GitHubForge.findMergedChangeRequest', () => {
  it('returns the first merged pull request of the commit', async (t) => {
    const double = await startApiDouble(t);
    double.expect({
      method: 'GET',
      path: `/repos/cern/wishlist/commits/${SHA}/pulls?per_page=100`,
      reply: {
        status: 200,
        body: [
          { number: 3, state: 'open', merged_at: null, head: { sha: SHA, ref: 'x', repo: null }, base: { ref: 'main', repo: { full_name: 'cern/wishlist' } } },
          {
            number: 8,
            state: 'closed',
            merged_at: '2025-01-01T00:00:00Z',
            head: { sha: SHA, ref: 'y', repo: null },
            base: { ref: 'main', repo: { full_name: 'someone/fork' } },
          },
          {
            number: 9,
            state: 'closed',
            merged_at: '2025-01-01T00:00:00Z',
            head: { sha: SHA, ref: 'z', repo: null },
            base: { ref: 'main', repo: { full_name: 'cern/wishlist' } },
          },
        ],
      },
    });
    // #8 was merged into a fork that contains the commit, not into cern/wishlist.
    assert.equal(await forgeFor(double.url).findMergedChangeRequest('cern/wishlist', SHA), 9);
    double.assertDone();
  });

  it('undefined when no pull request was merged, or the commit is unknown (422)', async (t) => {
    const double = await startApiDouble(t);
    githubRepoDouble(double, { owner: 'cern', repo: 'wishlist', pulls: [{ number: 2, headSha: SHA }] });
    double.expect({
      method: 'GET',
      path: `/repos/other/repo/commits/${SHA}/pulls?per_page=100`,
      reply: { status: 422, body: { message: `No commit found for SHA: ${SHA}` } },
    });
    const forge = forgeFor(double.url);
    assert.equal(await forge.findMergedChangeRequest('cern/wishlist', SHA), undefined);
    assert.equal(await forge.findMergedChangeRequest('other/repo', SHA), undefined);
  });

  it('with the stateful double: found by merge commit', async (t) => {
    const double = await startApiDouble(t);
    const mergeSha = 'b'.repeat(40);
    githubRepoDouble(double, { owner: 'cern', repo: 'wishlist', pulls: [{ number: 12, headSha: SHA, state: 'merged', mergeCommitSha: mergeSha }] });
    assert.equal(await forgeFor(double.url).findMergedChangeRequest('cern/wishlist', mergeSha), 12);
  });
});

describe('GitHubForge input checks', () => {
  it('rejects a project that is not owner/name before any request', async (t) => {
    const double = await startApiDouble(t);
    const forge = forgeFor(double.url);
    await assert.rejects(forge.reply('cern', 1, 'x'), /not of the form owner\/name/);
    await assert.rejects(forge.reply('cern/a/b', 1, 'x'), /not of the form owner\/name/);
    await assert.rejects(forge.upsertReport('cern/a', 0, 'x'), /not a positive integer/);
    assert.equal(double.requests.length, 0);
  });
});

describe('GitHubForge logging', () => {
  it('never writes the token, even at trace level and on failures', async (t) => {
    const double = await startApiDouble(t);
    githubRepoDouble(double, { owner: 'cern', repo: 'wishlist', permissions: { alice: 'write' } });
    double.expect({ method: 'GET', path: '/repos/cern/wishlist/collaborators/bob/permission', reply: { status: 500, body: { message: 'boom' } } });
    let output = '';
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output += chunk.toString();
        callback();
      },
    });
    const forge = new GitHubForge({ baseUrl: double.url, token: TOKEN, logger: pino({ level: 'trace' }, stream) });
    await forge.setCommitStatus('cern/wishlist', SHA, { state: 'success', context: 'c', description: 'd', targetUrl: `https://e.org/${'x'.repeat(300)}` });
    await forge.upsertReport('cern/wishlist', 1, 'r');
    await forge.canWrite('cern/wishlist', { login: 'alice', isBot: false });
    await forge.canWrite('cern/wishlist', { login: 'bob', isBot: false }).catch(() => undefined);
    assert.match(output, /target_url longer than 255/);
    assert.doesNotMatch(output, new RegExp(TOKEN));
  });
});

describe('GitHubForge when the API cannot be reached', () => {
  it('a host name that does not resolve is a temporary ForgeError naming the DNS failure, not "HTTP 500"', async (t) => {
    // undici's own fetch with a resolver that fails as getaddrinfo does for an unknown name: the errors
    // are undici's, without a DNS query leaving the machine.
    const agent = new Agent({
      connect: {
        lookup: (hostname, _options, callback) =>
          callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo', hostname }), '', 4),
      },
    });
    t.after(() => agent.close());
    const forge = new GitHubForge({
      baseUrl: 'https://api.github.example',
      token: TOKEN,
      fetch: ((input: string, init: RequestInit) => undiciFetch(input, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch,
    });

    const failure = await forge.setCommitStatus('cern/wishlist', SHA, { state: 'pending', context: 'ducc-gitops/publish', description: 'd' }).then(
      () => assert.fail('the call succeeded'),
      (error: unknown) => error,
    );

    assert.ok(failure instanceof ForgeError);
    assert.equal(failure.status, undefined);
    assert.equal(failure.temporary, true);
    assert.equal(
      failure.message,
      `setting status ducc-gitops/publish on cern/wishlist@${SHA}: no answer from the GitHub API: getaddrinfo ENOTFOUND api.github.example`,
    );
  });

  it('a refused connection is a temporary ForgeError that names it', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));

    const failure = await forgeFor(`http://127.0.0.1:${port}`)
      .getChangeRequest('cern/wishlist', 7)
      .then(
        () => assert.fail('the call succeeded'),
        (error: unknown) => error,
      );

    assert.ok(failure instanceof ForgeError);
    assert.equal(failure.temporary, true);
    assert.equal(failure.message, `reading pull request cern/wishlist#7: no answer from the GitHub API: connect ECONNREFUSED 127.0.0.1:${port}`);
  });
});
