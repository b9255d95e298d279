/**
 * The external programs the benchmark needs, and the Debian packages that provide them. Missing ones are
 * installed with apt-get when running as root; otherwise the bench stops with the command to run.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { spawnAndWait, log } from './util.ts';

interface Requirement {
  /** Absolute path, or a name looked up on PATH. */
  command: string;
  debianPackage: string;
  why: string;
}

const BASE_REQUIREMENTS: Requirement[] = [
  { command: '/usr/bin/time', debianPackage: 'time', why: 'wall time and peak RSS of every measured command' },
  { command: '/usr/bin/docker-registry', debianPackage: 'docker-registry', why: 'the local registry the images are pulled from' },
  { command: 'skopeo', debianPackage: 'skopeo', why: 'pushing the images, and the skopeo+umoci comparison' },
  { command: 'umoci', debianPackage: 'umoci', why: 'the skopeo+umoci comparison' },
  { command: 'gzip', debianPackage: 'gzip', why: 'the gzip | tar floor' },
  { command: 'openssl', debianPackage: 'openssl', why: 'the sha256 digests of the verified floor' },
  { command: 'tee', debianPackage: 'coreutils', why: 'the verified floor' },
  { command: 'mkfifo', debianPackage: 'coreutils', why: 'the verified floor' },
  { command: 'zstd', debianPackage: 'zstd', why: 'the zstd | tar floor' },
  { command: 'tar', debianPackage: 'tar', why: 'building the Debian layers and the gzip | tar floor' },
  { command: 'git', debianPackage: 'git', why: 'the wish-list repository of the webhook measurement' },
  { command: 'sync', debianPackage: 'coreutils', why: 'flushing dirty pages between measurements' },
];

export const DEBOOTSTRAP: Requirement = {
  command: 'debootstrap',
  debianPackage: 'debootstrap',
  why: 'building the Debian root filesystem (once; cached in bench/.cache)',
};

function found(command: string): boolean {
  const candidates = command.includes('/')
    ? [command]
    : [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/sbin'].map((dir) => join(dir, command));
  return candidates.some((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Makes sure every required program is there: installs the missing Debian packages with apt-get when
 * running as root on a Debian-like system, and otherwise throws with the exact command to run.
 */
export async function ensureDependencies(options: { needDebootstrap: boolean }): Promise<void> {
  const requirements = [...BASE_REQUIREMENTS, ...(options.needDebootstrap ? [DEBOOTSTRAP] : [])];
  const missing = requirements.filter((r) => !found(r.command));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((r) => r.debianPackage))];
  const reasons = missing.map((r) => `  ${r.command} (Debian package ${r.debianPackage}): ${r.why}`).join('\n');
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    throw new Error(
      `the benchmark needs programs that are not installed:\n${reasons}\n` +
        `install them with:\n  sudo apt-get install -y ${packages.join(' ')}\n(or run the benchmark as root on Debian/Ubuntu, which installs them itself)`,
    );
  }
  log(`installing missing Debian packages: ${packages.join(' ')}\n${reasons}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    await spawnAndWait('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], { stdio: ['ignore', 'inherit', 'inherit'], env });
  } catch {
    // The package lists may be missing or stale on a fresh machine.
    await spawnAndWait('apt-get', ['update', '-q'], { stdio: ['ignore', 'inherit', 'inherit'], env });
    await spawnAndWait('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], { stdio: ['ignore', 'inherit', 'inherit'], env });
  }
  const still = requirements.filter((r) => !found(r.command));
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.map((r) => r.command).join(', ')}`);
}
