/**
 * The registry client takes undici's Agent and request from their own files, not from the package's
 * index, which loads all of undici and costs every start of `ducc` ~25 ms (see undici-parts.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

test("importing the registry client loads undici's Agent and request, not its index", () => {
  const client = new URL('../../../src/registry/client.ts', import.meta.url).href;
  const script = [
    "import { createRequire } from 'node:module';",
    `await import(${JSON.stringify(client)});`,
    "const files = Object.keys(createRequire(import.meta.url).cache).filter((path) => path.includes('/node_modules/undici/'));",
    'process.stdout.write(JSON.stringify(files));',
  ].join('\n');
  const files = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '--eval', script], { encoding: 'utf8' })) as string[];
  const short = files.map((path) => path.slice(path.indexOf('/node_modules/undici/') + '/node_modules/undici/'.length));
  assert.ok(short.includes('lib/dispatcher/agent.js'), `undici files loaded: ${short.join(', ')}`);
  assert.ok(short.includes('lib/api/api-request.js'), `undici files loaded: ${short.join(', ')}`);
  assert.ok(!short.includes('index.js'), 'undici/index.js was loaded');
  assert.ok(
    !short.some((path) => path.startsWith('lib/web/')),
    `fetch, WebSocket or EventSource were loaded: ${short.filter((path) => path.startsWith('lib/web/')).join(', ')}`,
  );
});
