/**
 * One `publisher:` section, two commands: `ducc convert --config` (the real CLI, as a child process) and
 * the configuration loader of `ducc serve` read the same sections through the same schema, so they
 * accept the same keys and refuse the same mistakes with the same words (issue 17 point 7: `ducc serve`
 * used to refuse `lockDir`, `lockWaitSeconds` and `sync`, which `ducc convert` and the example accept).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadBotConfig } from '../../../src/config/load-bot-config.ts';
import type { PublisherConfig } from '../../../src/config/publisher-config.ts';
import { DuccError } from '../../../src/util/errors.ts';
import { exists, runCli, tempDir, type Cleanup } from './cli-support.ts';

const REPO = 'section.example.org';
const WISHLIST = `version: 1\ncvmfs_repo: ${REPO}\ninput: []\n`;

interface Setup {
  dir: string;
  config: string;
  env: Record<string, string>;
}

/**
 * A temp dir with the config file (`publisher:` section from `section(dir)`), the wish list, and
 * `list-only-cvmfs_server`: a stub that records its calls and lists the repository, enough for a run over
 * an empty wish list (`recover()` asks `cvmfs_server list`; nothing is published). The publisher itself
 * is tested on a real stratum 0 (test/cvmfs).
 */
async function setUp(t: Cleanup, section: (dir: string) => string[]): Promise<Setup> {
  const dir = await tempDir(t, 'ducc-publisher-section-');
  await mkdir(join(dir, 'cvmfs', REPO), { recursive: true });
  await mkdir(join(dir, 'locks'));
  await writeFile(join(dir, 'list-only-cvmfs_server'), `#!/bin/sh\necho "$*" >> '${join(dir, 'calls')}'\necho '${REPO} (stratum0 / local)  '\n`, {
    mode: 0o755,
  });
  const config = join(dir, 'ducc.yaml');
  await writeFile(
    config,
    ['# the rest of the file is for ducc serve', 'statePath: ./var/state.db', 'publisher:', ...section(dir).map((line) => `  ${line}`), ''].join('\n'),
  );
  await writeFile(join(dir, 'wishlist.yaml'), WISHLIST);
  return { dir, config, env: {} };
}

function convert(setup: Setup) {
  return runCli(['convert', '--config', setup.config, join(setup.dir, 'wishlist.yaml')], { env: setup.env, cwd: setup.dir });
}

/** The problem lines of a BOT_ERR_CONFIG message (after its first line). */
function problemLines(message: string): string[] {
  return message
    .split('\n')
    .slice(1)
    .map((line) => line.trim());
}

function serveProblems(config: string): string[] {
  try {
    loadBotConfig({ file: config, env: {} });
  } catch (error) {
    assert.ok(error instanceof DuccError && error.code === 'BOT_ERR_CONFIG', String(error));
    return problemLines(error.message);
  }
  assert.fail('ducc serve accepted the configuration');
}

describe('the publisher section, read by ducc convert and ducc serve', () => {
  const accepted: [string, (dir: string) => string[], (dir: string) => PublisherConfig, (setup: Setup) => Promise<void>][] = [
    [
      'directory with root and sync',
      (dir) => ['kind: directory', `root: ${join(dir, 'tree')}`, 'sync: false'],
      (dir) => ({ kind: 'directory', root: join(dir, 'tree'), sync: false }),
      async (setup) => assert.ok(await exists(join(setup.dir, 'tree', REPO)), 'convert published into root'),
    ],
    [
      'directory by default',
      () => ['root: ./tree'],
      () => ({ kind: 'directory', root: './tree' }),
      async (setup) => assert.ok(await exists(join(setup.dir, 'tree', REPO)), 'convert published into root'),
    ],
    [
      'cvmfs with every key',
      (dir) => [
        'kind: cvmfs',
        `mountRoot: ${join(dir, 'cvmfs')}`,
        `cvmfsServer: ${join(dir, 'list-only-cvmfs_server')}`,
        `lockDir: ${join(dir, 'locks')}`,
        'lockWaitSeconds: 90',
        `stagingDir: ${join(dir, 'staging')}`,
      ],
      (dir) => ({
        kind: 'cvmfs',
        mountRoot: join(dir, 'cvmfs'),
        cvmfsServer: join(dir, 'list-only-cvmfs_server'),
        lockDir: join(dir, 'locks'),
        lockWaitSeconds: 90,
        stagingDir: join(dir, 'staging'),
      }),
      async (setup) => assert.match(await readFile(join(setup.dir, 'calls'), 'utf8'), /^list$/m, 'convert asked the configured cvmfs_server'),
    ],
  ];
  for (const [name, section, expected, check] of accepted) {
    it(`both accept: ${name}`, async (t) => {
      const setup = await setUp(t, section);

      const result = await convert(setup);
      const served = loadBotConfig({ file: setup.config, env: {} });

      assert.equal(result.code, 0, result.stderr);
      await check(setup);
      assert.deepEqual(served.publisher, expected(setup.dir));
    });
  }

  it('a relative lockDir is made absolute by both', async (t) => {
    const setup = await setUp(t, () => ['kind: cvmfs', 'lockDir: run/locks']);

    const served = loadBotConfig({ file: setup.config, env: {} });

    assert.deepEqual(served.publisher, { kind: 'cvmfs', mountRoot: '/cvmfs', lockDir: resolve('run/locks') });
  });

  const refused: [string, string[], RegExp[]][] = [
    ['an unknown kind', ['kind: s3'], [/publisher\.kind: must be 'directory' or 'cvmfs', got "s3" \(line 4, column 3\)$/]],
    ['sync that is not a boolean', ['kind: directory', 'sync: maybe'], [/publisher\.sync: must be true or false, got "maybe" \(line 5, column 3\)$/]],
    [
      'bad lock settings',
      ['kind: cvmfs', 'lockWaitSeconds: -1', 'lockDir: ""'],
      [/publisher\.lockWaitSeconds: must be a positive number of seconds, got -1 \(line 5/, /publisher\.lockDir: must be a directory path \(line 6/],
    ],
    [
      'lockWaitSeconds that is not a number',
      ['kind: cvmfs', 'lockWaitSeconds: soon'],
      [/publisher\.lockWaitSeconds: must be a positive number of seconds, got "soon"/],
    ],
    [
      'a key of the other kind, and a misspelt one',
      ['kind: directory', 'mountRoot: /cvmfs', 'lock_dir: /run'],
      [/publisher\.mountRoot: unknown key \(known keys: kind, root, sync\)/, /publisher\.lock_dir: unknown key/],
    ],
    ['a cvmfs key misspelt', ['kind: cvmfs', 'lock_dir: /run'], [/publisher\.lock_dir: unknown key \(did you mean "lockDir"\? keys are camelCase\)/]],
  ];
  for (const [name, section, patterns] of refused) {
    it(`both refuse ${name}, with the same problems`, async (t) => {
      const setup = await setUp(t, () => section);

      const result = await convert(setup);
      const served = serveProblems(setup.config);

      assert.equal(result.code, 1, result.stdout);
      const [first, ...converted] = result.stderr.trim().split('\n');
      assert.match(first!, /^ducc: invalid configuration \(\d problems?\):$/);
      assert.deepEqual(
        converted.map((line) => line.trim()),
        served,
      );
      assert.equal(served.length, patterns.length, served.join('\n'));
      for (const [index, pattern] of patterns.entries()) assert.match(served[index]!, pattern);
      assert.ok(served.every((line) => line.startsWith(`${setup.config}: publisher.`)));
    });
  }
});
