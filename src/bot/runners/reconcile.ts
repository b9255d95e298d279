import { DuccError } from '../../util/errors.ts';
import type { JobRunner } from '../bot-context.ts';
import { publishWishlist, throwIfTemporaryFailures } from '../publish-wishlist.ts';

/** The periodic safety net: publish the wish list at the head of the watched branch (no status, no report). */
export const reconcile: JobRunner<'reconcile'> = async (bot, job, run) => {
  const wishlist = bot.wishlistConfig(job.payload.wishlist);
  const repo = bot.repo(wishlist);
  await repo.fetch();
  const head = await repo.branchHead(wishlist.branch);
  if (head === undefined) throw new DuccError('BOT_ERR_CONFIG', `branch ${wishlist.branch} not found in ${wishlist.cloneUrl}`);
  throwIfTemporaryFailures(await publishWishlist(bot, wishlist, head, run));
};
