/**
 * Test support for garbage collection: a repository's invariants, read with the production scanner
 * (what it finds is checked against the filesystem by the callers' own assertions).
 */
import type { Publisher } from '../../src/publish/publisher.ts';
import { scanRepository } from '../../src/gc/scan.ts';

/**
 * What must hold at every moment: every public name resolves to a flat tree that is there, and every
 * layer a published manifest lists is there (with its layerfs). Returns the violations.
 */
export async function repositoryProblems(publisher: Publisher): Promise<string[]> {
  const scan = await scanRepository(publisher);
  const problems: string[] = [];
  const present = new Set([...scan.flats, ...scan.layers]);
  for (const name of scan.publicNames) {
    if (name.keeps.length === 0) problems.push(`public name ${name.path} resolves to nothing`);
    for (const item of name.keeps) if (!present.has(item)) problems.push(`public name ${name.path} needs ${item}, which is gone`);
  }
  for (const manifest of scan.manifests) {
    for (const item of manifest.keeps) {
      if (!item.startsWith('.layers/')) continue;
      if ((await publisher.lstat(`${item}/layerfs`)) === undefined) problems.push(`${manifest.dir}/manifest.json lists ${item}, which is gone`);
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
