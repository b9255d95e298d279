/**
 * Measuring external commands the same way for every tool: each runs under GNU time
 * (`/usr/bin/time -f '%e %M %U %S' -o FILE`), which reports the peak resident set size (ru_maxrss of the
 * command, i.e. of its largest process); the wall time is taken here with a monotonic clock around the
 * spawn.
 */
import { execFile, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
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
const execFileAsync = promisify(execFile);
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

/** A verified pipeline's measurement, with the two digests OpenSSL computed. */
export interface VerifiedMeasurement extends Measurement {
  /** sha256 of the compressed blob, as `sha256:<hex>`. */
  blobDigest: string;
  /** sha256 of the decompressed stream (the layer tar), as `sha256:<hex>`. */
  tarDigest: string;
}

/**
 * The verified floor of one layer, C tools only, six processes without a shell:
 *
 *     tee FIFO1 < BLOB | DECOMPRESS | tee FIFO2 | tar -x …     with     openssl dgst -sha256 FIFO1,  openssl dgst -sha256 FIFO2
 *
 * (as `tee >(openssl dgst -sha256)` in bash; the FIFOs are made with mkfifo beforehand, not timed).
 * The blob is read once (by the first tee, from the file); its bytes go to the decompressor and to
 * OpenSSL, the decompressed bytes to tar and to a second OpenSSL. Every process runs under GNU time; the
 * CPU time is their sum, the RSS the largest. `decompressor` reads stdin (e.g. `['gzip', '-dc']`).
 */
export async function measureVerifiedPipeline(
  blobPath: string,
  decompressor: string[],
  tarArgs: string[],
  options: { timeoutMs?: number } = {},
): Promise<VerifiedMeasurement> {
  const timed = async (argv: string[]) => ({ argv, file: await timeFile() });
  scratch ??= await mkdtemp(join(process.env['TMPDIR'] ?? '/tmp', 'ducc-bench-time-'));
  const fifos = { blob: join(scratch, `fifo-${counter++}`), tar: join(scratch, `fifo-${counter++}`) };
  await execFileAsync('mkfifo', [fifos.blob, fifos.tar]);
  const specs = {
    tar: await timed(['tar', ...tarArgs]),
    tarDigest: await timed(['openssl', 'dgst', '-sha256', '-r', fifos.tar]),
    tarTee: await timed(['tee', fifos.tar]),
    decompress: await timed(decompressor),
    blobDigest: await timed(['openssl', 'dgst', '-sha256', '-r', fifos.blob]),
    blobTee: await timed(['tee', fifos.blob]),
  };
  const start = (spec: { argv: string[]; file: string }, stdio: StdioOptions) => spawn(TIME, ['-f', TIME_FORMAT, '-o', spec.file, ...spec.argv], { stdio });
  const blob = openSync(blobPath, 'r');
  const started = process.hrtime.bigint();
  // Downstream first, so that each process can be handed the write end of the next one's stdin.
  const tar = start(specs.tar, ['pipe', 'ignore', 'pipe']);
  const tarDigest = start(specs.tarDigest, ['ignore', 'pipe', 'pipe']);
  const tarTee = start(specs.tarTee, ['pipe', tar.stdin as Writable, 'pipe']);
  const decompress = start(specs.decompress, ['pipe', tarTee.stdin as Writable, 'pipe']);
  const blobDigest = start(specs.blobDigest, ['ignore', 'pipe', 'pipe']);
  const blobTee = start(specs.blobTee, [blob, decompress.stdin as Writable, 'pipe']);
  closeSync(blob);
  // Our copies of the pipes' write ends must go, or the readers never see end-of-file.
  for (const child of [tar, tarTee, decompress]) child.stdin!.destroy();
  const children = { tar, tarDigest, tarTee, decompress, blobDigest, blobTee };
  const outputs = Object.fromEntries(Object.entries(children).map(([name, child]) => [name, collect(child)])) as Record<keyof typeof children, () => string>;
  const timer = setTimeout(
    () => {
      for (const child of Object.values(children)) child.kill('SIGKILL');
    },
    options.timeoutMs ?? 60 * 60_000,
  );
  const codes = await Promise.all(Object.values(children).map(exitOf)).finally(() => clearTimeout(timer));
  const seconds = secondsSince(started);
  await rm(fifos.blob, { force: true });
  await rm(fifos.tar, { force: true });
  for (const [index, name] of (Object.keys(children) as (keyof typeof children)[]).entries()) {
    if (codes[index] !== 0) throw new Error(`${specs[name].argv.join(' ')} exited with ${codes[index]}: ${tail(outputs[name]())}`);
  }
  const stats = await Promise.all(Object.values(specs).map((spec) => readTimeFile(spec.file)));
  const digestOf = (text: string, what: string): string => {
    const hex = /^([0-9a-f]{64})\b/.exec(text.trim())?.[1];
    if (hex === undefined) throw new Error(`openssl dgst gave no sha256 for the ${what}: '${tail(text, 200)}'`);
    return `sha256:${hex}`;
  };
  return {
    seconds,
    maxRssKiB: Math.max(...stats.map((s) => s.maxRssKiB)),
    cpuSeconds: stats.reduce((sum, s) => sum + s.cpuSeconds, 0),
    blobDigest: digestOf(outputs.blobDigest(), 'blob'),
    tarDigest: digestOf(outputs.tarDigest(), 'tar'),
  };
}
