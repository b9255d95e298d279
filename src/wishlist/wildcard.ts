/** Upper bound on how many tags one wildcard wish may expand to, so a `*` on a busy repository cannot explode. */
export const DEFAULT_MAX_WILDCARD_TAGS = 500;

/**
 * Tags matching a DUCC wildcard tag: `*` matches any run of characters and everything else is literal.
 * (DUCC turned `*` into the regex `.*` without escaping the rest, so `1.2*` also matched `1x2`; we do not
 * repeat that.) Tags can only hold `[A-Za-z0-9_.-]`, so escaping `.` is all a glob needs here.
 */
export function matchWildcardTags(pattern: string, tags: readonly string[]): string[] {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const regex = new RegExp(`^${source}$`, 's');
  return tags.filter((tag) => regex.test(tag));
}
