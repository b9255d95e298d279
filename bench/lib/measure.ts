/**
 * Measuring external commands the same way for every tool: each runs under GNU time
 * (`/usr/bin/time -f '%e %M %U %S' -o FILE`), which reports the peak resident set size (ru_maxrss of the
 * command, i.e. of its largest process); the wall time is taken here with a monotonic clock around the
 * spawn.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { readTimeFile, secondsSince, tail, TIME_FORMAT } from './util.ts';

export interface Measurement {
  seconds: number;
  /** Peak RSS in KiB (the largest of the processes measured). */
  maxRssKiB: number;
  /** CPU time (user + system) of everything measured: less disturbed than wall time by other load on the machine. */
  cpuSeconds: number;
  /** Per-step breakdown, for compound measurements (skopeo + umoci, per-layer floor). */
  steps?: { name: string; seconds: number; maxRssKiB: number; cpuSeconds: number }[];
}

const TIME = '/usr/bin/time';
let scratch: string | undefined;
let counter = 0;

async function timeFile(): Promise<string> {
  scratch ??= await mkdtemp(join(process.env['TMPDIR'] ?? '/tmp', 'ducc-bench-time-'));
  return join(scratch, `time-${counter++}.txt`);
}

export async function cleanupMeasureScratch(): Promise<void> {
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  scratch = undefined;
}

function collect(child: ChildProcess): () => string {
  let output = '';
  const add = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-64_000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => output;
}

function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/**
 * Runs `cmd args` under GNU time; rejects (with the tail of its output) when it exits non-zero or runs
 * longer than `timeoutMs`. `onOutput` gets the combined stdout+stderr text on success.
 */
export async function measureCommand(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; onOutput?: (output: string) => void } = {},
): Promise<Measurement> {
  const file = await timeFile();
  const started = process.hrtime.bigint();
  const child = spawn(TIME, ['-f', TIME_FORMAT, '-o', file, cmd, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collect(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60 * 60_000);
  const code = await exitOf(child).finally(() => clearTimeout(timer));
  const seconds = secondsSince(started);
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${tail(output())}`);
  options.onOutput?.(output());
  const { maxRssKiB, cpuSeconds } = await readTimeFile(file);
  return { seconds, maxRssKiB, cpuSeconds };
}

/**
 * `decompress -dc blob | tar -x -C dir` without a shell: tar is spawned with a pipe as stdin, and the
 * decompressor gets the write end of that pipe as its stdout (the data never passes through Node). Both
 * run under GNU time; the RSS reported is the larger of the two (tar's, in practice).
 */
export async function measurePipeline(decompressor: string[], tarArgs: string[], options: { timeoutMs?: number } = {}): Promise<Measurement> {
  const tarTime = await timeFile();
  const decTime = await timeFile();
  const started = process.hrtime.bigint();
  const tar = spawn(TIME, ['-f', TIME_FORMAT, '-o', tarTime, 'tar', ...tarArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
  const tarOutput = collect(tar);
  const dec = spawn(TIME, ['-f', TIME_FORMAT, '-o', decTime, ...decompressor], { stdio: ['ignore', tar.stdin as Writable, 'pipe'] });
  // Our copy of the pipe's write end must go, or tar never sees end-of-file.
  tar.stdin!.destroy();
  const decOutput = collect(dec);
  const timer = setTimeout(
    () => {
      tar.kill('SIGKILL');
      dec.kill('SIGKILL');
    },
    options.timeoutMs ?? 60 * 60_000,
  );
  const [tarCode, decCode] = await Promise.all([exitOf(tar), exitOf(dec)]).finally(() => clearTimeout(timer));
  const seconds = secondsSince(started);
  if (decCode !== 0) throw new Error(`${decompressor.join(' ')} exited with ${decCode}: ${tail(decOutput())}`);
  if (tarCode !== 0) throw new Error(`tar ${tarArgs.join(' ')} exited with ${tarCode}: ${tail(tarOutput())}`);
  const [tarStats, decStats] = [await readTimeFile(tarTime), await readTimeFile(decTime)];
  return { seconds, maxRssKiB: Math.max(tarStats.maxRssKiB, decStats.maxRssKiB), cpuSeconds: tarStats.cpuSeconds + decStats.cpuSeconds };
}
