import { DuccError } from '../util/errors.ts';
import { isValidRegistryHost } from './names.ts';

export interface Credential {
  username: string;
  password: string;
}

/** A pull-through proxy standing in for a registry: requests go to <scheme>://<host>/v2/<pathPrefix><repository>/... */
export interface RegistryProxy {
  /** host[:port] */
  host: string;
  /** '' or 'some/path/' (always with a trailing slash when non-empty) */
  pathPrefix: string;
}

interface EnvEntry {
  name: string;
  ident: string;
  credential?: Credential;
  proxy?: RegistryProxy;
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/**
 * Normalises a registry key to lowercase host[:port]: strips a URL scheme and any path
 * ('https://index.docker.io/v1/' → 'docker.io'); Docker Hub's aliases all become 'docker.io'.
 */
export function normalizeRegistryKey(key: string): string {
  let host = key.trim();
  host = host.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  host = host.toLowerCase();
  if (host.endsWith(':443') && !host.startsWith('[')) {
    // https default port: registry 'host:443' and 'host' are the same server for credentials
    host = host.slice(0, -4);
  }
  return DOCKER_HUB_ALIASES.has(host) ? 'docker.io' : host;
}

/**
 * Where registry credentials (and pull-through proxies) come from: explicit entries, DUCC_* environment
 * variables, and Docker config.json files, looked up in that order. Secrets are kept in private fields
 * and never appear in messages or in util.inspect output.
 */
export class CredentialStore {
  readonly #explicit = new Map<string, Credential>();
  readonly #env: EnvEntry[] = [];
  readonly #docker = new Map<string, Credential>();

  /** Credentials for a registry host[:port], or undefined (anonymous). */
  lookup(registry: string): Credential | undefined {
    const key = normalizeRegistryKey(registry);
    const explicit = this.#explicit.get(key);
    if (explicit !== undefined) return { ...explicit };
    const env = this.#envEntry(registry);
    if (env !== undefined) {
      // An entry with a proxy but no USER/PASS means "anonymous through the proxy": do not fall back
      // to Docker config credentials of the real registry, which must not be sent to the proxy.
      return env.credential === undefined ? undefined : { ...env.credential };
    }
    const docker = this.#docker.get(key);
    if (docker !== undefined) return { ...docker };
    return undefined;
  }

  /** The pull-through proxy configured for a registry (DUCC_<NAME>_PROXY), if any. */
  proxyFor(registry: string): RegistryProxy | undefined {
    const proxy = this.#envEntry(registry)?.proxy;
    return proxy === undefined ? undefined : { ...proxy };
  }

  /** Explicit entry (used for the push user/password of thin images). */
  set(registry: string, credential: Credential): void {
    this.#explicit.set(normalizeRegistryKey(registry), { username: credential.username, password: credential.password });
  }

  /**
   * DUCC_AUTH_REGISTRIES=A,B with DUCC_A_IDENT (substring matched against the registry host),
   * DUCC_A_USER, DUCC_A_PASS, DUCC_A_PROXY (pull-through proxy `host[/path]`). As in DUCC, an entry needs
   * IDENT and either USER+PASS or PROXY; anything else is BOT_ERR_CONFIG naming the variable.
   */
  static fromEnvironment(env: NodeJS.ProcessEnv): CredentialStore {
    const store = new CredentialStore();
    const list = env['DUCC_AUTH_REGISTRIES'] ?? '';
    for (const rawName of list.split(',')) {
      const name = rawName.trim();
      if (name === '') continue;
      if (!/^[A-Za-z0-9_]+$/.test(name)) {
        throw new DuccError('BOT_ERR_CONFIG', `DUCC_AUTH_REGISTRIES: invalid entry name ${JSON.stringify(name)} (letters, digits and _ only)`);
      }
      const v = (suffix: string): string | undefined => {
        const value = env[`DUCC_${name}_${suffix}`];
        return value === undefined || value === '' ? undefined : value;
      };
      const ident = v('IDENT')?.trim();
      const user = v('USER');
      const pass = v('PASS');
      const proxyText = v('PROXY')?.trim();
      if (ident === undefined) {
        throw new DuccError('BOT_ERR_CONFIG', `DUCC_${name}_IDENT is not set (required for entry ${name} of DUCC_AUTH_REGISTRIES)`);
      }
      if (user !== undefined && pass === undefined) {
        throw new DuccError('BOT_ERR_CONFIG', `DUCC_${name}_PASS is not set although DUCC_${name}_USER is`);
      }
      if (pass !== undefined && user === undefined) {
        throw new DuccError('BOT_ERR_CONFIG', `DUCC_${name}_USER is not set although DUCC_${name}_PASS is`);
      }
      if (user === undefined && proxyText === undefined) {
        throw new DuccError('BOT_ERR_CONFIG', `entry ${name} of DUCC_AUTH_REGISTRIES needs DUCC_${name}_USER and DUCC_${name}_PASS, or DUCC_${name}_PROXY`);
      }
      const entry: EnvEntry = { name, ident: ident.toLowerCase() };
      if (user !== undefined && pass !== undefined) entry.credential = { username: user, password: pass };
      if (proxyText !== undefined) entry.proxy = parseProxy(proxyText, `DUCC_${name}_PROXY`);
      store.#env.push(entry);
    }
    return store;
  }

  /**
   * Docker-style config.json ({"auths": {"host": {"auth": base64(user:pass)} | {"username","password"}}});
   * keys may be 'https://host/v1/' style and are normalised to host[:port]. Entries without usable
   * credentials (e.g. only an identitytoken) are skipped.
   */
  addDockerConfig(json: string, sourceName: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw new DuccError('BOT_ERR_CONFIG', `${sourceName}: not valid JSON`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new DuccError('BOT_ERR_CONFIG', `${sourceName}: expected a JSON object`);
    }
    const auths = (parsed as { auths?: unknown }).auths;
    if (auths === undefined) return;
    if (auths === null || typeof auths !== 'object' || Array.isArray(auths)) {
      throw new DuccError('BOT_ERR_CONFIG', `${sourceName}: "auths" must be an object`);
    }
    for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
      const host = normalizeRegistryKey(key);
      if (!isValidRegistryHost(host)) {
        throw new DuccError('BOT_ERR_CONFIG', `${sourceName}: invalid registry key ${JSON.stringify(key)} in "auths"`);
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new DuccError('BOT_ERR_CONFIG', `${sourceName}: auths[${JSON.stringify(key)}] must be an object`);
      }
      const entry = value as { auth?: unknown; username?: unknown; password?: unknown };
      let credential: Credential | undefined;
      if (typeof entry.auth === 'string' && entry.auth !== '') {
        const decoded = decodeBase64Strict(entry.auth);
        const colon = decoded?.indexOf(':') ?? -1;
        if (decoded === undefined || colon <= 0) {
          throw new DuccError('BOT_ERR_CONFIG', `${sourceName}: auths[${JSON.stringify(key)}].auth is not base64 of "user:password"`);
        }
        credential = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
      } else if (typeof entry.username === 'string' && entry.username !== '' && typeof entry.password === 'string') {
        credential = { username: entry.username, password: entry.password };
      }
      if (credential !== undefined) this.#docker.set(host, credential);
    }
  }

  #envEntry(registry: string): EnvEntry | undefined {
    const host = registry.toLowerCase();
    return this.#env.find((e) => host.includes(e.ident));
  }
}

function decodeBase64Strict(text: string): string | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed)) return undefined;
  return Buffer.from(trimmed, 'base64').toString('utf8');
}

/** `host[:port][/path]`, optionally with an http(s):// prefix (ignored: the image's scheme is used). */
function parseProxy(text: string, variable: string): RegistryProxy {
  const withoutScheme = text.replace(/^https?:\/\//i, '');
  const slash = withoutScheme.indexOf('/');
  const host = slash < 0 ? withoutScheme : withoutScheme.slice(0, slash);
  const path = slash < 0 ? '' : withoutScheme.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  if (!isValidRegistryHost(host)) {
    throw new DuccError('BOT_ERR_CONFIG', `${variable}: invalid proxy host ${JSON.stringify(host)} (expected host[:port][/path])`);
  }
  if (path !== '' && (!/^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/.test(path) || path.split('/').some((p) => p === '.' || p === '..'))) {
    throw new DuccError('BOT_ERR_CONFIG', `${variable}: invalid proxy path ${JSON.stringify(path)}`);
  }
  return { host: host.toLowerCase(), pathPrefix: path === '' ? '' : `${path}/` };
}
