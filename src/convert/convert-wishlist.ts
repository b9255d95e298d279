import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ImageSources } from '../sources/image-source.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { isWildcard, wholeName, withTag, type ImageReference } from '../wishlist/image-reference.ts';
import { DEFAULT_MAX_WILDCARD_TAGS, matchWildcardTags } from '../wishlist/wildcard.ts';
import { formatProblem, type Wish, type Wishlist } from '../wishlist/wishlist.ts';
import { isTolerated } from '../wishlist/ignore-errors.ts';
import { convertImage, convertMultiArch, type ConvertContext, type ConvertOptions, type ImageOutcome } from './convert-image.ts';

export interface WishFailure {
  /** The entry as written, or the file when the problem is about the whole wish list. */
  wish: string;
  /** One line: where, which image, what went wrong. */
  message: string;
  /** The wish matches an `ignoreErrors` glob: reported as a warning, not counted in `failed`. */
  tolerated?: boolean;
}

export interface ConversionSummary {
  results: ImageOutcome[];
  failures: WishFailure[];
  converted: number;
  upToDate: number;
  /** Failures that fail the run (not those `ignoreErrors` tolerates). */
  failed: number;
  /** Failures of wishes matching `ignoreErrors`. */
  tolerated?: number;
}

/**
 * The images a wish stands for: itself, or for a wildcard tag every matching tag of the repository
 * (all pages of the tag list), capped so that one `*` cannot expand without bound.
 */
export async function expandWish(sources: ImageSources, wish: Wish, maxTags = DEFAULT_MAX_WILDCARD_TAGS): Promise<ImageReference[]> {
  if (!isWildcard(wish.image)) return [wish.image];
  const source = sources.forImage(wish.image);
  const tags = matchWildcardTags(wish.image.tag!, await source.listTags());
  if (tags.length > maxTags) {
    throw new DuccError('BOT_ERR_LIMIT', `wildcard expands to ${tags.length} tags, more than the limit of ${maxTags}; narrow the pattern`);
  }
  if (tags.length === 0) throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `no tag of ${source.description} matches '${wish.image.tag}'`);
  return tags.sort().map((tag) => withTag(wish.image, tag));
}

/**
 * Converts every valid wish of a wish list, one after another. A failing wish never stops the others;
 * invalid entries of the file are reported as failures too, so the caller can exit non-zero.
 */
export async function convertWishlist(
  wishlist: Wishlist,
  ctx: Omit<ConvertContext, 'cvmfsRepo'>,
  options: ConvertOptions,
  hooks: { logger: Logger; maxWildcardTags?: number; signal?: AbortSignal; shard?: { index: number; count: number } },
): Promise<ConversionSummary> {
  const summary = summarizeProblems(wishlist, hooks.logger);
  for (const wish of wishlist.wishes) {
    if (hooks.signal?.aborted) break;
    const where = `${wish.source.file}:${wish.source.line}`;
    // DUCC 2026: the whole input name, the wildcard tag as written, against each glob.
    const tolerated = isTolerated(wholeName(wish.image), wishlist.ignoreErrors ?? []) ? { tolerated: true } : {};
    let images: ImageReference[];
    try {
      images = await expandWish(ctx.sources, wish, hooks.maxWildcardTags);
    } catch (error) {
      summary.failures.push({ wish: wish.input, message: `${where}: ${wish.input}: ${errorMessage(error)}`, ...tolerated });
      continue;
    }
    for (const image of images) {
      if (hooks.signal?.aborted) break;
      if (hooks.shard !== undefined && shardOf(`${image.registry}/${image.repository}`, hooks.shard.count) !== hooks.shard.index) continue;
      try {
        const wishCtx = { ...ctx, cvmfsRepo: wish.cvmfsRepo };
        const outcomes = options.multiArch ? await convertMultiArch(wishCtx, image, options) : [await convertImage(wishCtx, image, options)];
        summary.results.push(...outcomes);
        // One image counts once: converted if any of its platforms was.
        if (outcomes.some((outcome) => outcome.status === 'converted')) summary.converted++;
        else summary.upToDate++;
      } catch (error) {
        const shown = image === wish.image ? wish.input : `${wish.input} (${wholeName(image)})`;
        summary.failures.push({ wish: wish.input, message: `${where}: ${shown}: ${errorMessage(error)}`, ...tolerated });
        // `printed`: the command prints the failure itself (ducc convert's `error:` lines), so a terminal does not show it twice.
        hooks.logger.error({ wish: wish.input, image: wholeName(image), err: errorMessage(error), printed: true }, 'conversion failed');
      }
    }
  }
  summary.failed = summary.failures.filter((failure) => !failure.tolerated).length;
  summary.tolerated = summary.failures.length - summary.failed;
  return summary;
}

/**
 * Which of `count` shares an image repository belongs to (1-based): the same answer on every worker, from
 * `<registry>/<repository>` alone, so that workers given `--shard 1/n` ... `--shard n/n` convert disjoint
 * images that together are the whole list. All tags of one repository go to one worker: their public
 * names and metadata share directories, which two publishers of a gateway must not change at once.
 */
export function shardOf(imageName: string, count: number): number {
  return (createHash('sha256').update(imageName).digest().readUInt32BE(0) % count) + 1;
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

/** "3 converted, 12 up to date, 1 failed" (", 2 failed but tolerated (ignoreErrors)" when some were). */
export function formatSummary(summary: ConversionSummary): string {
  const tolerated = summary.tolerated ? `, ${summary.tolerated} failed but tolerated (ignoreErrors)` : '';
  return `${summary.converted} converted, ${summary.upToDate} up to date, ${summary.failed} failed${tolerated}`;
}
