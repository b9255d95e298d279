/**
 * Manifests, indexes and configs that different parsers read differently (issue 16, point 11), served
 * by the real test registry through the fault proxy: a manifest that is also an index, a key given twice,
 * bytes that are not UTF-8. Each is refused with an error naming the image and the problem, before any
 * blob is asked for (a config, itself a blob, before any layer).
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { RegistryClient } from '../../../src/registry/client.ts';
import { registrySettingsFromEnv } from '../../../src/registry/settings.ts';
import type { RepositoryRef } from '../../../src/registry/types.ts';
import { buildTar } from '../../support/build-tar.ts';
import { startFaultProxy, type FaultRule } from '../../support/fault-proxy.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, suiteCleanup, tempDir } from '../../support/tmp-dir.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('ambiguous registry documents are refused before their blobs are fetched', () => {
  let registry: TestRegistry;
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    const layouts = await tempDir(suite);
    const layer = await buildTar([{ name: 'etc/hello', content: 'hello\n' }]);
    await writeOciLayout(`${layouts}/app`, 'v1', [{ layers: [layer], config: { Cmd: ['/bin/sh'] } }]);
    await pushOciLayout(`${layouts}/app`, 'v1', { host: registry.host, repository: 'test/app', tag: 'v1' });
    await writeOciLayout(`${layouts}/multi`, 'v1', [
      { layers: [layer], platform: { os: 'linux', architecture: 'amd64' } },
      { layers: [layer], platform: { os: 'linux', architecture: 'arm64' } },
    ]);
    await pushOciLayout(`${layouts}/multi`, 'v1', { host: registry.host, repository: 'test/multi', tag: 'v1' });
  });
  after(() => suite.runAll());

  const client = () => new RegistryClient({ settings: registrySettingsFromEnv({}), retryBaseMs: 1, maxRetries: 0 });
  const refOn = (host: string, repository: string): RepositoryRef => ({ scheme: 'http', registry: host, repository });

  /** The manifest (or index) `repository:v1` as the registry stores it, parsed. */
  async function stored(repository: string): Promise<Record<string, unknown>> {
    const response = await fetch(`${registry.url}/v2/${repository}/manifests/v1`, {
      headers: { accept: `${OCI_MANIFEST}, application/vnd.oci.image.index.v1+json` },
    });
    return (await response.json()) as Record<string, unknown>;
  }

  /** A proxy that serves `body` for GET manifests/v1 of `repository` (without the registry's digest header). */
  async function serving(t: TestContext, repository: string, body: Buffer) {
    const rule: FaultRule = {
      method: 'GET',
      path: new RegExp(`^/v2/${repository}/manifests/v1$`),
      action: { kind: 'replace-body', body, headers: { 'docker-content-digest': undefined } },
    };
    return startFaultProxy(t, registry.host, [rule]);
  }

  it('a manifest with both "layers" and "manifests"', async (t) => {
    const manifest = await stored('test/app');
    const proxy = await serving(t, 'test/app', Buffer.from(JSON.stringify({ ...manifest, manifests: [] })));

    await assert.rejects(client().resolveImage(refOn(proxy.host, 'test/app'), 'v1'), {
      code: 'BOT_ERR_MEDIA_TYPE',
      message: `manifest ${proxy.host}/test/app:v1 is ambiguous: it has both "manifests" (an index) and "layers" and "config" (an image manifest); refused before any of it is used`,
    });

    assert.equal(proxy.matching(/\/blobs\//).length, 0, 'no blob request');
  });

  it('a manifest with the key "layers" twice', async (t) => {
    const { layers, ...rest } = await stored('test/app');
    const text = `${JSON.stringify(rest).slice(0, -1)},"layers":[],"layers":${JSON.stringify(layers)}}`;
    assert.deepEqual((JSON.parse(text) as { layers: unknown }).layers, layers, 'JSON.parse would take the real layers');
    const proxy = await serving(t, 'test/app', Buffer.from(text));

    await assert.rejects(client().resolveImage(refOn(proxy.host, 'test/app'), 'v1'), {
      code: 'BOT_ERR_REGISTRY',
      message: `invalid manifest ${proxy.host}/test/app:v1: duplicate key "layers" in the object at $`,
    });

    assert.equal(proxy.matching(/\/blobs\//).length, 0, 'no blob request');
  });

  it('a manifest with invalid UTF-8 in an annotation', async (t) => {
    const manifest = await stored('test/app');
    const text = JSON.stringify({ ...manifest, annotations: { 'org.example.note': 'MARK' } });
    const [head, tail] = text.split('MARK') as [string, string];
    const proxy = await serving(t, 'test/app', Buffer.concat([Buffer.from(head), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from(tail)]));

    await assert.rejects(client().resolveImage(refOn(proxy.host, 'test/app'), 'v1'), {
      code: 'BOT_ERR_REGISTRY',
      message: `invalid manifest ${proxy.host}/test/app:v1: not valid UTF-8`,
    });

    assert.equal(proxy.matching(/\/blobs\//).length, 0, 'no blob request');
  });

  it('an index with the key "manifests" twice: neither its platform manifests nor blobs are fetched', async (t) => {
    const { manifests, ...rest } = await stored('test/multi');
    const arm64Only = (manifests as { platform: { architecture: string } }[]).filter((m) => m.platform.architecture === 'arm64');
    const text = `${JSON.stringify(rest).slice(0, -1)},"manifests":${JSON.stringify(arm64Only)},"manifests":${JSON.stringify(manifests)}}`;
    const proxy = await serving(t, 'test/multi', Buffer.from(text));

    await assert.rejects(client().resolveAllPlatforms(refOn(proxy.host, 'test/multi'), 'v1'), {
      code: 'BOT_ERR_REGISTRY',
      message: `invalid manifest ${proxy.host}/test/multi:v1: duplicate key "manifests" in the object at $`,
    });

    assert.deepEqual(
      proxy.requests.filter((r) => r.status !== 401).map((r) => `${r.method} ${r.path}`),
      ['GET /v2/test/multi/manifests/v1'],
      'the index only',
    );
  });

  it('a config with invalid UTF-8: refused when fetched, before any layer', async (t) => {
    const pusher = client();
    const ref = refOn(registry.host, 'test/bad-config');
    const layer = gzipSync(await buildTar([{ name: 'etc/hello', content: 'hello\n' }]));
    const config = Buffer.concat([Buffer.from('{"architecture":"amd64","os":"linux","author":"'), Buffer.from([0xff]), Buffer.from('"}')]);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
      }),
    );
    await pusher.pushBlob(ref, layer, sha256(layer));
    await pusher.pushBlob(ref, config, sha256(config));
    await pusher.pushManifest(ref, 'v1', manifest, OCI_MANIFEST);
    const proxy = await startFaultProxy(t, registry.host);

    await assert.rejects(client().resolveImage(refOn(proxy.host, 'test/bad-config'), 'v1'), {
      code: 'BOT_ERR_REGISTRY',
      message: `invalid config ${sha256(config)} of ${proxy.host}/test/bad-config: not valid UTF-8`,
    });

    assert.deepEqual(
      proxy.matching(/\/blobs\//).map((r) => r.path),
      [`/v2/test/bad-config/blobs/${sha256(config)}`],
      'the config only',
    );
  });
});
