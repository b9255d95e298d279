import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../util/process-alive.ts';

/**
 * The staging directories below `root` of processes that are gone, as absolute paths, sorted: a
 * staging directory's name starts with the pid of the process that made it (`<pid>-...`). Those of this
 * process and of running ones are never listed. Empty when `root` does not exist.
 */
export async function staleStaging(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  return names
    .filter((name) => {
      const pid = Number(name.split('-')[0]);
      return Number.isInteger(pid) && pid !== process.pid && !processAlive(pid);
    })
    .sort()
    .map((name) => join(root, name));
}
