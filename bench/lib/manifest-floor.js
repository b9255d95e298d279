/**
 * The `bare client` row of the no-op reconcile: what any client spends at least to learn, against this
 * registry on this machine, that the wishes' tags still name what they named. It sends the requests a
 * no-op `ducc convert` sends (one conditional GET per tag, `If-None-Match: "<digest it named>"`, with the
 * same Accept header, 16 at a time over the same kind of undici Agent); a 304 answer means unchanged, a
 * 200 answer's body is checked against its Docker-Content-Digest. Nothing else: no wish list, no
 * published state, no files. Plain JavaScript with only undici, so its start-up is Node's and undici's
 * alone.
 *
 * Usage: node bench/lib/manifest-floor.js ENTRIES.json, where the file holds the wish-list entries and the
 * digest each tag named ([{ "entry": "http://HOST/REPOSITORY:TAG", "digest": "sha256:…" }, ...]). Prints
 * the number of manifests checked; exits non-zero on any failure or mismatch.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

const CONCURRENCY = 16;
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

const entries = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 32 });
let next = 0;
let checked = 0;

async function check({ entry, digest: known }) {
  const match = /^(https?):\/\/([^/]+)\/(.+):([^:/]+)$/.exec(entry);
  if (match === null) throw new Error(`not an http(s)://HOST/REPOSITORY:TAG entry: ${entry}`);
  const [, scheme, host, repository, tag] = match;
  const headers = { accept: ACCEPT, 'if-none-match': `"${known}"` };
  const response = await request(`${scheme}://${host}/v2/${repository}/manifests/${tag}`, { headers, dispatcher });
  const body = Buffer.from(await response.body.arrayBuffer());
  if (response.statusCode === 304) {
    checked++;
    return;
  }
  if (response.statusCode !== 200) throw new Error(`${entry}: HTTP ${response.statusCode}`);
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (digest !== response.headers['docker-content-digest'])
    throw new Error(`${entry}: the manifest hashes to ${digest}, not ${response.headers['docker-content-digest']}`);
  checked++;
}

await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < entries.length) await check(entries[next++]);
  }),
);
await dispatcher.close();
console.log(`${checked} manifests checked`);
