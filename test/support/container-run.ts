/**
 * Test support: runs an image's command the way a container engine would, on a machine without one (see
 * runContainer in test/integration/ops/dockerfile.test.ts). Started as root by `unshare --mount --net
 * --propagation private`, so nothing it mounts is seen outside and the network is its own (loopback
 * only, as a container's). The root filesystem is this machine's, under an overlay whose writes go to
 * memory (the image's layers: the base image's user and files, then the Dockerfile's RUN steps); the
 * command runs chrooted there as the image's USER, in its WORKDIR, with its ENV only.
 *
 *   node container-run.ts SPEC.json   → prints a ContainerRunResult as JSON on stdout
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface ContainerRunSpec {
  /** An empty scratch directory for the overlay. */
  scratch: string;
  /** Lines appended to files of the image (the base image's /etc/passwd entries...). */
  append: { path: string; content: string }[];
  /** Host files or directories bind-mounted into the image (COPY of the build context, mounted config). */
  binds: { source: string; target: string; readOnly?: boolean }[];
  /** Shell commands of the Dockerfile's RUN steps, run as root in the image. */
  run: string[];
  /** USER as uid:gid. */
  user: string;
  workdir: string;
  env: Record<string, string>;
  /** ENTRYPOINT + CMD. */
  command: string[];
  /** The HEALTHCHECK CMD, run once the command logged `ready`. */
  healthcheck: string[];
  /** A text the command writes on stderr once it is up. */
  ready: string;
  /** Paths in the image to report on afterwards. */
  stat: string[];
}

export interface ContainerRunResult {
  ready: boolean;
  healthcheck: number | null;
  /** Exit code of the command after SIGTERM. */
  exit: number | null;
  stderr: string;
  /** path → owner uid, or null when missing. */
  stats: Record<string, { uid: number; isFile: boolean; isDirectory: boolean } | null>;
}

function must(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr || result.error?.message}`);
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ContainerRunSpec;
  const rw = join(spec.scratch, 'rw');
  const root = join(spec.scratch, 'root');
  mkdirSync(rw, { recursive: true });
  mkdirSync(root, { recursive: true });
  must('ip', ['link', 'set', 'lo', 'up']);
  must('mount', ['-t', 'tmpfs', 'image-layers', rw]);
  mkdirSync(join(rw, 'upper'));
  mkdirSync(join(rw, 'work'));
  must('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=/,upperdir=${rw}/upper,workdir=${rw}/work`, root]);
  must('mount', ['-t', 'proc', 'proc', join(root, 'proc')]);
  must('mount', ['--rbind', '/dev', join(root, 'dev')]);
  must('mount', ['-t', 'tmpfs', 'tmp', join(root, 'tmp')]);
  for (const { path, content } of spec.append) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    appendFileSync(join(root, path), content);
  }
  for (const bind of spec.binds) {
    const target = join(root, bind.target);
    if (statSync(bind.source).isDirectory()) mkdirSync(target, { recursive: true });
    else {
      mkdirSync(dirname(target), { recursive: true });
      if (!existsSync(target)) writeFileSync(target, '');
    }
    must('mount', ['--bind', bind.source, target]);
    if (bind.readOnly) must('mount', ['-o', 'remount,bind,ro', target]);
  }
  // Name resolution inside: this machine's files, as the engine copies them in.
  for (const file of ['/etc/hosts', '/etc/resolv.conf']) if (existsSync(file)) copyFileSync(file, join(root, file));
  for (const step of spec.run) must('chroot', [root, '/bin/sh', '-c', step]);

  const inImage = (argv: string[]) => [
    '--userspec',
    spec.user,
    root,
    '/usr/bin/env',
    '-i',
    '-C',
    spec.workdir,
    ...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    ...argv,
  ];
  const child = spawn('chroot', inImage(spec.command), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 120_000;
  while (!gone && !stderr.includes(spec.ready) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  const ready = stderr.includes(spec.ready);
  const healthcheck = ready ? spawnSync('chroot', inImage(spec.healthcheck), { timeout: 30_000 }).status : null;
  child.kill('SIGTERM');
  const exit = await exited;
  const stats: ContainerRunResult['stats'] = {};
  for (const path of spec.stat) {
    try {
      const stat = statSync(join(root, path));
      stats[path] = { uid: stat.uid, isFile: stat.isFile(), isDirectory: stat.isDirectory() };
    } catch {
      stats[path] = null;
    }
  }
  const result: ContainerRunResult = { ready, healthcheck, exit, stderr, stats };
  process.stdout.write(JSON.stringify(result));
}

await main();
