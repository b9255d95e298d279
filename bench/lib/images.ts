/**
 * The benchmark images, built once and cached as OCI layouts in bench/.cache/images/:
 *
 * - debian-gzip: a Debian root filesystem made by `debootstrap --variant=minbase` from the mirror this
 *   machine's apt uses, split into 4 layers with deletions between them:
 *     1. the base system without docs, man pages, locales, downloaded .debs and apt lists;
 *     2. docs, man pages, locales, the .debs debootstrap left in /var/cache/apt/archives and apt lists
 *        (this machine's /var/lib/apt/lists, i.e. Debian's own package indices);
 *     3. `apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/man` as whiteouts, an opaque
 *        /usr/share/locale keeping only locale.alias, a changed /etc/bash.bashrc, and an application
 *        under /opt/app (2,000 source files, a 16 MiB library, a symlink and a hard link);
 *     4. a small configuration change (/etc/hostname, /etc/motd, an apt source, /etc/issue.net deleted).
 * - debian-zstd: the same four layer tars, compressed with zstd.
 * - small-files: one layer of 50,000 files of 1–4 KiB in 1,050 nested directories.
 * - bigfile: one layer holding a single 1 GiB file of mildly compressible data, generated streaming.
 *
 * `--quick` builds smaller variants of small-files (2,000 files) and bigfile (64 MiB).
 */
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import tarStream from 'tar-stream';
import { finishLayout, writeLayerBlob, type Compression, type ImageConfigSpec, type LayerInfo, type LayoutInfo } from './oci-layout.ts';
import { mildlyCompressible, prng, textFile } from './text.ts';
import { CACHE_DIR, log, run, spawnAndWait, tail } from './util.ts';

export type ImageKey = 'debian-gzip' | 'debian-zstd' | 'small-files' | 'bigfile';
export const IMAGE_KEYS: ImageKey[] = ['debian-gzip', 'debian-zstd', 'small-files', 'bigfile'];

export interface BenchImage {
  key: ImageKey;
  title: string;
  /** Repository and tag in the local registry. */
  repository: string;
  tag: string;
  layout: LayoutInfo;
  /** Tar entries over all layers, and uncompressed / compressed bytes. */
  entries: number;
  uncompressedBytes: number;
  compressedBytes: number;
}

/** Bump to rebuild every cached image after changing how they are made. */
const FORMAT_VERSION = 1;
const MTIME = new Date('2025-01-01T00:00:00Z');
const CONFIG: ImageConfigSpec = { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/bash'] };

interface CachedImage extends Omit<BenchImage, 'layout'> {
  layout: LayoutInfo;
  formatVersion: number;
}

async function cached(dir: string): Promise<CachedImage | undefined> {
  try {
    const info = JSON.parse(await readFile(join(dir, 'image.json'), 'utf8')) as CachedImage;
    if (info.formatVersion !== FORMAT_VERSION) return undefined;
    if (!info.layout.layers.every((l) => existsSync(l.blobPath))) return undefined;
    return info;
  } catch {
    return undefined;
  }
}

/** Builds (or takes from the cache) one image's OCI layout. */
async function cachedImage(
  name: string,
  describe: Omit<BenchImage, 'layout' | 'entries' | 'uncompressedBytes' | 'compressedBytes'>,
  build: (layoutDir: string) => Promise<{ layers: LayerInfo[]; entries: number }>,
): Promise<BenchImage> {
  const dir = join(CACHE_DIR, 'images', name);
  const hit = await cached(dir);
  if (hit) return hit;
  log(`building image ${name} (cached in ${dir} for later runs)`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const layoutDir = join(dir, 'oci');
  const started = Date.now();
  const { layers, entries } = await build(layoutDir);
  const layout = await finishLayout(layoutDir, describe.tag, layers, CONFIG);
  const image: CachedImage = {
    ...describe,
    layout,
    entries,
    uncompressedBytes: layers.reduce((sum, l) => sum + l.diffSize, 0),
    compressedBytes: layers.reduce((sum, l) => sum + l.size, 0),
    formatVersion: FORMAT_VERSION,
  };
  await writeFile(join(dir, 'image.json'), JSON.stringify(image, null, 2));
  log(`built ${name} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return image;
}

// -----------------------------------------------------------------------------------------------------
// tar-stream helpers
// -----------------------------------------------------------------------------------------------------

type Pack = tarStream.Pack;

/** A tar stream whose entries `produce` adds; errors of `produce` fail the stream. */
function tarOf(produce: (pack: Pack) => Promise<void>): Readable {
  const pack = tarStream.pack();
  produce(pack).then(
    () => pack.finalize(),
    (error: unknown) => pack.destroy(error as Error),
  );
  return Readable.from(pack as unknown as AsyncIterable<Buffer>);
}

function addDir(pack: Pack, name: string, meta: { mode?: number; uid?: number; gid?: number; mtime?: Date } = {}): Promise<void> {
  return new Promise((resolve, reject) =>
    pack.entry({ name: `${name}/`, type: 'directory', mode: meta.mode ?? 0o755, uid: meta.uid ?? 0, gid: meta.gid ?? 0, mtime: meta.mtime ?? MTIME }, (e) =>
      e ? reject(e) : resolve(),
    ),
  );
}

function addFile(pack: Pack, name: string, content: Buffer, mode = 0o644): Promise<void> {
  return new Promise((resolve, reject) =>
    pack.entry({ name, type: 'file', mode, uid: 0, gid: 0, mtime: MTIME, size: content.length }, content, (e) => (e ? reject(e) : resolve())),
  );
}

function addLink(pack: Pack, name: string, type: 'symlink' | 'link', linkname: string): Promise<void> {
  return new Promise((resolve, reject) => pack.entry({ name, type, linkname, mode: 0o777, uid: 0, gid: 0, mtime: MTIME }, (e) => (e ? reject(e) : resolve())));
}

/** A whiteout: an empty regular file named `.wh.<name>` (or `.wh..wh..opq` for an opaque directory). */
function addWhiteout(pack: Pack, dir: string, name: string): Promise<void> {
  return addFile(pack, `${dir}/.wh.${name}`, Buffer.alloc(0));
}

/** Streams `size` bytes of mildly compressible data as one file entry. */
async function addBigFile(pack: Pack, name: string, size: number): Promise<void> {
  let callback: (error?: Error | null) => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => (callback = (e) => (e ? reject(e) : resolve())));
  const sink = pack.entry({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: MTIME, size }, callback);
  const chunk = 1024 * 1024;
  for (let written = 0; written < size; written += chunk) {
    if (!sink.write(mildlyCompressible(Math.min(chunk, size - written)))) await once(sink as unknown as NodeJS.EventEmitter, 'drain');
  }
  sink.end(undefined); // streamx types want an argument; undefined writes nothing
  await done;
}

// -----------------------------------------------------------------------------------------------------
// small-files and bigfile
// -----------------------------------------------------------------------------------------------------

export function smallFilesShape(quick: boolean): { top: number; sub: number; files: number } {
  return quick ? { top: 10, sub: 4, files: 50 } : { top: 50, sub: 20, files: 50 };
}

async function smallFilesImage(quick: boolean): Promise<BenchImage> {
  const shape = smallFilesShape(quick);
  const count = shape.top * shape.sub * shape.files;
  return cachedImage(
    `small-files-${count}`,
    { key: 'small-files', title: `${count.toLocaleString('en')} files of 1–4 KiB, 1 layer`, repository: 'bench/small-files', tag: 'v1' },
    async (layoutDir) => {
      const random = prng(7);
      let entries = 0;
      const tar = tarOf(async (pack) => {
        await addDir(pack, 'srv');
        await addDir(pack, 'srv/data');
        entries += 2;
        for (let d = 0; d < shape.top; d++) {
          const top = `srv/data/d${String(d).padStart(2, '0')}`;
          await addDir(pack, top);
          entries++;
          for (let s = 0; s < shape.sub; s++) {
            const sub = `${top}/s${String(s).padStart(2, '0')}`;
            await addDir(pack, sub);
            entries++;
            for (let f = 0; f < shape.files; f++) {
              const name = `${sub}/f${String(f).padStart(3, '0')}.txt`;
              await addFile(pack, name, textFile(name, 1024 + Math.floor(random() * 3073), random));
              entries++;
            }
          }
        }
      });
      return { layers: [await writeLayerBlob(layoutDir, tar, 'gzip')], entries };
    },
  );
}

export function bigFileSize(quick: boolean): number {
  return (quick ? 64 : 1024) * 1024 * 1024;
}

async function bigFileImage(quick: boolean): Promise<BenchImage> {
  const size = bigFileSize(quick);
  const mib = size / 1024 / 1024;
  return cachedImage(
    `bigfile-${mib}MiB`,
    {
      key: 'bigfile',
      title: `one ${mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`} file (mildly compressible), 1 layer`,
      repository: 'bench/bigfile',
      tag: 'v1',
    },
    async (layoutDir) => {
      const tar = tarOf(async (pack) => {
        await addDir(pack, 'data');
        await addBigFile(pack, 'data/blob.bin', size);
      });
      return { layers: [await writeLayerBlob(layoutDir, tar, 'gzip')], entries: 2 };
    },
  );
}

// -----------------------------------------------------------------------------------------------------
// Debian
// -----------------------------------------------------------------------------------------------------

export interface DebianSource {
  mirror: string;
  suite: string;
}

/**
 * The Debian mirror and release this machine's apt uses (deb822 `.sources` or one-line `.list` files),
 * overridable with BENCH_DEBIAN_MIRROR / BENCH_DEBIAN_SUITE; deb.debian.org and the machine's codename
 * otherwise.
 */
export async function debianSource(): Promise<DebianSource> {
  const candidates: DebianSource[] = [];
  const files = ['/etc/apt/sources.list'];
  try {
    for (const name of (await readdir('/etc/apt/sources.list.d')).sort()) {
      if (name.endsWith('.list') || name.endsWith('.sources')) files.push(join('/etc/apt/sources.list.d', name));
    }
  } catch {
    // no sources.list.d
  }
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (key: string) => new RegExp(`^${key}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
        if (!field('Types').includes('deb') || /^Enabled:\s*no/im.test(stanza)) continue;
        for (const uri of field('URIs')) for (const suite of field('Suites')) candidates.push({ mirror: uri, suite });
      }
    } else {
      for (const line of text.split('\n')) {
        const match = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (match) candidates.push({ mirror: match[1]!, suite: match[2]! });
      }
    }
  }
  const main = candidates.find((c) => /\/debian\/?$/.test(c.mirror) && !c.suite.includes('-') && !c.suite.includes('/'));
  let codename = 'bookworm';
  try {
    codename = /^VERSION_CODENAME=(\S+)$/m.exec(await readFile('/etc/os-release', 'utf8'))?.[1] ?? codename;
  } catch {
    // keep the default
  }
  return {
    mirror: process.env['BENCH_DEBIAN_MIRROR'] ?? main?.mirror ?? 'http://deb.debian.org/debian',
    suite: process.env['BENCH_DEBIAN_SUITE'] ?? main?.suite ?? codename,
  };
}

/** `debootstrap --variant=minbase` into bench/.cache (once), plus this machine's apt lists as /var/lib/apt/lists. */
export async function debianRootfs(source: DebianSource): Promise<string> {
  const dir = join(CACHE_DIR, `debian-${source.suite}-minbase`);
  const rootfs = join(dir, 'rootfs');
  if (existsSync(join(dir, '.complete'))) return rootfs;
  if (process.getuid?.() !== 0) throw new Error(`debootstrap needs root: run the benchmark once as root to create ${rootfs}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const logFile = join(dir, 'debootstrap.log');
  log(`debootstrap --variant=minbase ${source.suite} from ${source.mirror} (a few minutes, once; log in ${logFile})`);
  const out = createWriteStream(logFile);
  await once(out, 'open');
  try {
    await spawnAndWait('debootstrap', ['--variant=minbase', source.suite, rootfs, source.mirror], { stdio: ['ignore', out, out] });
  } catch (error) {
    out.end();
    throw new Error(`${(error as Error).message}\n${tail(await readFile(logFile, 'utf8').catch(() => ''), 2000)}`, { cause: error });
  }
  out.end();
  // "apt-get update" without running apt in a chroot: Debian's package indices as this machine has them.
  const lists = join(rootfs, 'var/lib/apt/lists');
  await mkdir(lists, { recursive: true });
  for (const name of await readdir('/var/lib/apt/lists').catch(() => [] as string[])) {
    const stat = await lstat(join('/var/lib/apt/lists', name));
    if (stat.isFile() && name !== 'lock') await copyFile(join('/var/lib/apt/lists', name), join(lists, name));
  }
  await writeFile(join(dir, 'source.json'), JSON.stringify(source));
  await writeFile(join(dir, '.complete'), '');
  return rootfs;
}

const SPLIT_OUT = ['usr/share/doc', 'usr/share/man', 'usr/share/locale'];

/** The four uncompressed layer tars of the Debian image, cached next to the root filesystem. */
async function debianLayerTars(source: DebianSource): Promise<{ tars: string[]; entries: number }> {
  const rootfs = await debianRootfs(source);
  const dir = join(CACHE_DIR, `debian-${source.suite}-layers-v${FORMAT_VERSION}`);
  const tars = [1, 2, 3, 4].map((n) => join(dir, `layer-${n}.tar`));
  const countFile = join(dir, 'entries.json');
  if (existsSync(countFile)) return { tars, entries: (JSON.parse(await readFile(countFile, 'utf8')) as { entries: number }).entries };
  log('building the four Debian layer tars');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });

  const debs = (await readdir(join(rootfs, 'var/cache/apt/archives'))).filter((n) => n.endsWith('.deb')).sort();
  const lists: string[] = [];
  for (const name of (await readdir(join(rootfs, 'var/lib/apt/lists'))).sort()) {
    if ((await lstat(join(rootfs, 'var/lib/apt/lists', name))).isFile() && name !== 'lock') lists.push(name);
  }
  const common = ['--create', '--directory', rootfs, '--numeric-owner', '--sort=name', '--format=gnu'];

  // 1. base: everything but docs, man pages, locales, .debs, apt lists, and device nodes (an image has an empty /dev)
  const top = (await readdir(rootfs)).sort();
  await run('tar', [
    ...common,
    '--file',
    tars[0]!,
    '--exclude=dev/*',
    '--exclude=proc/*',
    '--exclude=sys/*',
    ...SPLIT_OUT.map((p) => `--exclude=${p}`),
    '--exclude=var/cache/apt/archives/*.deb',
    '--exclude=var/lib/apt/lists/*',
    ...top,
  ]);
  // 2. docs, man pages, locales, apt caches (their parent directories are not in the tar, as often happens)
  await run('tar', [
    ...common,
    '--file',
    tars[1]!,
    ...SPLIT_OUT,
    ...debs.map((d) => `var/cache/apt/archives/${d}`),
    ...lists.map((l) => `var/lib/apt/lists/${l}`),
  ]);

  // 3. clean-up as whiteouts, and an application
  const metaOf = async (path: string) => {
    const stat = await lstat(join(rootfs, path));
    return { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtime: stat.mtime };
  };
  const random = prng(11);
  await pipeline(
    tarOf(async (pack) => {
      for (const d of [
        'etc',
        'usr',
        'usr/share',
        'usr/share/locale',
        'var',
        'var/cache',
        'var/cache/apt',
        'var/cache/apt/archives',
        'var/lib',
        'var/lib/apt',
        'var/lib/apt/lists',
      ]) {
        await addDir(pack, d, await metaOf(d));
      }
      const bashrc = await readFile(join(rootfs, 'etc/bash.bashrc')).catch(() => Buffer.alloc(0));
      await addFile(pack, 'etc/bash.bashrc', Buffer.concat([bashrc, Buffer.from('\n# added by the application layer\nexport APP_HOME=/opt/app\n')]));
      await addWhiteout(pack, 'usr/share', 'man');
      await addWhiteout(pack, 'usr/share/locale', '.wh..opq');
      const alias = await readFile(join(rootfs, 'usr/share/locale/locale.alias')).catch(() => undefined);
      if (alias) await addFile(pack, 'usr/share/locale/locale.alias', alias);
      for (const deb of debs) await addWhiteout(pack, 'var/cache/apt/archives', deb);
      for (const list of lists) await addWhiteout(pack, 'var/lib/apt/lists', list);
      await addDir(pack, 'opt');
      await addDir(pack, 'opt/app');
      for (let d = 0; d < 20; d++) {
        const pkg = `opt/app/pkg${String(d).padStart(2, '0')}`;
        await addDir(pack, pkg);
        for (let f = 0; f < 100; f++) {
          const name = `${pkg}/module_${String(f).padStart(3, '0')}.py`;
          await addFile(pack, name, textFile(name, 1024 + Math.floor(random() * 7169), random));
        }
      }
      await addDir(pack, 'opt/app/lib');
      await addFile(pack, 'opt/app/lib/libbench.so', mildlyCompressible(16 * 1024 * 1024), 0o755);
      await addDir(pack, 'opt/app/bin');
      await addFile(pack, 'opt/app/bin/app', Buffer.from('#!/bin/sh\nexec python3 -m app "$@"\n'), 0o755);
      await addLink(pack, 'opt/app/bin/app-compat', 'link', 'opt/app/bin/app');
      await addDir(pack, 'usr/local', await metaOf('usr/local'));
      await addDir(pack, 'usr/local/bin', await metaOf('usr/local/bin'));
      await addLink(pack, 'usr/local/bin/app', 'symlink', '/opt/app/bin/app');
    }),
    createWriteStream(tars[2]!),
  );

  // 4. a small configuration change
  await pipeline(
    tarOf(async (pack) => {
      for (const d of ['etc', 'etc/apt', 'etc/apt/sources.list.d']) await addDir(pack, d, await metaOf(d));
      await addFile(pack, 'etc/hostname', Buffer.from('bench\n'));
      await addFile(pack, 'etc/motd', Buffer.from('Benchmark image for ducc-gitops.\n'));
      await addFile(pack, 'etc/apt/sources.list.d/app.list', Buffer.from(`deb ${source.mirror} ${source.suite} contrib\n`));
      await addWhiteout(pack, 'etc', 'issue.net');
    }),
    createWriteStream(tars[3]!),
  );

  let entries = 0;
  for (const tar of tars) entries += await countTarEntries(tar);
  await writeFile(countFile, JSON.stringify({ entries }));
  return { tars, entries };
}

async function countTarEntries(path: string): Promise<number> {
  const extract = tarStream.extract();
  let count = 0;
  const counting = (async () => {
    for await (const entry of extract) {
      count++;
      entry.resume();
    }
  })();
  await pipeline(createReadStream(path), extract as unknown as NodeJS.WritableStream);
  await counting;
  return count;
}

async function debianImage(source: DebianSource, compression: Compression): Promise<BenchImage> {
  return cachedImage(
    `debian-${source.suite}-${compression}`,
    {
      key: compression === 'gzip' ? 'debian-gzip' : 'debian-zstd',
      title: `Debian ${source.suite} minbase, 4 layers, ${compression}`,
      repository: compression === 'gzip' ? 'bench/debian' : 'bench/debian-zstd',
      tag: source.suite,
    },
    async (layoutDir) => {
      const { tars, entries } = await debianLayerTars(source);
      const layers: LayerInfo[] = [];
      for (const tar of tars) layers.push(await writeLayerBlob(layoutDir, createReadStream(tar, { highWaterMark: 1024 * 1024 }), compression));
      return { layers, entries };
    },
  );
}

/** Builds or loads the selected images. */
export async function prepareImages(keys: ImageKey[], quick: boolean): Promise<BenchImage[]> {
  const images: BenchImage[] = [];
  const source = keys.some((k) => k.startsWith('debian')) ? await debianSource() : undefined;
  for (const key of keys) {
    switch (key) {
      case 'debian-gzip':
        images.push(await debianImage(source!, 'gzip'));
        break;
      case 'debian-zstd':
        images.push(await debianImage(source!, 'zstd'));
        break;
      case 'small-files':
        images.push(await smallFilesImage(quick));
        break;
      case 'bigfile':
        images.push(await bigFileImage(quick));
        break;
    }
  }
  return images;
}

/** Whether preparing these images may need debootstrap (no cached root filesystem yet). */
export async function needsDebootstrap(keys: ImageKey[]): Promise<boolean> {
  if (!keys.some((k) => k.startsWith('debian'))) return false;
  const source = await debianSource();
  return !existsSync(join(CACHE_DIR, `debian-${source.suite}-minbase`, '.complete'));
}
