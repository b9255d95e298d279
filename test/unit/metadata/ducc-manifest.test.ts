// Expected bytes marked "Go:" were produced by running DUCC's structs through Go's encoding/json
// (json.Marshal / json.Unmarshal), so they are the real thing, not our reading of the spec.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  duccManifestToGoJson,
  formatDuccManifest,
  goJsonMarshal,
  goJsonMarshalIndent,
  goJsonQuote,
  parseDuccManifest,
} from '../../../src/metadata/ducc-manifest.ts';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

describe('formatDuccManifest (§3.6)', () => {
  it('writes the ducc.md example byte for byte (Go json.Marshal, no trailing newline)', () => {
    const bytes = formatDuccManifest({
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: 7631, digest: A },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 29536366, digest: B }],
    });
    assert.ok(Buffer.isBuffer(bytes));
    assert.equal(
      bytes.toString('utf8'),
      `{"SchemaVersion":2,"MediaType":"application/vnd.docker.distribution.manifest.v2+json","Config":{"MediaType":"application/vnd.docker.container.image.v1+json","Size":7631,"Digest":"${A}"},"Layers":[{"MediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","Size":29536366,"Digest":"${B}"}]}`,
    );
  });

  it('writes MediaType "" when absent and Layers null when there are none (Go)', () => {
    const bytes = formatDuccManifest({ config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: 1, digest: A }, layers: null });
    assert.equal(
      bytes.toString(),
      `{"SchemaVersion":2,"MediaType":"","Config":{"MediaType":"application/vnd.oci.image.config.v1+json","Size":1,"Digest":"${A}"},"Layers":null}`,
    );
  });

  it('keeps an empty layers array as [] and honours schemaVersion', () => {
    const bytes = formatDuccManifest({ config: { mediaType: 'c', size: 0, digest: A }, layers: [] }, 3);
    assert.equal(bytes.toString(), `{"SchemaVersion":3,"MediaType":"","Config":{"MediaType":"c","Size":0,"Digest":"${A}"},"Layers":[]}`);
  });

  it('escapes like Go (HTML-safe, U+2028/9, controls; DEL and non-ASCII raw) (Go)', () => {
    const bytes = formatDuccManifest({
      mediaType: 'a<b>&c"d\\e\u2028f\u2029g\x7f\x01\t\n\r😀é',
      config: { mediaType: '', size: 0, digest: A },
      layers: [],
    });
    assert.equal(
      bytes.toString('utf8'),
      `{"SchemaVersion":2,"MediaType":"a\\u003cb\\u003e\\u0026c\\"d\\\\e\\u2028f\\u2029g\x7f\\u0001\\t\\n\\r😀é","Config":{"MediaType":"","Size":0,"Digest":"${A}"},"Layers":[]}`,
    );
  });

  it('rejects sizes Go could not have decoded', () => {
    assert.throws(
      () => formatDuccManifest({ config: { mediaType: 'c', size: 1.5, digest: A }, layers: null }),
      (error: { code?: string }) => error.code === 'BOT_ERR_REGISTRY',
    );
  });
});

describe('goJsonQuote', () => {
  it('uses the Go >= 1.22 short escapes for \\b and \\f and \\u00xx for other controls', () => {
    assert.equal(goJsonQuote('\b\f\x00\x1f\x0b'), '"\\b\\f\\u0000\\u001f\\u000b"');
  });
  it('writes a lone surrogate as a raw U+FFFD and keeps pairs', () => {
    assert.equal(goJsonQuote('x\ud800y\udc00z\ud83d\ude00'), '"x\ufffdy\ufffdz\ud83d\ude00"');
  });
});

describe('goJsonMarshalIndent', () => {
  it('indents like Go, keeping empty containers compact', () => {
    const value = new Map<string, unknown>([
      ['a', [1, new Map([['b', null]])]],
      ['c', []],
      ['d', new Map()],
      ['e', true],
    ]);
    assert.equal(
      goJsonMarshalIndent(value as never, '>', '\t'),
      '{\n>\t"a": [\n>\t\t1,\n>\t\t{\n>\t\t\t"b": null\n>\t\t}\n>\t],\n>\t"c": [],\n>\t"d": {},\n>\t"e": true\n>}',
    );
    assert.equal(goJsonMarshal(value as never), '{"a":[1,{"b":null}],"c":[],"d":{},"e":true}');
  });
});

describe('parseDuccManifest (AlreadyConverted, Go json.Unmarshal semantics)', () => {
  const reencode = (text: string): string | undefined => {
    const parsed = parseDuccManifest(Buffer.from(text));
    return parsed === undefined ? undefined : goJsonMarshal(duccManifestToGoJson(parsed.manifest));
  };

  it('reads what formatDuccManifest writes', () => {
    const parsed = parseDuccManifest(
      formatDuccManifest({
        mediaType: 'm',
        config: { mediaType: 'c', size: 5, digest: A },
        layers: [{ mediaType: 'l', size: 7, digest: B }],
      }),
    );
    assert.deepEqual(parsed?.configDigest, A);
    assert.deepEqual(parsed?.layers, [{ digest: B, size: 7, mediaType: 'l' }]);
    assert.equal(parsed?.manifest.schemaVersion, 2);
  });

  // [input, Go's json.Marshal of the decoded struct, or undefined where Go's Unmarshal fails]
  const vectors: [string, string, string | undefined][] = [
    [
      'registry spelling, unknown keys dropped',
      `{"schemaVersion":2,"mediaType":"mt","config":{"mediaType":"c","size":12,"digest":"${A}"},"layers":[{"mediaType":"l","size":3,"digest":"${B}","annotations":{"x":"y"}}],"annotations":{}}`,
      `{"SchemaVersion":2,"MediaType":"mt","Config":{"MediaType":"c","Size":12,"Digest":"${A}"},"Layers":[{"MediaType":"l","Size":3,"Digest":"${B}"}]}`,
    ],
    ['null document', 'null', '{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":0,"Digest":""},"Layers":null}'],
    ['empty object', '{}', '{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":0,"Digest":""},"Layers":null}'],
    ['array document', '[]', undefined],
    ['float size', '{"config":{"size":1.0}}', undefined],
    ['exponent size', '{"config":{"size":1e3}}', undefined],
    ['number digest', '{"config":{"digest":5}}', undefined],
    ['truncated', '{"config":', undefined],
    ['empty file', '', undefined],
    [
      'Layers null',
      `{"Layers":null,"Config":{"Digest":"${A}"}}`,
      `{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":0,"Digest":"${A}"},"Layers":null}`,
    ],
    ['Layers []', '{"Layers":[]}', '{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":0,"Digest":""},"Layers":[]}'],
    [
      'null layer element',
      '{"Layers":[null,{"Size":2}]}',
      '{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":0,"Digest":""},"Layers":[{"MediaType":"","Size":0,"Digest":""},{"MediaType":"","Size":2,"Digest":""}]}',
    ],
    [
      'upper-case keys, -0',
      '{"CONFIG":{"DIGEST":"x"},"SCHEMAVERSION":-0}',
      '{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":0,"Digest":"x"},"Layers":null}',
    ],
    [
      'null fields keep zero values',
      '{"schemaVersion":null,"config":{"digest":null,"size":null},"mediaType":null}',
      '{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":0,"Digest":""},"Layers":null}',
    ],
    [
      'case-variant duplicate keys merge',
      '{"config":{"digest":"first"},"Config":{"size":4}}',
      '{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":4,"Digest":"first"},"Layers":null}',
    ],
    ['Kelvin sign value', '{"mediatype":"\u212a"}', '{"SchemaVersion":0,"MediaType":"\u212a","Config":{"MediaType":"","Size":0,"Digest":""},"Layers":null}'],
  ];
  for (const [name, input, expected] of vectors) {
    it(`${name} (Go)`, () => {
      assert.equal(reencode(input), expected);
    });
  }

  it('gives configDigest "" (converted, different config) for null/{} but undefined for garbage', () => {
    assert.equal(parseDuccManifest(Buffer.from('{}'))?.configDigest, '');
    assert.deepEqual(parseDuccManifest(Buffer.from('null'))?.layers, []);
    assert.equal(parseDuccManifest(Buffer.from('\u0000garbage')), undefined);
    assert.equal(parseDuccManifest(Buffer.from([0xff, 0xfe])), undefined);
  });
});
