/**
 * The `bare client` row of the no-op reconcile: what any client spends at least to learn, against this
 * registry on this machine, that the wishes' tags still name what they named. It sends the same requests
 * a no-op `ducc convert` sends (one GET per tag, with the same Accept header, 16 at a time over the same
 * kind of undici Agent), reads each body, checks its sha256 against the Docker-Content-Digest header, and
 * does nothing else: no wish list, no published state, no files. Plain JavaScript with only undici, so its
 * start-up is Node's and undici's alone.
 *
 * Usage: node bench/lib/manifest-floor.js ENTRIES.json, where the file holds wish-list entries
 * (["http://HOST/REPOSITORY:TAG", ...]). Prints the number of manifests checked; exits non-zero on any
 * failure or mismatch.
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

async function check(entry) {
  const match = /^(https?):\/\/([^/]+)\/(.+):([^:/]+)$/.exec(entry);
  if (match === null) throw new Error(`not an http(s)://HOST/REPOSITORY:TAG entry: ${entry}`);
  const [, scheme, host, repository, tag] = match;
  const response = await request(`${scheme}://${host}/v2/${repository}/manifests/${tag}`, { headers: { accept: ACCEPT }, dispatcher });
  const body = Buffer.from(await response.body.arrayBuffer());
  if (response.statusCode !== 200) throw new Error(`${entry}: HTTP ${response.statusCode}`);
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (digest !== response.headers['docker-content-digest']) throw new Error(`${entry}: the manifest hashes to ${digest}, not ${response.headers['docker-content-digest']}`);
  checked++;
}

await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < entries.length) await check(entries[next++]);
  }),
);
await dispatcher.close();
console.log(`${checked} manifests checked`);
