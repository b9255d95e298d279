/**
 * Shared helpers of the end-to-end CLI tests: the real `bin/ducc.js` run as a child process, temp dirs,
 * images built with the test support and pushed to the real registry with skopeo.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTar, type TarEntrySpec } from '../../support/build-tar.ts';
import { pushOciLayout, writeOciLayout, type TestImageSpec, type WrittenImage } from '../../support/oci-image.ts';
import type { TestRegistry } from '../../support/registry.ts';
import { tempDir, type Cleanup } from '../../support/tmp-dir.ts';
export { asTestContext, entriesOf, exists, suiteCleanup, tempDir, type Cleanup } from '../../support/tmp-dir.ts';
export { waitFor } from '../../support/wait-for.ts';

export const CLI = fileURLToPath(new URL('../../../bin/ducc.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): { stdout: string; stderr: string };
  done: Promise<CliResult>;
}

/** Starts `node bin/ducc.js ARGS` with `env` on top of this process's environment (never through a shell). */
export function startCli(args: string[], options: { env?: Record<string, string | undefined>; cwd?: string; nodeOptions?: string[] } = {}): RunningCli {
  const child = spawn(process.execPath, [...(options.nodeOptions ?? []), CLI, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      process.off('exit', killOnExit);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, output: () => ({ stdout, stderr }), done };
}

/** Runs the CLI to its end (killed after `timeoutMs`) and returns exit code and output; never throws on exit codes. */
export async function runCli(args: string[], options: { env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  const running = startCli(args, options);
  const timer = setTimeout(() => running.child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  try {
    return await running.done;
  } finally {
    clearTimeout(timer);
  }
}

/** Fails with the CLI's output unless it exited with `expected`. */
export function expectExit(result: CliResult, expected: number): CliResult {
  if (result.code !== expected) {
    throw new Error(`ducc exited with ${result.code ?? result.signal}, expected ${expected}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`);
  }
  return result;
}

/** Builds a one-image OCI layout from tar entry lists (one list per layer) and pushes it as `repository:tag`. */
export async function pushImage(
  t: Cleanup,
  registry: TestRegistry,
  repository: string,
  tag: string,
  layers: (TarEntrySpec[] | Buffer)[],
  config: TestImageSpec['config'] = { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
): Promise<WrittenImage> {
  const layout = join(await tempDir(t, 'ducc-cli-layout-'), 'layout');
  const tars = await Promise.all(layers.map((layer) => (Buffer.isBuffer(layer) ? layer : buildTar(layer))));
  const written = await writeOciLayout(layout, tag, [{ layers: tars, config }]);
  await pushOciLayout(layout, tag, { host: registry.host, repository, tag });
  return written.manifests[0]!;
}

/** A DUCC wish list (version 1) for `cvmfsRepo` with the given inputs. */
export function wishlistYaml(cvmfsRepo: string, inputs: string[]): string {
  return ['version: 1', 'user: pusher', `cvmfs_repo: '${cvmfsRepo}'`, 'input:', ...inputs.map((input) => `  - '${input}'`), ''].join('\n');
}

export function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** `.layers/xx/<hex>` of a layer digest, `.flat/xx/<hex>` of a config digest. */
export function layerPath(digest: string): string {
  return `.layers/${hexOf(digest).slice(0, 2)}/${hexOf(digest)}`;
}
export function flatPath(configDigest: string): string {
  return `.flat/${hexOf(configDigest).slice(0, 2)}/${hexOf(configDigest)}`;
}
