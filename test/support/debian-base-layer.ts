import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import type { TarEntrySpec } from './build-tar.ts';

/**
 * Tar entries for a minimal but real root filesystem taken from this Debian machine: the shell
 * (`/bin/sh`, dash) and the shared libraries `ldd` says it needs, laid out with Debian's merged-/usr
 * symlinks. `chroot <flat> /bin/sh -c true` works on a tree built from it.
 */
export function debianShellEntries(): TarEntrySpec[] {
  const entries: TarEntrySpec[] = [];
  const seen = new Set<string>();
  const addDir = (path: string) => {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (seen.has(dir)) continue;
      seen.add(dir);
      entries.push({ name: `${dir}/`, type: 'directory', mode: 0o755 });
    }
  };
  const addFile = (real: string) => {
    const name = real.slice(1);
    if (seen.has(name)) return;
    addDir(name.split('/').slice(0, -1).join('/'));
    seen.add(name);
    entries.push({ name, content: readFileSync(real), mode: lstatSync(real).mode & 0o7777 });
  };
  const addSymlink = (path: string, target: string) => {
    const name = path.replace(/^\//, '');
    if (seen.has(name)) return;
    addDir(name.split('/').slice(0, -1).join('/'));
    seen.add(name);
    entries.push({ name, type: 'symlink', linkname: target });
  };

  // Merged /usr: /bin, /lib, /lib64 are symlinks into /usr on current Debian.
  addDir('usr/bin');
  for (const top of ['/bin', '/lib', '/lib64', '/sbin']) {
    if (existsSync(top) && lstatSync(top).isSymbolicLink()) {
      addDir(`usr/${top.slice(1)}`);
      addSymlink(top, readlinkSync(top));
    }
  }
  const shell = realpathSync('/bin/sh');
  addFile(shell);
  addSymlink('/usr/bin/sh', shell.split('/').at(-1)!);
  const ldd = execFileSync('ldd', [shell], { encoding: 'utf8' });
  for (const match of ldd.matchAll(/(\/[^\s]+) \(0x/g)) {
    const listed = match[1]!;
    addFile(realpathSync(listed));
    // e.g. /lib64/ld-linux-x86-64.so.2 → /usr/lib64/ld-linux-x86-64.so.2, itself a symlink on Debian
    const viaUsr = listed.replace(/^\/(lib64|lib|bin|sbin)\//, '/usr/$1/');
    if (existsSync(viaUsr) && lstatSync(viaUsr).isSymbolicLink()) addSymlink(viaUsr, readlinkSync(viaUsr));
  }
  return entries;
}
