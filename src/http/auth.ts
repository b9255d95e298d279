import { createHash, timingSafeEqual } from 'node:crypto';
import { Webhooks } from '@octokit/webhooks';
import { secretFromEnv } from '../util/secrets.ts';

/**
 * The secrets of one endpoint: `NAME` (or `NAME_FILE`) and, during a rotation, `NAME_PREVIOUS` (or
 * `NAME_PREVIOUS_FILE`). Empty values count as unset: an empty secret would mean "no check at all".
 */
export function secretsFromEnv(env: NodeJS.ProcessEnv, name: string): string[] {
  return [secretFromEnv(env, name), secretFromEnv(env, `${name}_PREVIOUS`)].filter((secret): secret is string => secret !== undefined && secret !== '');
}

/**
 * Constant-time check of a presented shared secret (GitLab `X-Gitlab-Token`, registry `Authorization`
 * or URL secret) against the configured ones. Both sides are hashed first, so the comparison is between
 * equal-length buffers and neither the length nor a common prefix leaks through timing; every
 * configured secret is compared, even after a match.
 */
export class SharedSecret {
  readonly #digests: Buffer[];

  constructor(secrets: readonly string[]) {
    this.#digests = secrets.map(sha256);
  }

  get configured(): boolean {
    return this.#digests.length > 0;
  }

  matches(candidate: string | undefined): boolean {
    if (candidate === undefined || candidate === '' || this.#digests.length === 0) return false;
    const presented = sha256(candidate);
    let ok = false;
    for (const digest of this.#digests) ok = timingSafeEqual(presented, digest) || ok;
    return ok;
  }
}

const SIGNATURE_256 = /^sha256=[0-9a-f]{64}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * GitHub `X-Hub-Signature-256` (HMAC-SHA256 of the raw body) through `@octokit/webhooks`, one verifier
 * per secret so that `<NAME>_PREVIOUS` keeps working during a rotation (what `additionalSecrets` does
 * in `verifyAndReceive`). Only the SHA-256 header is accepted; the legacy SHA-1 `X-Hub-Signature` is not.
 */
export class GitHubSignature {
  readonly #verifiers: Webhooks[];

  constructor(secrets: readonly string[]) {
    this.#verifiers = secrets.map((secret) => new Webhooks({ secret }));
  }

  get configured(): boolean {
    return this.#verifiers.length > 0;
  }

  /**
   * Whether `signature` has the shape of a GitHub SHA-256 signature (`sha256=` and 64 lowercase hex
   * digits). Checked before the body is read: a request without one cannot be a delivery, so it is
   * refused without buffering anything.
   */
  static wellFormed(signature: string | undefined): signature is string {
    return signature !== undefined && SIGNATURE_256.test(signature);
  }

  /** True when `signature` is a valid `sha256=<hex>` of exactly these bytes under one of the secrets. */
  async verify(body: Uint8Array, signature: string | undefined): Promise<boolean> {
    if (!GitHubSignature.wellFormed(signature) || body.byteLength === 0) return false;
    // @octokit/webhooks signs strings (UTF-8). A strict decode (BOM kept) re-encodes to the very same
    // bytes; a body that is not valid UTF-8 cannot be a GitHub delivery and fails here.
    let payload: string;
    try {
      payload = UTF8.decode(body);
    } catch {
      return false;
    }
    let ok = false;
    for (const verifier of this.#verifiers) {
      if (ok) break;
      ok = await verifier.verify(payload, signature).catch(() => false);
    }
    return ok;
  }
}

/** The value of `Authorization` as registries send it: the secret itself or `Bearer <secret>`. */
export function authorizationCandidates(header: string | undefined): string[] {
  if (header === undefined) return [];
  const value = header.trim();
  const bearer = /^bearer\s+(.+)$/i.exec(value);
  return bearer ? [value, bearer[1]!.trim()] : [value];
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
