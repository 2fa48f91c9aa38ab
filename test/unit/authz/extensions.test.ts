import { describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../../src/config/types.js';
import { evaluateRequirement } from '../../../src/authz/requirement.js';
import { compile, req, NONE, rule, principal } from './helpers.js';

describe('context_extensions', () => {
  const rules: RuleConfig[] = [
    rule({ path_prefix: '/admin' }, 'authenticate', 'admin', {
      scopes_all: ['admin'],
      issuers: ['corp-idp'],
      claims: { department: ['eng'] },
    }),
    rule({ path_prefix: '/public' }, 'allow', 'public'),
    rule({ path_prefix: '/any' }, 'authenticate', 'any', { scopes_any: ['r', 'w'] }),
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

  it('scopes_all / scopes_any: only add to the rule’s scope requirement', () => {
    const a = set.resolve(req('/admin'), { scopes_any: 'read  write' });
    expect(a.requirement.scopesAll).toEqual(['admin']);
    expect(a.requirement.scopesAny).toEqual(['read', 'write']);
    expect(a.requirement.issuers).toEqual(new Set(['corp-idp']));
    expect(a.requirement.claims).toHaveLength(1);
    const b = set.resolve(req('/admin'), { scopes_all: 'x y' });
    expect(b.requirement.scopesAll).toEqual(['admin', 'x', 'y']);
    expect(b.requirement.scopesAny).toEqual([]);
    // over a rule with its own scopes_any: one of each group
    const c = set.resolve(req('/any'), { scopes_all: 'x', scopes_any: 'p q' });
    expect(c.requirement).toMatchObject({
      scopesAll: ['x'],
      scopesAny: ['r', 'w'],
      scopesAnyAlso: ['p', 'q'],
    });
    expect(evaluateRequirement(c.requirement, principal(['x', 'r']))).toMatchObject({
      reason: 'insufficient_scope',
      scope: 'x r w p q',
    });
    expect(evaluateRequirement(c.requirement, principal(['x', 'p']))?.reason).toBe('insufficient_scope');
    expect(evaluateRequirement(c.requirement, principal(['x', 'w', 'q']))).toBeUndefined();
    // the same group again adds nothing
    expect(set.resolve(req('/any'), { scopes_any: 'w r' }).requirement.scopesAnyAlso).toBeUndefined();
  });

  it('issuers: only narrows the accepted issuers', () => {
    const r = set.resolve(req('/admin'), { issuers: 'self partner' });
    expect(r.requirement.issuers).toEqual(new Set());
    expect(r.requirement.scopesAll).toEqual(['admin']);
    expect(
      evaluateRequirement(r.requirement, principal(['admin'], { department: 'eng' }, 'corp-idp'))?.reason,
    ).toBe('issuer_not_allowed');
    const n = set.resolve(req('/admin'), { issuers: 'corp-idp partner' });
    expect(n.requirement.issuers).toEqual(new Set(['corp-idp']));
    expect(set.resolve(req('/nothing'), { issuers: 'a b' }).requirement.issuers).toEqual(new Set(['a', 'b']));
  });

  it('action: a configured rule is a floor (reported); default_action is replaced', () => {
    const seen: unknown[][] = [];
    const report = (...args: unknown[]) => seen.push(args);
    expect(set.resolve(req('/admin'), { action: 'allow' }, report).action).toBe('authenticate');
    expect(set.resolve(req('/admin'), { action: 'optional' }, report).action).toBe('authenticate');
    expect(set.resolve(req('/public'), { action: 'optional' }, report).action).toBe('optional');
    expect(set.resolve(req('/nothing'), { action: 'allow' }, report).action).toBe('allow');
    expect(seen).toEqual([
      ['action', 'loosening', 'admin', 'allow'],
      ['action', 'loosening', 'admin', 'optional'],
    ]);
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
