import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ImageSources } from '../sources/image-source.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { isWildcard, wholeName, withTag, type ImageReference } from '../wishlist/image-reference.ts';
import { DEFAULT_MAX_WILDCARD_TAGS, matchWildcardTags } from '../wishlist/wildcard.ts';
import { formatProblem, type Wish, type Wishlist } from '../wishlist/wishlist.ts';
import pLimit from 'p-limit';
import { isTolerated } from '../wishlist/ignore-errors.ts';
import { convertImage, convertMultiArch, type ConvertContext, type ConvertOptions, type ImageOutcome } from './convert-image.ts';
import { checkImage, PublishedStateCache } from './published-state.ts';

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

/** Wishes whose tags are listed at once (wildcards; other wishes need no request). */
const EXPAND_CONCURRENCY = 8;
/**
 * Images looked at ahead of the one being converted: their manifests requested and their published state
 * read, LOOKAHEAD at a time. A reconcile is mostly images that are up to date, and one after another each
 * of them was a registry round trip with nothing else to do: 1,000 tags took 3 s, most of it waiting.
 */
const LOOKAHEAD = 16;

type Step = { wish: Wish; where: string; images: ImageReference[] } | { wish: Wish; where: string; failure: unknown };

/**
 * Converts every valid wish of a wish list, one after another. A failing wish never stops the others;
 * invalid entries of the file are reported as failures too, so the caller can exit non-zero.
 *
 * Conversions run one at a time, in the order of the list; ahead of them, the manifests of the next
 * images are requested and what is published of them is read (checkImage), so that an image found up
 * to date costs no waiting of its own. convertImage looks at the published state again before it
 * converts anything.
 */
export async function convertWishlist(
  wishlist: Wishlist,
  ctx: Omit<ConvertContext, 'cvmfsRepo'>,
  options: ConvertOptions,
  hooks: { logger: Logger; maxWildcardTags?: number; signal?: AbortSignal; shard?: { index: number; count: number } },
): Promise<ConversionSummary> {
  const summary = summarizeProblems(wishlist, hooks.logger);
  // With --shard k/n, only the images of this worker's share (by registry/repository, see shardOf).
  const inShard = (image: ImageReference): boolean =>
    hooks.shard === undefined || shardOf(`${image.registry}/${image.repository}`, hooks.shard.count) === hooks.shard.index;
  const expandLimit = pLimit(EXPAND_CONCURRENCY);
  const steps: Step[] = await Promise.all(
    wishlist.wishes.map((wish) => {
      const where = `${wish.source.file}:${wish.source.line}`;
      return expandLimit(() =>
        expandWish(ctx.sources, wish, hooks.maxWildcardTags).then(
          (images): Step => ({ wish, where, images: images.filter(inShard) }),
          (failure: unknown): Step => ({ wish, where, failure }),
        ),
      );
    }),
  );
  const images = steps.flatMap((step) => ('images' in step ? step.images.map((image) => ({ wish: step.wish, image })) : []));
  const cache = new PublishedStateCache();
  const checks: Promise<Awaited<ReturnType<typeof checkImage>> | undefined>[] = [];
  const lookAhead = (from: number): void => {
    if (options.multiArch) return;
    for (let i = from; i < Math.min(images.length, from + LOOKAHEAD); i++) {
      const { wish, image } = images[i]!;
      // A failed look is not reported: convertImage is asked, and says what is wrong.
      checks[i] ??= checkImage({ ...ctx, cvmfsRepo: wish.cvmfsRepo }, image, options, cache).catch(() => undefined);
    }
  };
  let next = 0;
  for (const step of steps) {
    if (hooks.signal?.aborted) break;
    const wish = step.wish;
    // DUCC 2026: the whole input name, the wildcard tag as written, against each glob.
    const tolerated = isTolerated(wholeName(wish.image), wishlist.ignoreErrors ?? []) ? { tolerated: true } : {};
    if ('failure' in step) {
      summary.failures.push({ wish: wish.input, message: `${step.where}: ${wish.input}: ${errorMessage(step.failure)}`, ...tolerated });
      continue;
    }
    for (const image of step.images) {
      if (hooks.signal?.aborted) break;
      const index = next++;
      lookAhead(index);
      try {
        const wishCtx = { ...ctx, cvmfsRepo: wish.cvmfsRepo };
        const checked = await checks[index];
        let outcomes: ImageOutcome[];
        if (options.multiArch) outcomes = await convertMultiArch(wishCtx, image, options);
        else if (checked !== undefined && 'upToDate' in checked) outcomes = [checked.upToDate];
        else outcomes = [await convertImage(wishCtx, image, options, checked === undefined ? {} : { resolved: checked.resolved })];
        summary.results.push(...outcomes);
        // One image counts once: converted if any of its platforms was.
        if (outcomes.some((outcome) => outcome.status === 'converted')) summary.converted++;
        else summary.upToDate++;
      } catch (error) {
        const shown = image === wish.image ? wish.input : `${wish.input} (${wholeName(image)})`;
        summary.failures.push({ wish: wish.input, message: `${step.where}: ${shown}: ${errorMessage(error)}`, ...tolerated });
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
