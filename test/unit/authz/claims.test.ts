import { afterEach, describe, expect, it } from 'vitest';
import { compileClaimMappings, extractScopes, readClaim } from '../../../src/authz/claims.js';

describe('readClaim', () => {
  const claims = JSON.parse(
    JSON.stringify({
      sub: 'u1',
      realm_access: { roles: ['admin', 'user'], nested: { deep: 7 } },
      'https://x.io/roles': ['r1'],
      'https://x.io': { roles: ['shadowed'] },
      'https://hasura.io/jwt/claims': { 'x-role': 'editor' },
      'a.b': 'exact',
      a: { b: 'nested' },
      list: [{ x: 1 }],
    }),
  );

  it('reads top-level and dotted nested claims', () => {
    expect(readClaim(claims, 'sub')).toBe('u1');
    expect(readClaim(claims, 'realm_access.roles')).toEqual(['admin', 'user']);
    expect(readClaim(claims, 'realm_access.nested.deep')).toBe(7);
  });

  it('prefers an exact top-level key with dots over the dotted path', () => {
    expect(readClaim(claims, 'https://x.io/roles')).toEqual(['r1']);
    expect(readClaim(claims, 'a.b')).toBe('exact');
  });

  it('reaches nested claims under a dotted key', () => {
    expect(readClaim(claims, 'https://hasura.io/jwt/claims.x-role')).toBe('editor');
  });

  it('returns undefined for missing claims, arrays and prototypes', () => {
    expect(readClaim(claims, 'nope')).toBeUndefined();
    expect(readClaim(claims, 'realm_access.missing')).toBeUndefined();
    expect(readClaim(claims, 'sub.length')).toBeUndefined();
    expect(readClaim(claims, 'list.0')).toBeUndefined();
    expect(readClaim(claims, 'toString')).toBeUndefined();
    expect(readClaim(claims, 'constructor')).toBeUndefined();
    expect(readClaim(claims, '__proto__')).toBeUndefined();
    expect(readClaim(claims, 'realm_access.__proto__')).toBeUndefined();
    expect(readClaim(claims, 'realm_access.hasOwnProperty')).toBeUndefined();
  });
});

describe('compileClaimMappings', () => {
  afterEach(() => {
    delete (Object.prototype as Record<string, unknown>).polluted;
  });

  it('copies every claim and applies mappings in order', () => {
    const map = compileClaimMappings([
      { from: 'realm_access.roles', to: 'roles' },
      { from: 'scp', to: 'scope' },
    ]);
    const input = { sub: 'u', scp: 'a b', scope: 'old', realm_access: { roles: ['x'] } };
    const out = map(input);
    expect(Object.getPrototypeOf(out)).toBeNull();
    expect({ ...out }).toEqual({
      sub: 'u',
      scp: 'a b',
      scope: 'a b',
      roles: ['x'],
      realm_access: { roles: ['x'] },
    });
    expect(out).not.toBe(input);
    // the input is not modified
    expect(input.scope).toBe('old');
  });

  it('owns its `to`: a missing `from` leaves it absent, whatever the token carries there', () => {
    const out = compileClaimMappings([{ from: 'realm_access.roles', to: 'roles' }])({
      sub: 'u',
      roles: ['admin'],
    });
    expect(Object.hasOwn(out, 'roles')).toBe(false);
    expect(out.sub).toBe('u');
    const out2 = compileClaimMappings([{ from: 'absent', to: 'roles' }])({ sub: 'u' });
    expect(Object.hasOwn(out2, 'roles')).toBe(false);
  });

  it('several mappings to one `to`: the last whose source is present wins', () => {
    const map = compileClaimMappings([
      { from: 'a', to: 'x' },
      { from: 'b', to: 'x' },
    ]);
    expect(map({ a: 1, b: 2, x: 0 }).x).toBe(2);
    expect(map({ a: 1, x: 0 }).x).toBe(1);
    expect(Object.hasOwn(map({ x: 0 }), 'x')).toBe(false);
  });

  it('reads mappings from the incoming claims (swap works)', () => {
    const out = compileClaimMappings([
      { from: 'scp', to: 'scope' },
      { from: 'scope', to: 'scp' },
    ])({ scp: 'A', scope: 'B' });
    expect(out.scope).toBe('A');
    expect(out.scp).toBe('B');
  });

  it('prefers an exact dotted key for `from`', () => {
    const out = compileClaimMappings([{ from: 'https://x.io/roles', to: 'roles' }])({
      'https://x.io/roles': ['exact'],
      'https://x': { 'io/roles': ['nested'] },
    });
    expect(out.roles).toEqual(['exact']);
  });

  it('never pollutes Object.prototype nor copies __proto__/constructor/prototype', () => {
    const claims = JSON.parse(
      '{"sub":"u","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},' +
        '"prototype":1,"nested":{"__proto__":{"polluted":true},"ok":1},"arr":[{"__proto__":{"polluted":true}}]}',
    );
    const map = compileClaimMappings([
      { from: '__proto__', to: 'p' },
      { from: 'nested', to: 'n' },
      { from: '__proto__.polluted', to: 'q' },
    ]);
    const out = map(claims);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(out)).toBeNull();
    expect(out.polluted).toBeUndefined();
    expect((out.nested as Record<string, unknown>).polluted).toBeUndefined();
    expect(((out.arr as unknown[])[0] as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(out).sort()).toEqual(['arr', 'n', 'nested', 'sub']);
    expect(Object.hasOwn(out, '__proto__')).toBe(false);
    expect(Object.hasOwn(out.nested as object, '__proto__')).toBe(false);
    expect(Object.hasOwn(out.n as object, '__proto__')).toBe(false);
    expect(JSON.stringify(out)).not.toContain('polluted');
    expect((out.nested as Record<string, unknown>).ok).toBe(1);
  });

  it('reports and skips a mapping to a forbidden name', () => {
    const problems: string[] = [];
    const map = compileClaimMappings(
      [{ from: 'sub', to: '__proto__' }],
      problems,
      'issuers[0].claim_mappings',
    );
    expect(problems).toEqual(['issuers[0].claim_mappings[0].to: "__proto__" cannot be used as a claim name']);
    const out = map({ sub: 'u' });
    expect(Object.hasOwn(out, '__proto__')).toBe(false);
  });

  it('does not read inherited properties', () => {
    const proto = { inherited: 'x' };
    const claims = Object.create(proto) as Record<string, unknown>;
    claims.own = 1;
    const out = compileClaimMappings([{ from: 'inherited', to: 'got' }])(claims);
    expect({ ...out }).toEqual({ own: 1 });
  });
});

describe('extractScopes', () => {
  it('splits a space-delimited string, dropping empty parts', () => {
    expect(extractScopes({ scope: ' read  write ' }, ['scope', 'scp'])).toEqual(['read', 'write']);
  });

  it('keeps the string elements of an array', () => {
    expect(extractScopes({ scp: ['read', 3, null, 'write'] }, ['scope', 'scp'])).toEqual(['read', 'write']);
  });

  it('uses the first present claim only', () => {
    expect(extractScopes({ scope: 'a', scp: ['b'] }, ['scope', 'scp'])).toEqual(['a']);
    expect(extractScopes({ scp: ['b'] }, ['scope', 'scp'])).toEqual(['b']);
    expect(extractScopes({ scope: 42, scp: ['b'] }, ['scope', 'scp'])).toEqual([]);
  });

  it('returns [] without a scope claim', () => {
    expect(extractScopes({ sub: 'x' }, ['scope', 'scp'])).toEqual([]);
  });

  it('reads dotted scope claim names', () => {
    expect(extractScopes({ ext: { scopes: 'x y' } }, ['ext.scopes'])).toEqual(['x', 'y']);
  });
});
