import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBotConfig } from '../../../src/config/load-bot-config.ts';
import { DuccError } from '../../../src/util/errors.ts';

function configFile(t: TestContext, yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ducc-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ducc.yaml');
  writeFileSync(file, yaml);
  return file;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DuccError, String(error));
    assert.equal(error.code, 'BOT_ERR_CONFIG');
    return error.message
      .split('\n')
      .slice(1)
      .map((line) => line.trim());
  }
  assert.fail('expected a BOT_ERR_CONFIG error');
}

test('defaults without a file', () => {
  assert.deepEqual(loadBotConfig({ env: {} }), {
    listen: { host: '127.0.0.1', port: 8080 },
    statePath: './var/ducc-gitops.db',
    state: { kind: 'sqlite' },
    cacheDir: './var/cache',
    publisher: { kind: 'directory', root: './var/cvmfs' },
    wishlists: [],
    registryHooks: [],
    githubSecretEnv: 'DUCC_GITHUB_WEBHOOK_SECRET',
    gitlabTokenEnv: 'DUCC_GITLAB_WEBHOOK_TOKEN',
    reconcileMinutes: 15,
    registryDebounceSeconds: 10,
    maxQueuedJobs: 1000,
    statusContext: 'ducc-gitops',
    convert: { skipThinImage: false, multiArch: false },
    gc: { intervalHours: 0, gracePeriod: '7d', cvmfsGc: false },
  });
});

test('wish-list and registry-hook defaults', (t) => {
  const file = configFile(
    t,
    `
wishlists:
  - name: unpacked
    forge: github
    project: cvmfs/images-unpacked.cern.ch
  - name: cern
    forge: gitlab
    apiUrl: https://gitlab.cern.ch/
    project: unpacked/sync
    botUser: ducc-bot
registryHooks:
  - name: harbor-cern
    kind: harbor
`,
  );
  const config = loadBotConfig({ file, env: {} });
  assert.deepEqual(config.wishlists, [
    {
      name: 'unpacked',
      forge: 'github',
      apiUrl: 'https://api.github.com',
      project: 'cvmfs/images-unpacked.cern.ch',
      cloneUrl: 'https://github.com/cvmfs/images-unpacked.cern.ch.git',
      branch: 'main',
      paths: ['recipe.yaml'],
      tokenEnv: 'DUCC_GITHUB_TOKEN',
      allowForks: false,
    },
    {
      name: 'cern',
      forge: 'gitlab',
      apiUrl: 'https://gitlab.cern.ch',
      project: 'unpacked/sync',
      cloneUrl: 'https://gitlab.cern.ch/unpacked/sync.git',
      branch: 'main',
      paths: ['recipe.yaml'],
      tokenEnv: 'DUCC_GITLAB_TOKEN',
      botUser: 'ducc-bot',
      allowForks: false,
    },
  ]);
  assert.deepEqual(config.registryHooks, [{ name: 'harbor-cern', kind: 'harbor', secretEnv: 'DUCC_REGISTRY_HARBOR_CERN_SECRET' }]);
});

test('the file from DUCC_CONFIG, environment overrides on top', (t) => {
  const file = configFile(t, 'listen: {host: 0.0.0.0, port: 9000}\nstatePath: /srv/a.db\nreconcileMinutes: 5\npublicUrl: https://a.example.org\n');
  const config = loadBotConfig({
    env: {
      DUCC_CONFIG: file,
      DUCC_LISTEN: '[::1]:8443',
      DUCC_PUBLIC_URL: 'https://ducc.example.org/',
      DUCC_STATE_PATH: '/var/lib/ducc/state.db',
      DUCC_CACHE_DIR: '/var/cache/ducc',
      DUCC_RECONCILE_MINUTES: '0',
    },
  });
  assert.deepEqual(config.listen, { host: '::1', port: 8443 });
  assert.equal(config.publicUrl, 'https://ducc.example.org');
  assert.equal(config.statePath, '/var/lib/ducc/state.db');
  assert.equal(config.cacheDir, '/var/cache/ducc');
  assert.equal(config.reconcileMinutes, 0);
  assert.deepEqual(loadBotConfig({ env: { DUCC_LISTEN: ':8081' } }).listen, { host: '127.0.0.1', port: 8081 });
});

test('all problems are reported together, one `file: key: problem` line each', (t) => {
  const file = configFile(
    t,
    `
listen: {port: 70000}
reconcile_minutes: 3
maxQueuedJobs: 0
publisher: {kind: s3}
convert: {platform: "linux/amd64/v8/extra"}
wishlists:
  - name: Unpacked
    forge: github
    project: not a project
  - name: dup
    forge: gitlab
    project: group/project
  - name: dup
    forge: bitbucket
    project: a/b
    paths: [/etc/passwd, ../x]
    branch: "--upload-pack=evil"
registryHooks:
  - name: hub
    kind: dockerhub
    secretEnv: my-secret-value
  - name: hub
    kind: gcr
`,
  );
  const problems = problemsOf(() => loadBotConfig({ file, env: { DUCC_LISTEN: 'nope', DUCC_RECONCILE_MINUTES: 'soon' } }));
  const expect = [
    [`${file}: listen.port:`, /0 to 65535/],
    [`${file}: reconcile_minutes:`, /did you mean "reconcileMinutes"/],
    [`${file}: maxQueuedJobs:`, /from 1/],
    [`${file}: publisher.kind:`, /'directory' or 'cvmfs'/],
    [`${file}: convert.platform:`, /invalid platform/],
    [`${file}: wishlists[0].name:`, /must match/],
    [`${file}: wishlists[0].project:`, /owner\/name/],
    [`${file}: wishlists[1].apiUrl:`, /required for GitLab/],
    [`${file}: wishlists[2].name:`, /duplicate name "dup"/],
    [`${file}: wishlists[2].forge:`, /'github' or 'gitlab'/],
    [`${file}: wishlists[2].paths[0]:`, /relative path/],
    [`${file}: wishlists[2].paths[1]:`, /relative path/],
    [`${file}: wishlists[2].branch:`, /invalid value/],
    [`${file}: registryHooks[0].secretEnv:`, /NAME of an environment variable/],
    [`${file}: registryHooks[1].name:`, /duplicate name "hub"/],
    [`${file}: registryHooks[1].kind:`, /one of distribution, harbor, dockerhub, quay/],
    ['environment: DUCC_LISTEN:', /host:port/],
    ['environment: DUCC_RECONCILE_MINUTES:', /whole number/],
  ] as const;
  for (const [prefix, pattern] of expect) {
    const line = problems.find((p) => p.startsWith(prefix));
    assert.ok(line, `missing problem ${prefix}\n${problems.join('\n')}`);
    assert.match(line, pattern);
  }
  assert.equal(problems.length, expect.length, problems.join('\n'));
  // Each problem in the file says where it is, and they come in the order of the file.
  assert.match(problems[0]!, new RegExp(`^${file}: listen\\.port: .* \\(line 2, column 10\\)$`));
  assert.match(
    problems.find((p) => p.includes('wishlists[1].apiUrl'))!,
    /\(line 11, column 5\)$/,
    'a missing key: the mapping that lacks it',
  );
  assert.match(
    problems.find((p) => p.includes('reconcile_minutes'))!,
    /\(line 3, column 1\)$/,
    'an unknown key: the key itself',
  );
  // The value of a *Env key may be a pasted secret: never echoed.
  assert.ok(!problems.join('\n').includes('my-secret-value'));
});

test('literal secrets in the file are refused, anywhere, and never echoed', (t) => {
  const file = configFile(
    t,
    `
githubSecret: s3cr3t-github
wishlists:
  - name: unpacked
    forge: github
    project: a/b
    token: ghp_0123456789abcdef
    cloneUrl: https://x-access-token:ghp_0123456789abcdef@github.com/a/b.git
registryHooks:
  - name: hub
    kind: dockerhub
    password: hunter2
publisher:
  kind: directory
  root: ./var/cvmfs
  apiKey: k
`,
  );
  const problems = problemsOf(() => loadBotConfig({ file, env: {} }));
  for (const key of ['githubSecret', 'wishlists[0].token', 'registryHooks[0].password', 'publisher.apiKey']) {
    const line = problems.find((p) => p.startsWith(`${file}: ${key}:`));
    assert.ok(line, `missing ${key}\n${problems.join('\n')}`);
    assert.match(line, /environment variable/);
  }
  assert.ok(problems.some((p) => p.startsWith(`${file}: wishlists[0].cloneUrl:`) && /credentials/.test(p)));
  const text = problems.join('\n');
  for (const secret of ['s3cr3t-github', 'ghp_0123456789abcdef', 'hunter2']) assert.ok(!text.includes(secret), secret);
  assert.equal(problems.length, 5, text);
});

test('YAML syntax errors and a missing file are BOT_ERR_CONFIG', (t) => {
  const file = configFile(t, 'listen: {host: a\nwishlists: [\n');
  assert.ok(problemsOf(() => loadBotConfig({ file, env: {} })).length >= 1);
  const dup = configFile(t, 'statePath: a\nstatePath: b\n');
  assert.ok(problemsOf(() => loadBotConfig({ file: dup, env: {} })).some((p) => /unique/i.test(p)));
  assert.throws(() => loadBotConfig({ file: '/nonexistent/ducc.yaml', env: {} }), { code: 'BOT_ERR_CONFIG', message: /cannot read config .*ENOENT/ });
});

test('config/ducc.example.yaml loads and matches the documented defaults', () => {
  const file = new URL('../../../config/ducc.example.yaml', import.meta.url).pathname;
  const config = loadBotConfig({ file, env: {} });
  assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8080 });
  assert.equal(config.statePath, './var/ducc-gitops.db');
  assert.ok(config.wishlists.length >= 1);
  assert.ok(config.registryHooks.length >= 1);
  assert.ok(readFileSync(file, 'utf8').includes('publisher:'));
});

test('state: postgres with its defaults; DUCC_STATE_URL chooses it and may carry the password, which is never echoed', (t) => {
  const file = configFile(t, 'state:\n  kind: postgres\n  url: postgres://ducc@db.example.org:5432/ducc\n');
  assert.deepEqual(loadBotConfig({ file, env: {} }).state, {
    kind: 'postgres',
    url: 'postgres://ducc@db.example.org:5432/ducc',
    passwordEnv: 'DUCC_STATE_PASSWORD',
    leaseSeconds: 60,
  });
  const tuned = configFile(t, 'state: {kind: postgres, url: "postgresql://ducc@db/ducc", passwordEnv: PG_PASS, leaseSeconds: 5}\n');
  assert.deepEqual(loadBotConfig({ file: tuned, env: { DUCC_STATE_URL: 'postgres://other:s3cret-pw@db2/ducc' } }).state, {
    kind: 'postgres',
    url: 'postgres://other:s3cret-pw@db2/ducc',
    passwordEnv: 'PG_PASS',
    leaseSeconds: 5,
  });
  assert.deepEqual(loadBotConfig({ env: { DUCC_STATE_URL: 'postgres://ducc@db/ducc' } }).state, {
    kind: 'postgres',
    url: 'postgres://ducc@db/ducc',
    passwordEnv: 'DUCC_STATE_PASSWORD',
    leaseSeconds: 60,
  });
  const problems = problemsOf(() => loadBotConfig({ env: { DUCC_STATE_URL: 'mysql://u:s3cret-pw@db/x' } }));
  assert.deepEqual(problems, ['environment: DUCC_STATE_URL: must be a postgres://user@host:port/database URL']);
});

test('state: a password in the file, a missing url, an unknown kind or key are problems', (t) => {
  const withPassword = configFile(t, 'state:\n  kind: postgres\n  url: postgres://ducc:s3cret-pw@db/ducc\n');
  const problems = problemsOf(() => loadBotConfig({ file: withPassword, env: {} }));
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /state\.url: must not contain a password/);
  assert.doesNotMatch(problems.join('\n'), /s3cret-pw/);
  assert.match(problemsOf(() => loadBotConfig({ file: configFile(t, 'state: {kind: postgres}\n'), env: {} })).join('\n'), /state\.url/);
  assert.match(
    problemsOf(() => loadBotConfig({ file: configFile(t, 'state: {kind: mysql}\n'), env: {} })).join('\n'),
    /state.*'sqlite' or 'postgres', got "mysql"/,
  );
  assert.match(
    problemsOf(() => loadBotConfig({ file: configFile(t, 'state: {kind: postgres, url: "postgres://d@db/x", lease: 3}\n'), env: {} })).join('\n'),
    /state\.lease: unknown key/,
  );
});
