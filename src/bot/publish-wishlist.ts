import type { Logger } from 'pino';
import type { WishlistRepoConfig } from '../config/bot-config.ts';
import { deleteImages, nameOf } from '../gc/images.ts';
import { DuccError } from '../util/errors.ts';
import { parseImageReference } from '../wishlist/image-reference.ts';
import { throwIfStopped, type BotContext } from './bot-context.ts';
import type { PublishOutcomeLine } from './report.ts';

export interface PublishResult {
  failed: number;
  /** Of the failed, those that may work when tried again later (see throwIfTemporaryFailures). */
  temporary: number;
  /** e.g. `3 converted, 12 up to date, 1 removed, 1 failed`. */
  counts: string;
  lines: PublishOutcomeLine[];
}

/**
 * Publishes the wish list(s) at a commit (already in the clone): converts what is new or moved, removes
 * the public names of entries no longer listed (their content stays for a later GC), records the
 * published state. Shared by the push and reconcile runners.
 */
export async function publishWishlist(
  bot: BotContext,
  wishlist: WishlistRepoConfig,
  sha: string,
  run: { log: Logger; signal: AbortSignal },
): Promise<PublishResult> {
  const lines: PublishOutcomeLine[] = [];
  let converted = 0;
  let upToDate = 0;
  let failed = 0;
  let removed = 0;
  let unreadable = false;
  const listed = new Set<string>();
  for (const { path, list } of await bot.readWishlists(wishlist, sha)) {
    if (list === undefined) {
      failed++;
      unreadable = true;
      lines.push({ image: path, status: 'failed', detail: `${path} does not exist at ${sha.slice(0, 12)}` });
      continue;
    }
    // A file that does not parse lists nothing: never take that as "every image was removed".
    if (list.problems.some((p) => p.severity === 'error' && p.wish === undefined)) unreadable = true;
    for (const problem of list.problems.filter((p) => p.severity === 'error')) {
      failed++;
      lines.push({ image: problem.wish ?? path, status: 'failed', detail: `${path}:${problem.line}:${problem.column}: ${problem.message}` });
    }
    for (const wish of list.wishes) listed.add(wish.input);
    if (list.cvmfsRepo === undefined) continue;
    const ctx = await bot.convertContext(list);
    for (const wish of list.wishes) {
      throwIfStopped(run.signal);
      const outcomes = await bot.convertWish(wishlist, wish, ctx, sha, false, run.log);
      for (const outcome of outcomes) {
        if (outcome.status === 'converted') converted++;
        else if (outcome.status === 'up-to-date') upToDate++;
        else failed++;
        lines.push(outcome);
      }
    }
  }
  // Entries gone from the list lose their public name and metadata (newer DUCC's delete-image); their
  // content stays for a later garbage collection. Only decided once every wish-list file was read.
  for (const record of await bot.store.listPublished(wishlist.name)) {
    if (listed.has(record.input) || unreadable) continue;
    // Shared with `ducc delete-image` and `ducc prune`: also the image's .multiarch/ names.
    await deleteImages(await bot.publisherFor(record.cvmfsRepo), [nameOf(parseImageReference(record.image))]);
    await bot.store.removePublished(wishlist.name, record.image);
    removed++;
    lines.push({ image: record.image, status: 'removed', detail: 'no longer in the wish list; content kept for garbage collection' });
  }
  if (removed > 0) await bot.store.countConversions(wishlist.name, { removed });
  await bot.store.recordPublishOutcome(wishlist.name, failed === 0, bot.now());
  const counts = `${converted} converted, ${upToDate} up to date${removed ? `, ${removed} removed` : ''}, ${failed} failed`;
  run.log.info({ converted, upToDate, removed, failed }, 'wish list published');
  return { failed, temporary: lines.filter((line) => line.status === 'failed' && line.temporary === true).length, counts, lines };
}

/**
 * After a publish has reported its result: images that failed for a temporary reason (a registry that
 * did not answer, or answered 5xx or 429) make the job fail temporarily, so that the worker tries it again
 * with its backoff (30 s, then minutes) instead of leaving them to the next reconcile. The images that
 * worked are up to date by then and cost one manifest request each.
 */
export function throwIfTemporaryFailures(result: PublishResult): void {
  if (result.temporary === 0) return;
  throw new DuccError('BOT_ERR_PUBLISH', `${result.temporary} image${result.temporary === 1 ? '' : 's'} failed for a temporary reason; trying again`, {
    temporary: true,
  });
}
