import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import type { Publisher } from '../publish/publisher.ts';

/** Metadata files read at once while sizing layers. */
const CONCURRENCY = 16;

/**
 * The bytes of each layer directory: the `diff-size` its `.metadata/layers.json` records (the size of the
 * unpacked layer's tar: its files plus a little tar framing), without reading the layer itself. A layer
 * without a readable layers.json (left incomplete by a crash) is measured file by file.
 */
export async function layerBytes(publisher: Publisher, layerDirs: readonly string[]): Promise<Map<string, number>> {
  const limit = pLimit(CONCURRENCY);
  const sizes = new Map<string, number>();
  await Promise.all(
    layerDirs.map((dir) =>
      limit(async () => {
        const recorded = diffSize(await publisher.readFile(`${dir}/.metadata/layers.json`).catch(() => undefined));
        sizes.set(dir, recorded ?? (await treeBytes(publisher, dir)));
      }),
    ),
  );
  return sizes;
}

/** `diff-size` of the first entry of a layers.json (DUCC writes one entry per layer), or undefined. */
export function diffSize(bytes: Buffer | undefined): number | undefined {
  if (bytes === undefined) return undefined;
  try {
    const value = JSON.parse(bytes.toString('utf8')) as unknown;
    const first = Array.isArray(value) ? (value[0] as Record<string, unknown> | undefined) : undefined;
    const size = first?.['diff-size'];
    if (typeof size === 'number' && Number.isSafeInteger(size) && size >= 0) return size;
    // Go omits a zero diff-size.
    if (first !== undefined && typeof first === 'object' && size === undefined) return 0;
  } catch {
    // not JSON: measured instead
  }
  return undefined;
}

/** Sum of the sizes of the regular files below a published directory (listings and lstat only). */
export async function treeBytes(publisher: Publisher, dir: string): Promise<number> {
  let total = 0;
  for (const entry of (await publisher.readdir(dir)) ?? []) {
    const path = `${dir}/${entry.name}`;
    if (entry.type === 'directory') total += await treeBytes(publisher, path);
    else if (entry.type === 'file') total += (await publisher.lstat(path))?.size ?? 0;
  }
  return total;
}

/** The same for a local directory (staging). */
export async function localTreeBytes(path: string): Promise<number> {
  let total = 0;
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) total += await localTreeBytes(child);
    else if (entry.isFile()) total += (await lstat(child).catch(() => undefined))?.size ?? 0;
  }
  return total;
}
