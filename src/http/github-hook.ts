import { parseGitHubWebhook } from '../forge/parse-github.ts';
import { GitHubSignature } from './auth.ts';
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
  type HookRequest,
  type WebhookContext,
} from './webhook-common.ts';

/**
 * `POST /hooks/github`. Order matters: size and encoding from the headers, and the presence and shape of
 * `X-Hub-Signature-256` (a request without a well-formed one is refused before its body is read), then
 * the raw body, then the signature over its bytes; only a verified body is parsed (as JSON, or the
 * `payload=` field of a form-encoded delivery) and handed to the intake.
 *
 * Replies: 202 queued, 200 duplicate/ignored (outcome in the body), 503 overloaded (GitHub does not
 * retry by itself: redeliver from the hook's settings), 401 bad signature, 413 / 415 refused bodies.
 */
export function githubHook(context: WebhookContext, signature: GitHubSignature): HookHandler {
  return async (req, res) => {
    if (refusedByBodyHeaders(req, res)) return;
    const presented = header(req, 'x-hub-signature-256');
    if (!GitHubSignature.wellFormed(presented)) {
      locals(res).reason = presented === undefined ? 'missing X-Hub-Signature-256' : 'malformed X-Hub-Signature-256';
      replyEarly(res, 401, 'unauthorized', { error: UNAUTHORIZED_MESSAGE });
      return;
    }
    const body = await readRawBody(req, res, context.settings.webhookBodiesMaxBytes);
    if (!(await signature.verify(body, header(req, 'x-hub-signature-256')))) {
      locals(res).outcome = 'unauthorized';
      locals(res).reason = 'signature does not match';
      sendJson(res, 401, { error: UNAUTHORIZED_MESSAGE });
      return;
    }
    const eventName = header(req, 'x-github-event');
    if (eventName === undefined || !/^[a-z_]{1,64}$/.test(eventName)) {
      locals(res).outcome = 'invalid';
      sendJson(res, 400, { error: 'missing or invalid X-GitHub-Event' });
      return;
    }
    const payload = parsePayload(req, body);
    if (payload === undefined) {
      locals(res).outcome = 'invalid';
      sendJson(res, 400, { error: 'body is not JSON' });
      return;
    }
    const deliveryId = safeDeliveryId(header(req, 'x-github-delivery')) ?? sha256Hex(body);
    const delivery = parseGitHubWebhook(eventName, deliveryId, payload, botLoginFor(context, payload));
    await acceptDelivery(context, res, delivery, { queued: 202, other: 200 });
  };
}

const UNAUTHORIZED_MESSAGE = 'invalid or missing X-Hub-Signature-256: check the webhook secret';

/** GitHub sends JSON, or `payload=<json>` when the hook's content type is form-encoded. */
function parsePayload(req: HookRequest, body: Buffer): unknown {
  const type = (header(req, 'content-type') ?? '').toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(body.toString('utf8')).get('payload');
    return payload === null ? undefined : parseJson(Buffer.from(payload, 'utf8'));
  }
  return parseJson(body);
}

/** The bot account of the wish list the delivery is about, so the bot's own comments are recognised. */
function botLoginFor(context: WebhookContext, payload: unknown): { botLogin?: string } {
  const repository = (payload as { repository?: { full_name?: unknown } } | null)?.repository?.full_name;
  if (typeof repository !== 'string') return {};
  const wishlist = context.config.wishlists.find(
    (w) => w.forge === 'github' && w.project.toLowerCase() === repository.toLowerCase() && w.botUser !== undefined,
  );
  return wishlist?.botUser !== undefined ? { botLogin: wishlist.botUser } : {};
}
