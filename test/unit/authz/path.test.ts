import { describe, expect, it } from 'vitest';
import { normalizePath } from '../../../src/authz/path.js';

describe('normalizePath', () => {
  it.each([
    // [raw, path, encodedSeparator]
    ['/public/../admin', '/admin', false],
    ['/public/%2e%2e/admin', '/admin', false],
    ['/public/%2E%2E/admin', '/admin', false],
    ['/public/.%2e/admin', '/admin', false],
    ['//admin', '/admin', false],
    ['/a///b//c', '/a/b/c', false],
    ['/admin%2F..', '/admin%2F..', true],
    ['/admin%2f..', '/admin%2F..', true],
    ['/a%2fb', '/a%2Fb', true],
    ['/a%5cb', '/a%5Cb', true],
    ['/a/./b', '/a/b', false],
    ['/a/b/.', '/a/b/', false],
    ['/a/b/..', '/a/', false],
    ['/..', '/', false],
    ['/../../etc', '/etc', false],
    ['/%7Euser', '/~user', false],
    ['/%7euser', '/~user', false],
    ['/%41%62%2D%5f', '/Ab-_', false],
    ['/a%20b', '/a%20b', false],
    ['/a%3fb', '/a%3Fb', false],
    ['/api?x=/../admin', '/api', false],
    ['/api#frag', '/api', false],
    ['/api#f?x', '/api', false],
    ['/api/', '/api/', false],
    ['/api//', '/api/', false],
    ['/', '/', false],
    ['', '/', false],
    ['api/x', '/api/x', false],
    ['/a%zzb', '/a%25zzb', true],
    ['/a%', '/a%25', true],
    ['/a%2', '/a%252', true],
    ['/a\\..\\b', '/a\\..\\b', true],
    ['/a//../b', '/a/b', true],
    ['/.well-known/jwks.json', '/.well-known/jwks.json', false],
  ])('%j → %j (encodedSeparator %j)', (raw, path, flag) => {
    expect(normalizePath(raw)).toEqual({ path, encodedSeparator: flag });
  });

  it('returns a plain path unchanged on the fast path', () => {
    const raw = '/api/v1/orders/42';
    const n = normalizePath(raw);
    expect(n.path).toBe(raw);
    expect(n.encodedSeparator).toBe(false);
  });

  it('is idempotent', () => {
    for (const raw of ['/public/%2e%2e/admin', '/a/./b/', '//x//y/..', '/%7e/%2f/q', '/a%zz']) {
      const once = normalizePath(raw).path;
      expect(normalizePath(once).path).toBe(once);
    }
  });
});
