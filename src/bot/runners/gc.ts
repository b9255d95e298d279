import { collectGarbage } from '../../gc/collect.ts';
import { parseDuration } from '../../gc/format.ts';
import type { JobRunner } from '../bot-context.ts';

/**
 * The scheduled `ducc gc` of one repository (config `gc:`), with the bot's publisher (so under its
 * repository lock, between conversions); its result goes to the run log that /metrics and the status
 * page read. With `cvmfsGc`, `cvmfs_server gc` follows (cvmfs publisher).
 */
export const gc: JobRunner<'gc'> = async (bot, job, run) => {
  const config = bot.config.gc;
  const { cvmfsRepo } = job.payload;
  const publisher = await bot.publisherFor(cvmfsRepo);
  try {
    const report = await collectGarbage(publisher, {
      gracePeriodMs: parseDuration(config?.gracePeriod ?? '7d', 'gc.gracePeriod'),
      absoluteRoots: [`/cvmfs/${cvmfsRepo}`],
      logger: run.log,
    });
    const backend = (publisher as { collectBackendGarbage?: () => Promise<string> }).collectBackendGarbage;
    if (config?.cvmfsGc && backend !== undefined) await backend.call(publisher);
    bot.deps.gcRuns?.record(cvmfsRepo, { report, at: bot.now() });
    run.log.info({ cvmfsRepo, removed: report.removed.length, removedBytes: report.removedBytes, pending: report.pending.length }, 'garbage collected');
  } catch (error) {
    bot.deps.gcRuns?.record(cvmfsRepo, { error, at: bot.now() });
    throw error;
  }
};
