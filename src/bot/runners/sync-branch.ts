import type { CommitState } from '../../forge/forge.ts';
import type { JobRunner } from '../bot-context.ts';
import { publishWishlist, throwIfTemporaryFailures } from '../publish-wishlist.ts';
import { renderPublishReport } from '../report.ts';

/**
 * A push to the watched branch: publish the wish list at the pushed commit, with a commit status
 * (`<context>/publish`) from pending to success or failure, and the result in the report of the merge
 * request that made the commit, if any.
 */
export const syncBranch: JobRunner<'sync-branch'> = async (bot, job, run) => {
  const wishlist = bot.wishlistConfig(job.payload.wishlist);
  const sha = job.payload.sha;
  const context = `${bot.config.statusContext}/publish`;
  await bot.setStatus(job, wishlist, sha, context, 'pending', 'publishing the wish list…');
  const repo = bot.repo(wishlist);
  await repo.fetch();
  await repo.ensureCommit(sha);
  const result = await publishWishlist(bot, wishlist, sha, run);
  const state: CommitState = result.failed > 0 ? 'failure' : 'success';
  await bot.setStatus(job, wishlist, sha, context, state, result.counts);
  const forge = bot.forgeFor(wishlist);
  const merged = await forge.findMergedChangeRequest(wishlist.project, sha).catch(() => undefined);
  if (merged !== undefined) {
    await forge.upsertReport(wishlist.project, merged, renderPublishReport(`Published at ${sha.slice(0, 12)}`, result.counts, result.lines), 'publish');
  }
  throwIfTemporaryFailures(result);
};
