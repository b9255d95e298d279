import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseWishlist, hasErrors, formatProblem } from '../../../src/wishlist/wishlist.ts';

const realWishlist = fileURLToPath(new URL('../../../../shared/fixtures/real/images-unpacked.cern.ch-recipe.yaml', import.meta.url));

describe('parseWishlist', () => {
  it('accepts the public unpacked.cern.ch wish list and converts its duplicate once', () => {
    let text: string;
    try {
      text = readFileSync(realWishlist, 'utf8');
    } catch {
      // The shared fixtures sit beside the checkout; a copy is kept in test/fixtures for clones without them.
      text = readFileSync(new URL('../../fixtures/wishlists/unpacked.cern.ch-recipe.yaml', import.meta.url), 'utf8');
    }

    const list = parseWishlist(text, 'recipe.yaml');

    assert.equal(hasErrors(list), false, list.problems.map((p) => formatProblem(p, 'recipe.yaml')).join('\n'));
    assert.equal(list.cvmfsRepo, 'unpacked.cern.ch');
    assert.equal(list.user, 'cvmfsunpacker');
    const duplicates = list.problems.filter((p) => /duplicate/.test(p.message));
    assert.equal(duplicates.length, 1);
    assert.equal(duplicates[0]!.wish, 'https://registry.hub.docker.com/stimela/pybdsf:1.6.6');
    assert.equal(duplicates[0]!.line, 22);
    assert.equal(list.wishes.length, 46);
    assert.equal(list.wishes[0]!.source.line, 6);
    assert.equal(list.wishes.find((w) => w.image.registry === 'gitlab-p4n.aip.de:5005')?.image.tag, 'latest');
  });

  it('reports YAML syntax errors with line and column', () => {
    const list = parseWishlist('version: 1\ncvmfs_repo: x.cern.ch\ninput:\n  - "unterminated\n', 'w.yaml');

    assert.equal(hasErrors(list), true);
    assert.equal(list.wishes.length, 0);
    assert.match(list.problems[0]!.message, /YAML syntax/);
    assert.equal(list.problems[0]!.line, 4, 'the unclosed quote is on line 4, not past the end of the file');
  });

  it('reports every bad entry with its line and keeps the good ones', () => {
    const text = [
      'version: 1',
      'user: bot',
      "cvmfs_repo: 'unpacked.example.org'",
      'input:',
      "  - 'https://registry.example.org/good/one:1.0'",
      "  - 'ubuntu:22.04'",
      "  - 'library/ubuntu:latest'",
      "  - 'https://registry.example.org/notag'",
      '  - 42',
      "  - 'https://registry.example.org/good/two:2.0'",
    ].join('\n');

    const list = parseWishlist(text, 'w.yaml');

    assert.deepEqual(
      list.wishes.map((w) => w.input),
      ['https://registry.example.org/good/one:1.0', 'https://registry.example.org/good/two:2.0'],
    );
    const errors = list.problems.filter((p) => p.severity === 'error');
    assert.deepEqual(
      errors.map((p) => p.line),
      [6, 7, 8, 9],
    );
    assert.deepEqual(
      errors.map((p) => p.column),
      [5, 5, 5, 5],
    );
    assert.match(
      formatProblem(errors[0]!, 'w.yaml'),
      /^w\.yaml:6:5: error: invalid image reference 'ubuntu:22\.04'.*registry\.hub\.docker\.com\/library\/ubuntu:22\.04/,
    );
  });

  it('locates bad registry-less inputs by line and column, keeps the good ones, and warns where no thin image name follows', () => {
    const text = [
      'version: 1',
      "cvmfs_repo: 'unpacked.example.org'",
      'input:',
      "  - 'oci:/srv/layouts/app:1.0'",
      "  - 'dogestry://central/myorg/app:1.0'",
      "  -   'oci:relative/path:1.0'",
      "  - 'docker-archive:/srv/app.tar:1.0'",
    ].join('\n');

    const list = parseWishlist(text, 'w.yaml');

    assert.deepEqual(
      list.wishes.map((w) => w.input),
      ['oci:/srv/layouts/app:1.0', 'dogestry://central/myorg/app:1.0'],
    );
    const problems = list.problems.map((p) => formatProblem(p, 'w.yaml'));
    assert.equal(problems.length, 3);
    assert.match(problems[0]!, /^w\.yaml:4:5: warning: a oci input has no default thin image name: set output_format/);
    assert.match(problems[1]!, /^w\.yaml:6:7: error: invalid image reference 'oci:relative\/path:1\.0': the path 'relative\/path' is not absolute/);
    assert.match(problems[2]!, /^w\.yaml:7:5: error: .*'1\.0' is not NAME:TAG/);
  });

  it('rejects an unknown version and missing keys', () => {
    const list = parseWishlist('version: 2\ninput: []\n', 'w.yaml');

    const messages = list.problems.filter((p) => p.severity === 'error').map((p) => p.message);
    assert.ok(messages.some((m) => /unknown wish-list version '2'/.test(m)));
    assert.ok(messages.some((m) => /missing key 'cvmfs_repo'/.test(m)));
  });

  it('rejects an output_format that cannot form an image name', () => {
    const list = parseWishlist(
      "version: 1\ncvmfs_repo: r.example.org\noutput_format: 'not a name $(image)'\ninput:\n  - 'https://r.example.org/a:1'\n",
      'w.yaml',
    );

    assert.equal(list.wishes.length, 0);
    assert.match(list.problems[0]!.message, /output_format gives an invalid thin image name/);
    assert.equal(list.problems[0]!.line, 3);
  });

  it('rejects a cvmfs_repo that would climb out of /cvmfs', () => {
    const list = parseWishlist("version: 1\ncvmfs_repo: '../etc'\ninput:\n  - 'https://r.example.org/a:1'\n", 'w.yaml');

    assert.ok(list.problems.some((p) => /'cvmfs_repo' value '\.\.\/etc'/.test(p.message)));
    assert.equal(list.wishes.length, 0);
  });
});
