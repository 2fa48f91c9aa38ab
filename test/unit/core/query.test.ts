import { describe, expect, it } from 'vitest';
import { credentialKey, decodeQueryComponent, forEachQueryParam } from '../../../src/core/query.js';

function params(rawPath: string): [string, string][] {
  const out: [string, string][] = [];
  forEachQueryParam(rawPath, out, (list, name, value) => {
    list.push([name, value]);
  });
  return out;
}

describe('forEachQueryParam', () => {
  it('raw names and values of the "&"-separated parameters between "?" and "#"', () => {
    expect(params('/x?a=1&&b&c=%41+d;e=2&a=3#f=4')).toEqual([
      ['a', '1'],
      ['b', ''],
      ['c', '%41+d;e=2'],
      ['a', '3'],
    ]);
    expect(params('/x')).toEqual([]);
    expect(params('/x?')).toEqual([]);
    expect(params('/x?#a=1')).toEqual([]);
    expect(params('/x?=v&a==b')).toEqual([
      ['', 'v'],
      ['a', '=b'],
    ]);
  });

  it('stops when the visitor returns true', () => {
    const seen: string[] = [];
    forEachQueryParam('/x?a=1&b=2&c=3', seen, (list, name) => list.push(name) === 2);
    expect(seen).toEqual(['a', 'b']);
  });
});

describe('decodeQueryComponent', () => {
  it('decodes as URLSearchParams does', () => {
    for (const raw of [
      'plain',
      'a+b',
      'a%2Eb+c',
      'a%zz',
      '%C3%A9',
      '%C3%28',
      'é%zz',
      '%',
      'x%2',
      '%F0%9F%98%80+%',
    ])
      expect(decodeQueryComponent(raw), raw).toBe(new URLSearchParams(`k=${raw}`).get('k'));
  });

  it('returns a value without "%" or "+" as it is', () => {
    expect(decodeQueryComponent('abc.def')).toBe('abc.def');
  });
});

describe('credentialKey', () => {
  it('reads names as backends do', () => {
    expect(credentialKey('Access.Token[]')).toBe('access_token');
    expect(credentialKey('access%5Ftoken')).toBe('access_token');
  });
});
