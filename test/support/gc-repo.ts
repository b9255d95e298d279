/**
 * Test support for garbage collection: a repository's invariants, checked through the filesystem
 * itself (the kernel resolves the symlinks), independently of the production scanner.
 */
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Publisher } from '../../src/publish/publisher.ts';
import { scanRepository } from '../../src/gc/scan.ts';

/** Every symlink of the public tree: outside the top-level dot-directories, and under `.multiarch/<platform>/`. */
async function publicLinks(root: string): Promise<string[]> {
  const links: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(join(root, rel), { withFileTypes: true }).catch(() => [])) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (rel === '' && entry.name.startsWith('.')) continue;
      if (entry.isSymbolicLink()) links.push(path);
      else if (entry.isDirectory()) await walk(path);
    }
  };
  await walk('');
  for (const entry of await readdir(join(root, '.multiarch'), { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) await walk(`.multiarch/${entry.name}`);
  }
  return links;
}

/**
 * What must hold at every moment: every public name resolves to a directory (a CVMFS variant symlink for
 * every platform directory under `.multiarch/`), and every layer a published manifest.json lists is
 * there with its layerfs. Returns the violations.
 */
export async function repositoryProblems(publisher: Publisher): Promise<string[]> {
  const root = publisher.readRoot;
  const problems: string[] = [];
  const platforms = (await readdir(join(root, '.multiarch'), { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => e.name);
  for (const link of await publicLinks(root)) {
    const target = await readlink(join(root, link));
    const variants = target.includes('$(') ? platforms.map((platform) => target.replace(/\$\([^)]*\)/, platform)) : [target];
    if (variants.length === 0) problems.push(`public name ${link} is a variant symlink without any platform directory`);
    for (const variant of variants) {
      const resolved = variant.startsWith('/') ? variant : join(root, dirname(link), variant);
      const stats = await stat(resolved).catch(() => undefined);
      if (!stats?.isDirectory()) problems.push(`public name ${link} -> ${variant} does not resolve to a directory`);
    }
  }
  const manifests: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(join(root, dir), { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await walk(`${dir}/${entry.name}`);
      else if (entry.name === 'manifest.json') manifests.push(`${dir}/manifest.json`);
    }
  };
  await walk('.metadata');
  for (const manifest of manifests) {
    const parsed = JSON.parse(await readFile(join(root, manifest), 'utf8')) as { Layers: { Digest: string }[] | null };
    for (const layer of parsed.Layers ?? []) {
      const hex = layer.Digest.slice('sha256:'.length);
      const layerfs = join(root, '.layers', hex.slice(0, 2), hex, 'layerfs');
      if (!(await lstat(layerfs).catch(() => undefined))?.isDirectory()) problems.push(`${manifest} lists ${layer.Digest}, whose layer is gone`);
    }
  }
  return problems;
}

/** The flat trees and layers something references and that are there: what no gc may remove. */
export async function reachablePresent(publisher: Publisher): Promise<Set<string>> {
  const scan = await scanRepository(publisher);
  const present = new Set([...scan.flats, ...scan.layers]);
  return new Set([...scan.reachable].filter((item) => present.has(item)));
}
