// require.expression (CEL) through Check: outcomes, variables, errors, config
// errors, and reuse of allow decisions for the same token.
import { afterAll, describe, expect, it } from 'vitest';
import {
  closePolicyServices,
  otherKey,
  startPolicyService,
  startupProblems,
  token,
} from '../helpers/policy.js';

afterAll(closePolicyServices);

function exprRule(expression: string, extra: Record<string, unknown> = {}) {
  return {
    rules: [{ name: 'orders', match: { path_prefix: '/api' }, require: { expression }, ...extra }],
  };
}

describe('require.expression', () => {
  it('allows when true and denies 403 expression_false when false', async () => {
    const svc = await startPolicyService(exprRule("claims.org.id == 'o1' && 'admin' in scopes"));
    const ok = await svc.check({ token: await token({ org: { id: 'o1' }, scope: 'read admin' }) });
    expect(ok.decision).toBe('allow');
    const wrongOrg = await svc.check({ token: await token({ org: { id: 'o2' }, scope: 'read admin' }) });
    expect(wrongOrg.decision).toBe('deny');
    expect(wrongOrg.http_status).toBe(403);
    expect(wrongOrg.reason).toBe('expression_false');
    expect(wrongOrg.body).toEqual({ error: 'forbidden' });
  });

  it('denies 403 expression_error on an evaluation error, and logs it', async () => {
    const svc = await startPolicyService(exprRule("request.headers['x-org'] == 'o1'"));
    const r = await svc.check({ token: await token(), headers: {} });
    expect(r.http_status).toBe(403);
    expect(r.reason).toBe('expression_error');
    const line = svc.logs.lines.find((l) => l.msg === 'check denied' && l.reason === 'expression_error');
    expect(String(line?.detail)).toMatch(/require\.expression: no_such_key at position \d+/);
  });

  it('never runs for a token that failed verification', async () => {
    // An expression that always errors: a bad token must still get its own 401.
    const svc = await startPolicyService(exprRule("request.headers['absent'] == 'x'"));
    const r = await svc.check({ token: await token({}, { key: otherKey }) });
    expect(r.http_status).toBe(401);
    expect(r.reason).toBe('signature_invalid');
    const missing = await svc.check({});
    expect(missing.reason).toBe('token_missing');
  });

  it('sees request method, normalised path, host, headers, query, context, issuer and now', async () => {
    const svc = await startPolicyService(
      exprRule(
        "request.method == 'POST' && request.path == '/api/a/b' && request.host == 'shop.example.com' && " +
          "request.headers['x-tenant'] == 't1,t2' && request.query['page'] == '1' && " +
          "context['tier'] == 'gold' && issuer == 'corp' && now > timestamp('2020-01-01T00:00:00Z') && " +
          'timestamp(int(claims.iat)) <= now',
      ),
    );
    const t = await token();
    const call = {
      method: 'POST',
      path: '/api/x/../a//b?page=1&page=2',
      host: 'shop.example.com',
      token: t,
      headers: { 'x-tenant': 't1,t2' },
      context: { tier: 'gold' },
    };
    expect((await svc.check(call)).decision).toBe('allow');
    expect((await svc.check({ ...call, method: 'GET' })).reason).toBe('expression_false');
    expect((await svc.check({ ...call, path: '/api/a/b?page=2&page=1' })).reason).toBe('expression_false');
    expect((await svc.check({ ...call, context: { tier: 'silver' } })).reason).toBe('expression_false');
  });

  it('is not memoised when it reads the request: same token, different x-org', async () => {
    const svc = await startPolicyService(
      exprRule("claims.org.id == request.headers['x-org'] && 'admin' in scopes"),
    );
    const t = await token({ org: { id: 'o1' }, scope: 'admin' });
    const first = await svc.check({ token: t, headers: { 'x-org': 'o1' } });
    expect(first.decision).toBe('allow');
    const second = await svc.check({ token: t, headers: { 'x-org': 'o2' } });
    expect(second.decision).toBe('deny');
    expect(second.reason).toBe('expression_false');
    expect((await svc.check({ token: t, headers: { 'x-org': 'o1' } })).decision).toBe('allow');
  });

  it('reuses the allow decision for a repeated token, evaluating a request-dependent expression again', async () => {
    const request = (t: string) => ({
      method: 'GET',
      rawPath: '/api/orders',
      host: 'api.example.com',
      headers: Object.assign(Object.create(null), { authorization: `Bearer ${t}`, 'x-org': 'o1' }),
      contextExtensions: Object.create(null),
    });
    const t = await token({ org: { id: 'o1' } });
    const claimsOnly = await startPolicyService(exprRule("claims.org.id == 'o1'"));
    const p1 = claimsOnly.service.current.pipeline;
    await p1.check(request(t));
    const a = await p1.check(request(t));
    expect(a.kind).toBe('allow');
    expect(await p1.check(request(t))).toBe(a);

    // Request-dependent: the allow is reused only after the expression held again for this request.
    const dependent = await startPolicyService(exprRule("claims.org.id == request.headers['x-org']"));
    const p2 = dependent.service.current.pipeline;
    await p2.check(request(t));
    const b = await p2.check(request(t));
    expect(b.kind).toBe('allow');
    expect(await p2.check(request(t))).toBe(b);
    const other = request(t);
    other.headers['x-org'] = 'o2';
    const denied = await p2.check(other);
    expect(denied).toMatchObject({ kind: 'deny', reason: 'expression_false' });
  });

  it('applies to the rule named by the rule context extension', async () => {
    const svc = await startPolicyService(exprRule("claims.org.id == 'o1'"));
    const r = await svc.check({
      path: '/other',
      token: await token({ org: { id: 'o2' } }),
      context: { rule: 'orders' },
    });
    expect(r.reason).toBe('expression_false');
  });
});

describe('require.expression config errors', () => {
  it.each([
    [
      "claims.sub == 'x' &&",
      /rules\[0\]\.require\.expression \(rule "orders"\): syntax error: .* at position 20/,
    ],
    [
      "foo.bar == 'x'",
      /rules\[0\]\.require\.expression \(rule "orders"\): type error: Unknown variable: foo at position 0/,
    ],
    ["request.metod == 'GET'", /type error: .*metod/],
    ['issuer', /must return a boolean, but returns string/],
    ["claims.sub.matches(request.headers['x'])", /matches\(\) needs a string literal pattern/],
    ["claims.sub.matches('(')", /matches\(\) pattern '\(' is not accepted by RE2/],
    [`claims.sub == 'long${'x'.repeat(5000)}'`.slice(0, 5000), /longer than 4096 characters/],
  ])('refuses expression %#', async (expression, message) => {
    const problems = await startupProblems(exprRule(expression));
    expect(problems).toEqual([expect.stringMatching(message)]);
  });
});
