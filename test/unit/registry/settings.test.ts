/**
 * registrySettingsFromEnv reads every DUCC_* variable of the registry client once; the client reads
 * process.env only when it is not given a settings object.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_REGISTRY_SETTINGS, REGISTRY_SETTING_VARIABLES, registrySettingsFromEnv } from '../../../src/registry/settings.ts';
import { RegistryClient } from '../../../src/registry/client.ts';
import { withEnv } from '../../support/with-env.ts';

test('an empty environment gives the documented defaults', () => {
  assert.deepEqual(registrySettingsFromEnv({}), {
    maxRetries: 4,
    timeoutMs: 60_000,
    maxConcurrentPerRegistry: 6,
    maxImageLayers: 1000,
    maxIndexEntries: 1000,
  });
  assert.deepEqual(registrySettingsFromEnv({ DUCC_REGISTRY_RETRIES: '', DUCC_LIMIT_IMAGE_LAYERS: '  ' }), { ...DEFAULT_REGISTRY_SETTINGS });
});

test('each variable sets its setting', () => {
  const settings = registrySettingsFromEnv({
    DUCC_REGISTRY_RETRIES: '0',
    DUCC_REGISTRY_TIMEOUT: '2.5',
    DUCC_REGISTRY_MAX_CONCURRENT: '3',
    DUCC_LIMIT_IMAGE_LAYERS: '1k',
    DUCC_LIMIT_INDEX_ENTRIES: '12',
  });
  assert.deepEqual(settings, { maxRetries: 0, timeoutMs: 2500, maxConcurrentPerRegistry: 3, maxImageLayers: 1024, maxIndexEntries: 12 });
});

test('a bad value is a BOT_ERR_CONFIG naming its variable', () => {
  const bad: Record<keyof typeof REGISTRY_SETTING_VARIABLES, string> = {
    maxRetries: '-1',
    timeoutMs: 'soon',
    maxConcurrentPerRegistry: '0',
    maxImageLayers: '1.5',
    maxIndexEntries: 'many',
  };
  for (const [key, value] of Object.entries(bad) as [keyof typeof bad, string][]) {
    const variable = REGISTRY_SETTING_VARIABLES[key];
    assert.throws(() => registrySettingsFromEnv({ [variable]: value }), { code: 'BOT_ERR_CONFIG', message: new RegExp(`^${variable} must be`) });
  }
});

test('only the environment it is given is read', async () => {
  await withEnv({ DUCC_REGISTRY_TIMEOUT: 'not a number', DUCC_REGISTRY_RETRIES: '9' }, async () => {
    assert.deepEqual(registrySettingsFromEnv({}), { ...DEFAULT_REGISTRY_SETTINGS });
  });
});

test('RegistryClient reads process.env only without a settings object', async () => {
  await withEnv({ DUCC_REGISTRY_TIMEOUT: 'not a number' }, async () => {
    assert.throws(() => new RegistryClient(), { code: 'BOT_ERR_CONFIG', message: /DUCC_REGISTRY_TIMEOUT/ });
    assert.doesNotThrow(() => new RegistryClient({ settings: registrySettingsFromEnv({}) }));
  });
});
