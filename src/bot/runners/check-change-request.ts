import type { JobRunner } from '../bot-context.ts';
import { planWishlist } from '../plan.ts';
import { renderPlanReport } from '../report.ts';

/**
 * A merge/pull request opened or updated: check the wish list at its head against the watched branch,
 * write the plan into the report comment and set `<context>/plan`. Problems count only for entries the
 * merge request changes, so someone else's broken image does not fail it.
 */
export const checkChangeRequest: JobRunner<'check-change-request'> = async (bot, job, run) => {
  const { number, headSha } = job.payload;
  const wishlist = bot.wishlistConfig(job.payload.wishlist);
  const context = `${bot.config.statusContext}/plan`;
  await bot.setStatus(job, wishlist, headSha, context, 'pending', 'checking the wish list…');
  const repo = bot.repo(wishlist);
  await repo.fetch();
  await repo.ensureCommit(headSha);
  const baseSha = await repo.branchHead(wishlist.branch);
  const baseFiles = baseSha === undefined ? [] : await bot.readWishlists(wishlist, baseSha);
  const reports: string[] = [];
  let failed = 0;
  let changes = 0;
  for (const { path, list: head } of await bot.readWishlists(wishlist, headSha)) {
    if (head === undefined) {
      failed++;
      reports.push(`### ${path}\n\n\`${path}\` does not exist at this commit.`);
      continue;
    }
    const base = baseFiles.find((file) => file.path === path)?.list;
    const publisher = head.cvmfsRepo ? await bot.publisherFor(head.cvmfsRepo) : undefined;
    const plan = await planWishlist(head, base, {
      sources: bot.sources,
      ...(publisher ? { publisher } : {}),
      published: await bot.store.listPublished(wishlist.name),
    });
    // Entry-level problems count only for entries this merge request changes.
    const changedLines = new Set(plan.entries.filter((e) => e.action !== 'unchanged').map((e) => e.line));
    const baseProblems = new Set((base?.problems ?? []).map((p) => p.message));
    const blocking = plan.problems.filter((p) => p.severity === 'error' && (p.wish === undefined || changedLines.has(p.line) || !baseProblems.has(p.message)));
    failed += blocking.length + plan.entries.filter((e) => e.action === 'error').length;
    changes += plan.entries.filter((e) => e.action !== 'unchanged').length;
    reports.push(renderPlanReport(plan, { file: path, sha: headSha }));
  }
  const description =
    failed > 0
      ? `${failed} problem${failed === 1 ? '' : 's'} in the wish list (see the report)`
      : `${changes} change${changes === 1 ? '' : 's'} ready to publish`;
  const forge = bot.forgeFor(wishlist);
  await forge.upsertReport(wishlist.project, number, reports.join('\n\n---\n\n'), 'plan');
  await bot.setStatus(job, wishlist, headSha, context, failed > 0 ? 'failure' : 'success', description);
  run.log.info({ number, failed, changes }, 'merge request checked');
};
