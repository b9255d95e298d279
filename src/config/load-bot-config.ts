import * as z from 'zod';
import { parsePlatform } from '../registry/platform.ts';
import type { ForgeKind } from '../forge/events.ts';
import type { BotConfig, RegistryHookConfig, WishlistRepoConfig } from './bot-config.ts';
import { configError, formatPath, formatProblems, problemsOfIssues, readConfigFile, type ConfigFile, type ConfigProblem } from './config-file.ts';
import { boolean, checkHttpUrl, describe, envName, httpUrl, isRecord, mapping, matching, nonEmptyString, numberFrom } from './fields.ts';
import { PublisherSection } from './publisher-config.ts';
import { DogestryRemotesSection } from './sources-config.ts';
import { postgresUrlProblem, STATE_DEFAULTS, StateSection } from './state-config.ts';
import { parseDuration } from '../gc/format.ts';

/** Defaults of `ducc serve`; documented in config/ducc.example.yaml. */
export const BOT_DEFAULTS = {
  listen: { host: '127.0.0.1', port: 8080 },
  statePath: './var/ducc-gitops.db',
  cacheDir: './var/cache',
  githubSecretEnv: 'DUCC_GITHUB_WEBHOOK_SECRET',
  gitlabTokenEnv: 'DUCC_GITLAB_WEBHOOK_TOKEN',
  reconcileMinutes: 15,
  registryDebounceSeconds: 10,
  maxQueuedJobs: 1000,
  statusContext: 'ducc-gitops',
  githubApiUrl: 'https://api.github.com',
  branch: 'main',
  paths: ['recipe.yaml'],
  tokenEnv: { github: 'DUCC_GITHUB_TOKEN', gitlab: 'DUCC_GITLAB_TOKEN' } satisfies Record<ForgeKind, string>,
} as const;

/** Short names of wish lists and registry hooks (they appear in URLs, logs and the state database). */
export const CONFIG_NAME_PATTERN = /^[a-z0-9][a-z0-9-]*$/;
/** Keys that would hold a secret; allowed only as `<key>Env` naming an environment variable. */
const SECRET_KEY_PATTERN = /secret|token|password|passwd|credential|api[-_]?key|private[-_]?key/i;
/** Same rule as the wish-list clone (src/bot/wishlist-repo.ts), so a configured branch is always usable. */
const BRANCH_PATTERN = /^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$/;
const GITHUB_PROJECT = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
const GITLAB_PROJECT = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)+$/;
const REGISTRY_HOOK_KINDS = ['distribution', 'harbor', 'dockerhub', 'quay', 's3'] as const;
/** A refinement that runs even when other keys of the same mapping have problems (all problems are reported). */
const ALWAYS = { when: () => true };

/** A required short name (CONFIG_NAME_PATTERN, at most 64 characters). */
function shortName() {
  return z
    .string({ error: 'is required (lowercase letters, digits and dashes, e.g. "unpacked")' })
    .min(1, { error: 'is required (lowercase letters, digits and dashes, e.g. "unpacked")', abort: true })
    .refine((name) => CONFIG_NAME_PATTERN.test(name) && name.length <= 64, {
      error: (issue) => `must match ${CONFIG_NAME_PATTERN.source} (at most 64 characters), got ${describe(issue.input)}`,
    });
}

/** A list of mappings with unique `name`s; a repeated name is a problem at its second place. */
function namedList<Item extends z.ZodType>(item: Item, list: string, notAList: string) {
  return z.array(item, { error: notAList }).superRefine((items: unknown[], context) => {
    if (!Array.isArray(items)) return;
    const seen = new Map<string, number>();
    items.forEach((entry, index) => {
      const name = isRecord(entry) ? entry['name'] : undefined;
      if (typeof name !== 'string' || !CONFIG_NAME_PATTERN.test(name) || name.length > 64) return;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, index);
      else context.addIssue({ code: 'custom', path: [index, 'name'], message: `duplicate name ${JSON.stringify(name)} (also ${list}[${first}])`, input: name });
    });
  }, ALWAYS);
}

/** Wish-list files in the repository: one path or a non-empty list, each relative and inside it. */
function wishlistPaths() {
  const notAList = 'must be a non-empty list of wish-list files, relative to the repository root';
  const notRelative = (issue: { input?: unknown }) => `must be a relative path inside the repository (no leading /, no ..), got ${describe(issue.input)}`;
  const path = z
    .string({ error: notRelative })
    .refine(
      (item) =>
        item !== '' &&
        !item.startsWith('/') &&
        !item.includes('\\') &&
        !item.split('/').some((part) => part === '..' || part === '') &&
        !/[\0-\x1f]/.test(item),
      { error: notRelative },
    );
  return z.preprocess((value) => (typeof value === 'string' ? [value] : value), z.array(path, { error: notAList }).min(1, { error: notAList }));
}

/** What `git clone` may use: https, http, ssh, file, git, or scp-like `user@host:path`, without credentials. */
function cloneUrl() {
  return nonEmptyString().transform((text, context) => {
    const problem = (message: string) => {
      context.addIssue({ code: 'custom', message, input: text });
      return z.NEVER;
    };
    // scp-like ssh syntax: git@host:group/project.git
    if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\\][^\s]*$/.test(text)) return text;
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return problem(`must be an https://, http://, ssh://, file:// or user@host:path URL, got ${JSON.stringify(text)}`);
    }
    if (!['https:', 'http:', 'ssh:', 'file:', 'git:'].includes(url.protocol)) return problem(`unsupported protocol ${JSON.stringify(url.protocol)}`);
    if (url.password !== '' || ((url.protocol === 'https:' || url.protocol === 'http:') && url.username !== '')) {
      return problem("must not contain credentials: a token in the URL is a secret in the file; configure git's credential helper instead");
    }
    return text;
  });
}

/** One wish-list repository. `project` and `apiUrl` are checked against `forge` (which may itself be wrong: then as GitHub's). */
const WishlistEntry = mapping(
  {
    name: shortName(),
    forge: z.enum(['github', 'gitlab'], {
      error: (issue) => `is required: 'github' or 'gitlab'${issue.input === undefined ? '' : `, got ${JSON.stringify(issue.input)}`}`,
    }),
    apiUrl: httpUrl().optional(),
    /** Checked below, with the forge. */
    project: z.unknown(),
    cloneUrl: cloneUrl().optional(),
    branch: matching(BRANCH_PATTERN).default(BOT_DEFAULTS.branch),
    paths: wishlistPaths().default([...BOT_DEFAULTS.paths]),
    tokenEnv: envName().optional(),
    botUser: nonEmptyString().optional(),
    allowForks: boolean().default(false),
  },
  'must be a mapping (name, forge, project, ...)',
)
  .superRefine((entry: unknown, context) => {
    if (!isRecord(entry)) return;
    const forge: ForgeKind = entry['forge'] === 'gitlab' ? 'gitlab' : 'github';
    const project = entry['project'];
    const problem = (path: string, message: string) => context.addIssue({ code: 'custom', path: [path], message, input: entry[path] });
    if (typeof project !== 'string' || project === '') {
      problem('project', `is required: ${forge === 'github' ? 'owner/name' : 'group/project (path with namespace)'}`);
    } else if (!(forge === 'github' ? GITHUB_PROJECT : GITLAB_PROJECT).test(project) || project.split('/').some((part) => part === '.' || part === '..')) {
      problem('project', `must be ${forge === 'github' ? 'owner/name' : 'group[/subgroup...]/project'}, got ${JSON.stringify(project)}`);
    }
    if (entry['forge'] === 'gitlab' && entry['apiUrl'] === undefined) problem('apiUrl', 'is required for GitLab (e.g. https://gitlab.cern.ch)');
  }, ALWAYS)
  .transform((entry): WishlistRepoConfig => {
    const project = entry.project as string;
    const apiUrl = entry.apiUrl ?? BOT_DEFAULTS.githubApiUrl;
    return {
      name: entry.name,
      forge: entry.forge,
      apiUrl,
      project,
      cloneUrl: entry.cloneUrl ?? defaultCloneUrl(entry.forge, apiUrl, project),
      branch: entry.branch,
      paths: entry.paths,
      tokenEnv: entry.tokenEnv ?? BOT_DEFAULTS.tokenEnv[entry.forge],
      ...(entry.botUser === undefined ? {} : { botUser: entry.botUser }),
      allowForks: entry.allowForks,
    };
  });

const RegistryHookEntry = mapping(
  {
    name: shortName(),
    kind: z.enum(REGISTRY_HOOK_KINDS, {
      error: (issue) => `is required: one of ${REGISTRY_HOOK_KINDS.join(', ')}${issue.input === undefined ? '' : `; got ${JSON.stringify(issue.input)}`}`,
    }),
    secretEnv: envName().optional(),
    /** Kind s3: the name of an S3 remote of dogestryRemotes. */
    remote: nonEmptyString().optional(),
  },
  'must be a mapping (name, kind, secretEnv; remote for kind s3)',
).transform((hook): RegistryHookConfig & { remoteName?: string } => ({
  name: hook.name,
  kind: hook.kind,
  secretEnv: hook.secretEnv ?? `DUCC_REGISTRY_${hook.name.toUpperCase().replace(/-/g, '_')}_SECRET`,
  ...(hook.remote === undefined ? {} : { remoteName: hook.remote }),
}));

/** Kind s3 hooks get their remote's bucket and prefix; a missing, unknown or non-S3 remote is a problem of the hook. */
function resolveS3Hooks(config: z.output<typeof BotConfigFile>): { hooks: RegistryHookConfig[]; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const hooks = config.registryHooks.map((entry, index): RegistryHookConfig => {
    const { remoteName, ...hook } = entry;
    if (hook.kind !== 's3') {
      if (remoteName !== undefined) problems.push({ path: ['registryHooks', index, 'remote'], message: 'is only for kind s3' });
      return hook;
    }
    const remote = (config.dogestryRemotes ?? []).find((candidate) => candidate.name === remoteName);
    if (remote === undefined || remote.kind !== 's3') {
      const known = (config.dogestryRemotes ?? []).filter((candidate) => candidate.kind === 's3').map((candidate) => candidate.name);
      problems.push({
        path: ['registryHooks', index, remoteName === undefined ? 'kind' : 'remote'],
        message: `kind s3 needs 'remote': the name of an S3 remote of dogestryRemotes (${known.length === 0 ? 'none is configured' : known.join(', ')})${remoteName === undefined ? '' : `, got ${JSON.stringify(remoteName)}`}`,
      });
      return hook;
    }
    return { ...hook, remote: { name: remote.name, bucket: remote.bucket, prefix: remote.prefix } };
  });
  return { hooks, problems };
}

const ConvertSection = mapping(
  {
    skipThinImage: boolean().default(false),
    multiArch: boolean().default(false),
    platform: nonEmptyString()
      .superRefine((platform, context) => {
        try {
          parsePlatform(platform);
        } catch (error) {
          context.addIssue({ code: 'custom', message: (error as Error).message, input: platform });
        }
      })
      .optional(),
  },
  'must be a mapping (skipThinImage, multiArch, platform)',
);

/** `gc:` (see GcScheduleConfig). */
const GcSection = mapping(
  {
    intervalHours: numberFrom(0, 24 * 366).default(0),
    // A bare number is days, as `ducc gc --grace-period`.
    gracePeriod: z
      .preprocess(
        (value) => (typeof value === 'number' ? String(value) : value),
        nonEmptyString().superRefine((text, context) => {
          try {
            parseDuration(text, 'gracePeriod');
          } catch (error) {
            context.addIssue({ code: 'custom', message: (error as Error).message, input: text });
          }
        }),
      )
      .default('7d'),
    cvmfsGc: boolean().default(false),
  },
  'must be a mapping (intervalHours, gracePeriod, cvmfsGc)',
);

/** The whole file of `ducc serve`; config/ducc.example.yaml documents every key. */
const BotConfigFile = mapping(
  {
    listen: mapping(
      {
        host: matching(/^(?:[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+)$/).default(BOT_DEFAULTS.listen.host),
        port: numberFrom(0, 65535, { whole: true }).default(BOT_DEFAULTS.listen.port),
      },
      'must be a mapping with host and port',
    ).prefault({}),
    publicUrl: httpUrl().optional(),
    statePath: nonEmptyString().default(BOT_DEFAULTS.statePath),
    state: StateSection.prefault({}),
    cacheDir: nonEmptyString().default(BOT_DEFAULTS.cacheDir),
    publisher: PublisherSection.prefault({}),
    dogestryRemotes: DogestryRemotesSection.optional(),
    wishlists: namedList(WishlistEntry, 'wishlists', 'must be a list of wish-list repositories').default([]),
    registryHooks: namedList(RegistryHookEntry, 'registryHooks', 'must be a list of registry webhook endpoints').default([]),
    githubSecretEnv: envName().default(BOT_DEFAULTS.githubSecretEnv),
    gitlabTokenEnv: envName().default(BOT_DEFAULTS.gitlabTokenEnv),
    reconcileMinutes: numberFrom(0, 7 * 24 * 60, { whole: true }).default(BOT_DEFAULTS.reconcileMinutes),
    registryDebounceSeconds: numberFrom(0, 3600).default(BOT_DEFAULTS.registryDebounceSeconds),
    maxQueuedJobs: numberFrom(1, 1_000_000, { whole: true }).default(BOT_DEFAULTS.maxQueuedJobs),
    statusContext: matching(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$/).default(BOT_DEFAULTS.statusContext),
    convert: ConvertSection.prefault({}),
    gc: GcSection.prefault({}),
  },
  'must be a mapping of keys to values',
);

/**
 * Loads the configuration of `ducc serve`: the YAML file named by `file` (`--config`) or `DUCC_CONFIG`,
 * then the environment overrides `DUCC_LISTEN` (host:port), `DUCC_PUBLIC_URL`, `DUCC_STATE_PATH`,
 * `DUCC_STATE_URL` (a PostgreSQL URL: the `postgres` state), `DUCC_CACHE_DIR` and `DUCC_RECONCILE_MINUTES`. Without a file, the defaults apply.
 *
 * Everything is validated and ALL problems are reported together in one DuccError('BOT_ERR_CONFIG'),
 * one `file: key: problem (line, column)` line each. Secrets are refused in the file: a key named like
 * `secret`, `token` or `password` must be `<key>Env` and hold the name of an environment variable.
 *
 * Relative paths (statePath, cacheDir, publisher.root) are relative to the working directory, as for
 * `ducc convert`.
 */
export function loadBotConfig(options: { file?: string; env: NodeJS.ProcessEnv }): BotConfig {
  const { env } = options;
  const file = options.file ?? nonEmpty(env['DUCC_CONFIG']);
  const source: ConfigFile | undefined = file === undefined ? undefined : readConfigFile(file);
  const raw = source?.value ?? {};

  const secrets = literalSecrets(raw, []);
  const secretPaths = new Set(secrets.map((problem) => formatPath(problem.path)));
  const parsed = BotConfigFile.safeParse(raw);
  const s3Hooks = parsed.success ? resolveS3Hooks(parsed.data) : undefined;
  const fileProblems = [...secrets, ...(parsed.success ? (s3Hooks?.problems ?? []) : problemsOfIssues(parsed.error.issues))].filter(
    // A literal secret is reported once, as such, and not again as an unknown key.
    (problem, index) => index < secrets.length || !secretPaths.has(formatPath(problem.path)),
  );
  const problems = formatProblems(fileProblems, source ?? '(defaults)');
  const overrides = environmentOverrides(env, problems);

  if (problems.length > 0 || !parsed.success) throw configError(problems);
  const config: BotConfig = { ...parsed.data, registryHooks: s3Hooks!.hooks };
  if (overrides.stateUrl !== undefined) {
    // The environment's URL wins; the section's other keys (or their defaults) stay.
    const { passwordEnv, leaseSeconds } = config.state?.kind === 'postgres' ? config.state : STATE_DEFAULTS;
    config.state = { kind: 'postgres', url: overrides.stateUrl, passwordEnv, leaseSeconds };
  }
  delete overrides.stateUrl;
  return { ...config, ...overrides, listen: { ...config.listen, ...overrides.listen } };
}

/**
 * Keys that would hold a secret, anywhere in the file: a secret never goes in the config file. The
 * values are never echoed.
 */
function literalSecrets(value: unknown, path: PropertyKey[]): ConfigProblem[] {
  if (Array.isArray(value)) return value.flatMap((item, index) => literalSecrets(item, [...path, index]));
  if (!isRecord(value)) return [];
  return Object.entries(value).flatMap(([key, child]) => {
    if (!SECRET_KEY_PATTERN.test(key) || key.endsWith('Env')) return literalSecrets(child, [...path, key]);
    if (child === '') return [];
    return [
      {
        path: [...path, key],
        message:
          'looks like a literal secret: secrets never go in the config file; set it in an environment variable (VAR, or VAR_FILE naming a file) and give the variable NAME in the matching *Env key (githubSecretEnv, gitlabTokenEnv, wishlists[].tokenEnv, registryHooks[].secretEnv)',
      },
    ];
  });
}

type Overrides = Partial<Omit<BotConfig, 'listen'>> & { listen?: { host?: string; port: number }; stateUrl?: string };

/** The DUCC_* environment overrides of the file; their problems are added to `problems`. */
function environmentOverrides(env: NodeJS.ProcessEnv, problems: string[]): Overrides {
  const problem = (name: string, text: string) => problems.push(`environment: ${name}: ${text}`);
  const overrides: Overrides = {};
  const listen = nonEmpty(env['DUCC_LISTEN']);
  if (listen !== undefined) {
    const parsed = parseHostPort(listen);
    if (parsed === undefined) problem('DUCC_LISTEN', `must be host:port (e.g. 127.0.0.1:8080 or [::1]:8080), got ${JSON.stringify(listen)}`);
    else overrides.listen = parsed;
  }
  const publicUrl = nonEmpty(env['DUCC_PUBLIC_URL']);
  if (publicUrl !== undefined) {
    const checked = checkHttpUrl(publicUrl);
    if (checked.startsWith('!')) problem('DUCC_PUBLIC_URL', checked.slice(1));
    else overrides.publicUrl = checked;
  }
  const statePath = nonEmpty(env['DUCC_STATE_PATH']);
  if (statePath !== undefined) overrides.statePath = statePath;
  // May carry the password (the environment may hold secrets): never echoed.
  const stateUrl = nonEmpty(env['DUCC_STATE_URL']);
  if (stateUrl !== undefined) {
    const urlProblem = postgresUrlProblem(stateUrl, { passwordAllowed: true });
    if (urlProblem !== undefined) problem('DUCC_STATE_URL', urlProblem);
    else overrides.stateUrl = stateUrl;
  }
  const cacheDir = nonEmpty(env['DUCC_CACHE_DIR']);
  if (cacheDir !== undefined) overrides.cacheDir = cacheDir;
  const reconcile = nonEmpty(env['DUCC_RECONCILE_MINUTES']);
  if (reconcile !== undefined) {
    if (!/^\d{1,6}$/.test(reconcile)) problem('DUCC_RECONCILE_MINUTES', `must be a whole number of minutes (0 disables), got ${JSON.stringify(reconcile)}`);
    else overrides.reconcileMinutes = Number(reconcile);
  }
  return overrides;
}

/** `host:port`, `[v6]:port` or `:port`. */
function parseHostPort(value: string): { host?: string; port: number } | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*))?:(\d{1,5})$/.exec(value);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  const host = match[1] ?? match[2];
  return { ...(host ? { host } : {}), port };
}

/** Where `git clone` goes when `cloneUrl` is not given: the forge's web host, `<project>.git`. */
function defaultCloneUrl(forge: ForgeKind, apiUrl: string, project: string): string {
  const url = new URL(apiUrl);
  if (forge === 'github') {
    // api.github.com → github.com; GitHub Enterprise: https://ghe.example.org/api/v3 → https://ghe.example.org
    if (url.hostname === 'api.github.com') return `https://github.com/${project}.git`;
    return `${url.origin}/${project}.git`;
  }
  // GitLab: the API URL is the instance URL, possibly with a path prefix (and maybe /api/v4).
  const base = apiUrl.replace(/\/api\/v4\/?$/, '').replace(/\/+$/, '');
  return `${base}/${project}.git`;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
