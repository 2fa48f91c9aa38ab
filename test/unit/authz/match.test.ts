import { describe, expect, it } from 'vitest';
import { compile, req, NONE, rule } from './helpers.js';

describe('RuleSet matching', () => {
  it('matches path exactly', () => {
    const { set, problems } = compile([rule({ path: '/health' }, 'allow', 'h')]);
    expect(problems).toEqual([]);
    expect(set.resolve(req('/health'), NONE).name).toBe('h');
    expect(set.resolve(req('/health/'), NONE).name).toBe('default');
    expect(set.resolve(req('/healthz'), NONE).name).toBe('default');
    expect(set.resolve(req('/health?x=1'), NONE).name).toBe('h');
  });

  it('matches path_prefix as a plain string prefix', () => {
    const { set } = compile([rule({ path_prefix: '/public' }, 'allow', 'p')]);
    expect(set.resolve(req('/public'), NONE).name).toBe('p');
    expect(set.resolve(req('/public/x'), NONE).name).toBe('p');
    expect(set.resolve(req('/publicity'), NONE).name).toBe('p');
    expect(set.resolve(req('/pub'), NONE).name).toBe('default');
  });

  it('matches path_separated_prefix on segment boundaries', () => {
    const { set } = compile([rule({ path_separated_prefix: '/api' }, 'deny', 's')]);
    expect(set.resolve(req('/api'), NONE).name).toBe('s');
    expect(set.resolve(req('/api/'), NONE).name).toBe('s');
    expect(set.resolve(req('/api/v1'), NONE).name).toBe('s');
    expect(set.resolve(req('/apix'), NONE).name).toBe('default');
  });

  it('matches path_regex against the whole path', () => {
    const { set, problems } = compile([rule({ path_regex: '/users/[0-9]+' }, 'deny', 'r')]);
    expect(problems).toEqual([]);
    expect(set.resolve(req('/users/42'), NONE).name).toBe('r');
    expect(set.resolve(req('/users/42/x'), NONE).name).toBe('default');
    expect(set.resolve(req('/x/users/42'), NONE).name).toBe('default');
    // alternation is anchored as a whole
    const alt = compile([rule({ path_regex: '/a|/b' }, 'deny', 'alt')]).set;
    expect(alt.resolve(req('/a'), NONE).name).toBe('alt');
    expect(alt.resolve(req('/ab'), NONE).name).toBe('default');
    expect(alt.resolve(req('/xx/b'), NONE).name).toBe('default');
  });

  it('matches methods case-insensitively', () => {
    const { set } = compile([rule({ path_prefix: '/admin', methods: ['post', 'PUT'] }, 'deny', 'm')]);
    expect(set.resolve(req('/admin', 'POST'), NONE).name).toBe('m');
    expect(set.resolve(req('/admin', 'put'), NONE).name).toBe('m');
    expect(set.resolve(req('/admin', 'GET'), NONE).name).toBe('default');
  });

  it('matches hosts case-insensitively, with ports and wildcards', () => {
    const { set, problems } = compile([
      rule({ hosts: ['Admin.Example.com'] }, 'deny', 'exact'),
      rule({ hosts: ['api.example.com:8443'] }, 'deny', 'port'),
      rule({ hosts: ['*.internal.example.com'] }, 'deny', 'wild'),
      rule({ hosts: ['shop.*'] }, 'deny', 'prefix'),
    ]);
    expect(problems).toEqual([]);
    expect(set.resolve(req('/', 'GET', 'admin.example.com'), NONE).name).toBe('exact');
    expect(set.resolve(req('/', 'GET', 'ADMIN.example.COM:443'), NONE).name).toBe('exact');
    expect(set.resolve(req('/', 'GET', 'admin.example.com.'), NONE).name).toBe('exact');
    expect(set.resolve(req('/', 'GET', 'api.example.com:8443'), NONE).name).toBe('port');
    expect(set.resolve(req('/', 'GET', 'api.example.com'), NONE).name).toBe('default');
    expect(set.resolve(req('/', 'GET', 'api.example.com:80'), NONE).name).toBe('default');
    expect(set.resolve(req('/', 'GET', 'a.internal.example.com'), NONE).name).toBe('wild');
    expect(set.resolve(req('/', 'GET', 'a.b.internal.example.com:9000'), NONE).name).toBe('wild');
    expect(set.resolve(req('/', 'GET', 'internal.example.com'), NONE).name).toBe('default');
    expect(set.resolve(req('/', 'GET', 'xinternal.example.com'), NONE).name).toBe('default');
    expect(set.resolve(req('/', 'GET', 'shop.example.org'), NONE).name).toBe('prefix');
    expect(set.resolve(req('/', 'GET', 'shop.'), NONE).name).toBe('default');
  });

  it('requires wildcards to match at least one character', () => {
    const { set } = compile([
      rule({ hosts: ['*-api.example.com'] }, 'deny', 'w'),
      rule({ hosts: ['*'] }, 'deny', 'any'),
    ]);
    expect(set.resolve(req('/', 'GET', 'eu-api.example.com'), NONE).name).toBe('w');
    expect(set.resolve(req('/', 'GET', '-api.example.com'), NONE).name).toBe('any');
  });

  it('handles IPv6 hosts with and without ports', () => {
    const { set } = compile([rule({ hosts: ['[::1]'] }, 'deny', 'v6')]);
    expect(set.resolve(req('/', 'GET', '[::1]:8080'), NONE).name).toBe('v6');
    expect(set.resolve(req('/', 'GET', '[::1]'), NONE).name).toBe('v6');
    expect(set.resolve(req('/', 'GET', '[::2]'), NONE).name).toBe('default');
  });

  it('requires all conditions of a rule', () => {
    const { set } = compile([rule({ path_prefix: '/a', methods: ['GET'], hosts: ['x.io'] }, 'deny', 'all')]);
    expect(set.resolve(req('/a', 'GET', 'x.io'), NONE).name).toBe('all');
    expect(set.resolve(req('/a', 'POST', 'x.io'), NONE).name).toBe('default');
    expect(set.resolve(req('/a', 'GET', 'y.io'), NONE).name).toBe('default');
    expect(set.resolve(req('/b', 'GET', 'x.io'), NONE).name).toBe('default');
  });

  it('lets a rule without conditions match everything', () => {
    const { set } = compile([rule({}, 'deny', 'all')]);
    expect(set.resolve(req('/anything', 'DELETE', 'h'), NONE).name).toBe('all');
  });

  it('applies the first matching rule', () => {
    const { set } = compile([
      rule({ path_prefix: '/api/admin' }, 'deny', 'admin'),
      rule({ path_prefix: '/api' }, 'allow', 'api'),
      rule({ path_prefix: '/api/admin/x' }, 'allow', 'never'),
    ]);
    expect(set.resolve(req('/api/admin/x'), NONE).name).toBe('admin');
    expect(set.resolve(req('/api/x'), NONE).name).toBe('api');
  });

  it('matches normalised paths: dot-segments cannot escape a prefix', () => {
    const { set } = compile([rule({ path_prefix: '/public' }, 'allow', 'public')], 'deny');
    expect(set.resolve(req('/public/../admin'), NONE)).toMatchObject({ name: 'default', action: 'deny' });
    expect(set.resolve(req('/public/%2e%2e/admin'), NONE)).toMatchObject({ name: 'default', action: 'deny' });
  });

  it('names unnamed rules rules[i] and falls back to default_action', () => {
    const { set } = compile([rule({ path: '/x' }, 'deny')], 'allow');
    expect(set.resolve(req('/x'), NONE).name).toBe('rules[0]');
    const d = set.resolve(req('/y'), NONE);
    expect(d).toMatchObject({ name: 'default', action: 'allow' });
    expect(d.requirement).toMatchObject({ scopesAll: [], scopesAny: [], claims: [] });
    expect(d.requirement.issuers).toBeUndefined();
  });

  it('returns the same precomputed object without context_extensions', () => {
    const { set } = compile([rule({ path_prefix: '/a' }, 'authenticate', 'a')]);
    expect(set.resolve(req('/a/1'), NONE)).toBe(set.resolve(req('/a/2'), {}));
    expect(set.resolve(req('/b'), NONE)).toBe(set.resolve(req('/c'), NONE));
  });
});
