import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { DuccError } from '../util/errors.ts';
import { DirectoryPublisher } from '../publish/directory-publisher.ts';
import type { Publisher } from '../publish/publisher.ts';

/** Where converted images go. `directory` is the embedded default; `cvmfs` runs `cvmfs_server`. */
export type PublisherConfig =
  | {
      kind: 'directory';
      root: string;
      /** Flush each layer, tree and metadata file to disk before it gets its final name (default true). */
      sync?: boolean;
    }
  | {
      kind: 'cvmfs';
      mountRoot: string;
      cvmfsServer?: string;
      /** Directory of the per-repository lock file (default /var/lock if writable, else the temp dir). */
      lockDir?: string;
      /** How long to wait for another process publishing to the same repository. */
      lockWaitSeconds?: number;
      /** Local directory where layers are unpacked before their ingest (default /var/tmp/ducc-gitops). */
      stagingDir?: string;
    };

export const DEFAULT_PUBLISHER: PublisherConfig & { kind: 'directory' } = { kind: 'directory', root: './var/cvmfs' };

/** Reads the `publisher:` section of a config file (the rest belongs to `ducc serve`). */
export function loadPublisherConfig(file: string | undefined): PublisherConfig {
  if (file === undefined) return DEFAULT_PUBLISHER;
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new DuccError('BOT_ERR_CONFIG', `cannot read config ${file}: ${(error as Error).message}`);
  }
  const section = (raw as { publisher?: Record<string, unknown> } | null)?.publisher;
  if (section === undefined) return DEFAULT_PUBLISHER;
  if (section['kind'] === 'directory') {
    const sync = section['sync'];
    if (sync !== undefined && typeof sync !== 'boolean')
      throw new DuccError('BOT_ERR_CONFIG', `${file}: publisher.sync must be true or false, not ${JSON.stringify(sync)}`);
    return { kind: 'directory', root: String(section['root'] ?? DEFAULT_PUBLISHER.root), ...(sync === undefined ? {} : { sync }) };
  }
  if (section['kind'] === 'cvmfs') {
    const wait = section['lockWaitSeconds'];
    if (wait !== undefined && (typeof wait !== 'number' || !Number.isFinite(wait) || wait <= 0)) {
      throw new DuccError('BOT_ERR_CONFIG', `${file}: publisher.lockWaitSeconds must be a positive number of seconds, not ${JSON.stringify(wait)}`);
    }
    const lockDir = section['lockDir'];
    if (lockDir !== undefined && (typeof lockDir !== 'string' || lockDir === '')) {
      throw new DuccError('BOT_ERR_CONFIG', `${file}: publisher.lockDir must be a directory path`);
    }
    const stagingDir = section['stagingDir'];
    if (stagingDir !== undefined && (typeof stagingDir !== 'string' || stagingDir === '')) {
      throw new DuccError('BOT_ERR_CONFIG', `${file}: publisher.stagingDir must be a directory path`);
    }
    return {
      kind: 'cvmfs',
      mountRoot: String(section['mountRoot'] ?? '/cvmfs'),
      ...(section['cvmfsServer'] ? { cvmfsServer: String(section['cvmfsServer']) } : {}),
      ...(lockDir === undefined ? {} : { lockDir: resolve(lockDir) }),
      ...(wait === undefined ? {} : { lockWaitSeconds: wait }),
      ...(stagingDir === undefined ? {} : { stagingDir: resolve(stagingDir) }),
    };
  }
  throw new DuccError('BOT_ERR_CONFIG', `${file}: publisher.kind must be 'directory' or 'cvmfs'`);
}

/** The publisher for one `cvmfs_repo` (which may carry a sub-directory, `repo/subdir`). */
export async function createPublisher(config: PublisherConfig, cvmfsRepo: string, logger?: import('pino').Logger): Promise<Publisher> {
  if (config.kind === 'directory')
    return new DirectoryPublisher({ root: resolve(config.root), repository: cvmfsRepo, ...(config.sync === undefined ? {} : { sync: config.sync }) });
  const { CvmfsServerPublisher } = await import('../publish/cvmfs/cvmfs-publisher.ts');
  const [repository, ...sub] = cvmfsRepo.split('/');
  return new CvmfsServerPublisher({
    repository: repository!,
    ...(sub.length ? { subdirectory: sub.join('/') } : {}),
    mountRoot: config.mountRoot,
    ...(config.cvmfsServer ? { cvmfsServer: config.cvmfsServer } : {}),
    ...(config.lockDir === undefined ? {} : { lockDir: config.lockDir }),
    ...(config.lockWaitSeconds === undefined ? {} : { lockWaitMs: config.lockWaitSeconds * 1000 }),
    ...(config.stagingDir === undefined ? {} : { stagingDir: config.stagingDir }),
    ...(logger ? { logger } : {}),
  });
}
