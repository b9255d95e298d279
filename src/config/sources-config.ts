/**
 * `dogestryRemotes:` and `cacheDir:`, read by `ducc convert` (and the other one-shot commands) from their
 * `--config` file, and by `ducc serve` as part of its whole file: the dogestry remotes that wish lists
 * name as `dogestry://NAME/...`, and where the source cache lives (`<cacheDir>/sources`).
 */
import { resolve } from 'node:path';
import * as z from 'zod';
import type { DogestryRemote } from '../sources/dogestry-store.ts';
import { configError, formatProblems, problemsOfIssues, readConfigFile } from './config-file.ts';
import { boolean, describe, httpUrl, mapping, nonEmptyString } from './fields.ts';

const REMOTE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_COMPONENT = /^[A-Za-z0-9._+=,~-]+$/;
const REGION = /^[a-z0-9-]{1,64}$/;

/** Where the caches go when neither the file nor DUCC_CACHE_DIR says (the same default as `ducc serve`). */
export const DEFAULT_CACHE_DIR = './var/cache';

/** One remote: `url` is `file:///absolute/dir` or `s3://bucket[/prefix]`; `region`, `endpoint`, `forcePathStyle` for S3. */
const RemoteEntry = mapping(
  {
    name: z.string({ error: 'is required (lowercase letters, digits and dashes)' }).refine((name) => REMOTE_NAME.test(name), {
      error: (issue) => `must match ${REMOTE_NAME.source}, got ${describe(issue.input)}`,
    }),
    url: nonEmptyString(),
    region: z
      .string()
      .refine((region) => REGION.test(region), { error: (issue) => `must be an S3 region such as eu-west-1, got ${describe(issue.input)}` })
      .optional(),
    endpoint: httpUrl().optional(),
    forcePathStyle: boolean().optional(),
  },
  'must be a mapping (name, url, region, endpoint, forcePathStyle)',
).transform((entry, context): DogestryRemote => {
  const problem = (path: string, message: string) => {
    context.addIssue({ code: 'custom', path: [path], message, input: (entry as Record<string, unknown>)[path] });
    return z.NEVER;
  };
  let url: URL;
  try {
    url = new URL(entry.url);
  } catch {
    return problem('url', `must be file:///absolute/directory or s3://bucket[/prefix], got ${describe(entry.url)}`);
  }
  if (url.username !== '' || url.password !== '') return problem('url', 'must not contain credentials: S3 credentials come from AWS_* environment variables');
  if (url.search !== '' || url.hash !== '') return problem('url', 'must not contain a query or fragment: give region and endpoint as keys of their own');
  const path = decodeURIComponent(url.pathname);
  const components = path.split('/').filter((part) => part !== '');
  if (components.some((part) => part === '.' || part === '..' || !PREFIX_COMPONENT.test(part))) {
    return problem('url', `has a path component that is '.', '..' or has unusual characters: ${describe(path)}`);
  }
  if (url.protocol === 'file:') {
    if (url.host !== '') return problem('url', `must be file:///absolute/directory (no host), got ${describe(entry.url)}`);
    if (entry.region !== undefined || entry.endpoint !== undefined || entry.forcePathStyle !== undefined) {
      return problem('url', 'a directory remote takes no region, endpoint or forcePathStyle');
    }
    return { name: entry.name, kind: 'directory', path: `/${components.join('/')}` };
  }
  if (url.protocol === 's3:') {
    if (!BUCKET.test(url.hostname)) return problem('url', `names no valid bucket: ${describe(url.hostname)}`);
    return {
      name: entry.name,
      kind: 's3',
      bucket: url.hostname,
      prefix: components.length === 0 ? '' : `${components.join('/')}/`,
      region: entry.region ?? 'us-east-1',
      ...(entry.endpoint === undefined ? {} : { endpoint: entry.endpoint }),
      forcePathStyle: entry.forcePathStyle ?? entry.endpoint !== undefined,
    };
  }
  return problem('url', `must be file:///absolute/directory or s3://bucket[/prefix], got protocol ${describe(url.protocol)}`);
});

/** The `dogestryRemotes:` list: names unique (checked even when other entries have problems). */
export const DogestryRemotesSection = z.array(RemoteEntry, { error: 'must be a list of dogestry remotes (name, url, ...)' }).superRefine(
  (remotes: unknown[], context) => {
    if (!Array.isArray(remotes)) return;
    const seen = new Set<string>();
    remotes.forEach((remote, index) => {
      const name = typeof remote === 'object' && remote !== null ? (remote as { name?: unknown }).name : undefined;
      if (typeof name !== 'string') return;
      if (seen.has(name)) context.addIssue({ code: 'custom', path: [index, 'name'], message: `duplicate name ${JSON.stringify(name)}`, input: name });
      seen.add(name);
    });
  },
  { when: () => true },
);

export interface SourcesConfig {
  /** Directory of the caches; the source cache is `<cacheDir>/sources`. Absolute. */
  cacheDir: string;
  dogestryRemotes: DogestryRemote[];
}

/**
 * `dogestryRemotes` and `cacheDir` of a config file (the rest is not looked at), with DUCC_CACHE_DIR
 * overriding `cacheDir`. Without a file: no remotes, ./var/cache.
 */
export function loadSourcesConfig(file: string | undefined, env: NodeJS.ProcessEnv): SourcesConfig {
  const source = file === undefined ? undefined : readConfigFile(file);
  const raw = source?.value ?? {};
  const schema = z.object({ dogestryRemotes: DogestryRemotesSection.default([]), cacheDir: nonEmptyString().default(DEFAULT_CACHE_DIR) });
  const result = schema.safeParse({ dogestryRemotes: raw['dogestryRemotes'], cacheDir: raw['cacheDir'] });
  if (!result.success) throw configError(formatProblems(problemsOfIssues(result.error.issues), source ?? '(defaults)'));
  const override = env['DUCC_CACHE_DIR'];
  return { cacheDir: resolve(override !== undefined && override !== '' ? override : result.data.cacheDir), dogestryRemotes: result.data.dogestryRemotes };
}
