import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SETTINGS, readSettings } from '../../../src/config/settings.ts';

test('without variables, the defaults', () => {
  assert.deepEqual(readSettings({}), DEFAULT_SETTINGS);
  assert.equal(DEFAULT_SETTINGS.http.webhookBodiesMaxBytes, 64 * 1024 * 1024);
});

test('DUCC_WEBHOOK_BODIES_MAX_BYTES, with a binary suffix', () => {
  assert.equal(readSettings({ DUCC_WEBHOOK_BODIES_MAX_BYTES: '4MiB' }).http.webhookBodiesMaxBytes, 4 * 1024 * 1024);
  assert.equal(readSettings({ DUCC_WEBHOOK_BODIES_MAX_BYTES: '1000' }).http.webhookBodiesMaxBytes, 1000);
});

test('a malformed value is a configuration error naming its variable, at start rather than at the first webhook', () => {
  assert.throws(() => readSettings({ DUCC_WEBHOOK_BODIES_MAX_BYTES: 'lots' }), { code: 'BOT_ERR_CONFIG', message: /DUCC_WEBHOOK_BODIES_MAX_BYTES .*"lots"/ });
});

test('the webhook listener, the bot, the job worker and the forge clients read no environment variable themselves', () => {
  const src = new URL('../../../src/', import.meta.url).pathname;
  const readers: string[] = [];
  for (const folder of ['http', 'bot', 'jobs', 'forge']) {
    for (const entry of readdirSync(join(src, folder), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
      const path = join(entry.parentPath, entry.name);
      if (/process\.env|\b(?:integer|duration|count)FromEnv\(/.test(readFileSync(path, 'utf8'))) readers.push(path.slice(src.length));
    }
  }

  assert.deepEqual(readers, [], 'settings come from readSettings (src/config/settings.ts), passed down');
});
