/** A description of the machine and tools the numbers were taken on. */
import { lstatSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { run } from './util.ts';

export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  memory: string;
  /** Filesystem of the measured outputs, and of bench/.cache (images, registry storage is in the system temp dir). */
  workDisk: string;
  cacheDisk: string;
  tmpDisk: string;
  os: string;
  kernel: string;
  node: string;
  tools: Record<string, string>;
  /** Mean latency of one `await fs.promises.lstat()` (a libuv thread-pool round trip) and of one lstatSync, in µs. */
  fsRoundTrip: { asyncUs: number; syncUs: number; dir: string };
}

/**
 * What one asynchronous fs call costs here beyond the system call itself: the hand-off to libuv's thread
 * pool and back. On virtual machines thread wake-ups are expensive, and code doing several awaited fs calls
 * per file pays this for each.
 */
async function fsRoundTrip(dir: string): Promise<MachineInfo['fsRoundTrip']> {
  const n = 5000;
  for (let i = 0; i < 200; i++) await lstat(dir);
  let started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await lstat(dir);
  const asyncUs = Number(process.hrtime.bigint() - started) / n / 1000;
  started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) lstatSync(dir);
  const syncUs = Number(process.hrtime.bigint() - started) / n / 1000;
  return { asyncUs, syncUs, dir };
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  try {
    return (await run(cmd, args, { timeoutMs: 10_000 })).trim().split('\n')[0] ?? '?';
  } catch {
    return 'not available';
  }
}

async function describeDisk(dir: string): Promise<string> {
  try {
    const out = (await run('df', ['--output=source,fstype,size', dir])).trim().split('\n').at(-1)!.trim().split(/\s+/);
    const [source, fstype, size] = out;
    const gib = `${(Number(size) / 1024 / 1024).toFixed(0)} GiB`;
    if (fstype === 'tmpfs') return `tmpfs (in RAM), ${gib}`;
    const device = source?.replace(/^\/dev\//, '').replace(/p?\d+$/, '') ?? '';
    let kind = '';
    try {
      const rotational = (await readFile(`/sys/block/${device}/queue/rotational`, 'utf8')).trim();
      const model = (await readFile(`/sys/block/${device}/device/model`, 'utf8').catch(() => '')).trim();
      const virtio = device.startsWith('vd') ? 'virtio block device (the medium behind it is not visible from the guest); ' : '';
      kind = `${virtio}${model ? `model ${model}, ` : ''}rotational flag ${rotational}`;
    } catch {
      kind = 'device type unknown';
    }
    return `${source}, ${fstype}, ${gib}: ${kind}`;
  } catch {
    return 'unknown';
  }
}

export async function describeMachine(workDir: string, cacheDir: string, tmpDir: string): Promise<MachineInfo> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? '?';
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return {
    date: new Date().toISOString(),
    cpu: cpuModel.trim(),
    cores: cpus().length,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    workDisk: await describeDisk(workDir),
    cacheDisk: await describeDisk(cacheDir),
    tmpDisk: await describeDisk(tmpDir),
    os: /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1] ?? 'unknown',
    kernel: release(),
    node: process.version,
    tools: {
      skopeo: await firstLine('skopeo', ['--version']),
      umoci: await firstLine('umoci', ['--version']),
      tar: await firstLine('tar', ['--version']),
      gzip: await firstLine('gzip', ['--version']),
      zstd: await firstLine('zstd', ['--version']),
      'docker-registry': await firstLine('/usr/bin/docker-registry', ['--version']),
    },
    fsRoundTrip: await fsRoundTrip(workDir),
  };
}
