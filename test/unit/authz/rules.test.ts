import { describe, expect, it } from 'vitest';
import type { Action, RuleConfig } from '../../../src/config/types.js';
import type { Principal } from '../../../src/core/request.js';
import { normalizePath } from '../../../src/authz/path.js';
import { evaluateRequirement, RuleSet, type MatchInput, type Requirement } from '../../../src/authz/rules.js';

function compile(rules: RuleConfig[], defaultAction: Action = 'authenticate', knownIssuers?: Set<string>) {
  const problems: string[] = [];
  const set = RuleSet.compile(rules, defaultAction, problems, knownIssuers);
  return { set, problems };
}

function req(path: string, method = 'GET', host = 'api.example.com'): MatchInput {
  const n = normalizePath(path);
  return { method, path: n.path, encodedSeparator: n.encodedSeparator, host };
}

const NONE: Record<string, string> = Object.create(null);

function rule(
  match: RuleConfig['match'],
  action: Action = 'authenticate',
  name?: string,
  require?: RuleConfig['require'],
) {
  return { ...(name ? { name } : {}), match, action, ...(require ? { require } : {}) } as RuleConfig;
}

function principal(scopes: string[], claims: Record<string, unknown> = {}, issuer = 'corp-idp'): Principal {
  return {
    issuer,
    sub: 'u1',
    claims: Object.assign(Object.create(null), claims),
    scopes: new Set(scopes),
    scope: scopes.join(' '),
    cacheKey: 'k',
  };
}

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

describe('encoded separators', () => {
  const rules = [
    rule({ path_prefix: '/public' }, 'allow', 'public'),
    rule({ path_prefix: '/public' }, 'authenticate', 'public-auth'),
  ];

  it('never let an allow rule match; matching continues', () => {
    const { set } = compile(rules, 'deny');
    expect(set.resolve(req('/public/x'), NONE).name).toBe('public');
    expect(set.resolve(req('/public/..%2Fadmin'), NONE)).toMatchObject({
      name: 'public-auth',
      action: 'authenticate',
    });
    expect(set.resolve(req('/public/%5cadmin'), NONE).name).toBe('public-auth');
    expect(set.resolve(req('/public/%zz'), NONE).name).toBe('public-auth');
    expect(set.resolve(req('/public\\admin'), NONE).name).toBe('public-auth');
  });

  it('turn a default allow into authenticate', () => {
    const { set } = compile([rule({ path_prefix: '/public' }, 'allow', 'public')], 'allow');
    expect(set.resolve(req('/other'), NONE).action).toBe('allow');
    expect(set.resolve(req('/public%2F..%2Fadmin'), NONE)).toMatchObject({
      name: 'default',
      action: 'authenticate',
    });
  });

  it('turn an allow from context_extensions into authenticate', () => {
    const { set } = compile(rules, 'deny');
    expect(set.resolve(req('/x%2Fy'), { action: 'allow' }).action).toBe('authenticate');
    expect(set.resolve(req('/x%2Fy'), { rule: 'public' })).toMatchObject({
      name: 'public',
      action: 'authenticate',
    });
    expect(set.resolve(req('/x/y'), { rule: 'public' }).action).toBe('allow');
  });

  it('do not change deny rules', () => {
    const { set } = compile([rule({ path_prefix: '/a' }, 'deny', 'd')]);
    expect(set.resolve(req('/a%2Fb'), NONE)).toMatchObject({ name: 'd', action: 'deny' });
  });
});

describe('context_extensions', () => {
  const rules: RuleConfig[] = [
    rule({ path_prefix: '/admin' }, 'authenticate', 'admin', {
      scopes_all: ['admin'],
      issuers: ['corp-idp'],
      claims: { department: ['eng'] },
    }),
    rule({ path_prefix: '/public' }, 'allow', 'public'),
  ];
  const { set } = compile(rules);

  it('rule: applies the named rule instead of matching', () => {
    expect(set.resolve(req('/public'), { rule: 'admin' }).name).toBe('admin');
    expect(set.resolve(req('/public'), { rule: 'admin' }).requirement.scopesAll).toEqual(['admin']);
  });

  it('rule: an unknown name fails closed', () => {
    expect(set.resolve(req('/public'), { rule: 'nope' })).toMatchObject({
      name: 'unknown-rule',
      action: 'deny',
    });
  });

  it('action: replaces the action; an invalid value denies', () => {
    expect(set.resolve(req('/admin'), { action: 'deny' })).toMatchObject({ name: 'admin', action: 'deny' });
    expect(set.resolve(req('/public'), { action: 'authenticate' })).toMatchObject({
      name: 'public',
      action: 'authenticate',
    });
    expect(set.resolve(req('/admin'), { action: 'ALLOW' }).action).toBe('deny');
    expect(set.resolve(req('/public'), { action: 'permit' }).action).toBe('deny');
  });

  it('scopes_all / scopes_any: together replace the scope requirement', () => {
    const a = set.resolve(req('/admin'), { scopes_any: 'read  write' });
    expect(a.requirement.scopesAll).toEqual([]);
    expect(a.requirement.scopesAny).toEqual(['read', 'write']);
    expect(a.requirement.issuers).toEqual(new Set(['corp-idp']));
    expect(a.requirement.claims).toHaveLength(1);
    const b = set.resolve(req('/admin'), { scopes_all: 'x y' });
    expect(b.requirement.scopesAll).toEqual(['x', 'y']);
    expect(b.requirement.scopesAny).toEqual([]);
    const c = set.resolve(req('/admin'), { scopes_all: 'x', scopes_any: 'p q' });
    expect(c.requirement).toMatchObject({ scopesAll: ['x'], scopesAny: ['p', 'q'] });
  });

  it('issuers: replaces the accepted issuers', () => {
    const r = set.resolve(req('/admin'), { issuers: 'self partner' });
    expect(r.requirement.issuers).toEqual(new Set(['self', 'partner']));
    expect(r.requirement.scopesAll).toEqual(['admin']);
    expect(
      evaluateRequirement(r.requirement, principal(['admin'], { department: 'eng' }, 'corp-idp'))?.reason,
    ).toBe('issuer_not_allowed');
  });

  it('audience: sets the downstream audience', () => {
    expect(set.resolve(req('/admin'), { audience: 'svc-a svc-b' }).audience).toEqual(['svc-a', 'svc-b']);
    expect(set.resolve(req('/admin'), NONE).audience).toBeUndefined();
  });

  it.each(['rule', 'action', 'scopes_all', 'scopes_any', 'issuers', 'audience'])(
    'a blank %s value denies and is reported',
    (key) => {
      for (const value of ['', ' ', '\t \n']) {
        const seen: [string, string][] = [];
        const r = set.resolve(req('/public'), { scopes_any: 'read', [key]: value }, (k, p) =>
          seen.push([k, p]),
        );
        expect(r).toMatchObject({ name: 'blank-extension', action: 'deny' });
        expect(seen).toEqual([[key, 'blank']]);
      }
    },
  );

  it('combines keys, with rule applied first', () => {
    const r = set.resolve(req('/nothing'), {
      rule: 'public',
      action: 'authenticate',
      scopes_all: 'read',
      audience: 'svc',
    });
    expect(r).toMatchObject({ name: 'public', action: 'authenticate', audience: ['svc'] });
    expect(r.requirement.scopesAll).toEqual(['read']);
    expect(evaluateRequirement(r.requirement, principal([]))).toMatchObject({
      reason: 'insufficient_scope',
      scope: 'read',
    });
    expect(evaluateRequirement(r.requirement, principal(['read']))).toBeUndefined();
  });

  it('applies to the default rule when nothing matches', () => {
    expect(set.resolve(req('/nothing'), { scopes_any: 'a' })).toMatchObject({
      name: 'default',
      action: 'authenticate',
    });
  });

  it('reports and ignores unknown keys', () => {
    const ignored: string[] = [];
    const r = set.resolve(req('/admin'), { virtual_host: 'x', action: 'deny' }, (k) => ignored.push(k));
    expect(ignored).toEqual(['virtual_host']);
    expect(r.action).toBe('deny');
    const only = set.resolve(req('/admin'), { foo: 'bar' }, (k) => ignored.push(k));
    expect(only).toBe(set.resolve(req('/admin'), NONE));
    expect(ignored).toEqual(['virtual_host', 'foo']);
  });

  it('does not modify the configured rule', () => {
    set.resolve(req('/admin'), { scopes_all: 'other', action: 'deny' });
    const r = set.resolve(req('/admin'), NONE);
    expect(r.action).toBe('authenticate');
    expect(r.requirement.scopesAll).toEqual(['admin']);
  });

  it('returns equal results for repeated extensions (cached)', () => {
    const e = { scopes_all: 'z' };
    expect(set.resolve(req('/admin'), e)).toBe(set.resolve(req('/admin'), { scopes_all: 'z' }));
    expect(set.resolve(req('/admin'), e)).not.toBe(set.resolve(req('/public'), e));
  });
});

describe('RuleSet.compile problems', () => {
  it('reports an invalid regular expression with its path and rule name', () => {
    const { problems } = compile([
      rule({ path: '/ok' }),
      rule({}),
      rule({ path_regex: '/a(b' }, 'deny', 'broken'),
    ]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^rules\[2\]\.match\.path_regex: invalid regular expression: .+ \(rule "broken"\)$/,
    );
    expect(problems[0]).not.toContain('Invalid regular expression: /');
  });

  it('reports duplicate names, including defaulted ones', () => {
    const { problems } = compile([
      rule({}, 'deny', 'x'),
      rule({}, 'deny', 'x'),
      rule({}, 'deny', 'rules[3]'),
      rule({}),
    ]);
    expect(problems).toEqual([
      'rules[1].name: duplicate rule name "x" (also rules[0])',
      'rules[3].name: duplicate rule name "rules[3]" (also rules[2])',
    ]);
  });

  it('reserves the names of synthetic rules', () => {
    const { problems } = compile([rule({}, 'deny', 'default'), rule({}, 'deny', 'unknown-rule')]);
    expect(problems).toEqual([
      'rules[0].name: "default" is reserved',
      'rules[1].name: "unknown-rule" is reserved',
    ]);
  });

  it('reports paths that can never match a normalised path', () => {
    const { problems } = compile([
      rule({ path: 'admin' }),
      rule({ path: '/a//b' }),
      rule({ path_prefix: '/%7Euser' }),
      rule({ path_separated_prefix: '/api/' }),
      rule({ path: '/x?y=1' }),
    ]);
    expect(problems).toEqual([
      'rules[0].match.path: must start with "/"',
      'rules[1].match.path: "/a//b" never matches a normalised request path; use "/a/b"',
      'rules[2].match.path_prefix: "%7E" is decoded in request paths; write "~"',
      'rules[3].match.path_separated_prefix: must not end with "/"',
      'rules[4].match.path: must not contain a query or fragment (they are not matched)',
    ]);
  });

  it('reports bad requirements and unknown issuers', () => {
    const { problems } = compile(
      [
        rule({}, 'authenticate', 'r', {
          scopes_all: ['read write'],
          issuers: ['corp-idp', 'ghost'],
          claims: { dept: [] },
        }),
        rule({}, 'authenticate', 's', { issuers: [] }),
      ],
      'authenticate',
      new Set(['corp-idp']),
    );
    expect(problems).toEqual([
      'rules[0].require.scopes_all[0]: "read write" can never match a scope (scopes contain no spaces) (rule "r")',
      'rules[0].require.issuers[1]: unknown issuer "ghost" (rule "r")',
      'rules[0].require.claims.dept: needs at least one value (rule "r")',
      'rules[1].require.issuers: must not be empty (omit it to accept every issuer) (rule "s")',
    ]);
  });

  it('reports bad host patterns', () => {
    const { problems } = compile([rule({ hosts: ['a.*.com', '**', 'ok.com'] })]);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^rules\[0\]\.match\.hosts\[0\]:/);
  });

  it('summarises rules for check-config', () => {
    const { set } = compile(
      [rule({ path_prefix: '/admin', methods: ['post'] }, 'authenticate', 'admin'), rule({}, 'deny')],
      'deny',
    );
    expect(set.summary).toEqual([
      { name: 'admin', action: 'authenticate', match: 'path_prefix=/admin methods=POST' },
      { name: 'rules[1]', action: 'deny', match: '*' },
      { name: 'default', action: 'deny', match: '(no rule matched)' },
    ]);
  });
});

describe('evaluateRequirement', () => {
  const requirement = (r: RuleConfig['require']): Requirement => {
    const { set, problems } = compile([rule({}, 'authenticate', 'r', r)]);
    expect(problems).toEqual([]);
    return set.resolve(req('/'), NONE).requirement;
  };

  it('passes an empty requirement', () => {
    expect(evaluateRequirement(requirement({}), principal([]))).toBeUndefined();
  });

  it('checks the issuer first', () => {
    const r = requirement({ issuers: ['partner'], scopes_all: ['x'] });
    expect(evaluateRequirement(r, principal([]))).toEqual({
      kind: 'deny',
      reason: 'issuer_not_allowed',
      description: 'the token issuer is not accepted on this route',
    });
    expect(evaluateRequirement(r, principal(['x'], {}, 'partner'))).toBeUndefined();
  });

  it('requires every scopes_all', () => {
    const r = requirement({ scopes_all: ['read', 'write'] });
    expect(evaluateRequirement(r, principal(['read']))).toEqual({
      kind: 'deny',
      reason: 'insufficient_scope',
      description: 'the token lacks the scope this route requires',
      scope: 'read write',
    });
    expect(evaluateRequirement(r, principal(['write', 'read', 'other']))).toBeUndefined();
  });

  it('requires one of scopes_any', () => {
    const r = requirement({ scopes_any: ['read', 'write'] });
    expect(evaluateRequirement(r, principal(['other']))?.scope).toBe('read write');
    expect(evaluateRequirement(r, principal(['write']))).toBeUndefined();
  });

  it('lists scopes_all then scopes_any when both are set', () => {
    const r = requirement({ scopes_all: ['admin'], scopes_any: ['eu', 'us'] });
    expect(evaluateRequirement(r, principal(['admin']))?.scope).toBe('admin eu us');
    expect(evaluateRequirement(r, principal(['eu']))?.scope).toBe('admin eu us');
    expect(evaluateRequirement(r, principal(['admin', 'us']))).toBeUndefined();
  });

  it('checks string, number and boolean claims strictly by type', () => {
    const r = requirement({ claims: { department: ['eng', 'ops'], level: [1], active: [true] } });
    const ok = { department: 'ops', level: 1, active: true };
    expect(evaluateRequirement(r, principal([], ok))).toBeUndefined();
    expect(evaluateRequirement(r, principal([], { ...ok, level: '1' }))?.reason).toBe('claims_condition');
    expect(evaluateRequirement(r, principal([], { ...ok, active: 'true' }))?.reason).toBe('claims_condition');
    expect(evaluateRequirement(r, principal([], { ...ok, department: 'sales' }))).toEqual({
      kind: 'deny',
      reason: 'claims_condition',
      description: "the token does not meet this route's conditions",
    });
    const { level: _level, ...missing } = ok;
    expect(evaluateRequirement(r, principal([], missing))?.reason).toBe('claims_condition');
    expect(evaluateRequirement(r, principal([], { ...ok, department: { eng: true } }))?.reason).toBe(
      'claims_condition',
    );
  });

  it('accepts an array claim containing one of the values', () => {
    const r = requirement({ claims: { groups: ['admins'], ids: [7] } });
    expect(
      evaluateRequirement(r, principal([], { groups: ['users', 'admins'], ids: [3, 7] })),
    ).toBeUndefined();
    expect(evaluateRequirement(r, principal([], { groups: ['users'], ids: [7] }))?.reason).toBe(
      'claims_condition',
    );
    expect(evaluateRequirement(r, principal([], { groups: ['admins'], ids: ['7'] }))?.reason).toBe(
      'claims_condition',
    );
  });

  it('reads nested claims with dotted names', () => {
    const r = requirement({ claims: { 'realm_access.roles': ['admin'] } });
    expect(evaluateRequirement(r, principal([], { realm_access: { roles: ['admin'] } }))).toBeUndefined();
    expect(evaluateRequirement(r, principal([], { realm_access: { roles: ['user'] } }))?.reason).toBe(
      'claims_condition',
    );
  });

  it('never echoes claim values in the description', () => {
    const r = requirement({ claims: { department: ['eng'] } });
    const d = evaluateRequirement(r, principal([], { department: 'secret-value' }));
    expect(JSON.stringify(d)).not.toContain('secret-value');
  });

  it('works with a hand-built Requirement', () => {
    const r: Requirement = { scopesAll: [], scopesAny: ['a'], claims: [{ name: 'x.y', values: [1] }] };
    expect(evaluateRequirement(r, principal(['b']))?.scope).toBe('a');
    expect(evaluateRequirement(r, principal(['a'], { x: { y: 1 } }))).toBeUndefined();
  });
});

// ------------------------------------------------------------------ path matching details

const name = (set: RuleSet, path: string): string => set.resolve(req(path), NONE).name;

describe('match.case_sensitive: false', () => {
  const { set, problems } = compile([
    { name: 'exact', match: { path: '/Exact', case_sensitive: false }, action: 'deny' },
    { name: 'prefix', match: { path_prefix: '/Pre', case_sensitive: false }, action: 'deny' },
    { name: 'sep', match: { path_separated_prefix: '/Sep', case_sensitive: false }, action: 'deny' },
    { name: 'regex', match: { path_regex: '/Re/[a-z]+', case_sensitive: false }, action: 'deny' },
    {
      name: 'both',
      match: { path_prefix: '/Both', path_regex: '/Both/[0-9]+', case_sensitive: false },
      action: 'deny',
    },
    { name: 'sensitive', match: { path: '/Sensitive' }, action: 'deny' },
    { name: 'enc', match: { path_prefix: '/Caf%C3%A9', case_sensitive: false }, action: 'deny' },
  ]);

  it('compiles without problems', () => expect(problems).toEqual([]));

  it.each([
    ['/exact', 'exact'],
    ['/EXACT', 'exact'],
    ['/Exact/x', 'default'],
    ['/preFIX', 'prefix'],
    ['/SEP', 'sep'],
    ['/sep/X', 'sep'],
    ['/SEPX', 'default'],
    ['/RE/ABC', 'regex'],
    ['/both/42', 'both'],
    ['/BOTH/42', 'both'],
    ['/BOTH/x', 'default'],
    ['/Sensitive', 'sensitive'],
    ['/sensitive', 'default'],
    ['/caf%c3%a9/x', 'enc'],
    ['/CAF%C3%A9', 'enc'],
  ])('%s → %s', (path, expected) => {
    expect(name(set, path)).toBe(expected);
  });

  it('folds ASCII only: a non-ASCII letter never becomes an ASCII one', () => {
    // U+212A KELVIN SIGN lower-cases to "k" under Unicode rules.
    const k = compile([{ name: 'k', match: { path: '/k', case_sensitive: false }, action: 'deny' }]).set;
    expect(name(k, '/K')).toBe('k');
    expect(name(k, '/\u212a')).toBe('default');
  });

  it('is reported without a path matcher', () => {
    const { problems: p } = compile([
      { name: 'm', match: { methods: ['GET'], case_sensitive: false }, action: 'deny' },
    ]);
    expect(p).toEqual([
      'rules[0].match.case_sensitive: only applies to path, path_prefix, path_separated_prefix or path_regex (rule "m")',
    ]);
  });

  it('shows in the rule summary', () => {
    expect(set.summary[0]).toEqual({
      name: 'exact',
      action: 'deny',
      match: 'path=/Exact case_sensitive=false',
    });
  });
});

describe('non-ASCII rule paths', () => {
  const { set, problems } = compile([
    { name: 'decoded', match: { path: '/café' }, action: 'deny' },
    { name: 'encoded', match: { path_separated_prefix: '/th%C3%A9' }, action: 'deny' },
    { name: 'space', match: { path_prefix: '/a b' }, action: 'deny' },
  ]);

  it('compiles without problems', () => expect(problems).toEqual([]));

  it.each([
    ['/caf%C3%A9', 'decoded'],
    ['/caf%c3%a9', 'decoded'],
    ['/cafe', 'default'],
    ['/th%C3%A9/vert', 'encoded'],
    ['/a%20b/c', 'space'],
  ])('%s → %s', (path, expected) => {
    expect(name(set, path)).toBe(expected);
  });

  it('lower-case hex in an exact rule path is reported with the form to use', () => {
    const { problems: p } = compile([{ name: 'x', match: { path: '/caf%c3%a9' }, action: 'deny' }]);
    expect(p).toEqual([
      'rules[0].match.path: "/caf%c3%a9" never matches a normalised request path; use "/caf%C3%A9" (rule "x")',
    ]);
  });

  it('a lone surrogate is reported', () => {
    const { problems: p } = compile([{ name: 'x', match: { path_prefix: '/a\ud800' }, action: 'deny' }]);
    expect(p).toEqual(['rules[0].match.path_prefix: is not valid Unicode text (rule "x")']);
  });
});
