/**
 * A sandbox for hostile-archive tests: `<base>/layerfs` is the extraction target (more targets may be
 * made as `<base>/layerfs<N>`, scratch space as `<base>/work`) and `<base>/outside` holds sentinels (a file, a directory, known modes and mtimes) that no archive may touch. Relative
 * escapes from the target (`../outside`) and absolute ones (`<base>/outside`) both point at it.
 */
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, readlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { TestContext } from 'node:test';
import { extractLayer } from '../../../src/unpack/extract-layer.ts';
import type { ExtractLimits } from '../../../src/unpack/settings.ts';
import { tempDir } from '../../support/tmp-dir.ts';

export const OUTSIDE_TIME = new Date('2001-02-03T04:05:06Z');

export interface Arena {
  base: string;
  target: string;
  outside: string;
  /** Everything observable about `<base>` outside the target: names, types, modes, owners, times, link counts, content. */
  outsideState(): Promise<string>;
}

export async function arena(t: TestContext): Promise<Arena> {
  const base = await tempDir(t, 'ducc-hardening-');
  const target = join(base, 'layerfs');
  const outside = join(base, 'outside');
  await mkdir(target);
  await mkdir(join(outside, 'sub'), { recursive: true });
  await writeFile(join(outside, 'secret'), 'secret');
  await writeFile(join(outside, 'sub', 'file'), 'file');
  await chmod(join(outside, 'secret'), 0o640);
  await chmod(join(outside, 'sub', 'file'), 0o644);
  await chmod(join(outside, 'sub'), 0o755);
  await chmod(outside, 0o755);
  for (const path of [join(outside, 'secret'), join(outside, 'sub', 'file'), join(outside, 'sub'), outside]) await utimes(path, OUTSIDE_TIME, OUTSIDE_TIME);
  return { base, target, outside, outsideState: () => describeOutside(base) };
}

async function describeOutside(base: string): Promise<string> {
  // `<base>` itself: only which names it holds (its mtime changes when tests add targets).
  const own = (await readdir(base)).filter((name) => !(name.startsWith('layerfs') || name === 'work')).sort();
  const lines: string[] = [`. holds ${own.join(' ')}`];
  const visit = async (path: string, rel: string): Promise<void> => {
    const stat = await lstat(path);
    let extra = '';
    if (stat.isFile())
      extra = createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
    else if (stat.isSymbolicLink()) extra = await readlink(path);
    lines.push(`${rel} ${stat.mode.toString(8)} ${stat.uid}:${stat.gid} ${stat.mtime.toISOString()} nlink=${stat.nlink} ${extra}`);
    if (stat.isDirectory()) for (const name of (await readdir(path)).sort()) await visit(join(path, name), `${rel}/${name}`);
  };
  for (const name of own) await visit(join(base, name), `./${name}`);
  return lines.join('\n');
}

/** Extracts `tar` into the arena's target (or another directory of the arena). */
export function extractInto(a: Arena, tar: Buffer | Readable, limits?: Partial<ExtractLimits>, target: string = a.target) {
  const stream = Buffer.isBuffer(tar) ? Readable.from([tar]) : tar;
  return extractLayer(stream, target, { label: 'layer sha256:feed', ...(limits === undefined ? {} : { limits }) });
}

/** A fresh, empty extraction target `<base>/layerfs<n>`. */
export async function extraTarget(a: Arena, n: number): Promise<string> {
  const dir = join(a.base, `layerfs${n}`);
  await mkdir(dir);
  return dir;
}
