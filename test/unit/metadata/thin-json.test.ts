// Expected bytes marked "Go:" were produced with json.MarshalIndent(thin, "", "  ") on DUCC's ThinImage.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatThinJson } from '../../../src/metadata/thin-json.ts';

const BH = 'b'.repeat(64);
const CH = 'c'.repeat(64);

describe('formatThinJson (§4.1)', () => {
  it('writes the ducc.md example shape, two-space indent, no trailing newline (Go)', () => {
    const bytes = formatThinJson(
      'https://registry.hub.docker.com/library/ubuntu:latest',
      [{ digest: `sha256:${BH}` }, { digest: `sha256:${CH}` }],
      'unpacked.cern.ch',
    );
    assert.equal(
      bytes.toString('utf8'),
      `{
  "version": "1.0",
  "origin": "https://registry.hub.docker.com/library/ubuntu:latest",
  "layers": [
    {
      "digest": "${BH}",
      "url": "cvmfs://unpacked.cern.ch/.layers/bb/${BH}/layerfs"
    },
    {
      "digest": "${CH}",
      "url": "cvmfs://unpacked.cern.ch/.layers/cc/${CH}/layerfs"
    }
  ]
}`,
    );
  });

  it('puts a repository sub-directory into the URL path (trailing slash cleaned like filepath.Join)', () => {
    for (const repo of ['unpacked.cern.ch/images', 'unpacked.cern.ch/images/']) {
      const thin = JSON.parse(formatThinJson('o', [{ digest: `sha256:${CH}` }], repo).toString());
      assert.equal(thin.layers[0].url, `cvmfs://unpacked.cern.ch/images/.layers/cc/${CH}/layerfs`);
    }
  });

  it('omits an empty origin and writes [] for no layers (Go)', () => {
    assert.equal(formatThinJson('', [], 'unpacked.cern.ch').toString(), '{\n  "version": "1.0",\n  "layers": []\n}');
  });

  it('HTML-escapes the origin like Go', () => {
    assert.match(formatThinJson('https://r/x&y<z>:t', [], 'r').toString(), /"origin": "https:\/\/r\/x\\u0026y\\u003cz\\u003e:t"/);
  });

  it('rejects bad digests and repository names', () => {
    assert.throws(
      () => formatThinJson('o', [{ digest: BH }], 'r'),
      (error: { code?: string }) => error.code === 'BOT_ERR_REFERENCE',
    );
    for (const repo of ['', '/abs', '../x', 'a/../b']) {
      assert.throws(
        () => formatThinJson('o', [], repo),
        (error: { code?: string }) => error.code === 'BOT_ERR_THIN',
        repo,
      );
    }
  });
});
