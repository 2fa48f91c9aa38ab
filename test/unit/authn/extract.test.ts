import { describe, expect, it } from 'vitest';
import {
  compileCredentialPlan,
  compileTokenSources,
  cookieHeaderWithout,
  credentialKey,
  findCredential,
  HIDDEN_QUERY_CREDENTIAL,
  MULTIPLE_CREDENTIALS,
  queryParam,
  tokenQueryKeys,
} from '../../../src/authn/extract.js';
import type { AuthRequest } from '../../../src/core/request.js';

describe('queryParam: raw parameter names', () => {
  it('matches the name only as sent', () => {
    expect(queryParam('/x?access_token=abc', 'access_token')).toBe('abc');
    expect(queryParam('/x?acc%65ss_token=abc', 'access_token')).toBeUndefined();
    expect(queryParam('/x?access%5Ftoken=abc', 'access_token')).toBeUndefined();
    expect(queryParam('/x?my_access_token=abc', 'access_token')).toBeUndefined();
    expect(queryParam('/x?access_tokenx=abc', 'access_token')).toBeUndefined();
  });

  it('takes the first occurrence, among other parameters, before any fragment', () => {
    expect(queryParam('/x?a=1&access_token=first&access_token=second', 'access_token')).toBe('first');
    expect(queryParam('/x?a=1#access_token=frag', 'access_token')).toBeUndefined();
    expect(queryParam('/x?access_token=v#frag', 'access_token')).toBe('v');
    expect(queryParam('/x', 'access_token')).toBeUndefined();
  });

  it('an empty or valueless parameter yields ""', () => {
    expect(queryParam('/x?access_token=&b=1', 'access_token')).toBe('');
    expect(queryParam('/x?access_token&b=1', 'access_token')).toBe('');
  });

  it('decodes the value as a form value; invalid percent-encoding is kept', () => {
    expect(queryParam('/x?t=a%2Eb+c', 't')).toBe('a.b c');
    expect(queryParam('/x?t=a%zz', 't')).toBe('a%zz');
  });
});

describe('cookieHeaderWithout', () => {
  it('removes the named cookies and keeps the others in order', () => {
    expect(cookieHeaderWithout('a=1; t=x; b=2; s=y', new Set(['t', 's']))).toBe('a=1; b=2');
  });

  it('"" when nothing else is left, undefined when none of them is present', () => {
    expect(cookieHeaderWithout('t=x', new Set(['t']))).toBe('');
    expect(cookieHeaderWithout('a=1; my_t=2', new Set(['t']))).toBeUndefined();
    expect(cookieHeaderWithout('a=1', new Set(['t']))).toBeUndefined();
  });
});

describe('cookieHeaderWithout: crumbs joined with "," and names as backends read them', () => {
  const keys = new Set(['access_token']);
  it('takes the token cookie out of a value Envoy joined with ","', () => {
    expect(cookieHeaderWithout('a=1,access_token=x; b=2', keys)).toBe('a=1; b=2');
    expect(cookieHeaderWithout('access_token=x,access_token=y', keys)).toBe('');
    expect(cookieHeaderWithout('x=1,2; ACCESS.TOKEN=f', keys)).toBe('x=1,2');
    expect(cookieHeaderWithout('a=1,b=2,access_token=x,c', keys)).toBe('a=1; b=2,c');
  });
  it('keeps the exact name it is told to keep (forward_original_token)', () => {
    expect(cookieHeaderWithout('access_token=v; Access_Token=', keys, 'access_token')).toBe('access_token=v');
  });
});

describe('credentialKey', () => {
  it('reads names as backends normalise them', () => {
    for (const n of [
      'access_token',
      'ACCESS_TOKEN',
      'access.token',
      'access+token',
      'access%20token',
      'access%5Ftoken',
      'access_token[]',
      'access_token%5B%5D',
      ' access_token',
    ])
      expect(credentialKey(n), n).toBe('access_token');
    expect(credentialKey('my_access_token')).toBe('my_access_token');
  });
});

describe('findCredential', () => {
  const plan = compileCredentialPlan(
    compileTokenSources([
      { header: 'authorization', prefix: 'Bearer ' },
      { query: 'access_token' },
      { cookie: 'access_token' },
    ]),
  );
  const req = (rawPath: string, headers: Record<string, string> = {}): AuthRequest =>
    ({ method: 'GET', rawPath, host: 'h', headers, contextExtensions: {} }) as AuthRequest;

  it('one header token', () => {
    expect(findCredential(req('/x', { authorization: 'Bearer abc' }), plan)).toMatchObject({ token: 'abc' });
  });
  it('two bearer values in one Authorization (two lines joined with ",") → multiple', () => {
    expect(findCredential(req('/x', { authorization: 'Bearer a, Bearer b' }), plan)).toBe(
      MULTIPLE_CREDENTIALS,
    );
  });
  it('header + cookie, header + query, two cookies, two query parameters → multiple', () => {
    expect(findCredential(req('/x', { authorization: 'Bearer a', cookie: 'access_token=b' }), plan)).toBe(
      MULTIPLE_CREDENTIALS,
    );
    expect(findCredential(req('/x?access.token=b', { authorization: 'Bearer a' }), plan)).toBe(
      MULTIPLE_CREDENTIALS,
    );
    expect(findCredential(req('/x', { cookie: 'access_token=a,access_token=b' }), plan)).toBe(
      MULTIPLE_CREDENTIALS,
    );
    expect(findCredential(req('/x?access_token=a&ACCESS_TOKEN=b'), plan)).toBe(MULTIPLE_CREDENTIALS);
  });
  it('a query credential behind ";" → hidden', () => {
    expect(findCredential(req('/x?a=1;access_token=b'), plan)).toBe(HIDDEN_QUERY_CREDENTIAL);
    expect(findCredential(req('/x?a=1;b=2', { authorization: 'Bearer a' }), plan)).toMatchObject({
      token: 'a',
    });
  });
  it('another spelling alone is not read; an empty one beside the token is a stray', () => {
    expect(findCredential(req('/x?ACCESS_TOKEN=b'), plan)).toBeUndefined();
    expect(findCredential(req('/x?access_token=', { authorization: 'Bearer a' }), plan)).toMatchObject({
      token: 'a',
      strays: true,
    });
  });
});

describe('tokenQueryKeys', () => {
  const keys = new Set(['access_token']);
  it('raw keys of every spelling, once each', () => {
    expect(tokenQueryKeys('/x?a=1&ACCESS_TOKEN=1&access.token=2&ACCESS_TOKEN=3&b', keys)).toEqual([
      'ACCESS_TOKEN',
      'access.token',
    ]);
    expect(tokenQueryKeys('/x?a=1', keys)).toBeUndefined();
    expect(tokenQueryKeys('/x?a=1;access_token=2', keys)).toBe(HIDDEN_QUERY_CREDENTIAL);
  });
});

describe('findCredential: header sources', () => {
  const req = (headers: Record<string, string>): AuthRequest =>
    ({ method: 'GET', rawPath: '/x', host: 'h', headers, contextExtensions: {} }) as AuthRequest;
  const two = compileCredentialPlan(
    compileTokenSources([
      { header: 'authorization', prefix: 'DPoP ' },
      { header: 'authorization', prefix: 'Bearer ' },
      { header: 'x-token' },
    ]),
  );
  it('two prefixes on one header count once; another header source is a second credential', () => {
    expect(findCredential(req({ authorization: 'Bearer a' }), two)).toMatchObject({ token: 'a' });
    expect(findCredential(req({ authorization: 'DPoP a' }), two)).toMatchObject({ token: 'a' });
    expect(findCredential(req({ authorization: 'Bearer a', 'x-token': 'b' }), two)).toBe(
      MULTIPLE_CREDENTIALS,
    );
    expect(findCredential(req({ authorization: 'Basic a, Bearer b' }), two)).toBeUndefined();
    expect(findCredential(req({ authorization: 'Basic a, Bearer b', 'x-token': 'c' }), two)).toBe(
      MULTIPLE_CREDENTIALS,
    );
    expect(findCredential(req({ authorization: 'Basic a' }), two)).toBeUndefined();
  });
});
