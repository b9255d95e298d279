import { matchWildcardTags } from '../../wishlist/wildcard.ts';
import { throwIfStopped, type JobRunner } from '../bot-context.ts';

/**
 * A registry reported a push: in every watched wish list (at the head of its branch), convert the wishes
 * naming that repository and tag. convertImage asks the registry for the manifest itself and does
 * nothing if the config is unchanged: the notification is only a hint.
 */
export const registryPush: JobRunner<'registry-push'> = async (bot, job, run) => {
  const payload = job.payload;
  for (const wishlist of bot.config.wishlists) {
    const repo = bot.repo(wishlist);
    await repo.fetch();
    const head = await repo.branchHead(wishlist.branch);
    if (head === undefined) continue;
    for (const { list } of await bot.readWishlists(wishlist, head)) {
      if (list === undefined) continue;
      const matching = list.wishes.filter(
        (wish) =>
          wish.image.registry === payload.registry &&
          wish.image.repository === payload.repository &&
          (payload.tag === undefined ||
            wish.image.tag === payload.tag ||
            (wish.image.tag?.includes('*') && matchWildcardTags(wish.image.tag, [payload.tag]).length > 0)),
      );
      if (matching.length === 0 || list.cvmfsRepo === undefined) continue;
      const ctx = await bot.convertContext(list);
      for (const wish of matching) {
        throwIfStopped(run.signal);
        const outcomes = await bot.convertWish(wishlist, wish, ctx, head, false, run.log);
        run.log.info({ wish: wish.input, outcomes: outcomes.map((o) => o.status) }, 'registry push handled');
      }
    }
  }
};
