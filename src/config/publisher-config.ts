import { resolve } from 'node:path';
import * as z from 'zod';
import type { Logger } from 'pino';
import { DirectoryPublisher } from '../publish/directory-publisher.ts';
import type { Publisher } from '../publish/publisher.ts';
import { configError, formatProblems, problemsOfIssues, readConfigFile } from './config-file.ts';
import { boolean, describe, isRecord, nonEmptyString, positiveSeconds, reportUnknownKeys } from './fields.ts';

/**
 * The `publisher:` section: where converted images go. One schema, read by `ducc convert --config` and
 * `ducc serve` alike. `directory` (the default) writes a plain directory standing in for /cvmfs;
 * `cvmfs` runs `cvmfs_server` on this stratum 0.
 */
const DIRECTORY_KEYS = {
  kind: z.literal('directory'),
  /** `<root>/<cvmfs_repo>/` receives each wish list's images; relative to the working directory. */
  root: nonEmptyString().default('./var/cvmfs'),
  /** Flush each layer, tree and metadata file to disk before it gets its final name (default true). */
  sync: boolean().optional(),
};

/**
 * The keys of the `cvmfs` publisher. A new key goes here and nowhere else: createPublisher hands every
 * key it does not convert itself to CvmfsServerPublisher under the same name.
 */
const CVMFS_KEYS = {
  kind: z.literal('cvmfs'),
  /** Where the repositories are mounted. */
  mountRoot: nonEmptyString().default('/cvmfs'),
  /** The `cvmfs_server` command (looked up on PATH, or a path). */
  cvmfsServer: nonEmptyString().optional(),
  /** Directory of the per-repository lock file (default /var/lock if writable, else the temp dir); made absolute. */
  lockDir: z
    .string({ error: 'must be a directory path' })
    .min(1, { error: 'must be a directory path' })
    .transform((path) => resolve(path))
    .optional(),
  /** How long to wait for another process publishing to the same repository. */
  lockWaitSeconds: positiveSeconds().optional(),
  /**
   * Publish through the repository gateway: `auto` (the default) when the repository's server.conf names a
   * gateway upstream (`cvmfs_server mkfs -u gw,...`), or true/false.
   */
  gateway: z.union([z.boolean(), z.literal('auto')], { error: "must be true, false or 'auto'" }).optional(),
  /** Local directory where layers are unpacked before their ingest (default /var/tmp/ducc-gitops); made absolute. */
  stagingDir: z
    .string({ error: 'must be a directory path' })
    .min(1, { error: 'must be a directory path' })
    .transform((path) => resolve(path))
    .optional(),
};

const KINDS = "'directory' or 'cvmfs'";

export const PublisherSection = z.preprocess(
  (value, context) => {
    if (!isRecord(value)) return value;
    // `kind` may be left out: the directory publisher.
    const kind = value['kind'] ?? 'directory';
    if (kind === 'directory') reportUnknownKeys(value, Object.keys(DIRECTORY_KEYS), context);
    if (kind === 'cvmfs') reportUnknownKeys(value, Object.keys(CVMFS_KEYS), context);
    return { ...value, kind };
  },
  z.discriminatedUnion('kind', [z.object(DIRECTORY_KEYS), z.object(CVMFS_KEYS)], {
    error: (issue) =>
      issue.code === 'invalid_union' ? `must be ${KINDS}, got ${describe((issue.input as { kind?: unknown }).kind)}` : `must be a mapping with kind ${KINDS}`,
  }),
);

/** Where converted images go: the `publisher:` section, checked. */
export type PublisherConfig = z.output<typeof PublisherSection>;

export const DEFAULT_PUBLISHER: PublisherConfig & { kind: 'directory' } = { kind: 'directory', root: './var/cvmfs' };

/**
 * `ducc convert --config FILE`: reads the `publisher:` section of the file (the rest of it belongs to
 * `ducc serve` and is not looked at). Without a file or a section, the directory publisher.
 */
export function loadPublisherConfig(file: string | undefined): PublisherConfig {
  if (file === undefined) return DEFAULT_PUBLISHER;
  const source = readConfigFile(file);
  const section = source.value['publisher'];
  if (section === undefined) return DEFAULT_PUBLISHER;
  const result = PublisherSection.safeParse(section);
  if (!result.success) throw configError(formatProblems(problemsOfIssues(result.error.issues, ['publisher']), source));
  return result.data;
}

/** The publisher for one `cvmfs_repo` (which may carry a sub-directory, `repo/subdir`). */
export async function createPublisher(config: PublisherConfig, cvmfsRepo: string, logger?: Logger): Promise<Publisher> {
  if (config.kind === 'directory')
    return new DirectoryPublisher({ root: resolve(config.root), repository: cvmfsRepo, ...(config.sync === undefined ? {} : { sync: config.sync }) });
  const { createCvmfsPublisher } = await import('../publish/cvmfs/create-cvmfs-publisher.ts');
  const [repository, ...sub] = cvmfsRepo.split('/');
  const { kind: _kind, lockWaitSeconds, ...sameNames } = config;
  return createCvmfsPublisher({
    ...sameNames,
    repository: repository!,
    ...(sub.length ? { subdirectory: sub.join('/') } : {}),
    ...(lockWaitSeconds === undefined ? {} : { lockWaitMs: lockWaitSeconds * 1000 }),
    ...(logger ? { logger } : {}),
  });
}
