import { describe, expect, it } from 'vitest';
import type { HeaderToSet } from '../../../src/core/decision.js';
import type { Principal } from '../../../src/core/request.js';
import { ClaimHeaders } from '../../../src/upstream/claim-headers.js';

function principal(claims: Record<string, unknown>): Principal {
  return {
    issuer: 'corp-idp',
    sub: 'u1',
    claims: Object.assign(Object.create(null), claims),
    scopes: new Set(),
    scope: '',
    cacheKey: 'k',
  };
}

function build(map: Record<string, string>, claims: Record<string, unknown>) {
  const problems: string[] = [];
  const headers = ClaimHeaders.compile(map, problems);
  expect(problems).toEqual([]);
  const out: HeaderToSet[] = [];
  const dropped: [string, string, string][] = [];
  headers.build(principal(claims), out, (h, c, why) => dropped.push([h, c, why]));
  return { out, dropped, headers };
}

describe('ClaimHeaders.compile', () => {
  it('lower-cases header names', () => {
    const { headers } = build({ 'X-User-Id': 'sub', 'x-roles': 'roles' }, {});
    expect(headers.headerNames).toEqual(['x-user-id', 'x-roles']);
  });

  it('rejects invalid, pseudo and proxy-managed header names', () => {
    const problems: string[] = [];
    ClaimHeaders.compile(
      {
        ':path': 'sub',
        'x user': 'sub',
        'x-ok': 'sub',
        Host: 'sub',
        'Content-Length': 'sub',
        'transfer-encoding': 'sub',
        connection: 'sub',
        te: 'sub',
        upgrade: 'sub',
        'X-OK': 'email',
        'x-empty': '',
      },
      problems,
    );
    expect(problems).toEqual([
      'upstream.claim_headers.:path: pseudo-headers cannot be set',
      'upstream.claim_headers.x user: not a valid header name (RFC 7230 token)',
      'upstream.claim_headers.Host: "host" is managed by the proxy and cannot be set',
      'upstream.claim_headers.Content-Length: "content-length" is managed by the proxy and cannot be set',
      'upstream.claim_headers.transfer-encoding: "transfer-encoding" is managed by the proxy and cannot be set',
      'upstream.claim_headers.connection: "connection" is managed by the proxy and cannot be set',
      'upstream.claim_headers.te: "te" is managed by the proxy and cannot be set',
      'upstream.claim_headers.upgrade: "upgrade" is managed by the proxy and cannot be set',
      'upstream.claim_headers.X-OK: same header as upstream.claim_headers.x-ok (names are case-insensitive)',
      'upstream.claim_headers.x-empty: must name a claim',
    ]);
  });
});

describe('ClaimHeaders.build', () => {
  it('encodes scalars, arrays and objects', () => {
    const { out, dropped } = build(
      {
        'x-sub': 'sub',
        'x-n': 'n',
        'x-b': 'b',
        'x-roles': 'roles',
        'x-mixed': 'mixed',
        'x-obj': 'obj',
        'x-nested': 'realm.level',
        'x-empty': 'empty',
      },
      {
        sub: 'alice',
        n: 42.5,
        b: false,
        roles: ['a', 'b'],
        mixed: ['s', 1, true, { k: 'v' }, null],
        obj: { a: 1, b: ['x'] },
        realm: { level: 3 },
        empty: '',
      },
    );
    expect(dropped).toEqual([]);
    expect(out).toEqual([
      { key: 'x-sub', value: 'alice' },
      { key: 'x-n', value: '42.5' },
      { key: 'x-b', value: 'false' },
      { key: 'x-roles', value: 'a,b' },
      { key: 'x-mixed', value: 's,1,true,{"k":"v"}' },
      { key: 'x-obj', value: '{"a":1,"b":["x"]}' },
      { key: 'x-nested', value: '3' },
      { key: 'x-empty', value: '' },
    ]);
  });

  it('sets nothing for missing or null claims', () => {
    const { out, dropped } = build({ 'x-a': 'a', 'x-b': 'b' }, { b: null });
    expect(out).toEqual([]);
    expect(dropped).toEqual([]);
  });

  it('drops values with control characters and reports them without the value', () => {
    const { out, dropped } = build(
      { 'x-crlf': 'crlf', 'x-nul': 'nul', 'x-del': 'del', 'x-arr': 'arr', 'x-tab': 'tab', 'x-ok': 'ok' },
      {
        crlf: 'a\r\nx-admin: true',
        nul: 'a\u0000b',
        del: 'a\u007fb',
        arr: ['ok', 'bad\n'],
        tab: 'a\tb',
        ok: 'fine ünïcode',
      },
    );
    expect(out).toEqual([{ key: 'x-ok', value: 'fine ünïcode' }]);
    expect(dropped.map((d) => d[0])).toEqual(['x-crlf', 'x-nul', 'x-del', 'x-arr', 'x-tab']);
    expect(dropped[0]).toEqual(['x-crlf', 'crlf', 'value contains a control character']);
    expect(JSON.stringify(dropped)).not.toContain('x-admin');
  });

  it('drops a DEL character inside an object claim (JSON does not escape it)', () => {
    const { out, dropped } = build({ 'x-o': 'o' }, { o: { k: 'a\u007f' } });
    expect(out).toEqual([]);
    expect(dropped).toHaveLength(1);
  });

  it('drops values longer than 8192 bytes', () => {
    const { out, dropped } = build(
      { 'x-max': 'max', 'x-long': 'long', 'x-multi': 'multi' },
      { max: 'a'.repeat(8192), long: 'a'.repeat(8193), multi: 'é'.repeat(4097) },
    );
    expect(out.map((h) => h.key)).toEqual(['x-max']);
    expect(dropped.map((d) => [d[0], d[2]])).toEqual([
      ['x-long', 'value longer than 8192 bytes'],
      ['x-multi', 'value longer than 8192 bytes'],
    ]);
  });

  it('appends to the given array', () => {
    const problems: string[] = [];
    const headers = ClaimHeaders.compile({ 'x-sub': 'sub' }, problems);
    const out: HeaderToSet[] = [{ key: 'x-jwt-assertion', value: 't' }];
    headers.build(principal({ sub: 's' }), out, () => {});
    expect(out).toEqual([
      { key: 'x-jwt-assertion', value: 't' },
      { key: 'x-sub', value: 's' },
    ]);
  });
});

describe('ClaimHeaders.build: values that read differently upstream', () => {
  it('outer whitespace (an HTTP parser trims it) is not set, never trimmed', () => {
    for (const sub of ['  admin  ', 'admin ', ' admin', 'admin\u00a0', '\u3000admin']) {
      const { out, dropped } = build({ 'x-user-id': 'sub' }, { sub });
      expect(out, JSON.stringify(sub)).toEqual([]);
      expect(dropped).toEqual([['x-user-id', 'sub', 'value has leading or trailing whitespace']]);
    }
    expect(build({ 'x-user-id': 'sub' }, { sub: 'ad min' }).out).toEqual([
      { key: 'x-user-id', value: 'ad min' },
    ]);
  });

  it('a list element with "," or outer whitespace is not set; a scalar with "," is one value', () => {
    for (const roles of [['a@x,admin@x'], ['a', ' admin'], [{ a: 1, b: 2 }]]) {
      const { out, dropped } = build({ 'x-roles': 'roles' }, { roles });
      expect(out, JSON.stringify(roles)).toEqual([]);
      expect(dropped[0]![2]).toBe('a list element contains "," or leading or trailing whitespace');
    }
    expect(build({ 'x-roles': 'roles' }, { roles: ['a', 'b'] }).out).toEqual([
      { key: 'x-roles', value: 'a,b' },
    ]);
    expect(build({ 'x-roles': 'roles' }, { roles: 'a,b' }).out).toEqual([{ key: 'x-roles', value: 'a,b' }]);
  });
});
