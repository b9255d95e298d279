import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertSafeRelativePath,
  digestHex,
  flatDir,
  layerDir,
  layerfsDir,
  layerMetadataDir,
  metadataDir,
  metadataManifestPath,
  multiarchMetadataDir,
  multiarchPublicPath,
  multiarchVariantSymlinkTarget,
  platformDirName,
  publicPath,
  relativeSymlinkTarget,
} from '../../../src/layout/paths.ts';

const HEX = `ab${'c'.repeat(62)}`;
const D = `sha256:${HEX}`;

function code(expected: string): (error: unknown) => boolean {
  return (error) => {
    assert.equal((error as { code?: string }).code, expected);
    return true;
  };
}

describe('digestHex', () => {
  it('returns the hex of a sha256 digest', () => {
    assert.equal(digestHex(D), HEX);
  });
  for (const bad of [
    '',
    HEX,
    `sha256:${HEX.slice(1)}`,
    `sha256:${HEX}0`,
    `sha256:${HEX.toUpperCase()}`,
    `sha512:${HEX}`,
    `sha256:${HEX}\n`,
    ` sha256:${HEX}`,
  ]) {
    it(`rejects ${JSON.stringify(bad.slice(0, 20))}…`, () => {
      assert.throws(() => digestHex(bad), code('BOT_ERR_REFERENCE'));
    });
  }
});

describe('layer and flat directories (§3.1)', () => {
  it('shards by the first two hex characters', () => {
    assert.equal(layerDir(D), `.layers/ab/${HEX}`);
    assert.equal(layerfsDir(D), `.layers/ab/${HEX}/layerfs`);
    assert.equal(layerMetadataDir(D), `.layers/ab/${HEX}/.metadata`);
    assert.equal(flatDir(D), `.flat/ab/${HEX}`);
  });
  it('validates the digest', () => {
    assert.throws(() => flatDir('sha256:xyz'), code('BOT_ERR_REFERENCE'));
  });
});

describe('publicPath / metadataDir (§3.3)', () => {
  it('uses the tag', () => {
    const image = { registry: 'registry.hub.docker.com', repository: 'library/ubuntu', tag: 'latest' };
    assert.equal(publicPath(image), 'registry.hub.docker.com/library/ubuntu:latest');
    assert.equal(metadataDir(image), '.metadata/registry.hub.docker.com/library/ubuntu:latest');
    assert.equal(metadataManifestPath(image), '.metadata/registry.hub.docker.com/library/ubuntu:latest/manifest.json');
  });
  it('prefers the tag when both tag and digest are present', () => {
    assert.equal(publicPath({ registry: 'r.io', repository: 'a/b', tag: '1', digest: D }), 'r.io/a/b:1');
    assert.equal(metadataDir({ registry: 'r.io', repository: 'a/b', tag: '1', digest: D }), '.metadata/r.io/a/b:1');
  });
  it('uses the digest in the public path but not in the metadata name when there is no tag', () => {
    const image = { registry: 'registry.hub.docker.com', repository: 'library/redis', digest: D };
    assert.equal(publicPath(image), `registry.hub.docker.com/library/redis:${D}`);
    assert.equal(metadataDir(image), '.metadata/registry.hub.docker.com/library/redis');
  });
  it('keeps a registry port', () => {
    assert.equal(
      publicPath({ registry: 'gitlab-p4n.aip.de:5005', repository: 'compute4punch/container-stacks/wlcg-wn', tag: 'latest' }),
      'gitlab-p4n.aip.de:5005/compute4punch/container-stacks/wlcg-wn:latest',
    );
  });
  it('rejects names that would escape or need cleaning', () => {
    for (const image of [
      { registry: '..', repository: 'a', tag: 't' },
      { registry: 'r/x', repository: 'a', tag: 't' },
      { registry: '', repository: 'a', tag: 't' },
      { registry: 'r', repository: '../a', tag: 't' },
      { registry: 'r', repository: 'a//b', tag: 't' },
      { registry: 'r', repository: '/a', tag: 't' },
      { registry: 'r', repository: 'a/.', tag: 't' },
      { registry: 'r', repository: 'a', tag: 't/u' },
      { registry: 'r', repository: 'a' },
      { registry: 'r', repository: 'a', digest: 'sha256:short' },
    ]) {
      assert.throws(() => publicPath(image), code('BOT_ERR_REFERENCE'), JSON.stringify(image));
    }
  });
});

describe('multi-arch paths (§3.8)', () => {
  const image = { registry: 'docker.io', repository: 'user/myimage', tag: 'latest' };
  it('builds the platform directory name', () => {
    assert.equal(platformDirName({ architecture: 'amd64' }), 'amd64');
    assert.equal(platformDirName({ architecture: 'arm64', variant: 'v8' }), 'arm64:v8');
    assert.throws(() => platformDirName({ architecture: '..' }), code('BOT_ERR_UNSAFE_ENTRY'));
  });
  it('prefixes the public and metadata paths', () => {
    assert.equal(multiarchPublicPath('arm64:v8', image), '.multiarch/arm64:v8/docker.io/user/myimage:latest');
    assert.equal(multiarchMetadataDir('amd64', image), '.metadata/.multiarch/amd64/docker.io/user/myimage:latest');
    assert.equal(multiarchMetadataDir('amd64', { ...image, tag: undefined, digest: D }), '.metadata/.multiarch/amd64/docker.io/user/myimage');
    assert.throws(() => multiarchPublicPath('a/b', image), code('BOT_ERR_UNSAFE_ENTRY'));
  });
  it('builds the CVMFS variant symlink target (GetVariantSymlinkTarget example)', () => {
    assert.equal(multiarchVariantSymlinkTarget(image, 'amd64'), '../../.multiarch/$(CVMFS_ARCH:-amd64)/docker.io/user/myimage:latest');
  });
});

describe('relativeSymlinkTarget (CreateSymlinkIntoCVMFS)', () => {
  it('climbs one level per component of the link directory', () => {
    assert.equal(relativeSymlinkTarget('registry.hub.docker.com/library/ubuntu:latest', `.flat/ab/${HEX}`), `../../.flat/ab/${HEX}`);
    assert.equal(relativeSymlinkTarget('ghcr.io/a/b/c/d:1', `.flat/ab/${HEX}`), `../../../../.flat/ab/${HEX}`);
    assert.equal(relativeSymlinkTarget('top', 'x/y'), 'x/y');
    assert.equal(relativeSymlinkTarget('.multiarch/arm64:v8/docker.io/user/img:1', `.flat/ab/${HEX}`), `../../../../.flat/ab/${HEX}`);
  });
  it('shortens over shared leading components like Go filepath.Rel', () => {
    // podmanStore/overlay/l/<lid> -> podmanStore/overlay/<layer>/diff
    assert.equal(relativeSymlinkTarget('podmanStore/overlay/l/LID', 'podmanStore/overlay/LAYER/diff'), '../LAYER/diff');
    assert.equal(relativeSymlinkTarget('a/b', 'a/c'), 'c');
  });
  it('refuses degenerate targets', () => {
    assert.throws(() => relativeSymlinkTarget('a/b', 'a/b'), code('BOT_ERR_UNSAFE_ENTRY'));
    assert.throws(() => relativeSymlinkTarget('a/b', 'a/b/c'), code('BOT_ERR_UNSAFE_ENTRY'));
    assert.throws(() => relativeSymlinkTarget('a/b', 'a'), code('BOT_ERR_UNSAFE_ENTRY'));
    assert.throws(() => relativeSymlinkTarget('../a', 'b'), code('BOT_ERR_UNSAFE_ENTRY'));
  });
});

describe('assertSafeRelativePath', () => {
  it('accepts canonical relative paths', () => {
    for (const p of ['a', 'a/b', '.flat/ab/x', 'r:5000/x:tag', '...', '.a/..b']) assertSafeRelativePath(p);
  });
  it('rejects everything else', () => {
    for (const p of ['', '/a', 'a/', 'a//b', '.', '..', 'a/./b', 'a/../b', 'a/..', 'a\0b']) {
      assert.throws(() => assertSafeRelativePath(p), code('BOT_ERR_UNSAFE_ENTRY'), JSON.stringify(p));
    }
  });
});
