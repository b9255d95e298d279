import type { Command } from 'commander';
import type { Logger } from 'pino';
import { createPublisher, loadPublisherConfig, type PublisherConfig } from '../config/publisher-config.ts';
import { collectGarbage, DEFAULT_GRACE_PERIOD_MS, type GcReport } from '../gc/collect.ts';
import { formatDuration, formatGcReport, parseDuration } from '../gc/format.ts';
import { deleteImages, nameOf, pruneImages } from '../gc/images.ts';
import type { Publisher } from '../publish/publisher.ts';
import { DuccError } from '../util/errors.ts';
import { createLogger } from '../util/logger.ts';
import { parseImageReference } from '../wishlist/image-reference.ts';
import { formatProblem } from '../wishlist/wishlist.ts';
import { readWishlist } from './run-conversion.ts';

/** `ducc prune`'s default `--max`: as the OSG sync, at most 50 images leave per run. */
export const DEFAULT_PRUNE_MAX = 50;

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

  addRemovalCommands(program, out);
}

/** `ducc delete-image` and `ducc prune`: public names and metadata go at once, content at the next gc. */
function addRemovalCommands(program: Command, out: (text: string) => void): void {
  repositoryOptions(
    program
      .command('delete-image')
      .description(
        "remove an image's public name and metadata, including its .multiarch/ names (as DUCC 2026's delete-image); its content stays until a gc after the grace period",
      )
      .argument('<cvmfs-repo>', 'repository, as cvmfs_repo in the wish list')
      .argument('<image>', 'the image as in a wish list, e.g. https://registry.hub.docker.com/library/ubuntu:22.04 (no wildcard)'),
  )
    .option('--dry-run', 'print what would be removed and change nothing')
    .action(async (cvmfsRepo: string, image: string, flags: RepositoryFlags & { dryRun?: boolean }) => {
      const name = nameOf(parseImageReference(image));
      const publisher = await repositoryPublisher(cvmfsRepo, flags, process.env, createLogger());
      await publisher.recover();
      const [deleted] = await deleteImages(publisher, [name], flags.dryRun ? { dryRun: true } : {});
      if (deleted === undefined)
        throw new DuccError('BOT_ERR_GC', `${image} is not published in ${publisher.description}: nothing to delete`, { temporary: false });
      for (const path of deleted.paths) out(`${flags.dryRun ? 'would remove' : 'removed'} ${path}\n`);
      out(
        `delete-image ${cvmfsRepo}: ${deleted.name} ${flags.dryRun ? 'would be removed (dry run, nothing changed)' : 'removed'}; its content goes with a gc after the grace period\n`,
      );
    });

  repositoryOptions(
    program
      .command('prune')
      .description(
        "remove every image of the wish lists' cvmfs_repo that none of them names any more (public names and metadata; content at the next gc), decided on names alone, without asking registries",
      )
      .argument('<wishlist...>', 'every wish list publishing into the repository (all must name the same cvmfs_repo)'),
  )
    .option('--dry-run', 'print what would be removed and change nothing')
    .option('--max <n>', 'most images removed per run (0: no limit); the rest wait for the next run', String(DEFAULT_PRUNE_MAX))
    .action(async (files: string[], flags: RepositoryFlags & { dryRun?: boolean; max: string }) => {
      const max = wholeNumber(flags.max, '--max');
      const lists = await Promise.all(files.map((file) => readWishlist(file)));
      const problems = lists.flatMap((list) => list.problems.filter((p) => p.severity === 'error').map((p) => formatProblem(p, list.file)));
      // An entry that does not parse names nothing: pruning would take it for removed.
      if (problems.length > 0) throw new DuccError('BOT_ERR_WISHLIST', `refusing to prune with a wish list that has errors:\n${problems.join('\n')}`);
      const repos = [...new Set(lists.map((list) => list.cvmfsRepo))];
      if (repos.length !== 1 || repos[0] === undefined) {
        throw new DuccError('BOT_ERR_WISHLIST', `the wish lists must all publish into one cvmfs_repo, not ${repos.map(String).join(', ')}`);
      }
      const cvmfsRepo = repos[0];
      const publisher = await repositoryPublisher(cvmfsRepo, flags, process.env, createLogger());
      if (!flags.dryRun) await publisher.recover();
      const result = await pruneImages(
        publisher,
        lists.flatMap((list) => list.wishes.map((wish) => wish.image)),
        { max, ...(flags.dryRun ? { dryRun: true } : {}) },
      );
      for (const image of result.removed) out(`${flags.dryRun ? 'would remove' : 'removed'} ${image.name} (${image.paths.join(', ')})\n`);
      for (const name of result.deferred) out(`left for the next run (--max ${max}): ${name}\n`);
      const what = flags.dryRun ? `${result.removed.length} would be removed (dry run, nothing changed)` : `${result.removed.length} removed`;
      out(
        `prune ${cvmfsRepo}: ${what}, ${result.deferred.length} left for the next run, ${result.kept} still wished; content goes with a gc after the grace period\n`,
      );
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
