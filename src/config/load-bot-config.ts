import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { DuccError } from '../util/errors.ts';
import { parsePlatform } from '../registry/platform.ts';
import type { ForgeKind } from '../forge/events.ts';
import type { BotConfig, RegistryHookConfig, WishlistRepoConfig } from './bot-config.ts';
import { DEFAULT_PUBLISHER, type PublisherConfig } from './publisher-config.ts';

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
/** What an `*Env` key must hold: the name of an environment variable, never the secret itself. */
const ENV_NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;
/** Keys that would hold a secret; allowed only as `<key>Env` naming an environment variable. */
const SECRET_KEY_PATTERN = /secret|token|password|passwd|credential|api[-_]?key|private[-_]?key/i;
/** Same rule as the wish-list clone (src/bot/wishlist-repo.ts), so a configured branch is always usable. */
const BRANCH_PATTERN = /^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$/;
const GITHUB_PROJECT = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
const GITLAB_PROJECT = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)+$/;
const REGISTRY_HOOK_KINDS = ['distribution', 'harbor', 'dockerhub', 'quay'] as const;

const TOP_LEVEL_KEYS = [
  'listen',
  'publicUrl',
  'statePath',
  'cacheDir',
  'publisher',
  'wishlists',
  'registryHooks',
  'githubSecretEnv',
  'gitlabTokenEnv',
  'reconcileMinutes',
  'registryDebounceSeconds',
  'maxQueuedJobs',
  'statusContext',
  'convert',
];
const WISHLIST_KEYS = ['name', 'forge', 'apiUrl', 'project', 'cloneUrl', 'branch', 'paths', 'tokenEnv', 'botUser', 'allowForks'];
const REGISTRY_HOOK_KEYS = ['name', 'kind', 'secretEnv'];

/**
 * Loads the configuration of `ducc serve`: the YAML file named by `file` (`--config`) or `DUCC_CONFIG`,
 * then the environment overrides `DUCC_LISTEN` (host:port), `DUCC_PUBLIC_URL`, `DUCC_STATE_PATH`,
 * `DUCC_CACHE_DIR` and `DUCC_RECONCILE_MINUTES`. Without a file, the defaults apply.
 *
 * Everything is validated and ALL problems are reported together in one DuccError('BOT_ERR_CONFIG'),
 * one `file: key: problem` line each. Secrets are refused in the file: a key named like `secret`,
 * `token` or `password` must be `<key>Env` and hold the name of an environment variable.
 *
 * Relative paths (statePath, cacheDir, publisher.root) are relative to the working directory, as for
 * `ducc convert`.
 */
export function loadBotConfig(options: { file?: string; env: NodeJS.ProcessEnv }): BotConfig {
  const { env } = options;
  const file = options.file ?? nonEmpty(env['DUCC_CONFIG']);
  const problems: string[] = [];
  let raw: Record<string, unknown> = {};
  const where = file ?? '(defaults)';

  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new DuccError('BOT_ERR_CONFIG', `cannot read config ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      const lines = doc.errors.map((error) => `${file}: ${firstLine(error.message)}`);
      throw new DuccError('BOT_ERR_CONFIG', `invalid bot configuration (${lines.length} problem${lines.length === 1 ? '' : 's'}):\n  ${lines.join('\n  ')}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) raw = {};
    else if (isRecord(value)) raw = value;
    else problems.push(`${file}: (top level): must be a mapping of keys to values`);
  }

  const check = new Checker(where, problems);
  check.literalSecrets(raw, '');
  const config = check.botConfig(raw);
  applyEnvironment(config, env, problems);

  if (problems.length > 0) {
    throw new DuccError(
      'BOT_ERR_CONFIG',
      `invalid bot configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`,
    );
  }
  return config;
}

function applyEnvironment(config: BotConfig, env: NodeJS.ProcessEnv, problems: string[]): void {
  const problem = (name: string, text: string) => problems.push(`environment: ${name}: ${text}`);
  const listen = nonEmpty(env['DUCC_LISTEN']);
  if (listen !== undefined) {
    const parsed = parseHostPort(listen);
    if (parsed === undefined) problem('DUCC_LISTEN', `must be host:port (e.g. 127.0.0.1:8080 or [::1]:8080), got ${JSON.stringify(listen)}`);
    else config.listen = { host: parsed.host ?? config.listen.host, port: parsed.port };
  }
  const publicUrl = nonEmpty(env['DUCC_PUBLIC_URL']);
  if (publicUrl !== undefined) {
    const checked = checkHttpUrl(publicUrl);
    if (checked.startsWith('!')) problem('DUCC_PUBLIC_URL', checked.slice(1));
    else config.publicUrl = checked;
  }
  const statePath = nonEmpty(env['DUCC_STATE_PATH']);
  if (statePath !== undefined) config.statePath = statePath;
  const cacheDir = nonEmpty(env['DUCC_CACHE_DIR']);
  if (cacheDir !== undefined) config.cacheDir = cacheDir;
  const reconcile = nonEmpty(env['DUCC_RECONCILE_MINUTES']);
  if (reconcile !== undefined) {
    if (!/^\d{1,6}$/.test(reconcile)) problem('DUCC_RECONCILE_MINUTES', `must be a whole number of minutes (0 disables), got ${JSON.stringify(reconcile)}`);
    else config.reconcileMinutes = Number(reconcile);
  }
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

/**
 * Returns the URL without a trailing slash, or `!problem`. Only http(s), without user or password
 * (a token in a URL is a secret in the file), query or fragment.
 */
function checkHttpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `!must be an absolute http(s) URL, got ${JSON.stringify(value)}`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `!must be an http(s) URL, got ${JSON.stringify(url.protocol)}`;
  if (url.username !== '' || url.password !== '') return '!must not contain a user or password: give credentials through the environment';
  if (url.search !== '' || url.hash !== '') return '!must not contain a query or fragment';
  return value.replace(/\/+$/, '');
}

/** Collects problems with a location prefix; every reader returns a usable value even on error. */
class Checker {
  private readonly where: string;
  private readonly problems: string[];
  /** Paths already reported as literal secrets (not reported again as unknown keys). */
  private readonly secretPaths = new Set<string>();

  constructor(where: string, problems: string[]) {
    this.where = where;
    this.problems = problems;
  }

  problem(path: string, text: string): void {
    this.problems.push(`${this.where}: ${path}: ${text}`);
  }

  /**
   * Finds keys that would hold a secret (anywhere in the file) and reports them. Returns their paths,
   * so that they are not reported a second time as unknown keys.
   */
  literalSecrets(value: unknown, path: string, found = this.secretPaths): Set<string> {
    if (Array.isArray(value)) {
      value.forEach((item, index) => this.literalSecrets(item, `${path}[${index}]`, found));
    } else if (isRecord(value)) {
      for (const [key, child] of Object.entries(value)) {
        const childPath = path === '' ? key : `${path}.${key}`;
        if (SECRET_KEY_PATTERN.test(key) && !key.endsWith('Env')) {
          if (child !== null && child !== undefined && child !== '') {
            found.add(childPath);
            this.problem(
              childPath,
              'looks like a literal secret: secrets never go in the config file; set it in an environment variable (VAR, or VAR_FILE naming a file) and give the variable NAME in the matching *Env key (githubSecretEnv, gitlabTokenEnv, wishlists[].tokenEnv, registryHooks[].secretEnv)',
            );
          }
          continue;
        }
        this.literalSecrets(child, childPath, found);
      }
    }
    return found;
  }

  botConfig(raw: Record<string, unknown>): BotConfig {
    this.unknownKeys(raw, TOP_LEVEL_KEYS, '');
    const listen = this.listen(raw['listen']);
    const publicUrl = this.optional(raw, 'publicUrl', '', (value, path) => this.httpUrl(value, path));
    const wishlists = this.wishlists(raw['wishlists']);
    const registryHooks = this.registryHooks(raw['registryHooks']);
    const config: BotConfig = {
      listen,
      ...(publicUrl !== undefined ? { publicUrl } : {}),
      statePath: this.string(raw, 'statePath', '', BOT_DEFAULTS.statePath),
      cacheDir: this.string(raw, 'cacheDir', '', BOT_DEFAULTS.cacheDir),
      publisher: this.publisher(raw['publisher']),
      wishlists,
      registryHooks,
      githubSecretEnv: this.envName(raw, 'githubSecretEnv', '', BOT_DEFAULTS.githubSecretEnv),
      gitlabTokenEnv: this.envName(raw, 'gitlabTokenEnv', '', BOT_DEFAULTS.gitlabTokenEnv),
      reconcileMinutes: this.number(raw, 'reconcileMinutes', '', BOT_DEFAULTS.reconcileMinutes, { min: 0, max: 7 * 24 * 60, integer: true }),
      registryDebounceSeconds: this.number(raw, 'registryDebounceSeconds', '', BOT_DEFAULTS.registryDebounceSeconds, { min: 0, max: 3600 }),
      maxQueuedJobs: this.number(raw, 'maxQueuedJobs', '', BOT_DEFAULTS.maxQueuedJobs, { min: 1, max: 1_000_000, integer: true }),
      statusContext: this.string(raw, 'statusContext', '', BOT_DEFAULTS.statusContext, /^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$/),
      convert: this.convert(raw['convert']),
    };
    return config;
  }

  private listen(value: unknown): BotConfig['listen'] {
    if (value === undefined || value === null) return { ...BOT_DEFAULTS.listen };
    if (!isRecord(value)) {
      this.problem('listen', 'must be a mapping with host and port');
      return { ...BOT_DEFAULTS.listen };
    }
    this.unknownKeys(value, ['host', 'port'], 'listen');
    return {
      host: this.string(value, 'host', 'listen', BOT_DEFAULTS.listen.host, /^(?:[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+)$/),
      port: this.number(value, 'port', 'listen', BOT_DEFAULTS.listen.port, { min: 0, max: 65535, integer: true }),
    };
  }

  private publisher(value: unknown): PublisherConfig {
    if (value === undefined || value === null) return DEFAULT_PUBLISHER;
    if (!isRecord(value)) {
      this.problem('publisher', "must be a mapping with kind 'directory' or 'cvmfs'");
      return DEFAULT_PUBLISHER;
    }
    const kind = value['kind'] ?? 'directory';
    if (kind === 'directory') {
      this.unknownKeys(value, ['kind', 'root'], 'publisher');
      return { kind: 'directory', root: this.string(value, 'root', 'publisher', DEFAULT_PUBLISHER.root) };
    }
    if (kind === 'cvmfs') {
      this.unknownKeys(value, ['kind', 'mountRoot', 'cvmfsServer'], 'publisher');
      const cvmfsServer = this.optional(value, 'cvmfsServer', 'publisher', (v, p) => this.nonEmptyString(v, p));
      return { kind: 'cvmfs', mountRoot: this.string(value, 'mountRoot', 'publisher', '/cvmfs'), ...(cvmfsServer !== undefined ? { cvmfsServer } : {}) };
    }
    this.problem('publisher.kind', `must be 'directory' or 'cvmfs', got ${JSON.stringify(kind)}`);
    return DEFAULT_PUBLISHER;
  }

  private convert(value: unknown): BotConfig['convert'] {
    const defaults = { skipThinImage: false, multiArch: false };
    if (value === undefined || value === null) return defaults;
    if (!isRecord(value)) {
      this.problem('convert', 'must be a mapping (skipThinImage, multiArch, platform)');
      return defaults;
    }
    this.unknownKeys(value, ['skipThinImage', 'multiArch', 'platform'], 'convert');
    const platform = this.optional(value, 'platform', 'convert', (v, p) => {
      const text = this.nonEmptyString(v, p);
      if (text === undefined) return undefined;
      try {
        parsePlatform(text);
        return text;
      } catch (error) {
        this.problem(p, (error as Error).message);
        return undefined;
      }
    });
    return {
      skipThinImage: this.boolean(value, 'skipThinImage', 'convert', false),
      multiArch: this.boolean(value, 'multiArch', 'convert', false),
      ...(platform !== undefined ? { platform } : {}),
    };
  }

  private wishlists(value: unknown): WishlistRepoConfig[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.problem('wishlists', 'must be a list of wish-list repositories');
      return [];
    }
    const result: WishlistRepoConfig[] = [];
    const names = new Map<string, number>();
    value.forEach((entry, index) => {
      const path = `wishlists[${index}]`;
      if (!isRecord(entry)) {
        this.problem(path, 'must be a mapping (name, forge, project, ...)');
        return;
      }
      this.unknownKeys(entry, WISHLIST_KEYS, path);
      const name = this.name(entry, path, names, 'wishlists');
      const forgeValue = entry['forge'];
      let forge: ForgeKind = 'github';
      if (forgeValue === 'github' || forgeValue === 'gitlab') forge = forgeValue;
      else this.problem(`${path}.forge`, `is required: 'github' or 'gitlab'${forgeValue === undefined ? '' : `, got ${JSON.stringify(forgeValue)}`}`);

      let apiUrl: string | undefined;
      if (entry['apiUrl'] === undefined || entry['apiUrl'] === null) {
        if (forge === 'github') apiUrl = BOT_DEFAULTS.githubApiUrl;
        else if (forgeValue === 'gitlab') this.problem(`${path}.apiUrl`, 'is required for GitLab (e.g. https://gitlab.cern.ch)');
      } else {
        apiUrl = this.httpUrl(entry['apiUrl'], `${path}.apiUrl`);
      }

      const projectValue = entry['project'];
      let project = '';
      if (typeof projectValue !== 'string' || projectValue === '') {
        this.problem(`${path}.project`, `is required: ${forge === 'github' ? 'owner/name' : 'group/project (path with namespace)'}`);
      } else if (
        !(forge === 'github' ? GITHUB_PROJECT : GITLAB_PROJECT).test(projectValue) ||
        projectValue.split('/').some((part) => part === '.' || part === '..')
      ) {
        this.problem(`${path}.project`, `must be ${forge === 'github' ? 'owner/name' : 'group[/subgroup...]/project'}, got ${JSON.stringify(projectValue)}`);
      } else {
        project = projectValue;
      }

      let cloneUrl = '';
      if (entry['cloneUrl'] === undefined || entry['cloneUrl'] === null) {
        if (apiUrl !== undefined && project !== '') cloneUrl = defaultCloneUrl(forge, apiUrl, project);
      } else {
        cloneUrl = this.cloneUrl(entry['cloneUrl'], `${path}.cloneUrl`) ?? '';
      }

      const botUser = this.optional(entry, 'botUser', path, (v, p) => this.nonEmptyString(v, p));
      result.push({
        name,
        forge,
        apiUrl: apiUrl ?? '',
        project,
        cloneUrl,
        branch: this.string(entry, 'branch', path, BOT_DEFAULTS.branch, BRANCH_PATTERN),
        paths: this.paths(entry['paths'], `${path}.paths`),
        tokenEnv: this.envName(entry, 'tokenEnv', path, BOT_DEFAULTS.tokenEnv[forge]),
        ...(botUser !== undefined ? { botUser } : {}),
        allowForks: this.boolean(entry, 'allowForks', path, false),
      });
    });
    return result;
  }

  private registryHooks(value: unknown): RegistryHookConfig[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.problem('registryHooks', 'must be a list of registry webhook endpoints');
      return [];
    }
    const result: RegistryHookConfig[] = [];
    const names = new Map<string, number>();
    value.forEach((entry, index) => {
      const path = `registryHooks[${index}]`;
      if (!isRecord(entry)) {
        this.problem(path, 'must be a mapping (name, kind, secretEnv)');
        return;
      }
      this.unknownKeys(entry, REGISTRY_HOOK_KEYS, path);
      const name = this.name(entry, path, names, 'registryHooks');
      const kindValue = entry['kind'];
      let kind: RegistryHookConfig['kind'] = 'distribution';
      if ((REGISTRY_HOOK_KINDS as readonly unknown[]).includes(kindValue)) kind = kindValue as RegistryHookConfig['kind'];
      else
        this.problem(
          `${path}.kind`,
          `is required: one of ${REGISTRY_HOOK_KINDS.join(', ')}${kindValue === undefined ? '' : `; got ${JSON.stringify(kindValue)}`}`,
        );
      const defaultEnv = `DUCC_REGISTRY_${(name || 'hook').toUpperCase().replace(/-/g, '_')}_SECRET`;
      result.push({ name, kind, secretEnv: this.envName(entry, 'secretEnv', path, defaultEnv) });
    });
    return result;
  }

  /** A required, unique short name. */
  private name(entry: Record<string, unknown>, path: string, seen: Map<string, number>, list: string): string {
    const value = entry['name'];
    if (typeof value !== 'string' || value === '') {
      this.problem(`${path}.name`, 'is required (lowercase letters, digits and dashes, e.g. "unpacked")');
      return '';
    }
    if (!CONFIG_NAME_PATTERN.test(value) || value.length > 64) {
      this.problem(`${path}.name`, `must match ${CONFIG_NAME_PATTERN.source} (at most 64 characters), got ${JSON.stringify(value)}`);
      return value;
    }
    const first = seen.get(value);
    if (first !== undefined) this.problem(`${path}.name`, `duplicate name ${JSON.stringify(value)} (also ${list}[${first}])`);
    else seen.set(value, Number(path.slice(path.indexOf('[') + 1, -1)));
    return value;
  }

  private paths(value: unknown, path: string): string[] {
    if (value === undefined || value === null) return [...BOT_DEFAULTS.paths];
    const list = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(list) || list.length === 0) {
      this.problem(path, 'must be a non-empty list of wish-list files, relative to the repository root');
      return [...BOT_DEFAULTS.paths];
    }
    const result: string[] = [];
    list.forEach((item, index) => {
      if (
        typeof item !== 'string' ||
        item === '' ||
        item.startsWith('/') ||
        item.includes('\\') ||
        item.split('/').some((part) => part === '..' || part === '') ||
        /[\0-\x1f]/.test(item)
      ) {
        this.problem(`${path}[${index}]`, `must be a relative path inside the repository (no leading /, no ..), got ${JSON.stringify(item)}`);
      } else {
        result.push(item);
      }
    });
    return result;
  }

  private cloneUrl(value: unknown, path: string): string | undefined {
    const text = this.nonEmptyString(value, path);
    if (text === undefined) return undefined;
    // scp-like ssh syntax: git@host:group/project.git
    if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\\][^\s]*$/.test(text)) return text;
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      this.problem(path, `must be an https://, http://, ssh://, file:// or user@host:path URL, got ${JSON.stringify(text)}`);
      return undefined;
    }
    if (!['https:', 'http:', 'ssh:', 'file:', 'git:'].includes(url.protocol)) {
      this.problem(path, `unsupported protocol ${JSON.stringify(url.protocol)}`);
      return undefined;
    }
    if (url.password !== '' || ((url.protocol === 'https:' || url.protocol === 'http:') && url.username !== '')) {
      this.problem(path, "must not contain credentials: a token in the URL is a secret in the file; configure git's credential helper instead");
      return undefined;
    }
    return text;
  }

  private httpUrl(value: unknown, path: string): string | undefined {
    const text = this.nonEmptyString(value, path);
    if (text === undefined) return undefined;
    const checked = checkHttpUrl(text);
    if (checked.startsWith('!')) {
      this.problem(path, checked.slice(1));
      return undefined;
    }
    return checked;
  }

  private envName(object: Record<string, unknown>, key: string, parent: string, fallback: string): string {
    const path = parent === '' ? key : `${parent}.${key}`;
    const value = object[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string' || !ENV_NAME_PATTERN.test(value)) {
      // Do not echo the value: it may be the secret itself, pasted in the wrong place.
      this.problem(path, 'must be the NAME of an environment variable (A-Z, 0-9, _), not the secret itself');
      return fallback;
    }
    return value;
  }

  private string(object: Record<string, unknown>, key: string, parent: string, fallback: string, pattern?: RegExp): string {
    const path = parent === '' ? key : `${parent}.${key}`;
    const value = object[key];
    if (value === undefined || value === null) return fallback;
    const text = this.nonEmptyString(value, path);
    if (text === undefined) return fallback;
    if (pattern !== undefined && !pattern.test(text)) {
      this.problem(path, `invalid value ${JSON.stringify(text)}`);
      return fallback;
    }
    return text;
  }

  private nonEmptyString(value: unknown, path: string): string | undefined {
    if (typeof value !== 'string' || value.trim() === '') {
      this.problem(path, `must be a non-empty string, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  private number(
    object: Record<string, unknown>,
    key: string,
    parent: string,
    fallback: number,
    range: { min: number; max: number; integer?: boolean },
  ): number {
    const path = parent === '' ? key : `${parent}.${key}`;
    const value = object[key];
    if (value === undefined || value === null) return fallback;
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      (range.integer === true && !Number.isInteger(value)) ||
      value < range.min ||
      value > range.max
    ) {
      this.problem(path, `must be a${range.integer ? ' whole' : ''} number from ${range.min} to ${range.max}, got ${describe(value)}`);
      return fallback;
    }
    return value;
  }

  private boolean(object: Record<string, unknown>, key: string, parent: string, fallback: boolean): boolean {
    const value = object[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'boolean') {
      this.problem(parent === '' ? key : `${parent}.${key}`, `must be true or false, got ${describe(value)}`);
      return fallback;
    }
    return value;
  }

  private optional<T>(object: Record<string, unknown>, key: string, parent: string, read: (value: unknown, path: string) => T | undefined): T | undefined {
    const value = object[key];
    if (value === undefined || value === null) return undefined;
    return read(value, parent === '' ? key : `${parent}.${key}`);
  }

  private unknownKeys(object: Record<string, unknown>, allowed: readonly string[], parent: string): void {
    for (const key of Object.keys(object)) {
      const path = parent === '' ? key : `${parent}.${key}`;
      if (allowed.includes(key) || this.secretPaths.has(path)) continue;
      const camel = key.replace(/[_-]([a-z])/g, (_m, c: string) => c.toUpperCase());
      const hint = camel !== key && allowed.includes(camel) ? ` (did you mean "${camel}"? keys are camelCase)` : ` (known keys: ${allowed.join(', ')})`;
      this.problem(path, `unknown key${hint}`);
    }
  }
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

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (Array.isArray(value)) return 'a list';
  if (isRecord(value)) return 'a mapping';
  return String(value);
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
