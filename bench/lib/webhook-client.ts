/**
 * Load generator for the webhook measurement, run as its own process so that sending requests does not
 * compete with the bot for its event loop. Reads a job from stdin (JSON), fires `count` signed GitHub
 * deliveries at once (each with its own delivery id, over its own connection), and prints the per-request
 * latencies (request start to end of the response body) as JSON on stdout.
 */
import { createHmac } from 'node:crypto';
import { Agent, request } from 'node:http';
import { text } from 'node:stream/consumers';

interface Job {
  url: string;
  secret: string;
  event: string;
  payload: unknown;
  count: number;
  warmup: number;
  deliveryPrefix: string;
}

const job = JSON.parse(await text(process.stdin)) as Job;
const body = JSON.stringify(job.payload);
const signature = `sha256=${createHmac('sha256', job.secret).update(body).digest('hex')}`;
const target = new URL(job.url);

function post(agent: Agent, delivery: string): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-github-event': job.event,
          'x-github-delivery': delivery,
          'x-hub-signature-256': signature,
          'user-agent': 'GitHub-Hookshot/bench',
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const warmupAgent = new Agent({ keepAlive: true });
for (let i = 0; i < job.warmup; i++) await post(warmupAgent, `${job.deliveryPrefix}-warmup-${i}`);
warmupAgent.destroy();
// The burst: every delivery on a fresh connection, as GitHub's deliveries come from many senders.
const burstAgent = new Agent({ keepAlive: false, maxSockets: Infinity });
const started = process.hrtime.bigint();
const results = await Promise.all(Array.from({ length: job.count }, (_, i) => post(burstAgent, `${job.deliveryPrefix}-${i}`)));
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
const statuses: Record<string, number> = {};
for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
process.stdout.write(JSON.stringify({ latenciesMs: results.map((r) => r.ms), statuses, wallMs }));
