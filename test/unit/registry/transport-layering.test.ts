/**
 * The transport (src/registry/transport/) sits under the client and never reaches up into it, as
 * go-containerregistry's remote/transport does not import remote (checked there by a depcheck test).
 * It may use the registry folder's leaf modules: data shapes, names, settings and credentials.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TRANSPORT = fileURLToPath(new URL('../../../src/registry/transport/', import.meta.url));
const ALLOWED_OUTSIDE = new Set(['../types.ts', '../names.ts', '../settings.ts', '../credentials.ts', '../../util/errors.ts']);

test('transport files import only each other, the leaf modules of src/registry and packages', async () => {
  const files = (await readdir(TRANSPORT)).filter((name) => name.endsWith('.ts'));
  assert.ok(files.includes('transport.ts') && files.length > 5, `transport files: ${files.join(', ')}`);
  const offending: string[] = [];
  for (const file of files) {
    const text = await readFile(join(TRANSPORT, file), 'utf8');
    for (const match of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)) {
      const specifier = match[1]!;
      if (!specifier.startsWith('.')) continue;
      if (specifier.startsWith('./') || ALLOWED_OUTSIDE.has(specifier)) continue;
      offending.push(`${file} imports ${specifier}`);
    }
  }
  assert.deepEqual(offending, []);
});
