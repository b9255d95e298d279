import { accessSync, chmodSync, constants, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DuccError } from '../util/errors.ts';
import type { PublisherConfig } from './publisher-config.ts';

/** Words for the errors a directory check meets most (the code stays in the message too). */
const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'a file of that name is in the way',
  ENOSPC: 'no space left on the device',
  ENOENT: 'a part of the path does not exist',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'the address is not one of this machine',
  ENOTFOUND: 'no such host',
};

/** `statePath './var/x.db' (/app/var/x.db)`: the setting, as written, and where that is from here. */
export function describeSetting(setting: string, path: string): string {
  const absolute = resolve(path);
  return absolute === path ? `${setting} ${JSON.stringify(path)}` : `${setting} ${JSON.stringify(path)} (${absolute})`;
}

/** One line for a failed file-system call: `EACCES (permission denied)`. */
export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && REASONS[code] !== undefined) return `${code} (${REASONS[code]})`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Makes sure `path` is a directory this process can write, creating it (and its parents) if needed;
 * `value` is what the setting holds when that is not the directory itself (statePath names a file). A
 * failure is a BOT_ERR_CONFIG that names the setting the path came from, e.g. `cacheDir "./var/cache"
 * (/app/var/cache): cannot create the directory: EACCES (permission denied)`, at start rather than at
 * the first job that needs it.
 */
export function ensureWritableDir(setting: string, path: string, value: string = path, options: { readableByAll?: boolean } = {}): void {
  const which = path === value ? 'the directory' : `the directory ${resolve(path)}`;
  try {
    const first = mkdirSync(path, { recursive: true });
    // The directory publisher's root is where clients read the repository: what is made of it is 0755
    // whatever the umask (a umask of 077 would otherwise hide everything below from other users).
    if (options.readableByAll === true && first !== undefined) {
      for (let dir = resolve(path); ; dir = dirname(dir)) {
        chmodSync(dir, 0o755);
        if (dir === resolve(first) || dir === dirname(dir)) break;
      }
    }
  } catch (error) {
    throw new DuccError('BOT_ERR_CONFIG', `${describeSetting(setting, value)}: cannot create ${which}: ${describeFsError(error)}`, { cause: error });
  }
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new DuccError('BOT_ERR_CONFIG', `${describeSetting(setting, value)}: ${which} is not writable: ${describeFsError(error)}`, { cause: error });
  }
}

/**
 * The directories of the `publisher:` section that are set, made and checked at start: the directory
 * publisher's root (`rootSetting` names where it came from, e.g. `--repo-root`), the cvmfs publisher's
 * stagingDir and lockDir. The cvmfs publisher's defaults are its own business (it falls back where it can).
 */
export function checkPublisherPaths(publisher: PublisherConfig, rootSetting = 'publisher.root'): void {
  if (publisher.kind === 'directory') {
    ensureWritableDir(rootSetting, publisher.root, publisher.root, { readableByAll: true });
    return;
  }
  if (publisher.stagingDir !== undefined) ensureWritableDir('publisher.stagingDir', publisher.stagingDir);
  if (publisher.lockDir !== undefined) ensureWritableDir('publisher.lockDir', publisher.lockDir);
}
