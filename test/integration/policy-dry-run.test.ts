// mode: audit (a dry run): the rule is evaluated fully, what it would have decided is
// logged, counted and exposed in dynamic metadata, and the request is answered as
// audit_action says.
import { afterAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import {
  closePolicyServices,
  otherKey,
  startPolicyService,
  startupProblems,
  token,
} from '../helpers/policy.js';
import type { TestService } from '../helpers/harness.js';

afterAll(closePolicyServices);

const upstream = {
  claim_headers: { 'x-user-id': 'sub' },
  token: { issuer: 'https://authz.internal', audiences: ['backend'] },
};

const auditRules = (extra: Record<string, unknown> = {}) => [
  {
    name: 'reports',
    match: { path_prefix: '/reports' },
    require: { scopes_all: ['reports:read'] },
    mode: 'audit',
    ...extra,
  },
  { name: 'orders', match: { path_prefix: '/orders' }, require: { scopes_all: ['reports:read'] } },
];

function dryRunLines(svc: TestService) {
  return svc.logs.lines.filter((l) => l.would_decision !== undefined);
}

async function dryRunCount(svc: TestService, rule: string, would: string): Promise<number> {
  const text = await (await fetch(`${svc.httpUrl}/metrics`)).text();
  const m = new RegExp(`^authz_dry_run_total\\{rule="${rule}",would="${would}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('mode: audit, audit_action: allow (default)', () => {
  it('allows a would-be 403 enriched, logs and counts it each time, exposes dry_run', async () => {
    const svc = await startPolicyService({ rules: auditRules(), upstream });
    const t = await token();
    for (let i = 0; i < 3; i++) {
      const r = await svc.check({ path: '/reports/1', token: t });
      expect(r.decision).toBe('allow');
      expect(r.headers['x-user-id']).toBe('alice');
      expect(decodeJwt(r.headers['x-jwt-assertion']!).sub).toBe('alice');
      expect(r.headers_to_remove).toContain('authorization');
      expect(r.dynamic_metadata).toMatchObject({
        issuer: 'corp',
        sub: 'alice',
        dry_run: { decision: 'deny', reason: 'insufficient_scope' },
      });
    }
    const lines = dryRunLines(svc);
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      expect(l).toMatchObject({
        level: 'info',
        rule: 'reports',
        would_decision: 'deny',
        would_reason: 'insufficient_scope',
        audit_action: 'allow',
      });
    }
    expect(await dryRunCount(svc, 'reports', 'deny')).toBe(3);
    expect(svc.logs.text()).not.toContain(t);
  });

  it('memoised allows stay correct: the same token is still refused by an enforce rule', async () => {
    const svc = await startPolicyService({ rules: auditRules(), upstream });
    const t = await token();
    expect((await svc.check({ path: '/reports/1', token: t })).decision).toBe('allow');
    const enforced = await svc.check({ path: '/orders/1', token: t });
    expect(enforced.http_status).toBe(403);
    expect(enforced.reason).toBe('insufficient_scope');
    expect(enforced.dynamic_metadata).toBeUndefined();
    // And a token that holds the scope: a real allow, memoised, reported as would-allow.
    const good = await token({ scope: 'reports:read' });
    const a = await svc.check({ path: '/orders/1', token: good });
    expect(a.decision).toBe('allow');
    expect(a.dynamic_metadata?.dry_run).toBeUndefined();
    for (let i = 0; i < 2; i++) {
      const r = await svc.check({ path: '/reports/1', token: good });
      expect(r.decision).toBe('allow');
      expect(r.dynamic_metadata?.dry_run).toEqual({ decision: 'allow', reason: 'authenticated' });
    }
    // The memoised enforce-mode allow never carries the dry-run outcome.
    expect((await svc.check({ path: '/orders/1', token: good })).dynamic_metadata?.dry_run).toBeUndefined();
    expect(await dryRunCount(svc, 'reports', 'allow')).toBe(2);
  });

  it('allows an invalid or missing token unenriched, like an anonymous allow', async () => {
    const svc = await startPolicyService({ rules: auditRules(), upstream });
    const bad = await token({}, { key: otherKey });
    const r = await svc.check({
      path: '/reports/1',
      token: bad,
      headers: { 'x-user-id': 'mallory', 'x-jwt-assertion': 'forged' },
    });
    expect(r.decision).toBe('allow');
    expect(r.headers).toEqual({});
    expect(r.headers_to_remove).toEqual(
      expect.arrayContaining(['authorization', 'x-user-id', 'x-jwt-assertion']),
    );
    expect(r.dynamic_metadata).toEqual({
      anonymous: true,
      dry_run: { decision: 'deny', reason: 'signature_invalid' },
    });
    const missing = await svc.check({ path: '/reports/1' });
    expect(missing.decision).toBe('allow');
    expect(missing.dynamic_metadata).toEqual({
      anonymous: true,
      dry_run: { decision: 'deny', reason: 'token_missing' },
    });
    expect(dryRunLines(svc).map((l) => l.would_reason)).toEqual(['signature_invalid', 'token_missing']);
    expect(svc.logs.text()).not.toContain(bad);
  });

  it('logs every audit allow of a would-be deny even beyond log.denials_per_second', async () => {
    const svc = await startPolicyService({
      rules: auditRules(),
      log: { denials_per_second: 1 },
    });
    for (let i = 0; i < 5; i++) expect((await svc.check({ path: '/reports/1' })).decision).toBe('allow');
    expect(dryRunLines(svc)).toHaveLength(5);
  });

  it('still refuses what comes before any rule (an ambiguous path)', async () => {
    const svc = await startPolicyService({ rules: auditRules() });
    const r = await svc.check({ path: '/reports/..;/admin' });
    expect(r.decision).toBe('deny');
    expect(r.http_status).toBe(400);
  });
});

describe('mode: audit, audit_action: deny', () => {
  it('denies what the rule would allow, with the would-be allow in dry_run', async () => {
    const svc = await startPolicyService({ rules: auditRules({ audit_action: 'deny' }), upstream });
    const r = await svc.check({ path: '/reports/1', token: await token({ scope: 'reports:read' }) });
    expect(r.decision).toBe('deny');
    expect(r.http_status).toBe(403);
    expect(r.reason).toBe('rule_deny');
    expect(r.dynamic_metadata).toEqual({ dry_run: { decision: 'allow', reason: 'authenticated' } });
    const lacking = await svc.check({ path: '/reports/1', token: await token() });
    expect(lacking.http_status).toBe(403);
    expect(lacking.reason).toBe('insufficient_scope');
    expect(lacking.dynamic_metadata).toEqual({
      dry_run: { decision: 'deny', reason: 'insufficient_scope' },
    });
    expect(await dryRunCount(svc, 'reports', 'allow')).toBe(1);
    expect(await dryRunCount(svc, 'reports', 'deny')).toBe(1);
  });

  it('an allow rule in audit mode with audit_action deny answers with its deny_response', async () => {
    const svc = await startPolicyService({
      rules: [
        {
          name: 'soon',
          match: { path_prefix: '/soon' },
          action: 'allow',
          mode: 'audit',
          audit_action: 'deny',
          deny_response: { status: 404, body: 'not yet' },
        },
      ],
    });
    const r = await svc.checkRaw({ path: '/soon/x' });
    expect(r.denied_response.status.code).toBe(404);
    expect(r.denied_response.body).toBe('not yet');
    expect(dryRunLines(svc)).toMatchObject([{ would_decision: 'allow', would_reason: 'rule_allow' }]);
  });
});

describe('context_extensions mode', () => {
  it('mode=audit over default_action is a dry run answered with an allow', async () => {
    const svc = await startPolicyService({});
    const r = await svc.check({
      path: '/anything',
      token: await token(),
      context: { scopes_all: 'admin', mode: 'audit' },
    });
    expect(r.decision).toBe('allow');
    expect(r.dynamic_metadata?.dry_run).toEqual({ decision: 'deny', reason: 'insufficient_scope' });
  });

  it('mode=audit cannot loosen a configured enforce rule; mode=enforce tightens an audit rule', async () => {
    const svc = await startPolicyService({ rules: auditRules() });
    const t = await token();
    const r = await svc.check({ path: '/orders/1', token: t, context: { mode: 'audit' } });
    expect(r.http_status).toBe(403);
    expect(svc.logs.lines.some((l) => l.extension_key === 'mode' && /loosen/.test(l.msg))).toBe(true);
    const e = await svc.check({ path: '/reports/1', token: t, context: { mode: 'enforce' } });
    expect(e.http_status).toBe(403);
    expect(e.dynamic_metadata).toBeUndefined();
  });

  it('an invalid or blank mode fails closed (403)', async () => {
    const svc = await startPolicyService({ rules: auditRules() });
    const t = await token({ scope: 'reports:read' });
    for (const mode of ['dry', 'Audit', ' ']) {
      const r = await svc.check({ path: '/reports/1', token: t, context: { mode } });
      expect(r.decision).toBe('deny');
      expect(r.http_status).toBe(403);
    }
  });
});

describe('config', () => {
  it('refuses an unknown mode or audit_action, naming the field', async () => {
    const bad = await startupProblems({ rules: auditRules({ audit_action: 'log' }) });
    expect(bad.join('\n')).toMatch(/rules\[0\]\.audit_action/);
    const mode = await startupProblems({ rules: [{ name: 'x', mode: 'dry' }] });
    expect(mode.join('\n')).toMatch(/rules\[0\]\.mode/);
    const orphan = await startupProblems({ rules: [{ name: 'x', audit_action: 'deny' }] });
    expect(orphan.join('\n')).toMatch(/rules\[0\]\.audit_action: only applies with mode "audit"/);
  });
});
