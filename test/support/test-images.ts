/**
 * Images shared by the tests that convert whole images (integration tests): each is built here in code,
 * as the tests push it, and covers what real images hold.
 */
import { buildTar } from './build-tar.ts';
import { debianShellEntries } from './debian-base-layer.ts';
import type { TestImageSpec } from './oci-image.ts';

/** A multi-layer image on a real Debian shell: whiteouts, an opaque dir, hard links (also into a lower layer), setuid, symlinks. */
export async function debianLikeImage(): Promise<TestImageSpec> {
  const base = await buildTar([
    ...debianShellEntries(),
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' },
    { name: 'etc/removed-later', content: 'bye' },
    { name: 'opt/', type: 'directory' },
    { name: 'opt/app/', type: 'directory' },
    { name: 'opt/app/old-config', content: 'old' },
    { name: 'usr/bin/perl', content: 'not really perl', mode: 0o755 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'home/', type: 'directory' },
    { name: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
    { name: 'home/user/notes', content: 'mine', uid: 1000, gid: 1000, mode: 0o600 },
  ]);
  const changes = await buildTar([
    { name: 'etc/.wh.removed-later', content: '' },
    { name: 'opt/app/.wh..wh..opq', content: '' },
    { name: 'opt/app/new-config', content: 'new' },
    { name: 'usr/bin/su', content: 'setuid tool', mode: 0o4755 },
    { name: 'usr/bin/sg', content: 'setgid tool', mode: 0o2755 },
    { name: 'usr/bin/su-alias', type: 'link', linkname: 'usr/bin/su' },
    { name: 'usr/bin/perl5.36', type: 'link', linkname: 'usr/bin/perl' },
    { name: 'usr/local/', type: 'directory' },
    { name: 'usr/local/bin/', type: 'directory' },
    { name: 'usr/local/bin/shell', type: 'symlink', linkname: '/usr/bin/dash' },
    { name: 'usr/local/bin/relative', type: 'symlink', linkname: '../../bin/su' },
  ]);
  const top = await buildTar([
    { name: 'usr/bin/.wh.sg', content: '' },
    { name: 'home/user/notes', content: 'rewritten', uid: 1000, gid: 1000, mode: 0o640 },
  ]);
  return {
    layers: [base, changes, top],
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8'],
      Cmd: ['/bin/sh'],
      Entrypoint: [],
      WorkingDir: '/home/user',
      User: '1000',
    },
    platform: { os: 'linux', architecture: 'amd64' },
  };
}
