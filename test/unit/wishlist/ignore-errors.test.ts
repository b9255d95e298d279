import { it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { globMatch, isTolerated, readIgnoreErrorsFile } from '../../../src/wishlist/ignore-errors.ts';
import { parseWishlist } from '../../../src/wishlist/wishlist.ts';
import { tempDir } from '../../support/tmp-dir.ts';

it('matches as DUCC’s isInIgnoreList (TestIsInIgnoreList vectors)', () => {
  const vectors: [string, string[], boolean][] = [
    ['https://registry.hub.docker.com/library/ubuntu:20.04', ['https://registry.hub.docker.com/library/ubuntu:20.04'], true],
    ['https://registry.hub.docker.com/library/nginx:latest', ['https://registry.hub.docker.com/library/nginx:*'], true],
    ['https://registry.hub.docker.com/library/alpine:latest', ['https://registry.hub.docker.com/library/*:latest'], true],
    ['https://registry.hub.docker.com/library/ubuntu:22.04', ['https://registry.hub.docker.com/library/alpine:*'], false],
    ['https://registry.hub.docker.com/library/ubuntu:20.04', [], false],
    [
      'https://registry.hub.docker.com/library/nginx:1.21',
      ['https://registry.hub.docker.com/library/alpine:*', 'https://registry.hub.docker.com/library/nginx:*'],
      true,
    ],
    [
      'https://registry.hub.docker.com/library/ubuntu:20.04',
      ['https://registry.hub.docker.com/library/alpine:*', 'https://registry.hub.docker.com/library/nginx:*'],
      false,
    ],
  ];
  for (const [name, patterns, expected] of vectors) assert.equal(isTolerated(name, patterns), expected, `${name} ${patterns.join(' ')}`);
});

it('follows Go’s filepath.Match: * and ? stop at /, classes and escapes, malformed patterns never match', () => {
  assert.equal(globMatch('https://r.example.org/*', 'https://r.example.org/team/app:1'), false, '* does not cross /');
  assert.equal(globMatch('https://r.example.org/*/*', 'https://r.example.org/team/app:1'), true);
  assert.equal(globMatch('https://r.example.org/team/app:?', 'https://r.example.org/team/app:1'), true);
  assert.equal(globMatch('a?b', 'a/b'), false);
  assert.equal(globMatch('app:[0-9].[0-9]', 'app:1.2'), true);
  assert.equal(globMatch('app:[^0-9]*', 'app:latest'), true);
  assert.equal(globMatch('app:[^0-9]*', 'app:1'), false);
  assert.equal(globMatch('a[/]b', 'a/b'), true, 'a class may match the separator');
  assert.equal(globMatch('app:\\*', 'app:*'), true);
  assert.equal(globMatch('app:\\*', 'app:1'), false);
  assert.equal(globMatch('a.b', 'axb'), false, 'no regex meaning');
  assert.equal(globMatch('x[z-a]y', 'xay'), false, 'a reversed range matches nothing');
  for (const bad of ['[', 'app:[1-', 'app:[]', 'app:\\', 'app:[a-]']) assert.equal(globMatch(bad, 'app:1'), undefined, bad);
  assert.equal(isTolerated('app:1', ['[', 'app:*']), true, 'a malformed pattern is skipped, the others apply');
});

it('the wish list’s ignoreErrors: a list of globs; malformed entries are warnings, a non-list an error', () => {
  const list = parseWishlist(
    ['version: 1', 'cvmfs_repo: r.example.org', 'ignoreErrors:', "  - 'https://r.example.org/team/*:*'", "  - 'https://r.example.org/[x'", 'input: []'].join(
      '\n',
    ),
    'w.yaml',
  );
  const bad = parseWishlist(['version: 1', 'cvmfs_repo: r.example.org', "ignoreErrors: 'https://r.example.org/*'", 'input: []'].join('\n'), 'w.yaml');

  assert.deepEqual(list.ignoreErrors, ['https://r.example.org/team/*:*']);
  assert.deepEqual(
    list.problems.map((p) => [p.severity, p.line, p.message]),
    [
      ['warning', 5, "ignoreErrors pattern 'https://r.example.org/[x' is malformed (filepath.Match syntax); it is ignored"],
      ['warning', 6, "'input' is empty: nothing to convert"],
    ],
  );
  assert.deepEqual(
    bad.problems.filter((p) => p.severity === 'error').map((p) => [p.line, p.message]),
    [[3, "'ignoreErrors' must be a list of globs such as 'https://registry.example.org/team/*:*'"]],
  );
});

it('DUCC_IGNORE_ERRORS_FILE: its ignoreErrors list; an unreadable or wrong file is a warning, as in DUCC', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'good.yaml'), "ignoreErrors:\n  - 'https://r.example.org/a:*'\n  - 5\n  - '[oops'\n");
  await writeFile(join(dir, 'scalar.yaml'), 'ignoreErrors: yes\n');

  const good = await readIgnoreErrorsFile(join(dir, 'good.yaml'));
  const missing = await readIgnoreErrorsFile(join(dir, 'missing.yaml'));
  const scalar = await readIgnoreErrorsFile(join(dir, 'scalar.yaml'));

  assert.deepEqual(good.patterns, ['https://r.example.org/a:*']);
  assert.equal(good.warnings.length, 2);
  assert.deepEqual(missing.patterns, []);
  assert.match(missing.warnings[0]!, /missing\.yaml cannot be read: .*ENOENT.*; only the wish list's ignoreErrors apply/);
  assert.match(scalar.warnings[0]!, /ignoreErrors must be a list of globs/);
  assert.deepEqual(await readIgnoreErrorsFile(undefined), { patterns: [], warnings: [] });
});
