// Per-route downstream-token profiles (rules[].token) and claims_expr.
import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { closePolicyServices, startPolicyService, startupProblems, token } from '../helpers/policy.js';

afterAll(closePolicyServices);

const upstreamToken = {
  issuer: 'https://authz.internal',
  audiences: ['backend'],
  ttl_seconds: 300,
  copy_claims: ['email'],
  claims: { env: 'prod' },
};

function minted(r: { headers: Record<string, string> }): Record<string, unknown> {
  const value = r.headers['x-jwt-assertion'];
  expect(value).toBeDefined();
  return decodeJwt(value!) as Record<string, unknown>;
}

describe('rules[].token', () => {
  it('overrides upstream.token fields for its route and inherits the rest', async () => {
    const svc = await startPolicyService({
      rules: [
        {
          name: 'billing',
          match: { path_prefix: '/billing' },
          token: { audiences: ['billing-svc'], ttl_seconds: 60, claims: { env: 'billing' } },
        },
      ],
      upstream: { token: upstreamToken },
    });
    const t = await token({ email: 'a@example.com' });
    const billing = minted(await svc.check({ path: '/billing/x', token: t }));
    expect(billing.aud).toBe('billing-svc');
    expect((billing.exp as number) - (billing.iat as number)).toBe(60);
    expect(billing.env).toBe('billing');
    expect(billing.email).toBe('a@example.com');
    const other = minted(await svc.check({ path: '/orders', token: t }));
    expect(other.aud).toBe('backend');
    expect((other.exp as number) - (other.iat as number)).toBe(300);
    expect(other.env).toBe('prod');
  });

  it('token: false mints nothing on that route and removes a forged header', async () => {
    const svc = await startPolicyService({
      rules: [{ name: 'public-api', match: { path_prefix: '/pub' }, token: false }],
      upstream: { token: upstreamToken },
    });
    const r = await svc.check({
      path: '/pub/x',
      token: await token(),
      headers: { 'x-jwt-assertion': 'forged' },
    });
    expect(r.decision).toBe('allow');
    expect(r.headers['x-jwt-assertion']).toBeUndefined();
    expect(r.headers_to_remove).toContain('x-jwt-assertion');
  });

  it('claims_expr results become private claims (ints as numbers, lists, maps)', async () => {
    const svc = await startPolicyService({
      rules: [
        {
          name: 'tenant',
          match: { path_prefix: '/t' },
          token: {
            claims_expr: {
              tenant: 'claims.org.id',
              tenant_key: "issuer + ':' + claims.org.id",
              n: '1 + 2',
              admin: "'admin' in scopes",
              roles: 'claims.roles.filter(r, r.startsWith("app-"))',
              info: "{'plan': claims.plan, 'seats': 5}",
            },
          },
        },
      ],
      upstream: { token: upstreamToken },
    });
    const t = await token({ org: { id: 'o1' }, plan: 'pro', roles: ['app-a', 'x', 'app-b'], scope: 'admin' });
    const claims = minted(await svc.check({ path: '/t', token: t }));
    expect(claims).toMatchObject({
      tenant: 'o1',
      tenant_key: 'corp:o1',
      n: 3,
      admin: true,
      roles: ['app-a', 'app-b'],
      info: { plan: 'pro', seats: 5 },
    });
  });

  it('upstream.token.claims_expr applies to every route', async () => {
    const svc = await startPolicyService({
      upstream: { token: { ...upstreamToken, claims_expr: { org: 'claims.org.id' } } },
    });
    const claims = minted(await svc.check({ token: await token({ org: { id: 'o9' } }) }));
    expect(claims.org).toBe('o9');
  });

  it('reuses a minted token unless its claims read the request', async () => {
    const svc = await startPolicyService({
      rules: [
        { name: 'stable', match: { path_prefix: '/s' }, token: { claims_expr: { org: 'claims.org.id' } } },
        {
          name: 'per-request',
          match: { path_prefix: '/r' },
          token: { claims_expr: { via: "request.headers['x-via']" } },
        },
      ],
      upstream: { token: upstreamToken },
    });
    const t = await token({ org: { id: 'o1' } });
    await svc.check({ path: '/s', token: t }); // a token's first use is not remembered (admission)
    const s1 = await svc.check({ path: '/s', token: t });
    const s2 = await svc.check({ path: '/s', token: t });
    expect(s2.headers['x-jwt-assertion']).toBe(s1.headers['x-jwt-assertion']);
    // Another profile never gets the first one's token.
    const r1 = await svc.check({ path: '/r', token: t, headers: { 'x-via': 'a' } });
    const r2 = await svc.check({ path: '/r', token: t, headers: { 'x-via': 'b' } });
    expect(minted(r1).via).toBe('a');
    expect(minted(r2).via).toBe('b');
    expect(minted(r1).org).toBeUndefined();
  });

  it('denies 403 expression_error when a claims_expr fails', async () => {
    const svc = await startPolicyService({
      rules: [{ name: 'r', match: {}, token: { claims_expr: { org: 'claims.org.id' } } }],
      upstream: { token: upstreamToken },
    });
    const r = await svc.check({ token: await token() });
    expect(r.http_status).toBe(403);
    expect(r.reason).toBe('expression_error');
  });

  it('refuses reserved names, bad expressions, and a profile without upstream.token', async () => {
    const problems = await startupProblems({
      rules: [{ name: 'r', match: {}, token: { claims_expr: { sub: 'claims.x', ok: 'claims.' } } }],
      upstream: { token: upstreamToken },
    });
    expect(problems).toEqual([
      expect.stringMatching(/^rules\[0\]\.token\.claims_expr\.sub: reserved/),
      expect.stringMatching(/^rules\[0\]\.token\.claims_expr\.ok: syntax error/),
    ]);
    expect(await startupProblems({ rules: [{ match: {}, token: { ttl_seconds: 5 } }] })).toEqual([
      expect.stringMatching(/^rules\[0\]\.token: needs upstream\.token/),
    ]);
    expect(
      await startupProblems({
        rules: [{ match: {}, action: 'allow', token: false }],
        upstream: { token: upstreamToken },
      }),
    ).toEqual([
      expect.stringMatching(/^rules\[0\]\.token: only applies to action "authenticate" or "optional"/),
    ]);
    expect(
      await startupProblems({ rules: [{ match: {}, token: 'yes' }], upstream: { token: upstreamToken } }),
    ).toEqual([expect.stringMatching(/^rules\[0\]\.token: must be false or an object/)]);
  });
});
