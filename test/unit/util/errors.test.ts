import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ForgeError } from '../../../src/forge/forge-error.ts';
import { DuccError, isTemporary, networkCause } from '../../../src/util/errors.ts';

/** What undici's fetch throws when a host name does not resolve. */
function dnsFailure(hostname: string): Error {
  const lookup = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname });
  return new TypeError('fetch failed', { cause: lookup });
}

describe('temporary or permanent', () => {
  const cases: [string, unknown, boolean][] = [
    ['a network failure deep in the causes', new Error('wrapped', { cause: dnsFailure('api.github.com') }), true],
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), true],
    ['an undici timeout', Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' }), true],
    ['an abort (the worker stopping)', new DOMException('stopped', 'AbortError'), true],
    ['HTTP 503', Object.assign(new Error('x'), { status: 503 }), true],
    ['HTTP 429', Object.assign(new Error('x'), { status: 429 }), true],
    ['HTTP 404', Object.assign(new Error('x'), { status: 404 }), false],
    ['an unforeseen error (bug, database or git hiccup): bounded retries', new Error('SQLITE_BUSY'), true],
    ['bad configuration', new DuccError('BOT_ERR_CONFIG', 'x'), false],
    ['bad configuration, whatever its cause', new DuccError('BOT_ERR_CONFIG', 'x', { cause: dnsFailure('a.example') }), false],
    ['a bad wish list', new DuccError('BOT_ERR_WISHLIST', 'x'), false],
    ['refused registry credentials', new DuccError('BOT_ERR_REGISTRY_AUTH', 'x'), false],
    ['a missing image', new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', 'x'), false],
    ['an unsafe archive', new DuccError('BOT_ERR_UNSAFE_ENTRY', 'x'), false],
    ['an unreachable registry', new DuccError('BOT_ERR_REGISTRY_UNREACHABLE', 'x', { cause: dnsFailure('r.example') }), true],
    ['a registry answering 502', new DuccError('BOT_ERR_REGISTRY', 'x', { status: 502 }), true],
    ['a registry answering 400', new DuccError('BOT_ERR_REGISTRY', 'x', { status: 400 }), false],
    ['a wish-list repository that cannot be fetched', new DuccError('BOT_ERR_GIT', 'x'), true],
    ['a publish step that failed', new DuccError('BOT_ERR_CVMFS', 'x'), true],
    ['said explicitly', new DuccError('BOT_ERR_PUBLISH', 'x', { temporary: false }), false],
    ['a forge API without an answer', new ForgeError('github', 'x', undefined), true],
    ['a forge API answering 500', new ForgeError('gitlab', 'x', 500), true],
    ['a forge API answering 408', new ForgeError('gitlab', 'x', 408), true],
    ['a forge API answering 403', new ForgeError('github', 'x', 403), false],
    ['a forge API answering 422', new ForgeError('github', 'x', 422), false],
  ];
  for (const [name, error, temporary] of cases) {
    it(`${name}: ${temporary ? 'temporary' : 'permanent'}`, () => {
      assert.equal(isTemporary(error), temporary);
    });
  }
});

describe('ForgeError', () => {
  it('is a DuccError with its own code, the forge and the status', () => {
    const error = new ForgeError('gitlab', 'setting status: HTTP 404: Not Found', 404);

    assert.ok(error instanceof DuccError);
    assert.equal(error.code, 'BOT_ERR_FORGE');
    assert.equal(error.forge, 'gitlab');
    assert.equal(error.status, 404);
    assert.equal(error.temporary, false);
  });
});

describe('networkCause', () => {
  it('finds the innermost network failure, e.g. the DNS error under "fetch failed"', () => {
    const error = new Error('setting status', { cause: dnsFailure('api.github.com') });

    assert.equal(networkCause(error)?.message, 'getaddrinfo ENOTFOUND api.github.com');
  });

  it('finds none in an error without one', () => {
    assert.equal(networkCause(new Error('x', { cause: new Error('y') })), undefined);
  });
});
