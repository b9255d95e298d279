import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { DuccError } from '../../../src/util/errors.ts';
import { CredentialStore, normalizeRegistryKey } from '../../../src/registry/credentials.ts';

const configError = (variable: string, secret?: string) => (e: unknown) => {
  assert.ok(e instanceof DuccError, 'a DuccError');
  assert.equal(e.code, 'BOT_ERR_CONFIG');
  assert.match(e.message, new RegExp(variable));
  if (secret !== undefined) assert.ok(!e.message.includes(secret), 'no secret in the message');
  return true;
};

test('DUCC_AUTH_REGISTRIES entries: credentials by host substring, proxies', () => {
  const store = CredentialStore.fromEnvironment({
    DUCC_AUTH_REGISTRIES: 'GITLAB, HUB',
    DUCC_GITLAB_IDENT: 'gitlab-registry.cern.ch',
    DUCC_GITLAB_USER: 'bot',
    DUCC_GITLAB_PASS: 's3cret',
    DUCC_HUB_IDENT: 'docker.io',
    DUCC_HUB_PROXY: 'proxy.example.org:8443/dockerhub/',
  });
  assert.deepEqual(store.lookup('gitlab-registry.cern.ch'), { username: 'bot', password: 's3cret' });
  assert.deepEqual(store.lookup('gitlab-registry.cern.ch:443'), { username: 'bot', password: 's3cret' });
  assert.equal(store.lookup('registry.example.org'), undefined);
  assert.equal(store.proxyFor('gitlab-registry.cern.ch'), undefined);
  assert.deepEqual(store.proxyFor('registry-1.docker.io'), { host: 'proxy.example.org:8443', pathPrefix: 'dockerhub/' });
  assert.equal(store.lookup('registry-1.docker.io'), undefined, 'proxy entry without credentials is anonymous');
  assert.ok(!inspect(store, { depth: 10 }).includes('s3cret'), 'secrets do not show in inspect output');
});

test('a proxied registry does not fall back to docker config credentials', () => {
  const store = CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'P', DUCC_P_IDENT: 'docker.io', DUCC_P_PROXY: 'mirror.local' });
  store.addDockerConfig(JSON.stringify({ auths: { 'https://index.docker.io/v1/': { username: 'u', password: 'p' } } }), 'config.json');
  assert.equal(store.lookup('docker.io'), undefined);
  assert.deepEqual(store.proxyFor('docker.io'), { host: 'mirror.local', pathPrefix: '' });
});

test('environment errors name the variable and never the secret', () => {
  assert.throws(
    () => CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'A', DUCC_A_USER: 'u', DUCC_A_PASS: 'topsecret' }),
    configError('DUCC_A_IDENT', 'topsecret'),
  );
  assert.throws(
    () => CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'A', DUCC_A_IDENT: 'x', DUCC_A_PASS: 'topsecret' }),
    configError('DUCC_A_USER', 'topsecret'),
  );
  assert.throws(() => CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'A', DUCC_A_IDENT: 'x', DUCC_A_USER: 'u' }), configError('DUCC_A_PASS'));
  assert.throws(() => CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'A', DUCC_A_IDENT: 'x' }), configError('DUCC_A_PROXY'));
  assert.throws(
    () => CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'A', DUCC_A_IDENT: 'x', DUCC_A_PROXY: 'bad host/x' }),
    configError('DUCC_A_PROXY'),
  );
  assert.throws(
    () => CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'A', DUCC_A_IDENT: 'x', DUCC_A_PROXY: 'host/../x' }),
    configError('DUCC_A_PROXY'),
  );
  assert.throws(() => CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'A-B' }), configError('DUCC_AUTH_REGISTRIES'));
  assert.equal(CredentialStore.fromEnvironment({}).lookup('anything'), undefined);
  assert.equal(CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: ' , ' }).lookup('anything'), undefined);
});

test('docker config.json: auth and username/password forms, keys normalised', () => {
  const store = new CredentialStore();
  store.addDockerConfig(
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:pa:ss').toString('base64') },
        'Registry.Example.org:5000': { username: 'alice', password: 'pw' },
        'http://localhost:5001/v2/': { auth: Buffer.from('bob:x').toString('base64') },
        'token-only.example.org': { identitytoken: 'abc' },
      },
      credHelpers: { 'ecr.example': 'ecr-login' },
    }),
    '/home/u/.docker/config.json',
  );
  assert.deepEqual(store.lookup('registry-1.docker.io'), { username: 'hubuser', password: 'pa:ss' });
  assert.deepEqual(store.lookup('docker.io'), { username: 'hubuser', password: 'pa:ss' });
  assert.deepEqual(store.lookup('registry.example.org:5000'), { username: 'alice', password: 'pw' });
  assert.equal(store.lookup('registry.example.org'), undefined, 'the port is part of the key');
  assert.deepEqual(store.lookup('localhost:5001'), { username: 'bob', password: 'x' });
  assert.equal(store.lookup('token-only.example.org'), undefined);
  assert.equal(normalizeRegistryKey('https://Index.Docker.io/v1/'), 'docker.io');
});

test('docker config errors name the source and never the secret', () => {
  const store = new CredentialStore();
  assert.throws(() => store.addDockerConfig('{"auths": {', 'cfg.json'), configError('cfg.json'));
  assert.throws(() => store.addDockerConfig('[]', 'cfg.json'), configError('cfg.json'));
  assert.throws(() => store.addDockerConfig('{"auths": []}', 'cfg.json'), configError('cfg.json'));
  const noColon = Buffer.from('justasecretvalue').toString('base64');
  assert.throws(
    () => store.addDockerConfig(JSON.stringify({ auths: { 'r.example': { auth: noColon } } }), 'cfg.json'),
    configError('cfg.json', 'justasecretvalue'),
  );
  assert.throws(() => store.addDockerConfig(JSON.stringify({ auths: { 'r.example': { auth: '%%%' } } }), 'cfg.json'), configError('r\\.example'));
  store.addDockerConfig('{}', 'empty.json');
});

test('explicit entries win over environment and docker config', () => {
  const store = CredentialStore.fromEnvironment({ DUCC_AUTH_REGISTRIES: 'A', DUCC_A_IDENT: 'reg.example', DUCC_A_USER: 'env', DUCC_A_PASS: 'e' });
  store.addDockerConfig(JSON.stringify({ auths: { 'reg.example': { username: 'docker', password: 'd' } } }), 'c');
  assert.equal(store.lookup('reg.example')?.username, 'env');
  store.set('reg.example', { username: 'pusher', password: 'p' });
  assert.deepEqual(store.lookup('reg.example'), { username: 'pusher', password: 'p' });
  const other = new CredentialStore();
  other.addDockerConfig(JSON.stringify({ auths: { 'reg.example': { username: 'docker', password: 'd' } } }), 'c');
  assert.equal(other.lookup('reg.example')?.username, 'docker');
});
