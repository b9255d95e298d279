/**
 * The webhook routes are matched before express (src/http/hook-routes.ts), the way express 5 matched
 * the routes they replace: case-insensitive literals, an optional trailing slash, no query string,
 * percent-decoded parameters that cannot contain '/'.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchHookRoute } from '../../../src/http/hook-routes.ts';

test('forge hooks: exact paths, any case, optional trailing slash, query ignored', () => {
  for (const url of [
    '/hooks/github',
    '/hooks/github/',
    '/HOOKS/GitHub',
    '/hooks/github?x=1',
    '/hooks/github/?x=/a',
    'http://bot.example.org:8080/hooks/github?x',
  ]) {
    assert.deepEqual(matchHookRoute(url), { hook: 'github', source: 'github', route: '/hooks/github', params: [] }, url);
  }
  assert.equal(matchHookRoute('/hooks/gitlab')?.hook, 'gitlab');
  for (const url of [
    '/hooks/github//',
    '/hooks/githubx',
    '/hooks/%67ithub',
    '//hooks/github',
    '/hooks/github/x',
    '/hooks',
    '/',
    '/hooks/registry/a',
    '*',
    'http://x',
    'hooks/github',
  ]) {
    assert.equal(matchHookRoute(url), undefined, url);
  }
});

test('registry hooks: two or three parameters, decoded, the route pattern (not the URL) as label', () => {
  assert.deepEqual(matchHookRoute('/hooks/registry/distribution/local'), {
    hook: 'registry',
    source: 'registry',
    route: '/hooks/registry/:kind/:name',
    params: ['distribution', 'local'],
  });
  assert.deepEqual(matchHookRoute('/hooks/registry/dockerhub/hub/s%2Fe%20cret/?q'), {
    hook: 'registry',
    source: 'registry',
    route: '/hooks/registry/:kind/:name/:secret',
    params: ['dockerhub', 'hub', 's/e cret'],
  });
  assert.equal(matchHookRoute('/Hooks/Registry/Quay/Name/Secret')?.params?.join(','), 'Quay,Name,Secret');
  assert.deepEqual(matchHookRoute('/hooks/registry/dockerhub/hub/%E0%A4%A'), {
    hook: 'registry',
    source: 'registry',
    route: '/hooks/registry/:kind/:name/:secret',
    params: undefined,
  });
  for (const url of ['/hooks/registry/a/b/c/d', '/hooks/registry//b', '/hooks/registry/a//c']) assert.equal(matchHookRoute(url), undefined, url);
});
