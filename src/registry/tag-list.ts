/**
 * Listing a repository's tags (GET /v2/<name>/tags/list), page by page as the registry links them with
 * `Link: <...>; rel="next"`. Pages stay on the registry's origin, never loop, and the whole is capped.
 */
import { DuccError } from '../util/errors.ts';
import { refName } from './names.ts';
import { discard } from './transport/response-body.ts';
import type { Transport } from './transport/transport.ts';
import type { RequestSpec } from './transport/types.ts';
import type { RepositoryRef } from './types.ts';

/** A tag list is JSON like a manifest, held to the same size per page. */
const MAX_PAGE_BYTES = 4 * 1024 * 1024;
const MAX_TAG_PAGES = 10_000;
const MAX_TAGS = 100_000;

export interface ListTagsOptions {
  /** Ask for pages of this many tags (`?n=`); the registry's default page size otherwise. */
  pageSize?: number;
}

/** All tags of `ref`'s repository, in the registry's order. */
export async function listTags(transport: Transport, ref: RepositoryRef, options?: ListTagsOptions): Promise<string[]> {
  const pageSize = options?.pageSize;
  let target: string | URL = 'tags/list';
  if (pageSize !== undefined) {
    if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw new DuccError('BOT_ERR_CONFIG', `invalid tag page size ${pageSize}`);
    target = `tags/list?n=${pageSize}`;
  }
  const tags: string[] = [];
  const seen = new Set<string>();
  for (let page = 0; page < MAX_TAG_PAGES; page++) {
    const spec: RequestSpec = {
      ref,
      method: 'GET',
      target,
      headers: { accept: 'application/json' },
      scope: 'pull',
      what: `tag list of ${ref.repository}`,
    };
    const { bytes, url, link } = await transport.send(spec, async (exchange) => {
      if (exchange.response.statusCode === 404) {
        await discard(exchange.response);
        throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `repository ${ref.repository} not found on ${ref.registry}`);
      }
      await transport.ensureOk(spec, exchange);
      const body = await transport.readBody(spec, exchange.response, MAX_PAGE_BYTES);
      return { bytes: body, url: exchange.url, link: exchange.response.headers['link'] };
    });
    seen.add(url.href);
    let doc: unknown;
    try {
      doc = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new DuccError('BOT_ERR_REGISTRY', `tag list of ${refName(ref)} is not valid JSON`);
    }
    const pageTags = (doc as { tags?: unknown } | null)?.tags;
    if (pageTags !== undefined && pageTags !== null) {
      if (!Array.isArray(pageTags) || pageTags.some((t) => typeof t !== 'string')) {
        throw new DuccError('BOT_ERR_REGISTRY', `tag list of ${refName(ref)}: "tags" is not an array of strings`);
      }
      tags.push(...(pageTags as string[]));
      if (tags.length > MAX_TAGS) throw new DuccError('BOT_ERR_LIMIT', `tag list of ${refName(ref)}: more than ${MAX_TAGS} tags`);
    }
    const next = parseNextLink(link);
    if (next === undefined) return tags;
    const nextUrl = new URL(next, url);
    if (nextUrl.origin !== url.origin) {
      throw new DuccError('BOT_ERR_REGISTRY', `tag list of ${refName(ref)}: next page on another origin (${nextUrl.origin}) refused`);
    }
    if (seen.has(nextUrl.href)) {
      throw new DuccError('BOT_ERR_REGISTRY', `tag list of ${refName(ref)}: pagination loops back to ${nextUrl.pathname}${nextUrl.search}`);
    }
    target = nextUrl;
  }
  throw new DuccError('BOT_ERR_LIMIT', `tag list of ${refName(ref)}: more than ${MAX_TAG_PAGES} pages`);
}

/** The target of `Link: <url>; rel="next"` (RFC 8288), if any. */
export function parseNextLink(header: string | string[] | undefined): string | undefined {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  for (const value of values) {
    const re = /<([^>]*)>\s*((?:;\s*[^;,]*)*)/g;
    for (let m = re.exec(value); m !== null; m = re.exec(value)) {
      const params = m[2] ?? '';
      const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
      const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
      if (rels.includes('next')) return m[1];
    }
  }
  return undefined;
}
