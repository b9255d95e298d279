import { parseGitLabWebhook } from '../forge/parse-gitlab.ts';
import type { SharedSecret } from './auth.ts';
import { readRawBody, refusedByBodyHeaders } from './body.ts';
import {
  acceptDelivery,
  header,
  locals,
  parseJson,
  replyEarly,
  safeDeliveryId,
  sendJson,
  sha256Hex,
  type HookHandler,
  type WebhookContext,
} from './webhook-common.ts';

/**
 * `POST /hooks/gitlab`. GitLab disables a hook for good after a few 4xx answers (until someone sends a
 * test request from its settings), so the only 4xx is 401 for a wrong or missing `X-Gitlab-Token` —
 * the one case where the hook IS misconfigured. Everything else is 200 with the outcome in the body:
 * queued, duplicate, ignored (unsupported events, bodies that are not JSON, refused bodies).
 *
 * A full queue answers 503 with Retry-After: a 5xx disables the hook only temporarily (one minute,
 * growing to a day after repeated failures) and the delivery shows as failed in the hook's "Recent
 * events", from where it can be resent; the periodic reconcile catches up on missed pushes anyway.
 * Answering 200 would hide the loss.
 *
 * The token is checked before a byte of the body is read.
 */
export function gitlabHook(context: WebhookContext, token: SharedSecret): HookHandler {
  return async (req, res) => {
    if (!token.matches(header(req, 'x-gitlab-token'))) {
      locals(res).reason = header(req, 'x-gitlab-token') === undefined ? 'missing X-Gitlab-Token' : 'token does not match';
      replyEarly(res, 401, 'unauthorized', { error: 'invalid or missing X-Gitlab-Token: check the secret token of the webhook' });
      return;
    }
    // Not a 4xx: see above. The reason is in the body and in the log.
    if (refusedByBodyHeaders(req, res, true)) return;
    const body = await readRawBody(req, res, context.settings.webhookBodiesMaxBytes);
    const payload = parseJson(body);
    // GitLab ≥ 17.4 keeps Idempotency-Key across retries and "Resend request"; X-Gitlab-Event-UUID
    // (14.8+) is per execution; older versions send neither.
    const deliveryId = safeDeliveryId(header(req, 'idempotency-key')) ?? safeDeliveryId(header(req, 'x-gitlab-event-uuid')) ?? sha256Hex(body);
    if (payload === undefined) {
      locals(res).deliveryId = `gitlab:${deliveryId}`;
      locals(res).outcome = 'ignored';
      locals(res).reason = 'body is not JSON';
      sendJson(res, 200, { outcome: 'ignored', reason: 'body is not JSON' });
      return;
    }
    const delivery = parseGitLabWebhook(header(req, 'x-gitlab-event') ?? '', deliveryId, payload, botUsernameFor(context, payload));
    await acceptDelivery(context, res, delivery, { queued: 200, other: 200 });
  };
}

function botUsernameFor(context: WebhookContext, payload: unknown): { botUsername?: string } {
  const project = (payload as { project?: { path_with_namespace?: unknown } } | null)?.project?.path_with_namespace;
  if (typeof project !== 'string') return {};
  const wishlist = context.config.wishlists.find((w) => w.forge === 'gitlab' && w.project.toLowerCase() === project.toLowerCase() && w.botUser !== undefined);
  return wishlist?.botUser !== undefined ? { botUsername: wishlist.botUser } : {};
}
