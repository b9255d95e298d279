import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWwwAuthenticate } from '../../../src/registry/transport/challenge.ts';
import { TokenCache } from '../../../src/registry/transport/token-cache.ts';

test('Bearer challenge with quoted commas and equals signs in values', () => {
  const challenges = parseWwwAuthenticate(
    'Bearer realm="https://auth.example.org/token?a=b,c=d",service="registry.example.org",scope="repository:team/app:pull,push"',
  );
  assert.deepEqual(challenges, [
    {
      scheme: 'bearer',
      params: {
        realm: 'https://auth.example.org/token?a=b,c=d',
        service: 'registry.example.org',
        scope: 'repository:team/app:pull,push',
      },
    },
  ]);
});

test('scheme and parameter names are case-insensitive; whitespace around = and , is allowed', () => {
  const [challenge] = parseWwwAuthenticate('BEARER Realm = "https://a/t" ,  Service=reg.example , error="invalid_token"');
  assert.equal(challenge?.scheme, 'bearer');
  assert.deepEqual(challenge?.params, { realm: 'https://a/t', service: 'reg.example', error: 'invalid_token' });
});

test('several challenges in one header, and as an array of headers', () => {
  const header = 'Basic realm="simple, really", Bearer realm="https://auth/token",service="svc"';
  const challenges = parseWwwAuthenticate(header);
  assert.deepEqual(
    challenges.map((c) => [c.scheme, c.params]),
    [
      ['basic', { realm: 'simple, really' }],
      ['bearer', { realm: 'https://auth/token', service: 'svc' }],
    ],
  );
  const fromArray = parseWwwAuthenticate(['Basic realm="x"', 'Bearer realm="y"']);
  assert.deepEqual(
    fromArray.map((c) => [c.scheme, c.params['realm']]),
    [
      ['basic', 'x'],
      ['bearer', 'y'],
    ],
  );
});

test('RFC 7235 example: escaped quotes and a following challenge', () => {
  const challenges = parseWwwAuthenticate('Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"');
  assert.equal(challenges.length, 2);
  assert.deepEqual(challenges[0]?.params, { realm: 'apps', type: '1', title: 'Login to "apps"' });
  assert.equal(challenges[1]?.scheme, 'basic');
  assert.equal(challenges[1]?.params['realm'], 'simple');
});

test('token68 challenges and schemes without parameters', () => {
  const challenges = parseWwwAuthenticate('Negotiate YIIabc==, Basic, Bearer realm="r"');
  assert.deepEqual(
    challenges.map((c) => [c.scheme, c.token68, c.params]),
    [
      ['negotiate', 'YIIabc==', {}],
      ['basic', undefined, {}],
      ['bearer', undefined, { realm: 'r' }],
    ],
  );
});

test('empty and garbage headers give no challenge and never throw', () => {
  assert.deepEqual(parseWwwAuthenticate(undefined), []);
  assert.deepEqual(parseWwwAuthenticate(''), []);
  assert.doesNotThrow(() => parseWwwAuthenticate('"unterminated, =,,, ;; Bearer realm="open'));
  const [c] = parseWwwAuthenticate('Bearer realm="open');
  assert.equal(c?.params['realm'], 'open');
});

test('TokenCache keeps a token until expires_in minus a margin, defaulting to 60 s', () => {
  let now = 1_000_000;
  const cache = new TokenCache(() => now);
  const key = TokenCache.key('reg', 'repository:a:pull', 'alice');
  assert.notEqual(key, TokenCache.key('reg', 'repository:a:pull', undefined), 'user is part of the key');
  assert.notEqual(key, TokenCache.key('reg', 'repository:a:pull,push', 'alice'), 'scope is part of the key');
  cache.set(key, 'Bearer t1', 300);
  now += 269_000;
  assert.equal(cache.get(key), 'Bearer t1');
  now += 2_000; // 271 s: inside the 30 s margin
  assert.equal(cache.get(key), undefined);

  cache.set(key, 'Bearer t2', undefined);
  now += 53_000;
  assert.equal(cache.get(key), 'Bearer t2');
  now += 2_000; // 55 s > 60 - 6
  assert.equal(cache.get(key), undefined);

  cache.set(key, 'Bearer t3', 60);
  cache.delete(key);
  assert.equal(cache.get(key), undefined);
});
