// matches() with RE2 semantics and the per-check evaluation budget, through the real
// gRPC service: what RE2 does not accept is a config error naming the field and the
// pattern (serve and check-config exit 1), and expressions that together take longer
// than expression_budget_ms deny 403 expression_error.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  closePolicyServices,
  policyConfig,
  startPolicyService,
  startupProblems,
  token,
} from '../helpers/policy.js';

afterAll(closePolicyServices);

const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'authz-regex-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HANDLE = '^[a-z0-9]+[a-z0-9._-]*[a-z0-9]+$';

function rule(expression: string) {
  return { name: 'orders', match: { path_prefix: '/api' }, require: { expression } };
}

describe('matches() patterns RE2 does not accept', () => {
  it('are config errors naming the field and the pattern, wherever an expression is', async () => {
    const problems = await startupProblems({
      rules: [rule("claims.sub.matches('^(a|b)\\\\1$')")],
      upstream: {
        token: { issuer: 'https://authz.internal', claims_expr: { nick: "claims.sub.matches('(?=x)')" } },
        dynamic_metadata: { admin: "claims.sub.matches('(?<!x)admin')" },
      },
      rate_limits: [
        { name: 'per-user', limit: 5, window_seconds: 60, when: "claims.sub.matches('^(?!svc-)')" },
      ],
    });
    const text = problems.join('\n');
    expect(text).toMatch(
      /rules\[0\]\.require\.expression \(rule "orders"\): matches\(\) pattern '\^\(a\|b\)\\1\$' is not accepted by RE2: .* at position \d+/,
    );
    expect(text).toMatch(
      /upstream\.token\.claims_expr\.nick: matches\(\) pattern '\(\?=x\)' is not accepted by RE2/,
    );
    expect(text).toMatch(
      /upstream\.dynamic_metadata\.admin: matches\(\) pattern '\(\?<!x\)admin' is not accepted by RE2/,
    );
    expect(text).toMatch(
      /rate_limits\[0\]\.when: matches\(\) pattern '\^\(\?!svc-\)' is not accepted by RE2/,
    );
  });

  it('make check-config and serve exit 1, listing the field and the pattern', () => {
    const file = join(dir, 'lookahead.json');
    writeFileSync(file, JSON.stringify(policyConfig({ rules: [rule("claims.sub.matches('^(?=admin)')")] })));
    const env = {
      ...process.env,
      AUTHZ_LOG_LEVEL: 'error',
      AUTHZ_GRPC_ADDRESS: '127.0.0.1:0',
      AUTHZ_HTTP_ADDRESS: '127.0.0.1:0',
    };
    const want =
      /rules\[0\]\.require\.expression \(rule "orders"\): matches\(\) pattern '\^\(\?=admin\)' is not accepted by RE2/;
    for (const command of ['check-config', 'serve']) {
      const r = spawnSync(process.execPath, [MAIN, command, '--config', file], {
        encoding: 'utf8',
        timeout: 20000,
        env,
      });
      expect(r.status, `${command}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(want);
    }
  });

  it('nested quantifiers are accepted now: RE2 runs them in linear time', async () => {
    expect(await startupProblems({ rules: [rule("claims.sub.matches('^(a+)+$')")] })).toEqual([]);
  });
});

describe('expression_budget_ms', () => {
  it('is an integer from 1 to 1000', async () => {
    for (const [value, message] of [
      [0, /expression_budget_ms: must be >= 1, got 0/],
      [1001, /expression_budget_ms: must be <= 1000, got 1001/],
      ['ten', /expression_budget_ms: must be an integer/],
    ] as const) {
      const problems = await startupProblems({ expression_budget_ms: value });
      expect(problems.join('\n')).toMatch(message);
    }
  });

  // About 20k matches() calls in a comprehension: tens of ms, linear, but far past 1 ms.
  const values = Array.from({ length: 20_000 }, (_, i) => `user${i}.name`).join(',');
  const heavy = `request.headers['x-handles'].split(',').all(h, h.matches('${HANDLE}'))`;

  async function checkWith(extra: Record<string, unknown>) {
    const svc = await startPolicyService(extra);
    const t = await token({ org: { id: 'o1' } });
    const r = await svc.check({ token: t, headers: { 'x-handles': values } });
    return { svc, r };
  }

  it('denies 403 expression_error when require.expression runs past it, logging the rule, not the values', async () => {
    const { svc, r } = await checkWith({ expression_budget_ms: 1, rules: [rule(heavy)] });
    expect(r.decision).toBe('deny');
    expect(r.http_status).toBe(403);
    expect(r.reason).toBe('expression_error');
    expect(r.body).toEqual({ error: 'forbidden' });
    const line = svc.logs.lines.find((l) => l.msg === 'check denied' && l.reason === 'expression_error');
    expect(line).toMatchObject({ rule: 'orders' });
    expect(String(line?.detail)).toBe('require.expression: evaluation budget of 1 ms exceeded');
    expect(JSON.stringify(svc.logs.lines)).not.toContain('user1.name');
  });

  it('lets the same request through with a budget it fits in', async () => {
    const { r } = await checkWith({ expression_budget_ms: 1000, rules: [rule(heavy)] });
    expect(r.decision).toBe('allow');
  });

  it('counts dynamic_metadata, claims_expr and rate-limit keys too', async () => {
    // No require.expression: the heavy expression is the only one.
    const plainRule = { name: 'orders', match: { path_prefix: '/api' } };
    const metadata = await checkWith({
      expression_budget_ms: 1,
      rules: [plainRule],
      upstream: { dynamic_metadata: { ok: heavy } },
    });
    expect(metadata.r).toMatchObject({ http_status: 403, reason: 'expression_error' });
    const mline = metadata.svc.logs.lines.find((l) => l.reason === 'expression_error');
    expect(mline).toMatchObject({ rule: 'orders' });
    expect(String(mline?.detail)).toMatch(
      /^upstream\.dynamic_metadata\.ok: evaluation budget of 1 ms exceeded/,
    );

    const minted = await checkWith({
      expression_budget_ms: 1,
      rules: [plainRule],
      upstream: {
        token: { issuer: 'https://authz.internal', audiences: ['backend'], claims_expr: { ok: heavy } },
      },
    });
    expect(minted.r).toMatchObject({ http_status: 403, reason: 'expression_error' });
    const tline = minted.svc.logs.lines.find((l) => l.reason === 'expression_error');
    expect(tline).toMatchObject({ rule: 'orders' });
    expect(String(tline?.detail)).toBe('claims_expr.ok: evaluation budget of 1 ms exceeded');

    const limited = await checkWith({
      expression_budget_ms: 1,
      rules: [plainRule],
      rate_limits: [{ name: 'per-handle', limit: 100, window_seconds: 60, key: `${heavy} ? 'a' : 'b'` }],
    });
    expect(limited.r).toMatchObject({ http_status: 403, reason: 'expression_error' });
    const lline = limited.svc.logs.lines.find((l) => l.reason === 'expression_error');
    expect(lline).toMatchObject({ rule: 'orders' });
    expect(String(lline?.detail)).toBe('rate_limits "per-handle".key: evaluation budget of 1 ms exceeded');
  });

  it('a budget denial in a later limit counts the request against no limit', async () => {
    // `first` (limit 1) comes before the limit whose key runs out of budget: the denied
    // request must not use up `first`, so the next (cheap) request is still allowed.
    const svc = await startPolicyService({
      expression_budget_ms: 1,
      rules: [{ name: 'orders', match: { path_prefix: '/api' } }],
      rate_limits: [
        { name: 'first', limit: 1, window_seconds: 60 },
        { name: 'per-handle', limit: 100, window_seconds: 60, key: `${heavy} ? 'a' : 'b'` },
      ],
    });
    const t = await token({ org: { id: 'o1' } });
    const denied = await svc.check({ token: t, headers: { 'x-handles': values } });
    expect(denied).toMatchObject({ http_status: 403, reason: 'expression_error' });
    const next = await svc.check({ token: t, headers: { 'x-handles': 'bob' } });
    expect(next.decision).toBe('allow');
    const third = await svc.check({ token: t, headers: { 'x-handles': 'bob' } });
    expect(third).toMatchObject({ http_status: 429, reason: 'rate_limited' });
  });
});
