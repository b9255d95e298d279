/**
 * How a transaction of the gateway publisher is cut into publishes (units), each under a lease of its
 * own, and what each shows once it is visible on the node's mount.
 */
import type { Stats } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import type { TreeEntry } from '../../unpack/tree-types.ts';
import { parentOf } from './paths.ts';

/** One write of a transaction, applied when the transaction commits. */
export type Operation =
  | { kind: 'file'; path: string; data: Buffer; mode: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'mkdir'; path: string }
  | { kind: 'remove'; path: string }
  | { kind: 'tree'; path: string; entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry> };

/** The publishes of one transaction through a gateway, in the order of the transaction's writes. */
export type Unit =
  | { kind: 'tree'; path: string; entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry> }
  | { kind: 'directory'; path: string; writes: Extract<Operation, { kind: 'file' | 'symlink' }>[] }
  | { kind: 'remove'; path: string };

/** A path that must show, and how (beyond existing), once a publish is visible. */
export interface Expectation {
  path: string;
  check?: (found: Stats, absolute: string) => Promise<boolean>;
}

/** What shows once a unit is visible: trees and directories exist, files have their bytes, symlinks their target. */
export function visibleAfter(unit: Unit): Expectation[] {
  switch (unit.kind) {
    case 'tree':
      return [{ path: unit.path }];
    case 'remove':
      return [];
    case 'directory':
      return [
        { path: unit.path },
        ...unit.writes.map((write): Expectation =>
          write.kind === 'file'
            ? {
                path: write.path,
                check: async (found, absolute) => found.isFile() && found.size === write.data.length && (await readFile(absolute)).equals(write.data),
              }
            : { path: write.path, check: async (found, absolute) => found.isSymbolicLink() && (await readlink(absolute)) === write.target },
        ),
      ];
  }
}

/** Groups a transaction's writes: files and symlinks by their directory, each tree and removal on its own. */
export function units(operations: Operation[]): Unit[] {
  const result: Unit[] = [];
  const byDirectory = new Map<string, Extract<Unit, { kind: 'directory' }>>();
  for (const operation of operations) {
    switch (operation.kind) {
      case 'tree':
        result.push({ kind: 'tree', path: operation.path, entries: operation.entries });
        break;
      case 'remove':
        result.push({ kind: 'remove', path: operation.path });
        break;
      case 'mkdir': {
        if (!byDirectory.has(operation.path)) {
          const unit = { kind: 'directory' as const, path: operation.path, writes: [] };
          byDirectory.set(operation.path, unit);
          result.push(unit);
        }
        break;
      }
      case 'file':
      case 'symlink': {
        const dir = parentOf(operation.path);
        let unit = byDirectory.get(dir);
        if (unit === undefined) {
          unit = { kind: 'directory', path: dir, writes: [] };
          byDirectory.set(dir, unit);
          result.push(unit);
        }
        unit.writes.push(operation);
        break;
      }
    }
  }
  return result;
}
