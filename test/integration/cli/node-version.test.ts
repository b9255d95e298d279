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

/** Node's options on bin/ducc.js's first line. */
function shebangFlags(): string[] {
  const firstLine = readFileSync(CLI, 'utf8').split('\n')[0]!;
  const match = /^#!\/usr\/bin\/env(?: -S)? node((?: --[\w-]+(?:=\S+)?)*)$/.exec(firstLine);
  assert.ok(match, `first line: ${firstLine}`);
  return match[1]!.trim().split(' ').filter(Boolean);
}

it('the shebang passes only options an old node knows too (else it would stop before saying which Node it needs)', () => {
  const flags = shebangFlags();
  const result = spawnSync(OLD_NODE, [...flags, '-e', 'process.exit(0)'], { encoding: 'utf8' });

  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr, '');
});

it('the systemd units and the Dockerfile start node with the options of the shebang', () => {
  const flags = shebangFlags().join(' ');
  const repo = new URL('../../../', import.meta.url);
  for (const unit of ['ducc-serve.service', 'ducc-loop.service', 'ducc-convert.service']) {
    const execStart = /^ExecStart=(\S+) (.*?)\s*\S*bin\/ducc\.js /m.exec(readFileSync(new URL(`systemd/${unit}`, repo), 'utf8'));
    assert.ok(execStart, unit);
    assert.equal(execStart[2], flags, unit);
  }
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(new URL('Dockerfile', repo), 'utf8'));
  assert.ok(entrypoint);
  const args = JSON.parse(entrypoint[1]!) as string[];
  assert.deepEqual(args.slice(1, -1), flags.split(' ').filter(Boolean));
});
