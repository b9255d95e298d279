// Expected bytes marked "Go:" were produced with Go's encoding/json and time packages on DUCC's own
// structs (LayerInfo, Backlink, []Manifest), in the named time zones.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendOrigin, formatGoRFC3339Nano, formatLayersJson, formatOriginJson, formatRemoveSchedule } from '../../../src/metadata/layer-metadata.ts';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const C = `sha256:${'c'.repeat(64)}`;

let savedTz: string | undefined;
before(() => {
  savedTz = process.env.TZ;
});
after(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

function layersJson(created: string, size = '74157056'): string {
  return `[\n {\n  "id": "${'a'.repeat(64)}",\n  "created": "${created}",\n  "compressed-diff-digest": "${B}",\n  "diff-digest": "${A}",\n  "diff-size": ${size}\n }\n]`;
}

describe('formatLayersJson (§3.7)', () => {
  it('writes the ducc.md example shape in Europe/Zurich (Go)', () => {
    process.env.TZ = 'Europe/Zurich';
    const bytes = formatLayersJson({ diffId: A, compressedDigest: B, diffSize: 74157056, created: new Date('2024-10-18T08:01:07.123Z') });
    assert.equal(bytes.toString('utf8'), layersJson('2024-10-18T10:01:07.123+02:00'));
    const nanos = formatLayersJson({
      diffId: A,
      compressedDigest: B,
      diffSize: 74157056,
      created: new Date('2024-10-18T08:01:07.123Z'),
      createdNanosecond: 123456789,
    });
    assert.equal(nanos.toString('utf8'), layersJson('2024-10-18T10:01:07.123456789+02:00'));
  });

  it('omits diff-size when it is 0 (omitempty) (Go)', () => {
    process.env.TZ = 'UTC';
    const bytes = formatLayersJson({ diffId: A, compressedDigest: B, diffSize: 0, created: new Date('2024-10-18T08:01:07Z') });
    assert.equal(
      bytes.toString(),
      `[\n {\n  "id": "${'a'.repeat(64)}",\n  "created": "2024-10-18T08:01:07Z",\n  "compressed-diff-digest": "${B}",\n  "diff-digest": "${A}"\n }\n]`,
    );
  });

  it('validates digests and size', () => {
    assert.throws(() => formatLayersJson({ diffId: 'a'.repeat(64), compressedDigest: B, diffSize: 1, created: new Date() }), /sha256/);
    assert.throws(() => formatLayersJson({ diffId: A, compressedDigest: B, diffSize: -1, created: new Date() }), /diff size/);
  });
});

describe('formatGoRFC3339Nano (Go time.RFC3339Nano in local time)', () => {
  const instants: [Date, number | undefined][] = [
    [new Date('2024-10-18T08:01:07.123Z'), undefined],
    [new Date('2024-01-18T08:01:07.000Z'), undefined],
    [new Date('2024-01-18T08:01:07.100Z'), undefined],
    [new Date('2024-10-18T08:01:07.123Z'), 123456789],
  ];
  const expected: Record<string, string[]> = {
    'Europe/Zurich': ['2024-10-18T10:01:07.123+02:00', '2024-01-18T09:01:07+01:00', '2024-01-18T09:01:07.1+01:00', '2024-10-18T10:01:07.123456789+02:00'],
    UTC: ['2024-10-18T08:01:07.123Z', '2024-01-18T08:01:07Z', '2024-01-18T08:01:07.1Z', '2024-10-18T08:01:07.123456789Z'],
    'America/St_Johns': ['2024-10-18T05:31:07.123-02:30', '2024-01-18T04:31:07-03:30', '2024-01-18T04:31:07.1-03:30', '2024-10-18T05:31:07.123456789-02:30'],
    'Asia/Kolkata': ['2024-10-18T13:31:07.123+05:30', '2024-01-18T13:31:07+05:30', '2024-01-18T13:31:07.1+05:30', '2024-10-18T13:31:07.123456789+05:30'],
    'America/Los_Angeles': ['2024-10-18T01:01:07.123-07:00', '2024-01-18T00:01:07-08:00', '2024-01-18T00:01:07.1-08:00', '2024-10-18T01:01:07.123456789-07:00'],
  };
  for (const [zone, strings] of Object.entries(expected)) {
    it(`matches Go in ${zone} (Go)`, () => {
      process.env.TZ = zone;
      assert.deepEqual(
        instants.map(([date, ns]) => formatGoRFC3339Nano(date, ns)),
        strings,
      );
    });
  }
  it('prints Z for a zero offset even outside UTC, and trims the fraction', () => {
    process.env.TZ = 'Europe/London';
    assert.equal(formatGoRFC3339Nano(new Date('2024-01-05T00:00:00.050Z')), '2024-01-05T00:00:00.05Z');
    assert.equal(formatGoRFC3339Nano(new Date('2024-01-05T00:00:00Z'), 1), '2024-01-05T00:00:00.000000001Z');
  });
});

describe('origin.json (§3.7, SaveLayersBacklink)', () => {
  it('formats compact JSON', () => {
    assert.equal(formatOriginJson([A, B]).toString(), `{"origin":["${A}","${B}"]}`);
    assert.equal(formatOriginJson([]).toString(), '{"origin":[]}');
  });

  // [existing file, Go's result after appending A]
  const vectors: [string, string | undefined, string][] = [
    ['missing file', undefined, `{"origin":["${A}"]}`],
    ['existing entry', `{"origin":["${B}"]}`, `{"origin":["${B}","${A}"]}`],
    ['no de-duplication', `{"origin":["${A}"]}`, `{"origin":["${A}","${A}"]}`],
    ['null document', 'null', `{"origin":["${A}"]}`],
    ['null origin', '{"origin":null}', `{"origin":["${A}"]}`],
    ['upper-case key, other keys dropped', '{"ORIGIN":["x"],"other":1}', `{"origin":["x","${A}"]}`],
    ['null element becomes ""', '{"origin":[null,"y"]}', `{"origin":["","y","${A}"]}`],
    ['empty object', '{}', `{"origin":["${A}"]}`],
  ];
  for (const [name, existing, expected] of vectors) {
    it(`appends to ${name} (Go)`, () => {
      assert.equal(appendOrigin(existing === undefined ? undefined : Buffer.from(existing), A).toString(), expected);
    });
  }

  it('starts fresh on garbage', () => {
    for (const garbage of ['', '{"origin":', '[]', '{"origin":"x"}', '{"origin":[1]}', '\xff']) {
      assert.equal(appendOrigin(Buffer.from(garbage, 'latin1'), A).toString(), `{"origin":["${A}"]}`, JSON.stringify(garbage));
    }
  });
});

describe('formatRemoveSchedule (§3.9, AddManifestToRemoveScheduler)', () => {
  const manifest = {
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: 7631, digest: A },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 29536366, digest: B }],
  };
  const M = `{"SchemaVersion":2,"MediaType":"application/vnd.docker.distribution.manifest.v2+json","Config":{"MediaType":"application/vnd.docker.container.image.v1+json","Size":7631,"Digest":"${A}"},"Layers":[{"MediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","Size":29536366,"Digest":"${B}"}]}`;

  it('creates the array when there is no file', () => {
    assert.equal(formatRemoveSchedule(undefined, manifest).toString(), `[${M}]`);
  });
  it('re-encodes existing entries the Go way and appends (Go)', () => {
    const existing = `[{"schemaVersion":2,"mediaType":"x","config":{"mediaType":"c","size":1,"digest":"${B}"},"layers":[{"mediaType":"l","size":3,"digest":"${C}","urls":["u"]}]}]`;
    assert.equal(
      formatRemoveSchedule(Buffer.from(existing), manifest).toString(),
      `[{"SchemaVersion":2,"MediaType":"x","Config":{"MediaType":"c","Size":1,"Digest":"${B}"},"Layers":[{"MediaType":"l","Size":3,"Digest":"${C}"}]},${M}]`,
    );
  });
  it('does not add a config digest twice, but still rewrites the file', () => {
    const once = formatRemoveSchedule(undefined, manifest);
    assert.equal(formatRemoveSchedule(once, manifest).toString(), `[${M}]`);
    const other = { ...manifest, mediaType: 'changed' };
    assert.equal(formatRemoveSchedule(once, other).toString(), `[${M}]`);
  });
  it('handles null and null entries like Go (Go)', () => {
    assert.equal(formatRemoveSchedule(Buffer.from('null'), manifest).toString(), `[${M}]`);
    assert.equal(
      formatRemoveSchedule(Buffer.from('[null]'), manifest).toString(),
      `[{"SchemaVersion":0,"MediaType":"","Config":{"MediaType":"","Size":0,"Digest":""},"Layers":null},${M}]`,
    );
  });
  it('fails like DUCC on a file Go cannot decode (Go: error)', () => {
    for (const bad of ['', '{}', '[1]', '[{"config":{"size":"1"}}]', '[']) {
      assert.throws(
        () => formatRemoveSchedule(Buffer.from(bad), manifest),
        (error: { code?: string }) => error.code === 'BOT_ERR_PUBLISH',
        bad,
      );
    }
  });
});
