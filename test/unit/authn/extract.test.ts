import { describe, expect, it } from 'vitest';
import { cookieHeaderWithout, queryParam } from '../../../src/authn/extract.js';

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
    expect(cookieHeaderWithout('a=1; t=x; b=2; s=y', ['t', 's'])).toBe('a=1; b=2');
  });

  it('"" when nothing else is left, undefined when none of them is present', () => {
    expect(cookieHeaderWithout('t=x', ['t'])).toBe('');
    expect(cookieHeaderWithout('a=1; my_t=2', ['t'])).toBeUndefined();
    expect(cookieHeaderWithout('a=1', ['t'])).toBeUndefined();
  });
});
