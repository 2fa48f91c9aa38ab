import { describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../../src/config/types.js';
import { evaluateRequirement, type Requirement } from '../../../src/authz/requirement.js';
import { compile, req, NONE, rule, principal } from './helpers.js';

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
