import type { Logger } from 'pino';
import type { RegistryClient } from '../registry/client.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { isWildcard, wholeName, type ImageReference } from '../wishlist/image-reference.ts';
import { DEFAULT_MAX_WILDCARD_TAGS, matchWildcardTags } from '../wishlist/wildcard.ts';
import { formatProblem, type Wish, type Wishlist } from '../wishlist/wishlist.ts';
import { convertImage, convertMultiArch, type ConvertContext, type ConvertOptions, type ImageOutcome } from './convert-image.ts';

export interface WishFailure {
  /** The entry as written, or the file when the problem is about the whole wish list. */
  wish: string;
  /** One line: where, which image, what went wrong. */
  message: string;
}

export interface ConversionSummary {
  results: ImageOutcome[];
  failures: WishFailure[];
  converted: number;
  upToDate: number;
  failed: number;
}

/**
 * The images a wish stands for: itself, or for a wildcard tag every matching tag of the repository
 * (all pages of the tag list), capped so that one `*` cannot expand without bound.
 */
export async function expandWish(client: RegistryClient, wish: Wish, maxTags = DEFAULT_MAX_WILDCARD_TAGS): Promise<ImageReference[]> {
  if (!isWildcard(wish.image)) return [wish.image];
  const { scheme, registry, repository } = wish.image;
  const tags = matchWildcardTags(wish.image.tag!, await client.listTags({ scheme, registry, repository }));
  if (tags.length > maxTags) {
    throw new DuccError('BOT_ERR_LIMIT', `wildcard expands to ${tags.length} tags, more than the limit of ${maxTags}; narrow the pattern`);
  }
  if (tags.length === 0) throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `no tag of ${registry}/${repository} matches '${wish.image.tag}'`);
  return tags.sort().map((tag) => ({ ...wish.image, tag }));
}

/**
 * Converts every valid wish of a wish list, one after another. A failing wish never stops the others;
 * invalid entries of the file are reported as failures too, so the caller can exit non-zero.
 */
export async function convertWishlist(
  wishlist: Wishlist,
  ctx: Omit<ConvertContext, 'cvmfsRepo'>,
  options: ConvertOptions,
  hooks: { logger: Logger; client: RegistryClient; maxWildcardTags?: number; signal?: AbortSignal },
): Promise<ConversionSummary> {
  const summary = summarizeProblems(wishlist, hooks.logger);
  for (const wish of wishlist.wishes) {
    if (hooks.signal?.aborted) break;
    const where = `${wish.source.file}:${wish.source.line}`;
    let images: ImageReference[];
    try {
      images = await expandWish(hooks.client, wish, hooks.maxWildcardTags);
    } catch (error) {
      summary.failures.push({ wish: wish.input, message: `${where}: ${wish.input}: ${errorMessage(error)}` });
      continue;
    }
    for (const image of images) {
      if (hooks.signal?.aborted) break;
      try {
        const wishCtx = { ...ctx, cvmfsRepo: wish.cvmfsRepo };
        const outcomes = options.multiArch ? await convertMultiArch(wishCtx, image, options) : [await convertImage(wishCtx, image, options)];
        summary.results.push(...outcomes);
        // One image counts once: converted if any of its platforms was.
        if (outcomes.some((outcome) => outcome.status === 'converted')) summary.converted++;
        else summary.upToDate++;
      } catch (error) {
        const shown = image === wish.image ? wish.input : `${wish.input} (${wholeName(image)})`;
        summary.failures.push({ wish: wish.input, message: `${where}: ${shown}: ${errorMessage(error)}` });
        // `printed`: the command prints the failure itself (ducc convert's `error:` lines), so a terminal does not show it twice.
        hooks.logger.error({ wish: wish.input, image: wholeName(image), err: errorMessage(error), printed: true }, 'conversion failed');
      }
    }
  }
  summary.failed = summary.failures.length;
  return summary;
}

/** A summary holding the wish list's own problems: errors as failures, warnings logged. */
export function summarizeProblems(wishlist: Wishlist, logger: Logger): ConversionSummary {
  const summary: ConversionSummary = { results: [], failures: [], converted: 0, upToDate: 0, failed: 0 };
  for (const problem of wishlist.problems) {
    if (problem.severity === 'error') summary.failures.push({ wish: problem.wish ?? wishlist.file, message: formatProblem(problem, wishlist.file) });
    else logger.warn(formatProblem(problem, wishlist.file));
  }
  summary.failed = summary.failures.length;
  return summary;
}

/** "3 converted, 12 up to date, 1 failed" */
export function formatSummary(summary: ConversionSummary): string {
  return `${summary.converted} converted, ${summary.upToDate} up to date, ${summary.failed} failed`;
}
