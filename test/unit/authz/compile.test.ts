import { describe, expect, it } from 'vitest';
import { compile, req, NONE, rule } from './helpers.js';

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

describe('RuleSet.compile problems', () => {
  it('reports an invalid regular expression with its path and rule name', () => {
    const { problems } = compile([
      rule({ path: '/ok' }),
      rule({}),
      rule({ path_regex: '/a(b' }, 'deny', 'broken'),
    ]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^rules\[2\]\.match\.path_regex: pattern '\/a\(b' is not accepted by RE2: missing closing \): .+ \(rule "broken"\)$/,
    );
    expect(problems[0]).not.toContain('error parsing regexp');
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
