/**
 * A Bearer token refused with error="insufficient_scope" naming a wider scope (issue 16, point 12):
 * the client asks the same token service for that scope once and sends the request again, as the
 * distribution token flow expects; it never loops, never asks another realm, and a refusal for the scope
 * it already had ends the request. Through a token-auth double in front of the real test registry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buffer } from 'node:stream/consumers';
import { RegistryClient } from '../../../src/registry/client.ts';
import { registrySettingsFromEnv } from '../../../src/registry/settings.ts';
import type { RepositoryRef } from '../../../src/registry/types.ts';
import { buildTar } from '../../support/build-tar.ts';
import { pushOciLayout, writeOciLayout, type WrittenImage } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, suiteCleanup, tempDir } from '../../support/tmp-dir.ts';
import { startTokenAuthDouble, TOKEN_DOUBLE_SERVICE } from '../../support/token-auth-double.ts';

const PULL = 'repository:test/app:pull';
const PULL_PUSH = 'repository:test/app:pull,push';
const BASE_PULL = 'repository:test/base:pull';

describe('insufficient_scope: one token for the challenged scope, then the request again', () => {
  let registry: TestRegistry;
  let image: WrittenImage;
  const suite = suiteCleanup();

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    const dir = await tempDir(suite);
    const written = await writeOciLayout(dir, 'v1', [{ layers: [await buildTar([{ name: 'etc/hello', content: 'hello\n' }])], config: { Cmd: ['/bin/sh'] } }]);
    image = written.manifests[0]!;
    await pushOciLayout(dir, 'v1', { host: registry.host, repository: 'test/app', tag: 'v1' });
  });
  after(() => suite.runAll());

  const client = () => new RegistryClient({ settings: registrySettingsFromEnv({}), retryBaseMs: 1, maxRetries: 0 });
  const refOn = (host: string): RepositoryRef => ({ scheme: 'http', registry: host, repository: 'test/app' });

  it('a wider scope on the same repository (pull,push for a pull)', async (t) => {
    const double = await startTokenAuthDouble(t, registry.host, { requiredScopes: () => [PULL_PUSH], challengeScope: () => PULL });
    const puller = client();

    const resolved = await puller.resolveImage(refOn(double.host), 'v1');
    const layer = await buffer(await puller.openBlob(refOn(double.host), resolved.manifest.layers[0]!));

    assert.equal(resolved.manifestDigest, image.digest);
    assert.equal(layer.length, resolved.manifest.layers[0]!.size);
    assert.deepEqual(
      double.tokenRequests.map((r) => [r.path, r.service, r.scopes]),
      [
        ['/token', TOKEN_DOUBLE_SERVICE, [PULL]],
        ['/token', TOKEN_DOUBLE_SERVICE, [PULL_PUSH]],
      ],
    );
    assert.deepEqual(
      double.requests.map((r) => r.status),
      [401, 401, 200, 200, 200],
      'manifest: no token, the pull token, the wider token; config and layer with the wider token at once',
    );
  });

  it('a scope naming a second repository', async (t) => {
    const double = await startTokenAuthDouble(t, registry.host, { requiredScopes: () => [PULL, BASE_PULL], challengeScope: () => PULL });

    const resolved = await client().resolveImage(refOn(double.host), 'v1');

    assert.equal(resolved.manifestDigest, image.digest);
    assert.deepEqual(
      double.tokenRequests.map((r) => r.scopes),
      [[PULL], [PULL, BASE_PULL]],
    );
    assert.deepEqual(double.requests.at(-1)?.tokenScopes, [PULL, BASE_PULL]);
  });

  it('never loops: when the wider token is refused too, the image fails after one more token', async (t) => {
    const double = await startTokenAuthDouble(t, registry.host, {
      requiredScopes: () => [PULL_PUSH],
      challengeScope: () => PULL,
      grant: (asked) => asked.filter((scope) => scope !== PULL_PUSH),
    });

    await assert.rejects(client().resolveImage(refOn(double.host), 'v1'), {
      code: 'BOT_ERR_REGISTRY_AUTH',
      message: `authentication failed for ${double.host}/test/app: the registry refused the anonymous token for manifest test/app:v1 (HTTP 401, insufficient_scope: needs "${PULL_PUSH}")`,
    });

    assert.equal(double.tokenRequests.length, 2);
    assert.deepEqual(
      double.requests.map((r) => `${r.method} ${r.path} ${r.status}`),
      ['GET /v2/test/app/manifests/v1 401', 'GET /v2/test/app/manifests/v1 401', 'GET /v2/test/app/manifests/v1 401'],
      'three manifest requests, no blob request',
    );
  });

  it('an insufficient_scope for the scope the token already had is a refusal, without another token', async (t) => {
    const double = await startTokenAuthDouble(t, registry.host, { requiredScopes: () => [PULL], grant: () => [] });

    await assert.rejects(client().resolveImage(refOn(double.host), 'v1'), {
      code: 'BOT_ERR_REGISTRY_AUTH',
      message: /refused the anonymous token .*insufficient_scope/,
    });

    assert.equal(double.tokenRequests.length, 1);
    assert.equal(double.requests.length, 2);
  });

  it('a wider scope from another realm is not asked for', async (t) => {
    const double = await startTokenAuthDouble(t, registry.host, {
      requiredScopes: () => [PULL_PUSH],
      challengeScope: () => PULL,
      insufficientScopeRealm: (host) => `http://${host}/elsewhere`,
    });

    await assert.rejects(client().resolveImage(refOn(double.host), 'v1'), { code: 'BOT_ERR_REGISTRY_AUTH', message: /insufficient_scope: needs/ });

    assert.deepEqual(
      double.tokenRequests.map((r) => r.path),
      ['/token'],
    );
  });
});
