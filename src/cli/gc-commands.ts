import type { Command } from 'commander';
import type { Logger } from 'pino';
import { createPublisher, loadPublisherConfig, type PublisherConfig } from '../config/publisher-config.ts';
import { collectGarbage, DEFAULT_GRACE_PERIOD_MS, type GcReport } from '../gc/collect.ts';
import { formatDuration, formatGcReport, parseDuration } from '../gc/format.ts';
import type { Publisher } from '../publish/publisher.ts';
import { DuccError } from '../util/errors.ts';
import { createLogger } from '../util/logger.ts';

/** `--repo-root` / `--config`, as `ducc convert` takes them. */
interface RepositoryFlags {
  repoRoot?: string;
  config?: string;
}

interface GcFlags extends RepositoryFlags {
  dryRun?: boolean;
  gracePeriod: string;
  cvmfsGc?: boolean;
  cvmfsGcKeepRevisions?: string;
}

/** The publisher of one `cvmfs_repo`, chosen as `ducc convert` chooses it. */
export async function repositoryPublisher(cvmfsRepo: string, flags: RepositoryFlags, env: NodeJS.ProcessEnv, logger: Logger): Promise<Publisher> {
  const config: PublisherConfig = flags.repoRoot ? { kind: 'directory', root: flags.repoRoot } : loadPublisherConfig(flags.config ?? env['DUCC_CONFIG']);
  return createPublisher(config, cvmfsRepo, logger);
}

const repositoryOptions = (command: Command): Command =>
  command
    .option('--repo-root <dir>', 'directory publisher: the repository is <dir>/<cvmfs-repo>/ (overrides the config file)')
    .option('--config <file>', 'config file choosing the publisher (default $DUCC_CONFIG; else directory publisher under ./var/cvmfs)');

/** `ducc gc`, `ducc delete-image` and `ducc prune`. */
export function addGcCommands(program: Command, out: (text: string) => void): void {
  repositoryOptions(
    program
      .command('gc')
      .alias('garbage-collection')
      .description(
        'remove what nothing references any more (flat trees, layers, metadata, stale staging) once it has been unreferenced for the grace period; see README',
      )
      .argument('<cvmfs-repo>', 'repository, as cvmfs_repo in the wish list (e.g. unpacked.cern.ch or unpacked.cern.ch/images)'),
  )
    .option('--dry-run', 'print what would be removed, with bytes, and change nothing')
    .option(
      '--grace-period <duration>',
      `how long an item stays after a gc first found it unreferenced: days (DUCC's unit, e.g. 7 or 0) or 12h, 30m, 2w`,
      formatDuration(DEFAULT_GRACE_PERIOD_MS),
    )
    .option('--cvmfs-gc', 'cvmfs publisher: then run cvmfs_server gc -f to free the backend storage (needs CVMFS_GARBAGE_COLLECTION=true)')
    .option('--cvmfs-gc-keep-revisions <n>', 'with --cvmfs-gc: revisions cvmfs_server gc keeps (-r; default: those of the last 3 days)')
    .action(async (cvmfsRepo: string, flags: GcFlags) => {
      const logger = createLogger();
      const gracePeriodMs = parseDuration(flags.gracePeriod);
      const keepRevisions = flags.cvmfsGcKeepRevisions === undefined ? undefined : wholeNumber(flags.cvmfsGcKeepRevisions, '--cvmfs-gc-keep-revisions');
      const publisher = await repositoryPublisher(cvmfsRepo, flags, process.env, logger);
      const backend = backendCollector(publisher, flags);
      const report: GcReport = await collectGarbage(publisher, {
        gracePeriodMs,
        dryRun: Boolean(flags.dryRun),
        absoluteRoots: [`/cvmfs/${cvmfsRepo}`],
        logger,
      });
      for (const text of formatGcReport(report, cvmfsRepo)) out(`${text}\n`);
      if (backend !== undefined && !flags.dryRun) {
        await backend({ ...(keepRevisions === undefined ? {} : { keepRevisions }) });
        out(`cvmfs_server gc ${cvmfsRepo}: done\n`);
      }
    });
}

/** `--cvmfs-gc`: the cvmfs publisher's `cvmfs_server gc`, checked before anything is done. */
function backendCollector(publisher: Publisher, flags: GcFlags): ((options: { keepRevisions?: number }) => Promise<string>) | undefined {
  if (!flags.cvmfsGc) {
    if (flags.cvmfsGcKeepRevisions !== undefined) throw new DuccError('BOT_ERR_CONFIG', '--cvmfs-gc-keep-revisions needs --cvmfs-gc');
    return undefined;
  }
  const collector = (publisher as { collectBackendGarbage?: (options: { keepRevisions?: number }) => Promise<string> }).collectBackendGarbage;
  if (collector === undefined)
    throw new DuccError('BOT_ERR_CONFIG', `--cvmfs-gc needs the cvmfs publisher; ${publisher.description} has no backend storage to collect`);
  return (options) => collector.call(publisher, options);
}

function wholeNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new DuccError('BOT_ERR_CONFIG', `${flag} must be a whole number, not '${value}'`);
  return n;
}
