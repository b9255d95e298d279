/**
 * Authentication with registries as they ask for it. A request goes out with what earlier challenges of
 * the same (origin, repository, scope) taught us, or with nothing the first time; a 401 from the registry
 * names its scheme in WWW-Authenticate: Basic (the pull credentials are sent from then on) or Bearer (a
 * token for the scope is fetched from the token service the registry named, cached until it expires, and
 * fetched once for all concurrent requests). One challenge per request is answered; a 401 after that is
 * a refusal, reported without the secret, except once: a Bearer token refused with
 * error="insufficient_scope" and a scope it was not for (see #widerScope).
 */
import type { Logger } from 'pino';
import type { Credential, CredentialStore } from '../credentials.ts';
import { basicAuthorization } from './basic-auth.ts';
import { parseWwwAuthenticate, type AuthChallenge } from './challenge.ts';
import type { Endpoint } from './endpoint.ts';
import { authError, statusError } from './errors.ts';
import { discard } from './response-body.ts';
import { TokenCache } from './token-cache.ts';
import { requestToken, type TokenServiceContext } from './token-service.ts';
import type { Exchange, RequestSpec } from './types.ts';

/** Longest scope of the registry's quoted in a message. */
const MAX_QUOTED_SCOPE_CHARS = 200;

type AuthState = { kind: 'basic' } | { kind: 'bearer'; challenge: AuthChallenge };

/** The authentication of one attempt of one request (see Authenticator.begin). */
export interface AuthAttempt {
  readonly spec: RequestSpec;
  readonly endpoint: Endpoint;
  readonly credential: Credential | undefined;
  /** Key of the auth state this request reads and updates. */
  readonly stateKey: string;
  /** The Authorization value sent last, if any. */
  sent: string | undefined;
  /** The Bearer challenge whose token was sent last, if one was. */
  sentFor: AuthChallenge | undefined;
  /** Challenges answered so far. */
  answered: number;
  /** Whether an insufficient_scope challenge was answered (once at most). */
  widened: boolean;
}

export interface AuthenticatorOptions {
  credentials: CredentialStore | undefined;
  tokenService: TokenServiceContext;
  log: Logger | undefined;
}

export class Authenticator {
  readonly #credentials: CredentialStore | undefined;
  readonly #tokenService: TokenServiceContext;
  readonly #log: Logger | undefined;
  readonly #tokens = new TokenCache();
  readonly #tokenFetches = new Map<string, Promise<string>>();
  /** What the last challenge for each (origin, repository path, scope) asked for. */
  readonly #states = new Map<string, AuthState>();

  constructor(options: AuthenticatorOptions) {
    this.#credentials = options.credentials;
    this.#tokenService = options.tokenService;
    this.#log = options.log;
  }

  /** Starts the authentication of one attempt of `spec`, sent to `endpoint`. */
  begin(spec: RequestSpec, endpoint: Endpoint): AuthAttempt {
    return {
      spec,
      endpoint,
      credential: this.#credentials?.lookup(spec.ref.registry),
      stateKey: JSON.stringify([endpoint.origin, endpoint.repositoryPath, spec.scope]),
      sent: undefined,
      sentFor: undefined,
      answered: 0,
      widened: false,
    };
  }

  /** The Authorization header to send now (undefined: none), from what earlier challenges taught us. */
  async authorization(attempt: AuthAttempt): Promise<string | undefined> {
    const state = this.#states.get(attempt.stateKey);
    let value: string | undefined;
    if (state?.kind === 'basic') value = attempt.credential === undefined ? undefined : basicAuthorization(attempt.credential);
    else if (state?.kind === 'bearer') value = await this.#bearerToken(attempt, state.challenge);
    attempt.sent = value;
    attempt.sentFor = state?.kind === 'bearer' ? state.challenge : undefined;
    return value;
  }

  /**
   * Handles a 401 of the registry's own origin: answers its challenge, after which the caller sends the
   * request again, or throws the auth error when it cannot or must not be answered (the body is drained
   * either way).
   */
  async unauthorized(attempt: AuthAttempt, exchange: Exchange): Promise<void> {
    const { spec, credential, sent } = attempt;
    const challenges = parseWwwAuthenticate(exchange.response.headers['www-authenticate']);
    if (attempt.answered > 0) {
      const wider = this.#widerScope(attempt, challenges);
      if (wider !== undefined) {
        await discard(exchange.response);
        this.#log?.debug({ registry: spec.ref.registry, what: spec.what, scope: wider.params['scope'] }, 'token lacks a scope the registry asks for');
        attempt.widened = true;
        await this.#answer(attempt, [wider]);
        attempt.answered++;
        return;
      }
      const detail = await statusError(spec, exchange, { registryOrigin: attempt.endpoint.origin, hasCredentials: credential !== undefined });
      if (sent?.startsWith('Basic ') && credential !== undefined) {
        throw authError(spec.ref, `the credentials for user ${JSON.stringify(credential.username)} were rejected (HTTP 401)`);
      }
      if (sent?.startsWith('Bearer ')) {
        const who = credential === undefined ? 'anonymous token' : `token for user ${JSON.stringify(credential.username)}`;
        throw authError(spec.ref, `the registry refused the ${who} for ${spec.what} (HTTP 401${insufficientScopeDetail(challenges)})`);
      }
      throw detail;
    }
    await discard(exchange.response);
    await this.#answer(attempt, challenges);
    attempt.answered++;
  }

  async #answer(attempt: AuthAttempt, challenges: AuthChallenge[]): Promise<void> {
    const { spec, credential, sent } = attempt;
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params['realm'] !== undefined);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer !== undefined) {
      if (sent !== undefined && sent.startsWith('Bearer ')) {
        // the token we sent was refused (expired or revoked): forget it and get a fresh one
        this.#tokens.delete(this.#tokenKey(attempt, bearer));
      }
      this.#states.set(attempt.stateKey, { kind: 'bearer', challenge: bearer });
      await this.#bearerToken(attempt, bearer);
      return;
    }
    if (basic !== undefined) {
      if (credential === undefined) {
        throw authError(spec.ref, `the registry requires credentials (Basic authentication) but none are configured for ${spec.ref.registry}`);
      }
      if (sent !== undefined && sent.startsWith('Basic ')) {
        throw authError(spec.ref, `the credentials for user ${JSON.stringify(credential.username)} were rejected`);
      }
      this.#states.set(attempt.stateKey, { kind: 'basic' });
      return;
    }
    throw authError(spec.ref, 'registry answered 401 without a supported WWW-Authenticate challenge (Bearer or Basic)');
  }

  /**
   * The challenge to answer once more after the first: the registry accepted our Bearer token but says
   * it is not enough (RFC 6750 error="insufficient_scope") and names the scope it needs, wider actions
   * (repository:x:pull,push) or more repositories. The distribution token flow expects a client to ask
   * for that scope then, so one token is requested for it and the request sent once more. Only from the
   * realm and service that issued the refused token, only for a scope other than the one it was for
   * (the same scope again is a plain refusal), and once per request: never a loop.
   */
  #widerScope(attempt: AuthAttempt, challenges: AuthChallenge[]): AuthChallenge | undefined {
    const refused = attempt.sentFor;
    if (attempt.widened || refused === undefined || !attempt.sent?.startsWith('Bearer ')) return undefined;
    const challenge = challenges.find((c) => c.scheme === 'bearer' && c.params['error'] === 'insufficient_scope');
    const scope = challenge?.params['scope'];
    if (challenge === undefined || scope === undefined || scope.trim() === '') return undefined;
    if (challenge.params['realm'] !== refused.params['realm'] || challenge.params['service'] !== refused.params['service']) return undefined;
    if (this.#scopeFor(attempt, challenge) === this.#scopeFor(attempt, refused)) return undefined;
    return challenge;
  }

  /** The scopes a token is asked for: those the challenge names, else this request's own. */
  #scopeFor(attempt: AuthAttempt, challenge: AuthChallenge): string {
    const offered = challenge.params['scope'];
    return offered !== undefined && offered !== '' ? offered : `repository:${attempt.endpoint.repositoryPath}:${attempt.spec.scope}`;
  }

  #tokenKey(attempt: AuthAttempt, challenge: AuthChallenge): string {
    return TokenCache.key(
      `${challenge.params['realm'] ?? ''} ${challenge.params['service'] ?? ''} ${attempt.spec.ref.registry}`,
      this.#scopeFor(attempt, challenge),
      attempt.credential?.username,
    );
  }

  /** A cached or freshly fetched `Bearer <token>` header value; concurrent fetches for one key are shared. */
  async #bearerToken(attempt: AuthAttempt, challenge: AuthChallenge): Promise<string> {
    const key = this.#tokenKey(attempt, challenge);
    const cached = this.#tokens.get(key);
    if (cached !== undefined) return cached;
    let pending = this.#tokenFetches.get(key);
    if (pending === undefined) {
      pending = this.#fetchToken(attempt, challenge, key).finally(() => this.#tokenFetches.delete(key));
      this.#tokenFetches.set(key, pending);
    }
    return pending;
  }

  async #fetchToken(attempt: AuthAttempt, challenge: AuthChallenge, key: string): Promise<string> {
    const scope = this.#scopeFor(attempt, challenge);
    const token = await requestToken({ spec: attempt.spec, challenge, scope, credential: attempt.credential }, this.#tokenService);
    this.#tokens.set(key, token.header, token.expiresInSeconds);
    this.#log?.debug({ registry: attempt.spec.ref.registry, scope }, 'obtained registry token');
    return token.header;
  }
}

/**
 * `, insufficient_scope: needs "<scope>"` when the registry said so, else ''. The scope is the
 * registry's text in a one-line message: control characters become spaces, and it is cut short.
 */
function insufficientScopeDetail(challenges: AuthChallenge[]): string {
  const challenge = challenges.find((c) => c.scheme === 'bearer' && c.params['error'] === 'insufficient_scope');
  if (challenge === undefined) return '';
  const scope = (challenge.params['scope'] ?? '').replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
  if (scope === '') return ', insufficient_scope';
  return `, insufficient_scope: needs ${JSON.stringify(scope.length > MAX_QUOTED_SCOPE_CHARS ? `${scope.slice(0, MAX_QUOTED_SCOPE_CHARS)}…` : scope)}`;
}
