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

describe('registry-less inputs: oci, oci-archive, docker-archive, dogestry', () => {
  const ok: [string, Record<string, unknown>][] = [
    [
      'oci:/srv/layouts/app:1.0',
      { scheme: 'oci', registry: 'oci', repository: 'srv/layouts/app', tag: '1.0', source: { kind: 'oci', path: '/srv/layouts/app' } },
    ],
    [
      'oci-archive:/srv/images/App_2.tar:latest',
      {
        scheme: 'oci-archive',
        registry: 'oci-archive',
        repository: 'srv/images/App_2.tar',
        tag: 'latest',
        source: { kind: 'oci-archive', path: '/srv/images/App_2.tar' },
      },
    ],
    [
      'docker-archive:/srv/app.tar:example.org:5000/team/app:1.0',
      {
        scheme: 'docker-archive',
        registry: 'docker-archive',
        repository: 'srv/app.tar/example.org:5000/team/app',
        tag: '1.0',
        source: { kind: 'docker-archive', path: '/srv/app.tar', name: 'example.org:5000/team/app' },
      },
    ],
    [
      'dogestry://central/myorg/app:2024*',
      {
        scheme: 'dogestry',
        registry: 'dogestry',
        repository: 'central/myorg/app',
        tag: '2024*',
        source: { kind: 'dogestry', remote: 'central', name: 'myorg/app' },
      },
    ],
  ];
  for (const [input, want] of ok) {
    it(`parses ${input} and writes it back as written`, () => {
      const ref = parseImageReference(input);

      assert.deepEqual({ scheme: ref.scheme, registry: ref.registry, repository: ref.repository, tag: ref.tag, source: ref.source }, want);
      assert.equal(wholeName(ref), input);
    });
  }

  const bad: [string, RegExp][] = [
    ['oci:/srv/layouts/app', /has no tag; write it in full, e.g. 'oci:\/srv\/images\/app:1.0'/],
    ['oci:srv/layouts/app:1.0', /path 'srv\/layouts\/app' is not absolute/],
    ['oci:/srv/../etc:1.0', /not in normal form/],
    ['oci:/srv//x:1.0', /not in normal form/],
    ['oci:/srv/x y:1.0', /whitespace/],
    ['oci:/srv/x:1.0@sha256:' + 'a'.repeat(64), /named by tag, not by digest/],
    ['oci-archive:/srv/x.tar:bad/tag', /tag 'bad\/tag' is not valid/],
    ['docker-archive:/srv/app.tar:1.0', /'1\.0' is not NAME:TAG/],
    ['docker-archive:/srv/app.tar:Team/app:1.0', /image name component 'Team'/],
    ['dogestry://Central/app:1', /'Central' is not a remote name/],
    ['dogestry://central/app', /has no tag.*dogestry:\/\/central\/app:latest/],
    ['dogestry://central/app:1?region=eu', /query strings/],
    ['https://oci/app:1', /'oci' is reserved/],
    ['s3://bucket/app:1', /unsupported scheme 's3'.*dogestry:\/\/REMOTE\/NAME:TAG/],
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

  it('fills output_format variables from the source: remote and dogestry repository, path and name', () => {
    const fmt = '$(scheme)|$(registry)|$(repository)|$(tag)|$(image)';

    assert.equal(formatOutputImage(fmt, parseImageReference('dogestry://central/myorg/app:1.0')), 'dogestry|central|myorg/app|1.0|myorg/app:1.0');
    assert.equal(formatOutputImage(fmt, parseImageReference('oci:/srv/layouts/app:1.0')), 'oci|/srv/layouts/app|app|1.0|app:1.0');
    assert.equal(formatOutputImage(fmt, parseImageReference('docker-archive:/a.tar:x/app:2')), 'docker-archive|/a.tar|x/app|2|x/app:2');
    assert.equal(formatOutputImage(undefined, parseImageReference('dogestry://central/myorg/app:1.0')), 'dogestry://central/myorg/app_thin:1.0');
  });
});
