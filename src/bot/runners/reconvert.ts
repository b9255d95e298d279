import { publicPath } from '../../layout/paths.ts';
import { DuccError, errorMessage } from '../../util/errors.ts';
import { wholeName } from '../../wishlist/image-reference.ts';
import type { Wishlist } from '../../wishlist/wishlist.ts';
import { throwIfStopped, type JobRunner } from '../bot-context.ts';
import { renderPublishReport, type PublishOutcomeLine } from '../report.ts';

/**
 * `/reconvert [image ...]` on a merge/pull request: after checking the author may write to the project
 * (and that the request is not from a fork, unless allowed), convert again the named images, or all the
 * request touches, from the published wish list (the watched branch, never unmerged content). Every
 * outcome, refusals included, is an answer in the merge request, not a failure to retry.
 */
export const reconvert: JobRunner<'reconvert'> = async (bot, job, run) => {
  const payload = job.payload;
  const wishlist = bot.wishlistConfig(payload.wishlist);
  const forge = bot.forgeFor(wishlist);
  const reply = (text: string) => forge.reply(wishlist.project, payload.number, `@${payload.author.login} ${text}`);
  if (payload.invalid !== undefined) {
    await reply(`${payload.invalid}. Usage: \`/reconvert [image ...]\``);
    return;
  }
  let allowed: boolean;
  try {
    allowed = await forge.canWrite(wishlist.project, { ...payload.author, isBot: false });
  } catch (error) {
    // Fail closed, and say so: "you lack write access" would be wrong, and retrying the job could run
    // the command later without anyone asking again.
    run.log.warn({ err: errorMessage(error) }, 'permission check failed; refusing');
    await reply(
      `\`/reconvert\` was refused: the permissions of @${payload.author.login} on ${wishlist.project} could not be checked (the ${wishlist.forge === 'github' ? 'GitHub' : 'GitLab'} API failed); nothing was converted. Please try again later.`,
    );
    return;
  }
  if (!allowed) {
    await reply(`\`/reconvert\` needs write access (Developer or higher) to ${wishlist.project}; nothing was converted.`);
    return;
  }
  const request = await forge.getChangeRequest(wishlist.project, payload.number);
  if (request.fromFork && !wishlist.allowForks) {
    await reply('`/reconvert` is not accepted on merge requests from forks; nothing was converted.');
    return;
  }
  const repo = bot.repo(wishlist);
  await repo.fetch();
  // Reconversion publishes, so it uses the published wish list (the target branch), never unmerged content.
  const head = await repo.branchHead(wishlist.branch);
  if (head === undefined) throw new DuccError('BOT_ERR_CONFIG', `branch ${wishlist.branch} not found`);
  const lists = (await bot.readWishlists(wishlist, head)).flatMap(({ list }) => (list === undefined ? [] : [list]));
  const allWishes = lists.flatMap((list) => list.wishes);
  const force = new Set<string>();
  const unknown: string[] = [];
  if (payload.images.length === 0) {
    // No names: everything this merge request touches that is published.
    await repo.ensureCommit(request.headSha);
    for (const { list } of await bot.readWishlists(wishlist, request.headSha)) {
      if (list === undefined) continue;
      const mine = new Set(list.wishes.map((w) => w.input));
      for (const wish of allWishes) if (mine.has(wish.input)) force.add(wish.input);
    }
  } else {
    for (const name of payload.images) {
      const match = allWishes.find(
        (wish) => wish.input === name || wholeName(wish.image) === name || publicPath(wish.image) === name.replace(/^https?:\/\//, ''),
      );
      if (match) force.add(match.input);
      else unknown.push(name);
    }
  }
  if (force.size === 0) {
    await reply(
      `nothing to reconvert${unknown.length ? `: not in the published wish list: ${unknown.map((u) => `\`${u.replace(/`/g, '')}\``).join(', ')}` : ''}.`,
    );
    return;
  }
  const onlyForced: Wishlist[] = lists.map((list) => ({ ...list, wishes: list.wishes.filter((w) => force.has(w.input)), problems: [] }));
  const lines: PublishOutcomeLine[] = [];
  let failed = 0;
  for (const list of onlyForced) {
    if (list.cvmfsRepo === undefined) continue;
    const ctx = await bot.convertContext(list);
    for (const wish of list.wishes) {
      throwIfStopped(run.signal);
      const outcomes = await bot.convertWish(wishlist, wish, ctx, head, true, run.log);
      failed += outcomes.filter((o) => o.status === 'failed').length;
      lines.push(...outcomes);
    }
  }
  const counts = `${lines.filter((l) => l.status === 'converted').length} reconverted, ${failed} failed`;
  await forge.upsertReport(wishlist.project, payload.number, renderPublishReport(`/reconvert by @${payload.author.login}`, counts, lines), 'reconvert');
  await reply(`${counts}${unknown.length ? `; not in the published wish list: ${unknown.length}` : ''}.`);
};
