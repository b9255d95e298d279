import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DuccError } from '../../../src/util/errors.ts';
import { formatPlatform, parsePlatform, platformMatches, selectPlatformEntry } from '../../../src/registry/platform.ts';
import type { Descriptor } from '../../../src/registry/types.ts';

test('parsePlatform', () => {
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('arm64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('Linux/x86_64'), { os: 'linux', architecture: 'amd64' });
  for (const bad of ['', 'linux/', '/amd64', 'a/b/c/d', 'linux/am d64']) {
    assert.throws(
      () => parsePlatform(bad),
      (e: unknown) => e instanceof DuccError && e.code === 'BOT_ERR_PLATFORM',
      bad,
    );
  }
  assert.equal(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' }), 'linux/arm/v7');
  assert.equal(formatPlatform({ os: 'linux', architecture: 'amd64' }), 'linux/amd64');
});

test('platformMatches: os and architecture, variant only when wanted', () => {
  assert.equal(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm64' }), true);
  assert.equal(platformMatches({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }), true);
  assert.equal(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' }), false);
  assert.equal(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm' }), true);
  assert.equal(platformMatches({ os: 'windows', architecture: 'amd64' }, { os: 'linux', architecture: 'amd64' }), false);
  assert.equal(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }), false);
});

const d = (n: number, platform?: Descriptor['platform'], annotations?: Record<string, string>): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: 100 + n,
  ...(platform ? { platform } : {}),
  ...(annotations ? { annotations } : {}),
});

test('selectPlatformEntry ignores attestations and unknown architectures', () => {
  const entries = [
    d(1, { os: 'unknown', architecture: 'unknown' }),
    d(2, { os: 'linux', architecture: 'amd64' }, { 'vnd.docker.reference.type': 'attestation-manifest' }),
    d(3, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    d(4, { os: 'linux', architecture: 'amd64' }),
  ];
  assert.equal(selectPlatformEntry(entries, { os: 'linux', architecture: 'amd64' })?.size, 104);
  assert.equal(selectPlatformEntry(entries, { os: 'linux', architecture: 'arm64' })?.size, 103);
  assert.equal(selectPlatformEntry(entries, parsePlatform('linux/arm64/v8'))?.size, 103);
  assert.equal(selectPlatformEntry(entries, { os: 'linux', architecture: 's390x' }), undefined);
  assert.equal(selectPlatformEntry([entries[0]!, entries[1]!], { os: 'linux', architecture: 'amd64' }), undefined);
});

test('selectPlatformEntry prefers the exact variant', () => {
  const entries = [d(1, { os: 'linux', architecture: 'arm', variant: 'v6' }), d(2, { os: 'linux', architecture: 'arm', variant: 'v7' })];
  assert.equal(selectPlatformEntry(entries, { os: 'linux', architecture: 'arm', variant: 'v7' })?.size, 102);
  assert.equal(selectPlatformEntry(entries, { os: 'linux', architecture: 'arm' })?.size, 101, 'no variant wanted: first listed');
  const amd = [d(1, { os: 'linux', architecture: 'amd64', variant: 'v3' }), d(2, { os: 'linux', architecture: 'amd64' })];
  assert.equal(selectPlatformEntry(amd, { os: 'linux', architecture: 'amd64' })?.size, 102, 'variant-less entry preferred');
});
