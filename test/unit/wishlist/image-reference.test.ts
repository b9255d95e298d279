import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseImageReference, formatOutputImage, wholeName, referenceSuffix } from '../../../src/wishlist/image-reference.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseImageReference (DUCC parse_test.go vectors and our stricter cases)', () => {
  const ok: [string, Record<string, string | undefined>][] = [
    ['https://hub.docker.com/library/redis:5', { scheme: 'https', registry: 'hub.docker.com', repository: 'library/redis', tag: '5', digest: undefined }],
    ['https://hub.docker.com/library/redis:*', { scheme: 'https', registry: 'hub.docker.com', repository: 'library/redis', tag: '*', digest: undefined }],
    [`https://hub.docker.com/library/redis@${D}`, { scheme: 'https', registry: 'hub.docker.com', repository: 'library/redis', tag: undefined, digest: D }],
    [`https://hub.docker.com/library/redis:5@${D}`, { scheme: 'https', registry: 'hub.docker.com', repository: 'library/redis', tag: '5', digest: D }],
    ['hub.docker.com/library/redis:5', { scheme: 'https', registry: 'hub.docker.com', repository: 'library/redis', tag: '5', digest: undefined }],
    ['http://localhost:5000/mock/ubuntu:latest', { scheme: 'http', registry: 'localhost:5000', repository: 'mock/ubuntu', tag: 'latest', digest: undefined }],
    [
      'https://gitlab-p4n.aip.de:5005/compute4punch/container-stacks/wlcg-wn:latest',
      { scheme: 'https', registry: 'gitlab-p4n.aip.de:5005', repository: 'compute4punch/container-stacks/wlcg-wn', tag: 'latest', digest: undefined },
    ],
    [
      'https://ghcr.io/dluitz/bonn-comp-phys-c--dev:main',
      { scheme: 'https', registry: 'ghcr.io', repository: 'dluitz/bonn-comp-phys-c--dev', tag: 'main', digest: undefined },
    ],
  ];
  for (const [input, want] of ok) {
    it(`parses ${input}`, () => {
      const ref = parseImageReference(input);
      assert.deepEqual({ scheme: ref.scheme, registry: ref.registry, repository: ref.repository, tag: ref.tag, digest: ref.digest }, want);
    });
  }

  const bad: [string, RegExp][] = [
    ['https://hub.docker.com/library/redis:5:4', /too many ':'/],
    ['ubuntu:22.04', /names no registry.*https:\/\/registry\.hub\.docker\.com\/library\/ubuntu:22\.04/],
    ['library/ubuntu:latest', /'library' does not look like a registry host.*https:\/\/registry\.hub\.docker\.com\/library\/ubuntu:latest/],
    ['https://hub.docker.com/library/redis/', /neither a tag nor a digest.*:latest/],
    ['https://hub.docker.com/library/redis@sha256:aaabbbccc', /digest 'sha256:aaabbbccc' is not a valid/],
    ['https://hub.docker.com/library/../etc:1', /component '\.\.'/],
    ['ftp://hub.docker.com/library/redis:5', /unsupported scheme/],
    ['https://hub.docker.com/Library/redis:5', /component 'Library'/],
    ['https://hub.docker.com:99999/a:5', /out of range/],
  ];
  for (const [input, pattern] of bad) {
    it(`rejects ${input}`, () => {
      assert.throws(
        () => parseImageReference(input),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'BOT_ERR_REFERENCE');
          assert.match(error.message, pattern);
          return true;
        },
      );
    });
  }
});

describe('formatOutputImage', () => {
  const ref = parseImageReference(`https://registry.hub.docker.com/library/ubuntu:22.04@${D}`);

  it('uses the DUCC default $(scheme)://$(registry)/$(repository)_thin:$(tag)', () => {
    assert.equal(formatOutputImage(undefined, ref), 'https://registry.hub.docker.com/library/ubuntu_thin:22.04');
  });

  it('substitutes every variable', () => {
    const out = formatOutputImage('$(scheme)|$(registry)|$(repository)|$(tag)|$(digest)|$(reference)|$(image)', ref);
    assert.equal(out, `https|registry.hub.docker.com|library/ubuntu|22.04|${D}|:22.04@${D}|library/ubuntu:22.04@${D}`);
  });

  it('replaces a variable at most five times, as DUCC does', () => {
    assert.equal(formatOutputImage('$(tag)'.repeat(6), ref), '22.04'.repeat(5) + '$(tag)');
  });

  it('formats the unpacked.cern.ch output_format', () => {
    const input = parseImageReference('https://registry.hub.docker.com/library/centos:centos7');
    assert.equal(
      formatOutputImage('https://gitlab-registry.cern.ch/unpacked/sync/$(image)', input),
      'https://gitlab-registry.cern.ch/unpacked/sync/library/centos:centos7',
    );
    assert.equal(wholeName(input), 'https://registry.hub.docker.com/library/centos:centos7');
    assert.equal(referenceSuffix(input), ':centos7');
  });
});
