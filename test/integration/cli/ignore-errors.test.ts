/**
 * Tolerated failures (DUCC 2026's ignoreErrors): a wish that fails for good does not fail `ducc convert`
 * when the wish list's ignoreErrors or the DUCC_IGNORE_ERRORS_FILE list matches it; any other failure
 * still gives exit 1.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry } from '../../support/registry.ts';
import { expectExit, pushImage, runCli, tempDir } from './cli-support.ts';

it('ignoreErrors and DUCC_IGNORE_ERRORS_FILE turn the failures of matching wishes into warnings; others still fail the run', async (t) => {
  const registry = await startRegistry(t);
  await pushImage(t, registry, 'tolerate/ok', '1', [[{ name: 'ok', content: 'ok' }]]);
  const dir = await tempDir(t);
  const root = join(dir, 'cvmfs');
  const base = `http://${registry.host}`;
  const list = (lines: string[]) => ['version: 1', 'cvmfs_repo: tolerate.example.org', ...lines].join('\n');
  const inputs = ['input:', `  - '${base}/tolerate/ok:1'`, `  - '${base}/tolerate/broken:1'`, `  - '${base}/other/missing:*'`];
  await writeFile(join(dir, 'in-list.yaml'), list([`ignoreErrors:`, `  - '${base}/tolerate/*:*'`, `  - '${base}/other/missing:\\*'`, ...inputs]));
  await writeFile(join(dir, 'partly.yaml'), list([`ignoreErrors:`, `  - '${base}/tolerate/*:*'`, ...inputs]));
  await writeFile(join(dir, 'plain.yaml'), list(inputs));
  await writeFile(join(dir, 'ignore.yaml'), `ignoreErrors:\n  - '${base}/*/*:*'\n`);

  const tolerated = expectExit(await runCli(['convert', join(dir, 'in-list.yaml'), '--repo-root', root, '--skip-thin-image']), 0);
  const partly = await runCli(['convert', join(dir, 'partly.yaml'), '--repo-root', root, '--skip-thin-image']);
  const fromFile = expectExit(
    await runCli(['convert', join(dir, 'plain.yaml'), '--repo-root', root, '--skip-thin-image'], {
      env: { DUCC_IGNORE_ERRORS_FILE: join(dir, 'ignore.yaml') },
    }),
    0,
  );

  assert.match(tolerated.stdout, /^warning \(ignoreErrors\): .*tolerate\/broken:1: /m);
  assert.match(tolerated.stdout, /^warning \(ignoreErrors\): .*other\/missing:\*: /m, 'a wildcard wish matches with its tag as written');
  assert.match(tolerated.stdout, /^1 converted, 0 up to date, 0 failed, 2 failed but tolerated \(ignoreErrors\)$/m);
  assert.equal(partly.code, 1);
  assert.match(partly.stdout, /^error: .*other\/missing:\*: /m);
  assert.match(partly.stdout, /^0 converted, 1 up to date, 1 failed, 1 failed but tolerated \(ignoreErrors\)$/m);
  assert.match(fromFile.stdout, /^0 converted, 1 up to date, 0 failed, 2 failed but tolerated \(ignoreErrors\)$/m);
});
