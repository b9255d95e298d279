import type { RegistryHookConfig } from '../config/bot-config.ts';
import type { Delivery } from '../forge/events.ts';
import { parseDistributionNotification, parseDockerHub, parseHarbor, parseQuay } from '../forge/parse-registry.ts';
import { parseS3Notification } from '../forge/parse-s3.ts';
import { authorizationCandidates, type SharedSecret } from './auth.ts';
import { readRawBody, refusedByBodyHeaders } from './body.ts';
import { acceptDelivery, header, locals, replyEarly, type HookHandler, type WebhookContext } from './webhook-common.ts';

/** A configured registry hook with its secrets. */
export interface RegistryHook {
  config: RegistryHookConfig;
  secret: SharedSecret;
}

/** Kinds whose sender can set an `Authorization` header; the others carry the secret in the URL. */
const HEADER_KINDS: ReadonlySet<string> = new Set(['distribution', 'harbor']);
/** Kinds taking either (S3 notifications: MinIO sends a token header; SNS and Ceph RGW cannot, so the URL). */
const EITHER_KINDS: ReadonlySet<string> = new Set(['s3']);

const PARSERS: Record<RegistryHookConfig['kind'], (body: Buffer, hook: RegistryHookConfig) => Delivery> = {
  distribution: (body, hook) => parseDistributionNotification(body, hook.name),
  harbor: (body, hook) => parseHarbor(body, hook.name),
  dockerhub: (body, hook) => parseDockerHub(body, hook.name),
  quay: (body, hook) => parseQuay(body, hook.name),
  s3: (body, hook) => parseS3Notification(body, hook.name, hook.remote!),
};

export const REGISTRY_ROUTE = '/hooks/registry/:kind/:name';
export const REGISTRY_ROUTE_WITH_SECRET = '/hooks/registry/:kind/:name/:secret';

/**
 * `POST /hooks/registry/:kind/:name` (distribution, Harbor: secret in `Authorization`, as is or
 * `Bearer <secret>`) and `POST /hooks/registry/:kind/:name/:secret` (Docker Hub, Quay: they cannot send
 * headers, so the secret is part of the URL). Unknown hook, or a kind that does not match the
 * configuration, or the wrong URL shape → 404; wrong secret → 401; both before the body is read.
 * Then 202 queued, 200 duplicate/ignored, 503 overloaded (all four senders retry 5xx).
 *
 * `params`: kind, name and, in the second form, the secret (decoded). The route pattern, never the
 * URL, is logged: the URL holds the secret.
 */
export function registryHook(context: WebhookContext, hooks: ReadonlyMap<string, RegistryHook>): HookHandler {
  return async (req, res, params) => {
    const [kind = '', name = '', secret] = params;
    const withSecretInPath = secret !== undefined;
    const hook = hooks.get(name);
    if (hook === undefined || hook.config.kind !== kind || (withSecretInPath && HEADER_KINDS.has(kind))) {
      replyEarly(res, 404, 'not_found', { error: 'no such registry hook' });
      return;
    }
    locals(res).source = `registry/${hook.config.kind}`;
    const fromHeader = HEADER_KINDS.has(kind) || (EITHER_KINDS.has(kind) && !withSecretInPath);
    const presented = fromHeader ? authorizationCandidates(header(req, 'authorization')) : withSecretInPath ? [secret] : [];
    // Evaluate every candidate, so that timing does not tell which form was tried.
    let ok = false;
    for (const candidate of presented) ok = hook.secret.matches(candidate) || ok;
    if (!ok) {
      locals(res).reason = presented.length === 0 ? 'missing secret' : 'secret does not match';
      replyEarly(res, 401, 'unauthorized', {
        error: fromHeader ? 'invalid or missing Authorization header' : 'invalid or missing secret in the URL',
      });
      return;
    }
    if (refusedByBodyHeaders(req, res)) return;
    const delivery = PARSERS[hook.config.kind](await readRawBody(req, res, context.settings.webhookBodiesMaxBytes), hook.config);
    await acceptDelivery(context, res, delivery, { queued: 202, other: 200 });
  };
}
