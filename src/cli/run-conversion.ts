import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { RegistryClient } from '../registry/client.ts';
import { Sources } from '../sources/sources.ts';
import { registrySettingsFromEnv } from '../registry/settings.ts';
import { loadSourcesConfig } from '../config/sources-config.ts';
import { pullCredentials } from '../registry/pull-credentials.ts';
import { parsePlatform } from '../registry/platform.ts';
import { createPublisher, loadPublisherConfig, type PublisherConfig } from '../config/publisher-config.ts';
import { checkPublisherPaths } from '../config/writable-dir.ts';
import { convertWishlist, formatSummary, summarizeProblems, type ConversionSummary } from '../convert/convert-wishlist.ts';
import { DEFAULT_CONVERT_OPTIONS, type ConvertOptions, type ProgressEvent } from '../convert/convert-image.ts';
import { thinPusher } from '../thin/thin-pusher.ts';
import { NotificationWriter } from '../metadata/notifications.ts';
import { parseWishlist, type Wishlist } from '../wishlist/wishlist.ts';
import { readIgnoreErrorsFile } from '../wishlist/ignore-errors.ts';
import { DuccError, errorMessage } from '../util/errors.ts';

/** Options shared by `convert`, `loop` and `convert-single-image`, as commander hands them over. */
export interface ConversionFlags {
  repoRoot?: string;
  config?: string;
  skipFlat?: boolean;
  skipLayers?: boolean;
  skipThinImage?: boolean;
  convertAgain?: boolean;
  overwriteLayers?: boolean;
  platform?: string;
  maxConcurrentDownloads?: string;
  notificationFile?: string;
  maxWildcardTags?: string;
  shard?: string;
  multiArch?: boolean;
}

export function conversionOptions(flags: ConversionFlags): ConvertOptions {
  return {
    ...DEFAULT_CONVERT_OPTIONS,
    skipFlat: Boolean(flags.skipFlat),
    skipLayers: Boolean(flags.skipLayers),
    skipThinImage: Boolean(flags.skipThinImage),
    convertAgain: Boolean(flags.convertAgain),
    overwriteLayers: Boolean(flags.overwriteLayers),
    multiArch: Boolean(flags.multiArch),
    ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
    ...(flags.maxConcurrentDownloads ? { maxConcurrentDownloads: positiveInteger(flags.maxConcurrentDownloads, '--max-concurrent-downloads') } : {}),
  };
}

/** `--shard k/n`: 1 <= k <= n. */
export function parseShard(value: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(value);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (match === null || count < 1 || index < 1 || index > count) {
    throw new DuccError('BOT_ERR_CONFIG', `--shard must be k/n with 1 <= k <= n (the k-th of n workers), not '${value}'`);
  }
  return { index, count };
}

function positiveInteger(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new DuccError('BOT_ERR_CONFIG', `${flag} must be a positive integer, not '${value}'`);
  return n;
}

/**
 * Where images are read from: the registry client (pull credentials and limits from the environment) and
 * the registry-less sources, with the `dogestryRemotes` and `cacheDir` of the config file (`--config`, else
 * DUCC_CONFIG).
 */
export async function createSources(configFile: string | undefined, env: NodeJS.ProcessEnv, logger: Logger): Promise<Sources> {
  // The registry client reads DUCC_REGISTRY_* and DUCC_LIMIT_* from process.env itself; the sources use the same.
  const settings = registrySettingsFromEnv(process.env);
  const { cacheDir, dogestryRemotes } = loadSourcesConfig(configFile ?? env['DUCC_CONFIG'], env);
  const registry = new RegistryClient({ credentials: await pullCredentials(env), logger });
  return new Sources({ registry, settings, dogestryRemotes, env, cacheDir: join(cacheDir, 'sources'), logger });
}

export function publisherConfig(flags: ConversionFlags, env: NodeJS.ProcessEnv): PublisherConfig {
  if (flags.repoRoot) return { kind: 'directory', root: flags.repoRoot };
  return loadPublisherConfig(flags.config ?? env['DUCC_CONFIG']);
}

/**
 * Converts one wish list once with everything set up from flags and environment: publisher per
 * `cvmfs_repo`, registry clients (pull credentials; the thin-image push account is the wish list's `user`
 * with `DUCC_OUTPUT_REGISTRY_PASS`), notifications.
 */
export async function runConversion(
  wishlist: Wishlist,
  flags: ConversionFlags,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  signal?: AbortSignal,
  onProgress?: (event: ProgressEvent) => void,
): Promise<RunSummary> {
  const options = conversionOptions(flags);
  const sources = await createSources(flags.config, env, logger);
  const notifications = flags.notificationFile ? await NotificationWriter.open(flags.notificationFile) : NotificationWriter.discard();
  try {
    const cvmfsRepo = wishlist.cvmfsRepo;
    // A problem of the whole file (YAML syntax, an unknown version, no cvmfs_repo) stops the run before any
    // conversion: it is reported as such, not counted as failed wishes.
    const fileErrors = wishlist.problems.filter((problem) => problem.severity === 'error' && problem.wish === undefined);
    if (cvmfsRepo === undefined || fileErrors.length > 0) {
      // Every problem is shown; the count is of the file's own.
      return { ...summarizeProblems(wishlist, logger), failed: 0, fileErrors: Math.max(1, fileErrors.length), blobRequests: 0 };
    }
    // Checked before anything is downloaded (there is nothing to push for an empty list).
    const pushThin = options.skipThinImage || wishlist.wishes.length === 0 ? undefined : thinPusher(wishlist, env, logger, sources.sinks);
    const config = publisherConfig(flags, env);
    // A root that cannot be made is named by the setting it came from, before anything is downloaded.
    checkPublisherPaths(config, flags.repoRoot ? '--repo-root' : 'publisher.root');
    const publisher = await createPublisher(config, cvmfsRepo, logger);
    await publisher.recover();
    // DUCC 2026: the wish list's ignoreErrors and those of the file DUCC_IGNORE_ERRORS_FILE names.
    const extra = await readIgnoreErrorsFile(env['DUCC_IGNORE_ERRORS_FILE']);
    for (const warning of extra.warnings) logger.warn(warning);
    const summary = await convertWishlist(
      { ...wishlist, ignoreErrors: [...(wishlist.ignoreErrors ?? []), ...extra.patterns] },
      { sources, publisher, notifications, logger, ...(pushThin ?? {}), ...(onProgress ? { onProgress } : {}) },
      options,
      {
        logger,
        ...(flags.maxWildcardTags ? { maxWildcardTags: positiveInteger(flags.maxWildcardTags, '--max-wildcard-tags') } : {}),
        ...(flags.shard ? { shard: parseShard(flags.shard) } : {}),
        ...(signal ? { signal } : {}),
      },
    );
    return { ...summary, fileErrors: 0, blobRequests: sources.blobRequests };
  } finally {
    await notifications.close();
  }
}

export async function readWishlist(file: string): Promise<Wishlist> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new DuccError('BOT_ERR_WISHLIST', `cannot read wish list ${file}: ${errorMessage(error)}`);
  }
  return parseWishlist(text, file);
}

/** What one conversion run did; `fileErrors` counts problems of the whole file, which stop it before any conversion. */
export type RunSummary = ConversionSummary & { fileErrors: number; blobRequests: number };

/**
 * Prints failures and the summary line; returns the exit code (1 when anything failed that `ignoreErrors`
 * does not tolerate, or the file itself has errors).
 */
export function reportSummary(summary: ConversionSummary & { fileErrors?: number }, write: (text: string) => void, file?: string): number {
  for (const failure of summary.failures) write(`${failure.tolerated ? 'warning (ignoreErrors)' : 'error'}: ${failure.message}\n`);
  const fileErrors = summary.fileErrors ?? 0;
  if (fileErrors > 0) {
    write(`${file ?? 'the wish list'}: not converted: ${fileErrors} error${fileErrors === 1 ? '' : 's'} in the file\n`);
    return 1;
  }
  write(`${formatSummary(summary)}\n`);
  return summary.failed > 0 ? 1 : 0;
}

/** `loop`: converts, waits, re-reads the wish list, until SIGINT/SIGTERM (finishing the current image). */
export async function runLoop(
  file: string,
  flags: ConversionFlags & { interval?: string },
  env: NodeJS.ProcessEnv,
  logger: Logger,
  write: (text: string) => void,
): Promise<number> {
  const intervalSeconds = flags.interval === undefined ? 60 : Number(flags.interval);
  if (!Number.isFinite(intervalSeconds) || intervalSeconds < 0)
    throw new DuccError('BOT_ERR_CONFIG', `--interval must be a number of seconds, not '${flags.interval}'`);
  const controller = new AbortController();
  const stop = () => {
    logger.info('stopping after the current image');
    controller.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for (let round = 1; !controller.signal.aborted; round++) {
      try {
        const summary = await runConversion(await readWishlist(file), flags, env, logger, controller.signal);
        reportSummary(summary, write, file);
      } catch (error) {
        // A broken start (unreadable wish list, bad config) ends the command; later rounds are retried
        // after the interval (the wish list may be replaced under us, a registry or cvmfs_server may hiccup).
        if (round === 1) throw error;
        write(`error: ${errorMessage(error)}\n`);
        // Printed just above: on a terminal the log does not repeat it (see createLogger).
        logger.error({ err: errorMessage(error), printed: true }, 'round failed; trying again after the interval');
      }
      await sleep(intervalSeconds * 1000, undefined, { signal: controller.signal }).catch(() => undefined);
    }
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
