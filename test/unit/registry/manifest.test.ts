import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DuccError } from '../../../src/util/errors.ts';
import { parseImageConfig, parseManifestDocument } from '../../../src/registry/manifest.ts';
import { parseNextLink } from '../../../src/registry/tag-list.ts';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest('c'), size: 10 };
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest('1'), size: 20 };
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof DuccError && e.code === code && (re === undefined || re.test(e.message));

test('OCI manifest with and without mediaType; Docker schema 2', () => {
  const withType = parseManifestDocument(
    json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] }),
    undefined,
    'm',
  );
  assert.equal(withType.kind, 'manifest');
  assert.equal(withType.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  const without = parseManifestDocument(json({ schemaVersion: 2, config, layers: [layer] }), 'application/vnd.oci.image.manifest.v1+json; charset=utf-8', 'm');
  assert.equal(without.kind, 'manifest');
  assert.equal(without.mediaType, 'application/vnd.oci.image.manifest.v1+json', 'falls back to the Content-Type');
  const bare = parseManifestDocument(json({ schemaVersion: 2, config, layers: [] }), undefined, 'm');
  assert.equal(bare.kind, 'manifest');
  assert.equal(bare.mediaType, '');
  const docker = parseManifestDocument(
    json({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config, layers: [layer] }),
    'application/vnd.docker.distribution.manifest.v2+json',
    'm',
  );
  assert.ok(docker.kind === 'manifest' && docker.manifest.layers[0]?.digest === layer.digest);
});

test('index and manifest list', () => {
  const entry = { ...layer, mediaType: 'application/vnd.oci.image.manifest.v1+json', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } };
  const index = parseManifestDocument(json({ schemaVersion: 2, manifests: [entry] }), 'application/vnd.oci.image.index.v1+json', 'i');
  assert.ok(index.kind === 'index');
  assert.deepEqual(index.index.manifests[0]?.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  const list = parseManifestDocument(
    json({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifests: [entry] }),
    undefined,
    'i',
  );
  assert.equal(list.kind, 'index');
});

test('schema 1 is rejected clearly', () => {
  assert.throws(
    () =>
      parseManifestDocument(json({ schemaVersion: 1, name: 'x', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'manifest a:b'),
    isCode('BOT_ERR_MEDIA_TYPE', /schema 1/),
  );
  assert.throws(
    () => parseManifestDocument(json({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v1+json' }), undefined, 'm'),
    isCode('BOT_ERR_MEDIA_TYPE', /schema 1/),
  );
});

test('invalid manifests', () => {
  assert.throws(() => parseManifestDocument(Buffer.from('not json'), undefined, 'm'), isCode('BOT_ERR_REGISTRY'));
  assert.throws(
    () => parseManifestDocument(json({ schemaVersion: 2, mediaType: 'application/vnd.oci.artifact.manifest.v1+json' }), undefined, 'm'),
    isCode('BOT_ERR_MEDIA_TYPE'),
  );
  assert.throws(
    () => parseManifestDocument(json({ schemaVersion: 2, config, layers: [{ ...layer, digest: 'sha256:../../etc/passwd' }] }), undefined, 'm'),
    isCode('BOT_ERR_DIGEST_MISMATCH', /layer 0/),
  );
  assert.throws(
    () => parseManifestDocument(json({ schemaVersion: 2, config: { ...config, size: -1 }, layers: [] }), undefined, 'm'),
    isCode('BOT_ERR_REGISTRY', /size/),
  );
  assert.throws(
    () => parseManifestDocument(json({ schemaVersion: 2, config, layers: [{ ...layer, size: 1.5 }] }), undefined, 'm'),
    isCode('BOT_ERR_REGISTRY', /size/),
  );
  assert.throws(
    () => parseManifestDocument(json({ schemaVersion: 2, config: { digest: digest('c'), size: 1 }, layers: [] }), undefined, 'm'),
    isCode('BOT_ERR_REGISTRY', /mediaType/),
  );
  assert.throws(
    () => parseManifestDocument(json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', manifests: [] }), undefined, 'm'),
    isCode('BOT_ERR_REGISTRY'),
  );
  assert.throws(() => parseManifestDocument(json({ schemaVersion: 3, config, layers: [] }), undefined, 'm'), isCode('BOT_ERR_REGISTRY'));
});

test('config blob parsing', () => {
  const c = parseImageConfig(
    json({ architecture: 'amd64', os: 'linux', config: { Env: ['A=1'], Cmd: null }, rootfs: { type: 'layers', diff_ids: [digest('d')] } }),
    'c',
  );
  assert.deepEqual(c.config?.Env, ['A=1']);
  assert.equal(c.config?.Cmd, null);
  assert.throws(() => parseImageConfig(json({ config: { Env: 'A=1' } }), 'c'), isCode('BOT_ERR_REGISTRY', /Env/));
  assert.throws(() => parseImageConfig(json({ rootfs: { type: 'layers', diff_ids: ['nope'] } }), 'c'), isCode('BOT_ERR_DIGEST_MISMATCH'));
  assert.throws(() => parseImageConfig(Buffer.from('[1]'), 'c'), isCode('BOT_ERR_REGISTRY'));
});

test('Link header next target', () => {
  assert.equal(parseNextLink('</v2/a/tags/list?n=2&last=b>; rel="next"'), '/v2/a/tags/list?n=2&last=b');
  assert.equal(parseNextLink('<https://x/prev>; rel="prev", <https://x/next?a=1>; rel=next'), 'https://x/next?a=1');
  assert.equal(parseNextLink(['<https://x/p>; rel="prev"', '<https://x/n>; title="a;b"; rel="next"']), 'https://x/n');
  assert.equal(parseNextLink('</x>; rel="prev"'), undefined);
  assert.equal(parseNextLink(undefined), undefined);
});

test('a document that is a manifest and an index at once is refused, whatever it declares', () => {
  const entry = { ...layer, mediaType: 'application/vnd.oci.image.manifest.v1+json', platform: { os: 'linux', architecture: 'amd64' } };
  const both = { schemaVersion: 2, config, layers: [layer], manifests: [entry] };
  for (const mediaType of [undefined, 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json']) {
    assert.throws(
      () => parseManifestDocument(json({ ...both, mediaType }), mediaType, 'manifest r/x:v1'),
      isCode('BOT_ERR_MEDIA_TYPE', /^manifest r\/x:v1 is ambiguous: it has both "manifests" \(an index\) and "layers" and "config" \(an image manifest\)/),
    );
  }
  assert.throws(
    () =>
      parseManifestDocument(json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry], layers: [] }), undefined, 'i'),
    isCode('BOT_ERR_MEDIA_TYPE', /ambiguous: it has both "manifests" \(an index\) and "layers"/),
  );
  assert.throws(
    () => parseManifestDocument(json({ schemaVersion: 2, config, layers: [], manifests: null }), undefined, 'm'),
    isCode('BOT_ERR_MEDIA_TYPE', /ambiguous/),
    'the key counts, whatever its value',
  );
});

test('manifests, indexes and configs are read as I-JSON: no key twice, UTF-8 only', () => {
  const duplicated = Buffer.from(
    `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":${JSON.stringify(config)},"layers":[],"layers":[${JSON.stringify(layer)}]}`,
  );
  assert.equal((JSON.parse(duplicated.toString()) as { layers: unknown[] }).layers.length, 1, 'JSON.parse takes the last');
  assert.throws(
    () => parseManifestDocument(duplicated, undefined, 'manifest r/x:v1'),
    isCode('BOT_ERR_REGISTRY', /^invalid manifest r\/x:v1: duplicate key "layers" in the object at \$$/),
  );

  const entry = JSON.stringify({ ...layer, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
  const index = Buffer.from(`{"schemaVersion":2,"manifests":[${entry.replace('{', '{"platform":{"os":"linux","os":"windows","architecture":"amd64"},')}]}`);
  assert.throws(
    () => parseManifestDocument(index, undefined, 'index r/x:v1'),
    isCode('BOT_ERR_REGISTRY', /duplicate key "os" in the object at \$\.manifests\[0\]\.platform$/),
  );

  const badUtf8 = Buffer.concat([
    Buffer.from(`{"schemaVersion":2,"config":${JSON.stringify(config)},"layers":[],"annotations":{"org.example.note":"`),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('"}}'),
  ]);
  assert.throws(() => parseManifestDocument(badUtf8, undefined, 'manifest r/x:v1'), isCode('BOT_ERR_REGISTRY', /^invalid manifest r\/x:v1: not valid UTF-8$/));

  assert.throws(
    () => parseImageConfig(Buffer.from('{"config":{"Env":["A=1"],"Env":["A=2"]}}'), 'config c'),
    isCode('BOT_ERR_REGISTRY', /duplicate key "Env" in the object at \$\.config$/),
  );
  assert.throws(
    () => parseImageConfig(Buffer.concat([Buffer.from('{"os":"linux","author":"'), Buffer.from([0xc3]), Buffer.from('"}')]), 'c'),
    isCode('BOT_ERR_REGISTRY', /not valid UTF-8/),
  );
});
