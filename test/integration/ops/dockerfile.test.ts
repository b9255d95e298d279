/**
 * The Dockerfile's runtime stage, run as written with the example config mounted (issue 17 point 6): this
 * machine has no container engine, so test/support/container-run.ts plays one — this machine's root
 * filesystem under a writable overlay, with what the base image (node:22-bookworm-slim) brings (the user
 * `node`, uid 1000, and /usr/local/bin/node), the stage's COPY steps (the build stage's /app is this clone
 * once built) and RUN steps, its own network namespace, then ENTRYPOINT + CMD as USER in WORKDIR with ENV
 * and the secrets passed as `docker run -e`. Its HEALTHCHECK must pass, and the state must be written to
 * the VOLUME by the user.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { validate } from 'dockerfile-utils';
import type { ContainerRunResult, ContainerRunSpec } from '../../support/container-run.ts';
import { tempDir } from '../../support/tmp-dir.ts';

const run = promisify(execFile);
const CLONE = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const HELPER = fileURLToPath(new URL('../../support/container-run.ts', import.meta.url));
/** What node:22-bookworm-slim sets up that the Dockerfile relies on. */
const BASE_IMAGE = { user: 'node', uid: 1000, home: '/home/node', path: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

interface Instruction {
  keyword: string;
  args: string;
}

/** The instructions of the Dockerfile's last stage, continuation lines joined, comments dropped. */
function finalStage(text: string): Instruction[] {
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'))
    .map((line) => {
      const [, keyword, args] = /^\s*(\w+)\s+(.*)$/.exec(line)!;
      return { keyword: keyword!.toUpperCase(), args: args!.trim() };
    });
  const from = logical.map((i) => i.keyword).lastIndexOf('FROM');
  return logical.slice(from + 1);
}

/** `["a", "b"]` (exec form), or a shell-form command as the engine runs it. */
function execForm(args: string): string[] {
  if (!args.startsWith('[')) return ['/bin/sh', '-c', args];
  const parsed = JSON.parse(args) as unknown;
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === 'string'), `not in exec form: ${args}`);
  return parsed;
}

function specOf(dockerfile: string, scratch: string, secrets: Record<string, string>): ContainerRunSpec {
  const spec: ContainerRunSpec = {
    scratch,
    append: [
      { path: '/etc/passwd', content: `${BASE_IMAGE.user}:x:${BASE_IMAGE.uid}:${BASE_IMAGE.uid}::${BASE_IMAGE.home}:/bin/bash\n` },
      { path: '/etc/group', content: `${BASE_IMAGE.user}:x:${BASE_IMAGE.uid}:\n` },
    ],
    binds: [
      { source: realpathSync(process.execPath), target: '/usr/local/bin/node', readOnly: true },
      // As the README says: the config mounted at /etc/ducc-gitops/ducc.yaml.
      { source: join(CLONE, 'config/ducc.example.yaml'), target: '/etc/ducc-gitops/ducc.yaml', readOnly: true },
    ],
    run: [],
    user: '0:0',
    workdir: '/',
    env: { PATH: BASE_IMAGE.path, HOME: BASE_IMAGE.home, ...secrets },
    command: [],
    healthcheck: [],
    ready: '"msg":"ducc serve listening"',
    stat: [],
  };
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  for (const { keyword, args } of finalStage(dockerfile)) {
    switch (keyword) {
      case 'WORKDIR':
        spec.workdir = args;
        break;
      case 'COPY': {
        const words = args.split(/\s+/);
        const from = words[0]!.startsWith('--from=') ? words.shift() : undefined;
        const dest = words.pop()!;
        const target = dest.startsWith('/') ? dest : join(spec.workdir, dest);
        for (const source of words) {
          // The build stage's /app is the build context, built: this clone after scripts/with-deps.
          const host = from === undefined ? join(CLONE, source) : join(CLONE, source.replace(/^\/app\//, ''));
          spec.binds.push({ source: host, target: words.length > 1 || dest.endsWith('/') ? join(target, source.split('/').pop()!) : target, readOnly: true });
        }
        break;
      }
      case 'RUN':
        // Debian packages of the image (git, ca-certificates) are on this machine already.
        if (!/^apt-get\b/.test(args)) spec.run.push(args);
        break;
      case 'ENV':
        for (const [, name, value] of args.matchAll(/(\w+)=(\S+)/g)) spec.env[name!] = value!;
        break;
      case 'USER':
        assert.equal(args, BASE_IMAGE.user, 'the image runs as the base image’s unprivileged user');
        spec.user = `${BASE_IMAGE.uid}:${BASE_IMAGE.uid}`;
        break;
      case 'VOLUME':
        spec.stat.push(...execForm(args));
        break;
      case 'HEALTHCHECK':
        spec.healthcheck = execForm(args.replace(/^(--\S+\s+)*CMD\s+/, ''));
        break;
      case 'ENTRYPOINT':
        entrypoint = execForm(args);
        break;
      case 'CMD':
        cmd = execForm(args);
        break;
    }
  }
  spec.command = [...entrypoint, ...cmd];
  return spec;
}

it('the Dockerfile lints clean, and its last stage runs `ducc serve` with the example config: reachable, healthy, state in the volume', async (t) => {
  const dockerfile = readFileSync(join(CLONE, 'Dockerfile'), 'utf8');
  assert.deepEqual(
    validate(dockerfile).map((p) => `${p.range.start.line + 1}: ${p.message}`),
    [],
  );
  await run('git', ['--version']);
  const scratch = await tempDir(t, 'ducc-container-');
  const spec = specOf(dockerfile, join(scratch, 'overlay'), {
    DUCC_GITHUB_WEBHOOK_SECRET: 'webhook-secret',
    DUCC_GITHUB_TOKEN: 'api-token',
    DUCC_REGISTRY_LOCAL_SECRET: 'registry-secret',
  });
  spec.stat.push(spec.env['DUCC_STATE_PATH'] ?? '/missing-DUCC_STATE_PATH', spec.env['DUCC_CACHE_DIR'] ?? '/missing-DUCC_CACHE_DIR');
  const specFile = join(scratch, 'spec.json');
  await writeFile(specFile, JSON.stringify(spec));

  const { stdout } = await run('unshare', ['--mount', '--net', '--propagation', 'private', process.execPath, HELPER, specFile], { timeout: 300_000 });
  const result = JSON.parse(stdout) as ContainerRunResult;

  assert.ok(result.ready, `ducc serve did not start:\n${result.stderr}`);
  const listening = JSON.parse(result.stderr.split('\n').find((line) => line.includes(spec.ready))!) as { host: string; port: number };
  assert.deepEqual({ host: listening.host, port: listening.port }, { host: '0.0.0.0', port: 8080 }, 'reachable from outside the container');
  assert.equal(result.healthcheck, 0, 'the HEALTHCHECK passes');
  assert.equal(result.exit, 0, `SIGTERM stops it cleanly:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /EACCES|"level":50/);
  const volume = spec.stat[0]!;
  assert.equal(result.stats[volume]?.uid, BASE_IMAGE.uid, `${volume} belongs to the user`);
  assert.ok(result.stats[spec.env['DUCC_STATE_PATH']!]?.isFile, 'the state database is written');
  assert.ok(spec.env['DUCC_STATE_PATH']!.startsWith(`${volume}/`), 'the state database is in the volume');
  assert.equal(result.stats[spec.env['DUCC_CACHE_DIR']!]?.uid, BASE_IMAGE.uid);
});

it("the Dockerfile's build stage copies every file and config that `npm run build` uses", () => {
  const dockerfile = readFileSync(join(CLONE, 'Dockerfile'), 'utf8');
  const buildStage = dockerfile.slice(0, dockerfile.indexOf('\nFROM ', dockerfile.indexOf('FROM ') + 1));
  const copied = [...buildStage.matchAll(/^COPY (.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
  const build = (JSON.parse(readFileSync(join(CLONE, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['build']!;
  // Scripts run with node, and tsc's project files (tsconfig.build.json extends tsconfig.json).
  const needed = [...build.matchAll(/\bnode (\S+\.[jt]s)\b/g), ...build.matchAll(/-p (\S+\.json)/g)].map((m) => m[1]!);
  assert.ok(needed.length >= 2, `found only ${needed.join(', ')} in the build script: ${build}`);
  for (const file of [...needed, 'tsconfig.json', 'src']) {
    assert.ok(
      copied.some((c) => c === file || file.startsWith(`${c.replace(/\/$/, '')}/`)),
      `the build stage does not copy ${file} (copies: ${copied.join(' ')})`,
    );
  }
  assert.equal(dockerfile.match(/^FROM node:22-[a-z]+-slim/gm)?.length, 2);
  assert.doesNotMatch(dockerfile, /SECRET|TOKEN|PASS/);
});
