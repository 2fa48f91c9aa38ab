// upstream.dynamic_metadata: configured fields beside issuer, sub, scope, claims.
import { afterAll, describe, expect, it } from 'vitest';
import { closePolicyServices, startPolicyService, startupProblems, token } from '../helpers/policy.js';

afterAll(closePolicyServices);

describe('upstream.dynamic_metadata', () => {
  it('adds the configured fields to an allow', async () => {
    const svc = await startPolicyService({
      upstream: {
        dynamic_metadata: {
          tenant: 'claims.org.id',
          plan: 'claims.plan',
          route: 'request.path',
          seats: '10',
        },
      },
    });
    const t = await token({ org: { id: 'o1' }, plan: 'pro' });
    const r = await svc.check({ path: '/api/x', token: t });
    expect(r.dynamic_metadata).toMatchObject({
      issuer: 'corp',
      sub: 'alice',
      tenant: 'o1',
      plan: 'pro',
      route: '/api/x',
      seats: 10,
    });
    // Request-dependent: the next request with the same token sees its own path.
    const again = await svc.check({ path: '/api/y', token: t });
    expect(again.dynamic_metadata?.route).toBe('/api/y');
  });

  it('denies 403 expression_error when a field cannot be evaluated', async () => {
    const svc = await startPolicyService({ upstream: { dynamic_metadata: { tenant: 'claims.org.id' } } });
    const r = await svc.check({ token: await token() });
    expect(r.http_status).toBe(403);
    expect(r.reason).toBe('expression_error');
  });

  it('refuses names the service sets and invalid expressions', async () => {
    const problems = await startupProblems({
      upstream: { dynamic_metadata: { sub: 'claims.x', t: 'nope' } },
    });
    expect(problems).toEqual([
      expect.stringMatching(/^upstream\.dynamic_metadata\.sub: "sub" is always set/),
      expect.stringMatching(
        /^upstream\.dynamic_metadata\.t: type error: Unknown variable: nope at position 0/,
      ),
    ]);
  });

  it('never shows a credential to an expression: token headers, cookies and token query parameters are hidden', async () => {
    const svc = await startPolicyService({
      token_sources: [
        { header: 'authorization', prefix: 'Bearer ' },
        { header: 'x-api-token', prefix: '' },
        { query: 'access_token' },
      ],
      upstream: { dynamic_metadata: { headers: 'request.headers', query: 'request.query' } },
    });
    const t = await token();
    // One credential per request: the token in each source in turn.
    for (const where of [
      { path: `/api/x?access_token=${t}&page=2` },
      { path: '/api/x?page=2', token: t },
      { path: '/api/x?page=2', headers: { 'x-api-token': t } },
    ]) {
      const r = await svc.check({
        ...where,
        headers: { cookie: `session=${t}`, dpop: 'proof', 'x-org': 'acme', ...where.headers },
      });
      expect(r.decision).toBe('allow');
      const md = r.dynamic_metadata as { headers: Record<string, string>; query: Record<string, string> };
      expect(md.headers['x-org']).toBe('acme');
      expect(md.query).toEqual({ page: '2' });
      for (const hidden of ['authorization', 'cookie', 'x-api-token', 'dpop', 'proxy-authorization', ':path'])
        expect(md.headers).not.toHaveProperty(hidden);
      expect(JSON.stringify(r.dynamic_metadata)).not.toContain(t.split('.')[2]!);
    }
  });
});

describe('upstream.metadata_claims', () => {
  it('default ["*"]: every local claim in dynamic_metadata.claims', async () => {
    const svc = await startPolicyService({});
    const r = await svc.check({ token: await token({ groups: ['ops'], email: 'a@example.com' }) });
    expect(r.decision).toBe('allow');
    expect(r.dynamic_metadata?.claims).toMatchObject({
      sub: 'alice',
      groups: ['ops'],
      email: 'a@example.com',
    });
  });

  it('a list keeps only those claims; [] leaves the claims object out, issuer, sub and scope stay', async () => {
    const picked = await startPolicyService({ upstream: { metadata_claims: ['groups', 'absent'] } });
    const t = await token({ groups: ['ops'], email: 'a@example.com' });
    const r = await picked.check({ token: t });
    expect(r.decision).toBe('allow');
    expect(r.dynamic_metadata?.claims).toEqual({ groups: ['ops'] });
    // The memoised answer of the same token is the same.
    expect((await picked.check({ token: t })).dynamic_metadata?.claims).toEqual({ groups: ['ops'] });

    const none = await startPolicyService({ upstream: { metadata_claims: [] } });
    const n = await none.check({ token: t });
    expect(n.decision).toBe('allow');
    expect(n.dynamic_metadata).not.toHaveProperty('claims');
    expect(n.dynamic_metadata).toMatchObject({ issuer: 'corp', sub: 'alice' });
    expect(n.dynamic_metadata).toHaveProperty('scope');
  });

  it('refuses "*" beside claim names', async () => {
    const problems = await startupProblems({ upstream: { metadata_claims: ['*', 'groups'] } });
    expect(problems).toEqual([
      expect.stringMatching(/^upstream\.metadata_claims: "\*" \(every claim\) stands alone/),
    ]);
  });
});
