/**
 * The README's `ducc serve` command, as written, with config/ducc.example.yaml (issue 17 point 2): it
 * starts, answers /healthz, and stops on SIGTERM with exit code 0. Run from a scratch directory (the
 * example's ./var paths land there), with the clone's relative paths made absolute, `...` replaced by
 * values, and DUCC_LISTEN choosing a free port instead of the example's 8080. It is stopped as a terminal's
 * Ctrl-C or systemd would stop it: a signal to its whole process group (npx does not pass one on).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../../support/tmp-dir.ts';
import { waitFor } from '../../support/wait-for.ts';

const CLONE = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

/** The one line of the README's sh block that runs `ducc serve --config config/ducc.example.yaml`. */
function readmeServeCommand(): { env: Record<string, string>; argv: string[] } {
  const readme = readFileSync(join(CLONE, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n'));
  const line = blocks.find((l) => / ducc serve --config config\/ducc\.example\.yaml$/.test(l));
  assert.ok(line, 'the README shows the serve command with the example config');
  const words = line.trim().split(/\s+/);
  const env: Record<string, string> = {};
  while (/^[A-Z_][A-Z0-9_]*=/.test(words[0]!)) {
    const [name, value] = words.shift()!.split('=') as [string, string];
    env[name] = value === '...' ? `value-of-${name.toLowerCase()}` : value;
  }
  // Relative to the clone, as the README runs it from there.
  return { env, argv: words.map((word) => (/^(scripts|config)\//.test(word) ? join(CLONE, word) : word)) };
}

it("the README's serve command starts with the example config, answers /healthz and stops on SIGINT", async (t) => {
  const cwd = await tempDir(t, 'ducc-readme-serve-');
  const { env, argv } = readmeServeCommand();
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd,
    env: { ...process.env, DUCC_CONFIG: undefined, DUCC_STATE_PATH: undefined, DUCC_CACHE_DIR: undefined, ...env, DUCC_LISTEN: '127.0.0.1:0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const group = -child.pid!;
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  t.after(() => signalGroup(group, 'SIGKILL'));

  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const listening = () => stderr.split('\n').find((l) => l.includes('"ducc serve listening"'));
  // Up to minutes: scripts/with-deps builds dist/ first when the sources are newer.
  await waitFor(() => listening() !== undefined, 600_000, 'ducc serve to listen', {
    detail: () => stderr,
    abortIf: () => (exitCode === undefined ? undefined : `ducc serve exited with ${exitCode}`),
  });
  const { port } = JSON.parse(listening()!) as { port: number };
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  signalGroup(group, 'SIGINT');
  await exited;
  await waitFor(() => !signalGroup(group, 0), 60_000, 'every process of the command to end', { detail: () => stderr });

  assert.equal(health.status, 200);
  assert.match(stderr, /"msg":"ducc serve stopped"/);
  assert.doesNotMatch(stderr, /"level":50/, 'nothing logged as an error');
  assert.ok((await stat(join(cwd, 'var/ducc-gitops.db'))).isFile(), 'the state is in ./var of the working directory');
  assert.ok((await stat(join(cwd, 'var/cache'))).isDirectory());
});

/** Sends `signal` to a process group; false once the group is gone. */
function signalGroup(group: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(group, signal);
    return true;
  } catch {
    return false;
  }
}
