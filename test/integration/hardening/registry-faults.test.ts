/**
 * `ducc convert` (runConversion) against the real test registry (distribution 2.8, htpasswd auth) seen
 * through the fault-injecting proxy: truncated, stalled, refused, corrupted and redirected answers.
 * Each test names the risk it covers; each checks that what must not be published is not, that failures
 * are one clear line naming the wish and the layer, and that the other wishes still convert.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { pushOciLayout, writeOciLayout, type WrittenImage } from '../../support/oci-image.ts';
import { startFaultProxy, type FaultProxy, type FaultRule } from '../../support/fault-proxy.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { runConversion } from '../../../src/cli/run-conversion.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { withEnv } from '../../support/with-env.ts';

const quietLogger = createLogger({ level: 'silent' });
const USER = 'puller';
const PASSWORD = 'fault-proxy-test-password';
/** Pull credentials as DUCC reads them; IDENT matches every 127.0.0.1:<port> (the proxies). */
const CREDENTIALS_ENV = { DUCC_AUTH_REGISTRIES: 'TEST', DUCC_TEST_IDENT: '127.0.0.1', DUCC_TEST_USER: USER, DUCC_TEST_PASS: PASSWORD };
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

/** 1.5 MiB that gzip cannot shrink: the big layer's blob is about that size, so a cut lands mid-stream. */
const BIG_CONTENT = randomBytes(1536 * 1024);
const BIG_SHA = createHash('sha256').update(BIG_CONTENT).digest('hex');

const blobPath = (digest: string) => new RegExp(`/blobs/${digest}$`);
const manifestPath = (repository: string, reference: string) => new RegExp(`^/v2/${repository}/manifests/${reference.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);

describe('registry faults during ducc convert', () => {
  let registry: TestRegistry;
  /** test/app:v1 — a big gzip layer (≈1.5 MiB, incompressible) and a small one. */
  let app: WrittenImage;
  /** test/other:v1 — one small layer. */
  let other: WrittenImage;
  /** test/plain:v1 — one uncompressed layer. */
  let plain: WrittenImage;
  /** test/multi:v1 — an index of amd64 and arm64. */
  let multi: { indexDigest?: string; manifests: WrittenImage[] };
  /** test/evil:v1 — a harmless base layer, then one whose entry climbs out with `..`. */
  let evil: WrittenImage;
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) };

  before(async () => {
    registry = await startRegistry(suite as unknown as TestContext, { htpasswd: { username: USER, password: PASSWORD } });
    const creds = { username: USER, password: PASSWORD };
    const layouts = await tempDir(suite);
    const push = async (name: string, layers: Buffer[][] | Buffer[], compression: 'gzip' | 'none' = 'gzip') => {
      const dir = join(layouts, name);
      const specs = (Array.isArray(layers[0]) ? (layers as Buffer[][]) : [layers as Buffer[]]).map((l, i) => ({
        layers: l,
        config: { Cmd: ['/bin/sh'] },
        platform: { os: 'linux', architecture: i === 0 ? 'amd64' : 'arm64' },
      }));
      const written = await writeOciLayout(dir, 'v1', specs, { compression });
      await pushOciLayout(dir, 'v1', { host: registry.host, repository: `test/${name}`, tag: 'v1', creds });
      return written;
    };
    app = (await push('app', [await buildTar([{ name: 'data/big.bin', content: BIG_CONTENT }]), await buildTar([{ name: 'etc/app.conf', content: 'app\n' }])]))
      .manifests[0]!;
    other = (await push('other', [await buildTar([{ name: 'etc/other.conf', content: 'other\n' }])])).manifests[0]!;
    plain = (await push('plain', [await buildTar([{ name: 'data/plain.bin', content: Buffer.alloc(64 * 1024, 0x61) }])], 'none')).manifests[0]!;
    multi = await push('multi', [[await buildTar([{ name: 'arch', content: 'amd64\n' }])], [await buildTar([{ name: 'arch', content: 'arm64\n' }])]]);
    evil = (
      await push('evil', [
        await buildTar([{ name: 'etc/base', content: 'base\n' }]),
        await buildTar([
          { name: 'etc/ok', content: 'ok\n' },
          { name: 'etc/../../escape', content: 'out\n' },
        ]),
      ])
    ).manifests[0]!;
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** Converts `images` (repositories of the test registry) through a new proxy with `rules`. */
  async function convert(
    t: TestContext,
    rules: FaultRule[],
    images: string[],
    knobs: Record<string, string> = {},
    proxyFor?: (registryHost: string) => Promise<FaultProxy>,
  ) {
    const proxy = proxyFor ? await proxyFor(registry.host) : await startFaultProxy(t, registry.host, rules);
    const root = await tempDir(t);
    const wishes = images.map((image) => `http://${proxy.host}/${image}`);
    const text = ['version: 1', 'user: pusher', "cvmfs_repo: 'unpacked.example.org'", 'input:', ...wishes.map((w) => `  - '${w}'`), ''].join('\n');
    const started = Date.now();
    const summary = await withEnv(knobs, () =>
      runConversion(parseWishlist(text, 'wishlist.yaml'), { repoRoot: join(root, 'cvmfs'), skipThinImage: true }, CREDENTIALS_ENV, quietLogger),
    );
    const repo = join(root, 'cvmfs', 'unpacked.example.org');
    return { proxy, summary, repo, root, wishes, elapsed: Date.now() - started };
  }

  const layerDirOf = (repo: string, digest: string) => join(repo, '.layers', digest.slice(7, 9), digest.slice(7));
  const exists = (path: string) =>
    lstat(path).then(
      () => true,
      () => false,
    );

  async function assertPublished(repo: string, proxyHost: string, image: string): Promise<string> {
    const flat = await readlink(join(repo, proxyHost, image));
    return join(repo, proxyHost, image.split('/').slice(0, -1).join('/'), flat);
  }

  async function assertNothingStaged(root: string): Promise<void> {
    const staging = join(root, 'cvmfs', '.ducc-staging', 'unpacked.example.org');
    assert.deepEqual(await readdir(staging).catch(() => []), [], 'no staging left behind');
  }

  /** A failure is one line that names the wish (and, when given, the layer). */
  function assertOneLineFailure(message: string, wish: string, layerDigest?: string): void {
    assert.ok(!message.includes('\n'), `one line: ${message}`);
    assert.ok(message.includes(wish), `names the wish: ${message}`);
    if (layerDigest !== undefined) assert.ok(message.includes(layerDigest), `names the layer ${layerDigest}: ${message}`);
  }

  it('truncated-blob-resumed-with-range: a blob cut mid-stream is resumed from where it stopped and verified whole', async (t) => {
    const big = app.layerDigests[0]!;
    const { proxy, summary, repo } = await convert(
      t,
      [{ method: 'GET', path: blobPath(big), times: 1, action: { kind: 'truncate', afterBytes: 300_000 } }],
      ['test/app:v1'],
    );
    assert.deepEqual(summary.failures, []);
    assert.equal(summary.converted, 1);
    const gets = proxy.matching(blobPath(big), 'GET');
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.headers.range, undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(String(gets[1]!.headers.range))?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 300_000, `resumed at ${gets[1]!.headers.range}`);
    assert.equal(gets[1]!.status, 206, 'distribution honours Range');
    assert.equal(gets[1]!.headers.authorization, BASIC, 'the resumed request is authenticated');
    const flat = await assertPublished(repo, proxy.host, 'test/app:v1');
    assert.equal(
      createHash('sha256')
        .update(await readFile(join(flat, 'data/big.bin')))
        .digest('hex'),
      BIG_SHA,
    );
  });

  it('truncated-blob-range-ignored: when the answer to a Range request is the whole blob, the known part is skipped', async (t) => {
    const big = app.layerDigests[0]!;
    const { proxy, summary, repo } = await convert(
      t,
      [
        { method: 'GET', path: blobPath(big), times: 1, action: { kind: 'truncate', afterBytes: 400_000 } },
        { method: 'GET', path: blobPath(big), action: { kind: 'ignore-range' } },
      ],
      ['test/app:v1'],
    );
    assert.deepEqual(summary.failures, []);
    const gets = proxy.matching(blobPath(big), 'GET');
    assert.equal(gets.length, 2);
    assert.match(String(gets[1]!.headers.range), /^bytes=\d+-$/);
    assert.equal(gets[1]!.status, 200);
    const flat = await assertPublished(repo, proxy.host, 'test/app:v1');
    assert.equal(
      createHash('sha256')
        .update(await readFile(join(flat, 'data/big.bin')))
        .digest('hex'),
      BIG_SHA,
    );
  });

  it('range-with-wrong-start-never-spliced: a 206 that does not start where asked fails the layer; the other wish converts', async (t) => {
    const big = app.layerDigests[0]!;
    const { proxy, summary, repo, root, wishes } = await convert(
      t,
      [
        { method: 'GET', path: blobPath(big), times: 1, action: { kind: 'truncate', afterBytes: 300_000 } },
        { method: 'GET', path: blobPath(big), action: { kind: 'shift-range', by: -1000 } },
      ],
      ['test/app:v1', 'test/other:v1'],
    );
    assert.equal(summary.converted, 1);
    assert.equal(summary.failed, 1);
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!, big);
    assert.match(summary.failures[0]!.message, /asked for bytes \d+-\d+ .* answered range "bytes \d+-\d+\/\d+"; a wrong range is never spliced in/);
    assert.ok(!(await exists(layerDirOf(repo, big))), 'the layer is not published');
    assert.ok(!(await exists(join(repo, proxy.host, 'test/app:v1'))), 'the image is not published');
    await assertPublished(repo, proxy.host, 'test/other:v1');
    await assertNothingStaged(root);
  });

  it('rate-limited-429-retry-after-seconds: a 429 with Retry-After: 1 is waited out, then the conversion succeeds', async (t) => {
    const { proxy, summary, elapsed } = await convert(
      t,
      [
        {
          method: 'GET',
          path: manifestPath('test/other', 'v1'),
          times: 1,
          action: { kind: 'status', status: 429, headers: { 'retry-after': '1' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' },
        },
      ],
      ['test/other:v1'],
    );
    assert.deepEqual(summary.failures, []);
    // 429 first, then (after the wait) the registry's own 401 challenge and the authenticated answer.
    assert.deepEqual(
      proxy.matching(manifestPath('test/other', 'v1'), 'GET').map((r) => r.status),
      [429, 401, 200],
    );
    assert.ok(elapsed >= 900, `waited as asked (${elapsed} ms)`);
  });

  it('rate-limited-429-retry-after-date: a Retry-After HTTP date is honoured too', async (t) => {
    const config = other.configDigest;
    const when = new Date(Date.now() + 2000).toUTCString();
    const { proxy, summary } = await convert(
      t,
      [{ method: 'GET', path: blobPath(config), times: 1, action: { kind: 'status', status: 429, headers: { 'retry-after': when } } }],
      ['test/other:v1'],
    );
    assert.deepEqual(summary.failures, []);
    const gets = proxy.matching(blobPath(config), 'GET');
    assert.equal(gets.length, 2);
  });

  it('server-error-5xx-retried: 503 and 500 answers are retried and the conversion succeeds', async (t) => {
    const small = app.layerDigests[1]!;
    const { proxy, summary } = await convert(
      t,
      [
        { method: 'GET', path: blobPath(small), times: 1, action: { kind: 'status', status: 503 } },
        { method: 'GET', path: blobPath(small), times: 1, action: { kind: 'status', status: 500, body: '{"errors":[{"code":"UNKNOWN","message":"boom"}]}' } },
      ],
      ['test/app:v1'],
    );
    assert.deepEqual(summary.failures, []);
    assert.deepEqual(
      proxy.matching(blobPath(small), 'GET').map((r) => r.status),
      [503, 500, 200],
    );
  });

  it('connection-reset-retried: a reset before any answer is retried', async (t) => {
    const { proxy, summary } = await convert(
      t,
      [{ method: 'GET', path: blobPath(other.configDigest), times: 1, action: { kind: 'reset' } }],
      ['test/other:v1'],
    );
    assert.deepEqual(summary.failures, []);
    assert.equal(proxy.matching(blobPath(other.configDigest), 'GET').length, 2);
  });

  it('stalled-response-times-out: no answer within DUCC_REGISTRY_TIMEOUT is a clear timeout error; the other wish converts', async (t) => {
    const small = app.layerDigests[1]!;
    const { summary, wishes, elapsed, repo } = await convert(
      t,
      [{ method: 'GET', path: blobPath(small), action: { kind: 'stall', ms: 30_000 } }],
      ['test/app:v1', 'test/other:v1'],
      { DUCC_REGISTRY_TIMEOUT: '0.4', DUCC_REGISTRY_RETRIES: '1' },
    );
    assert.equal(summary.converted, 1);
    assert.equal(summary.failed, 1);
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!, small);
    assert.match(summary.failures[0]!.message, /timed out: no response within 0\.4 s \(DUCC_REGISTRY_TIMEOUT\) \(after 2 attempts\)/);
    assert.ok(elapsed < 10_000, `gave up in ${elapsed} ms`);
    assert.ok(!(await exists(layerDirOf(repo, small))));
  });

  it('stalled-body-resumed: a body that stops flowing times out and is resumed with Range', async (t) => {
    const big = app.layerDigests[0]!;
    const { proxy, summary, repo } = await convert(
      t,
      [{ method: 'GET', path: blobPath(big), times: 1, action: { kind: 'stall', ms: 30_000, afterBytes: 200_000 } }],
      ['test/app:v1'],
      { DUCC_REGISTRY_TIMEOUT: '0.4' },
    );
    assert.deepEqual(summary.failures, []);
    const gets = proxy.matching(blobPath(big), 'GET');
    assert.equal(gets.length, 2);
    assert.match(String(gets[1]!.headers.range), /^bytes=\d+-$/);
    const flat = await assertPublished(repo, proxy.host, 'test/app:v1');
    assert.equal(
      createHash('sha256')
        .update(await readFile(join(flat, 'data/big.bin')))
        .digest('hex'),
      BIG_SHA,
    );
  });

  it('persistent-failure-one-line-error: a layer that always fails names wish and layer, nothing of it is published, the rest converts', async (t) => {
    const big = app.layerDigests[0]!;
    const { proxy, summary, wishes, repo, root } = await convert(
      t,
      [
        {
          method: 'GET',
          path: blobPath(big),
          action: { kind: 'status', status: 502, body: '{"errors":[{"code":"BAD_GATEWAY","message":"upstream\\nexploded"}]}' },
        },
      ],
      ['test/app:v1', 'test/other:v1'],
      { DUCC_REGISTRY_RETRIES: '1' },
    );
    assert.equal(summary.converted, 1);
    assert.equal(summary.failed, 1);
    assert.equal(summary.failures[0]!.wish, wishes[0]);
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!, big);
    assert.match(summary.failures[0]!.message, /^wishlist\.yaml:\d+: .*HTTP 502 \(BAD_GATEWAY: upstream exploded\) \(after 2 attempts\)$/);
    assert.equal(proxy.matching(blobPath(big), 'GET').length, 2);
    assert.ok(!(await exists(layerDirOf(repo, big))));
    assert.ok(!(await exists(join(repo, proxy.host, 'test/app:v1'))));
    await assertPublished(repo, proxy.host, 'test/other:v1');
    await assertNothingStaged(root);
  });

  it('wrong-blob-bytes-rejected: a blob whose bytes do not match its digest is never published', async (t) => {
    const layer = plain.layerDigests[0]!;
    const { summary, wishes, repo, root } = await convert(
      t,
      [{ method: 'GET', path: blobPath(layer), action: { kind: 'corrupt', offset: 1000 } }],
      ['test/plain:v1', 'test/other:v1'],
    );
    assert.equal(summary.converted, 1);
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!, layer);
    assert.match(summary.failures[0]!.message, /digest mismatch for blob/);
    assert.ok(!(await exists(layerDirOf(repo, layer))));
    await assertNothingStaged(root);
  });

  it('wrong-blob-bytes-gzip: a corrupted compressed blob fails (decompression or digest), nothing published', async (t) => {
    const layer = other.layerDigests[0]!;
    const { summary, wishes, repo } = await convert(t, [{ method: 'GET', path: blobPath(layer), action: { kind: 'corrupt', offset: 40 } }], ['test/other:v1']);
    assert.equal(summary.failed, 1);
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!, layer);
    assert.ok(!(await exists(layerDirOf(repo, layer))));
  });

  it('wrong-docker-content-digest: a manifest whose announced digest is not the digest of its bytes is refused', async (t) => {
    const lie = `sha256:${'0'.repeat(64)}`;
    const { summary, wishes, proxy } = await convert(
      t,
      [{ method: 'GET', path: manifestPath('test/other', 'v1'), action: { kind: 'headers', set: { 'docker-content-digest': lie } } }],
      ['test/other:v1'],
    );
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!);
    assert.match(summary.failures[0]!.message, new RegExp(`announced Docker-Content-Digest ${lie}, but the manifest it sent hashes to ${other.digest}`));
    assert.equal(proxy.matching(/\/blobs\//).length, 0, 'nothing downloaded on the strength of it');
  });

  it('index-entry-digest-verified: a platform manifest that is not the one the index names is refused', async (t) => {
    const [amd64, arm64] = multi.manifests;
    // The arm64 manifest as stored, served in place of the amd64 one the index names (and no digest header).
    const response = await fetch(`${registry.url}/v2/test/multi/manifests/${arm64!.digest}`, {
      headers: { authorization: BASIC, accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const armManifest = Buffer.from(await response.arrayBuffer());
    const { summary, wishes, proxy } = await convert(
      t,
      [
        {
          method: 'GET',
          path: manifestPath('test/multi', amd64!.digest),
          action: { kind: 'replace-body', body: armManifest, headers: { 'docker-content-digest': undefined } },
        },
      ],
      ['test/multi:v1'],
    );
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!);
    assert.match(summary.failures[0]!.message, new RegExp(`digest mismatch for manifest .*@${amd64!.digest}: expected ${amd64!.digest}, got ${arm64!.digest}`));
    assert.equal(proxy.matching(/\/blobs\//).length, 0);
  });

  it('redirect-loop-bounded: a registry that redirects a blob to itself forever fails after 5 redirects', async (t) => {
    const layer = other.layerDigests[0]!;
    const { summary, wishes, proxy } = await convert(
      t,
      [{ method: 'GET', path: blobPath(layer), action: { kind: 'redirect', location: (path) => path } }],
      ['test/other:v1'],
    );
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!, layer);
    assert.match(summary.failures[0]!.message, /more than 5 redirects/);
    assert.equal(proxy.matching(blobPath(layer), 'GET').length, 6);
  });

  it('redirect-to-other-origin-without-authorization: blob storage on another origin gets no credentials, and the conversion succeeds', async (t) => {
    const layer = app.layerDigests[0]!;
    let storage: FaultProxy | undefined;
    const { summary, proxy, repo } = await convert(t, [], ['test/app:v1'], {}, async (upstream) => {
      // "storage": another origin in front of the same registry, holding its own access (like a signed URL).
      storage = await startFaultProxy(t, upstream, [], { upstreamHeaders: { authorization: BASIC } });
      const front = await startFaultProxy(t, upstream, [
        { method: 'GET', path: blobPath(layer), action: { kind: 'redirect', status: 307, location: (path) => `http://${storage!.host}${path}` } },
      ]);
      return front;
    });
    assert.deepEqual(summary.failures, []);
    assert.ok(
      proxy.matching(blobPath(layer), 'GET').every((r) => r.headers.authorization === BASIC),
      'the registry got the credentials',
    );
    const stored = storage!.matching(blobPath(layer), 'GET');
    assert.equal(stored.length, 1);
    assert.equal(stored[0]!.headers.authorization, undefined, 'the other origin did not');
    await assertPublished(repo, proxy.host, 'test/app:v1');
  });

  it('manifest-with-10000-layers-refused: refused before any blob is asked for', async (t) => {
    const digest = (i: number) => `sha256:${createHash('sha256').update(`layer ${i}`).digest('hex')}`;
    const huge = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: other.configDigest, size: 10 },
        layers: Array.from({ length: 10_000 }, (_, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest(i), size: 100 })),
      }),
    );
    const { summary, wishes, proxy } = await convert(
      t,
      [
        {
          method: 'GET',
          path: manifestPath('test/other', 'v1'),
          action: { kind: 'replace-body', body: huge, headers: { 'docker-content-digest': undefined } },
        },
      ],
      ['test/other:v1'],
    );
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!);
    assert.match(summary.failures[0]!.message, /lists 10000 layers, more than the limit of 1000/);
    assert.equal(proxy.matching(/\/blobs\//).length, 0);
  });

  it('digest-grammar-before-url-or-path: a layer digest that is a path never reaches a URL or the repository', async (t) => {
    const evil = (original: Buffer) => {
      const doc = JSON.parse(original.toString()) as { layers: { digest: string }[]; config: { size: number } };
      doc.layers[0]!.digest = 'sha256:../../../../../../tmp/ducc-evil';
      return Buffer.from(JSON.stringify(doc));
    };
    const { summary, proxy, repo } = await convert(
      t,
      [
        {
          method: 'GET',
          path: manifestPath('test/other', 'v1'),
          action: { kind: 'replace-body', body: evil, headers: { 'docker-content-digest': undefined } },
        },
      ],
      ['test/other:v1'],
    );
    assert.match(summary.failures[0]!.message, /invalid digest/);
    assert.equal(proxy.matching(/\/blobs\//).length, 0);
    assert.ok(!(await exists(join(repo, '.layers'))));
  });

  it('hostile-layer-one-line-error: an entry climbing out fails its wish with wish, layer digest and entry in one line; nothing of it is visible', async (t) => {
    const hostile = evil.layerDigests[1]!;
    const { summary, wishes, repo, root, proxy } = await convert(t, [], ['test/evil:v1', 'test/other:v1']);
    assert.equal(summary.converted, 1);
    assertOneLineFailure(summary.failures[0]!.message, wishes[0]!, hostile);
    assert.match(summary.failures[0]!.message, /entry 'etc\/\.\.\/\.\.\/escape': name contains a '\.\.' component$/);
    assert.ok(await exists(layerDirOf(repo, evil.layerDigests[0]!)), 'the harmless layer is kept for later runs');
    assert.ok(!(await exists(layerDirOf(repo, hostile))));
    assert.ok(!(await exists(join(repo, proxy.host, 'test/evil:v1'))));
    assert.ok(!(await exists(join(root, 'cvmfs', 'escape'))) && !(await exists(join(root, 'escape'))));
    await assertNothingStaged(root);
  });

  it('config-over-4-MiB-refused: a config descriptor larger than 4 MiB is refused without downloading it', async (t) => {
    const big = (original: Buffer) => {
      const doc = JSON.parse(original.toString()) as { config: { size: number } };
      doc.config.size = 5 * 1024 * 1024;
      return Buffer.from(JSON.stringify(doc));
    };
    const { summary, proxy } = await convert(
      t,
      [{ method: 'GET', path: manifestPath('test/other', 'v1'), action: { kind: 'replace-body', body: big, headers: { 'docker-content-digest': undefined } } }],
      ['test/other:v1'],
    );
    assert.match(summary.failures[0]!.message, /is 5242880 bytes, more than the 4194304 allowed/);
    assert.equal(proxy.matching(/\/blobs\//).length, 0);
  });
});
