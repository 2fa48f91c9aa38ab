import { describe, expect, it } from 'vitest';
import { encodeRulePath, isAmbiguousPath, normalizePath } from '../../../src/authz/path.js';

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

describe('isAmbiguousPath', () => {
  it.each([
    // path parameters: servlet containers strip them ("..;" is "..")
    ['/admin..;/x'],
    ['/public/..;/admin'],
    ['/a;jsessionid=1'],
    ['/public/..%3B/admin'],
    ['/a%3bb'],
    // double encoding
    ['/%252e%252e/admin'],
    ['/a%25'],
    // encoded and raw control characters
    ['/a%00'],
    ['/a%0a'],
    ['/a%0D%0Ab'],
    ['/a%1f'],
    ['/a%7F'],
    ['/a\u0000b'],
    ['/a\nb'],
    ['/a\tb'],
    ['/a\u007fb'],
    ['/a%C2%85'], // C1 control U+0085, valid UTF-8
    // backslash, raw or encoded
    ['/public\\..\\admin'],
    ['/a%5Cb'],
    ['/a%5cb'],
    // not valid UTF-8
    ['/%C0%AE%C0%AE/admin'], // overlong "."
    ['/%E0%80%AE'], // overlong "." in three bytes
    ['/%F0%80%80%AE'], // overlong in four bytes
    ['/%C1%BF'], // overlong lead C1
    ['/a%ff'],
    ['/a%F5%80%80%80'], // beyond U+10FFFF
    ['/a%80'], // lone continuation byte
    ['/a%C3'], // truncated sequence at the end
    ['/a%C3/b'], // truncated, raw byte follows
    ['/a%E2%82'], // truncated three-byte sequence
    ['/a%C3%41'], // continuation is not 10xxxxxx
    ['/a%ED%A0%80'], // UTF-16 surrogate U+D800
    // malformed escapes
    ['/a%zz'],
    ['/a%2'],
    ['/a%'],
    ['/a%2?x'],
    // raw characters outside RFC 3986
    ['/a"b'],
    ['/a<b'],
    ['/a>b'],
    ['/a b'],
    ['/a{b'],
    ['/a}b'],
    ['/a|b'],
    ['/a^b'],
    ['/a`b'],
    ['/a[b]'],
    ['/café'],
    ['/a\u2215b'], // raw DIVISION SLASH
  ])('%j is ambiguous', (raw) => {
    expect(isAmbiguousPath(raw)).toBe(true);
  });

  it.each([
    ['/'],
    ['/api/v1/orders/42'],
    ['/caf%C3%A9'],
    ['/caf%c3%a9'],
    ['/%E2%82%AC'], // €, three bytes
    ['/%F0%9F%98%80'], // 😀, four bytes
    ['/%F4%8F%BF%BF'], // U+10FFFF
    ['/%C2%A0'], // U+00A0, first code point after the C1 controls
    ['/a%2Fb'],
    ['/%7Euser'],
    ['/a%20b'],
    ['/a%22b'],
    ['/public/%2e%2e/admin'],
    ['/public/../admin'],
    ["/a-b._~!$&'()*+,=:@/c"],
    ['/api?x=;%25%00\\"'], // the query is not examined
    ['/api#;%25'], // nor the fragment
  ])('%j is not ambiguous', (raw) => {
    expect(isAmbiguousPath(raw)).toBe(false);
  });

  it('valid percent-encoded UTF-8 stays encoded and unflagged after normalisation', () => {
    expect(normalizePath('/caf%c3%a9')).toEqual({ path: '/caf%C3%A9', encodedSeparator: false });
  });

  it('/a%2Fb is not ambiguous but keeps the encoded-separator flag (never satisfies an allow)', () => {
    expect(isAmbiguousPath('/a%2Fb')).toBe(false);
    expect(normalizePath('/a%2Fb')).toEqual({ path: '/a%2Fb', encodedSeparator: true });
  });
});

describe('encodeRulePath', () => {
  it.each([
    ['/api/x', '/api/x'],
    ['/café', '/caf%C3%A9'],
    ['/caf%C3%A9', '/caf%C3%A9'],
    ['/a b', '/a%20b'],
    ['/😀/x', '/%F0%9F%98%80/x'],
    ['/a;b', '/a;b'],
  ])('%j → %j', (value, encoded) => {
    expect(encodeRulePath(value)).toBe(encoded);
  });

  it('refuses a lone surrogate', () => {
    expect(encodeRulePath('/a\ud800')).toBeUndefined();
  });
});
