import { describe, expect, it } from 'vitest';
import {
  compileExpression,
  ExpressionError,
  ExpressionInput,
  MAX_EXPRESSION_LENGTH,
  toJsonValue,
} from '../../../src/authz/expressions.js';
import type { AuthRequest, Principal } from '../../../src/core/request.js';

const request: AuthRequest = {
  method: 'GET',
  rawPath: '/a?x=1&x=2&y=%20z',
  host: 'h.example.com',
  headers: Object.assign(Object.create(null), { 'x-org': 'o1' }),
  contextExtensions: Object.assign(Object.create(null), { tier: 'gold' }),
};
const principal: Principal = {
  issuer: 'corp',
  sub: 'u1',
  claims: Object.assign(Object.create(null), { sub: 'u1', n: 3, org: { id: 'o1' } }),
  scopes: new Set(['read', 'admin']),
  scope: 'read admin',
  cacheKey: 'k',
};
const input = () => new ExpressionInput(request, '/a', principal, 1_700_000_000);

function compile(source: string, expect: 'bool' | 'value' = 'value') {
  const problems: string[] = [];
  const e = compileExpression(source, 'x', expect, problems);
  return { e, problems };
}

describe('compileExpression', () => {
  it('marks expressions that read request, context or now as request-dependent', () => {
    expect(compile("claims.sub == 'u1' && 'admin' in scopes && issuer == 'corp'").e?.requestDependent).toBe(
      false,
    );
    expect(compile("request.method == 'GET'").e?.requestDependent).toBe(true);
    expect(compile("context['tier'] == 'gold'").e?.requestDependent).toBe(true);
    expect(compile('now > timestamp(0)').e?.requestDependent).toBe(true);
  });

  it('evaluates over the request view (first query value, decoded)', () => {
    const { e } = compile("request.query['x'] + ':' + request.query['y'] + ':' + request.host");
    expect(e?.evaluate(input())).toBe('1: z:h.example.com');
  });

  it('refuses an expression longer than the limit', () => {
    const { e, problems } = compile(`'${'a'.repeat(MAX_EXPRESSION_LENGTH)}'`);
    expect(e).toBeUndefined();
    expect(problems).toEqual([`x: longer than ${MAX_EXPRESSION_LENGTH} characters`]);
  });

  it.each([
    ["claims.sub.matches('^(a|b)\\\\1$')", /backreferences/],
    ["claims.sub.matches('(x*)*y')", /quantified group/],
    ['claims.sub.matches(claims.pattern)', /string literal pattern/],
    ["claims.sub.matches('((a+))+$')", /quantified group/],
    ["claims.sub.matches('^(a|aa)*$')", /quantified group/],
  ])('refuses the matches() pattern of %s', (source, message) => {
    const { problems } = compile(source);
    expect(problems).toEqual([expect.stringMatching(message)]);
  });

  it.each(["'^(?:abc)+$'", "'^[a-z(+]+$'", "'^(foo)-[0-9]+$'", "'^u[0-9]{1,5}$'"])(
    'accepts the literal pattern %s',
    (pattern) => {
      expect(compile(`claims.sub.matches(${pattern})`).problems).toEqual([]);
    },
  );

  it('accepts a simple literal pattern', () => {
    const { e, problems } = compile("claims.sub.matches('^u[0-9]+$')", 'bool');
    expect(problems).toEqual([]);
    expect(e?.evaluate(input())).toBe(true);
  });

  it('throws ExpressionError for a dynamic non-boolean result where a boolean is needed', () => {
    const { e } = compile('claims.sub', 'bool');
    expect(() => e?.evaluate(input())).toThrow(ExpressionError);
  });
});

describe('toJsonValue', () => {
  it('turns CEL ints into numbers, or decimal strings beyond 2^53', () => {
    expect(toJsonValue(3n)).toBe(3);
    expect(toJsonValue(2n ** 60n)).toBe('1152921504606846976');
    expect(toJsonValue({ a: [1n, 'x', true, null], m: new Map([['k', 2.5]]) })).toEqual({
      a: [1, 'x', true, null],
      m: { k: 2.5 },
    });
  });

  it('refuses values without a JSON form', () => {
    expect(() => toJsonValue(Number.NaN)).toThrow(ExpressionError);
    expect(() => toJsonValue(undefined)).toThrow(ExpressionError);
  });
});
