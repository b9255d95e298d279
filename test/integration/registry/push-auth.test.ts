/**
 * Pushing blobs and manifests to a real registry protected by htpasswd (Basic auth), checked with skopeo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Agent, type Dispatcher } from 'undici';
import { RegistryClient } from '../../../src/registry/client.ts';
import { CredentialStore } from '../../../src/registry/credentials.ts';
import type { RepositoryRef } from '../../../src/registry/types.ts';
import { buildTar } from '../../support/build-tar.ts';
import { pushOciLayout, runSkopeo, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry } from '../../support/registry.ts';
import { hasCode } from '../../support/ducc-error.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A dispatcher that records every request (method and path) it sends. */
function recordingDispatcher(t: { after(fn: () => unknown): void }): { dispatcher: Dispatcher; requests: string[] } {
  const agent = new Agent();
  t.after(() => agent.close());
  const requests: string[] = [];
  const dispatcher = agent.compose((dispatch) => (options, handler) => {
    requests.push(`${options.method} ${options.path}`);
    return dispatch(options, handler);
  });
  return { dispatcher, requests };
}

test('pushing to a registry with htpasswd authentication', async (t) => {
  const username = 'pusher';
  const password = 'pa:ss w0rd,"quoted"';
  const registry = await startRegistry(t, { htpasswd: { username, password } });
  const ref = (repository: string): RepositoryRef => ({ scheme: 'http', registry: registry.host, repository });
  const credentials = new CredentialStore();
  credentials.set(registry.host, { username, password });
  const { dispatcher, requests } = recordingDispatcher(t);
  const client = new RegistryClient({ credentials, dispatcher, retryBaseMs: 5, maxRetries: 1 });

  // An image built by hand, the way thin images are.
  const layerTar = await buildTar([{ name: 'hello.txt', content: `hello ${randomBytes(4).toString('hex')}\n` }]);
  const layer = gzipSync(layerTar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['A=1'], Cmd: ['/bin/true'] },
      rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
    }),
  );
  const manifestMediaType = 'application/vnd.docker.distribution.manifest.v2+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestMediaType,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha256(layer), size: layer.length }],
    }),
  );

  await t.test('pushBlob + pushManifest with credentials; skopeo accepts the result', async () => {
    await client.pushBlob(ref('thin/app'), layer, sha256(layer));
    await client.pushBlob(ref('thin/app'), config, sha256(config));
    const digest = await client.pushManifest(ref('thin/app'), 'v1', manifest, manifestMediaType);
    assert.equal(digest, sha256(manifest));
    assert.ok(requests.some((r) => r.startsWith('POST /v2/thin/app/blobs/uploads/')));
    assert.ok(requests.some((r) => r.startsWith('PUT /v2/thin/app/blobs/uploads/') && r.includes(`digest=${encodeURIComponent(sha256(layer))}`)));

    const inspected = JSON.parse(
      await runSkopeo(['inspect', '--tls-verify=false', '--creds', `${username}:${password}`, `docker://${registry.host}/thin/app:v1`]),
    ) as { Digest: string; Layers: string[]; Env: string[]; Architecture: string };
    assert.equal(inspected.Digest, digest);
    assert.deepEqual(inspected.Layers, [sha256(layer)]);
    assert.deepEqual(inspected.Env, ['A=1']);

    const image = await client.resolveImage(ref('thin/app'), 'v1');
    assert.equal(image.manifestDigest, digest);
    assert.deepEqual(image.manifestBytes, manifest);
    assert.equal(await client.blobExists(ref('thin/app'), sha256(layer)), true);
  });

  await t.test('pushing an existing blob makes no upload', async () => {
    const before = requests.length;
    await client.pushBlob(ref('thin/app'), layer, sha256(layer));
    const made = requests.slice(before);
    assert.deepEqual(
      made.map((r) => r.split(' ')[0]),
      ['HEAD'],
    );
  });

  await t.test('a blob that does not match its digest is refused before any request', async () => {
    const before = requests.length;
    await assert.rejects(client.pushBlob(ref('thin/app'), Buffer.from('abc'), sha256(Buffer.from('abd'))), hasCode('BOT_ERR_DIGEST_MISMATCH'));
    await assert.rejects(client.pushBlob(ref('thin/app'), Buffer.from('abc'), 'sha256:abc'), hasCode('BOT_ERR_REFERENCE'));
    assert.equal(requests.length, before);
  });

  await t.test('without credentials, pushing fails with BOT_ERR_REGISTRY_AUTH', async () => {
    const anonymous = new RegistryClient({ retryBaseMs: 5, maxRetries: 1 });
    await assert.rejects(
      anonymous.pushBlob(ref('thin/other'), layer, sha256(layer)),
      hasCode(
        'BOT_ERR_REGISTRY_AUTH',
        new RegExp(`^authentication failed for ${registry.host.replace(/\./g, '\\.')}/thin/other: .*requires credentials.*none are configured`),
      ),
    );
    await assert.rejects(anonymous.pushManifest(ref('thin/other'), 'v1', manifest, manifestMediaType), hasCode('BOT_ERR_REGISTRY_AUTH'));
    await assert.rejects(anonymous.resolveImage(ref('thin/app'), 'v1'), hasCode('BOT_ERR_REGISTRY_AUTH'));
  });

  await t.test('wrong credentials fail with BOT_ERR_REGISTRY_AUTH and no secret in the message', async () => {
    const wrong = new CredentialStore();
    wrong.set(registry.host, { username, password: 'not-the-password-42' });
    const client2 = new RegistryClient({ credentials: wrong, retryBaseMs: 5, maxRetries: 1 });
    await assert.rejects(client2.pushBlob(ref('thin/app'), config, sha256(config)), hasCode('BOT_ERR_REGISTRY_AUTH', /rejected/, 'not-the-password-42'));
    await assert.rejects(client2.listTags(ref('thin/app')), hasCode('BOT_ERR_REGISTRY_AUTH', undefined, 'not-the-password-42'));
  });

  await t.test('test support: skopeo pushes with credentials, client pulls them back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ducc-push-auth-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const written = await writeOciLayout(dir, 'v1', [{ layers: [layerTar], config: { Env: ['B=2'] } }]);
    await pushOciLayout(dir, 'v1', { host: registry.host, repository: 'seeded/app', tag: 'v1', creds: { username, password } });
    const image = await client.resolveImage(ref('seeded/app'), 'v1');
    assert.equal(image.manifestDigest, written.manifests[0]!.digest);
    assert.deepEqual(image.config.config?.Env, ['B=2']);
    assert.deepEqual(await client.listTags(ref('seeded/app')), ['v1']);
    await assert.rejects(
      pushOciLayout(dir, 'v1', { host: registry.host, repository: 'seeded/app', tag: 'v2' }),
      (e: unknown) => e instanceof Error && /skopeo copy/.test(e.message) && /unauthorized|authentication required/i.test(e.message),
    );
  });
});
