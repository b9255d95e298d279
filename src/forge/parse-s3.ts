import { createHash } from 'node:crypto';
import type { BotEvent, Delivery } from './events.ts';
import { isValidTag } from '../registry/names.ts';
import { isRecord, rec, str } from './payload-fields.ts';

/** The S3 remote a notification hook watches: objects created under `<prefix>repositories/` of `bucket`. */
export interface S3HookRemote {
  /** The dogestry remote's name (`dogestry://<name>/...`). */
  name: string;
  bucket: string;
  /** Key prefix of the remote, '' or ending in '/'. */
  prefix: string;
}

const REPOSITORY_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST = /^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::\d{1,5})?$/;

/**
 * S3 event notifications (the `{"Records": [...]}` of AWS S3, also sent by MinIO, Ceph RGW and s3rver; AWS's
 * through SNS arrive wrapped in a `Notification` whose `Message` is that JSON) → `registry-push` events for
 * the dogestry images whose tag file was written: `ObjectCreated:*` of `<prefix>repositories/<name>/<tag>` in
 * the remote's bucket. Like a registry notification it is only a hint: the bot reads the tag file itself.
 * The event names the image as wish lists do: registry `dogestry`, repository `<remote>/<name>`. Pure (no I/O,
 * never throws); the delivery id is `s3:<hookName>:<sha256 of the body>`.
 */
export function parseS3Notification(body: unknown, hookName: string, remote: S3HookRemote): Delivery {
  const { value, hash } = decode(body);
  let envelope = value;
  if (isRecord(envelope) && envelope['Type'] === 'Notification' && typeof envelope['Message'] === 'string') envelope = decode(envelope['Message']).value;
  const records = isRecord(envelope) && Array.isArray(envelope['Records']) ? envelope['Records'] : [];
  const events: BotEvent[] = [];
  const seen = new Set<string>();
  for (const record of records) {
    if (!isRecord(record)) continue;
    const eventName = str(record, 'eventName');
    if (eventName === undefined || !/^(?:s3:)?ObjectCreated:/.test(eventName)) continue;
    const s3 = rec(record, 's3');
    const bucket = s3 && rec(s3, 'bucket');
    const object = s3 && rec(s3, 'object');
    if (bucket === undefined || object === undefined || str(bucket, 'name') !== remote.bucket) continue;
    const rawKey = str(object, 'key');
    const key = rawKey === undefined ? undefined : decodeKey(rawKey);
    const under = `${remote.prefix}repositories/`;
    if (key === undefined || !key.startsWith(under) || key.endsWith('.sum')) continue;
    const path = key.slice(under.length);
    const slash = path.lastIndexOf('/');
    const name = path.slice(0, Math.max(slash, 0));
    const tag = path.slice(slash + 1);
    if (slash <= 0 || !isValidTag(tag) || !isDockerName(name)) continue;
    const event: BotEvent = { kind: 'registry-push', source: hookName, registry: 'dogestry', repository: `${remote.name}/${name}`, tag };
    const id = JSON.stringify(event);
    if (seen.has(id)) continue;
    seen.add(id);
    events.push(event);
  }
  return { id: `s3:${hookName}:${hash}`, events };
}

/** S3 URL-encodes keys in notifications (spaces as `+`). */
function decodeKey(key: string): string | undefined {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function isDockerName(name: string): boolean {
  if (name.length > 255) return false;
  const parts = name.split('/');
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!HOST.test(first)) return false;
    parts.shift();
  }
  return parts.every((part) => REPOSITORY_COMPONENT.test(part));
}

function decode(body: unknown): { value: unknown; hash: string } {
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const hash = createHash('sha256').update(body).digest('hex');
    try {
      return { value: JSON.parse(typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')), hash };
    } catch {
      return { value: undefined, hash };
    }
  }
  return {
    value: body,
    hash: createHash('sha256')
      .update(JSON.stringify(body) ?? '')
      .digest('hex'),
  };
}
