/**
 * `bin/ducc.js` on a Node.js older than package.json's engines (issue 17 point 3): Debian's own Node
 * (/usr/bin/node: 18 on bookworm, 20 from NodeSource; scripts/with-deps installs Debian's nodejs on a
 * machine without Node, so it is there) must get as far as saying what to do, for every command, and exit
 * non-zero, instead of printing nothing or a SyntaxError about node:zlib.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CLI } from './cli-support.ts';

const OLD_NODE = '/usr/bin/node';

it('on an older Node.js, every command says which Node it needs and how to get it, and exits 1', () => {
  const engines = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } }).engines.node;
  const [needMajor, needMinor] = /^>=(\d+)\.(\d+)$/.exec(engines)!.slice(1).map(Number) as [number, number];
  const version = execFileSync(OLD_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
  const [major, minor] = version.split('.').map(Number) as [number, number];
  assert.ok(major < needMajor || (major === needMajor && minor < needMinor), `${OLD_NODE} is Node.js ${version}, not older than ${engines}`);

  for (const args of [['version'], ['check', '--offline', 'wishlist.yaml'], ['serve']]) {
    const result = spawnSync(OLD_NODE, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });

    assert.equal(result.status, 1, `ducc ${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stdout, '');
    assert.match(
      result.stderr,
      new RegExp(`^ducc: this is Node\\.js ${version.replace(/\./g, '\\.')} \\(${OLD_NODE}\\); ducc-gitops needs Node\\.js >= ${needMajor}\\.${needMinor}\\.`),
    );
    assert.match(result.stderr, /scripts\/with-deps true/);
    assert.match(result.stderr, /\.node\/bin\/node .*bin\/ducc\.js/);
    assert.doesNotMatch(result.stderr, /SyntaxError|ExperimentalWarning|bad option/);
  }
});

it('the shebang passes no option to node (an old node would stop at an option it does not know)', () => {
  const firstLine = readFileSync(CLI, 'utf8').split('\n')[0];

  assert.equal(firstLine, '#!/usr/bin/env node');
});
