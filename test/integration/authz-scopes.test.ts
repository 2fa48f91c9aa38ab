// Scope and `require` checks of route rules through the real gRPC Check API
// (docs/policies.md "Rules, scopes and context_extensions").
import { describe, expect, it } from 'vitest';
import {
  corpToken,
  partnerToken,
  expectAllow,
  expectForbidden,
  expectInsufficient,
  svc,
  useAuthzServices,
} from '../helpers/authz.js';

useAuthzServices();

// ------------------------------------------------------------------ scopes

describe('scopes', () => {
  it('space-delimited string', async () => {
    expectAllow(await svc.check({ path: '/admin', token: await corpToken({ scope: 'read admin' }) }));
    expectAllow(await svc.check({ path: '/anyscope', token: await corpToken({ scope: 'x write' }) }));
  });

  it('array', async () => {
    expectAllow(await svc.check({ path: '/admin', token: await corpToken({ scope: ['read', 'admin'] }) }));
    const d = await svc.check({ path: '/api/x', token: await corpToken({ scope: ['read', 'admin'] }) });
    expect(d.dynamic_metadata?.scope).toBe('read admin');
  });

  it('scp is used when scope is absent', async () => {
    expectAllow(
      await svc.check({ path: '/admin', token: await corpToken({ scope: undefined, scp: 'admin' }) }),
    );
    expectAllow(
      await svc.check({ path: '/admin', token: await corpToken({ scope: undefined, scp: ['admin'] }) }),
    );
  });

  it('scope wins over scp when both are present', async () => {
    expectInsufficient(
      await svc.check({ path: '/admin', token: await corpToken({ scope: 'read', scp: 'admin' }) }),
      'admin',
    );
  });

  it('missing scope claim → 403 insufficient_scope listing scopes_all', async () => {
    const d = await svc.check({ path: '/admin', token: await corpToken({ scope: undefined }) });
    expectInsufficient(d, 'admin');
    expect(d.body.scope).toBe('admin');
    expect(d.headers['www-authenticate']).toMatch(/^Bearer realm="orders", error="insufficient_scope"/);
  });

  it('missing scope claim → scope lists the scopes_any alternatives', async () => {
    expectInsufficient(
      await svc.check({ path: '/anyscope', token: await corpToken({ scope: undefined }) }),
      'read write',
    );
  });

  it('insufficient scope on a rule with scopes_all and scopes_any lists both', async () => {
    expectInsufficient(await svc.check({ path: '/both', token: await corpToken({ scope: 'a' }) }), 'a b c');
    expectAllow(await svc.check({ path: '/both', token: await corpToken({ scope: 'a b' }) }));
  });
});

// ------------------------------------------------------------------ require

describe('require', () => {
  it('claims with a string value', async () => {
    expectAllow(await svc.check({ path: '/claims/str', token: await corpToken() }));
    const d = await svc.check({
      path: '/claims/str',
      token: await corpToken({ org: { department: 'sales' } }),
    });
    expectForbidden(d);
    expect(d.reason).toBe('claims_condition');
    expectForbidden(await svc.check({ path: '/claims/str', token: await corpToken({ org: undefined }) }));
    // org.department → department owns `department`: a top-level one does not stand in.
    expectForbidden(
      await svc.check({ path: '/claims/str', token: await corpToken({ org: undefined, department: 'eng' }) }),
    );
  });

  it('claims with a number value are type-strict', async () => {
    expectAllow(await svc.check({ path: '/claims/num', token: await corpToken({ level: 3 }) }));
    expectForbidden(await svc.check({ path: '/claims/num', token: await corpToken({ level: '3' }) }));
    expectForbidden(await svc.check({ path: '/claims/num', token: await corpToken({ level: 4 }) }));
    expectForbidden(await svc.check({ path: '/claims/numstr', token: await corpToken({ level: 3 }) }));
    expectAllow(await svc.check({ path: '/claims/numstr', token: await corpToken({ level: '3' }) }));
  });

  it('claims with an array claim: contains one of the values', async () => {
    expectAllow(
      await svc.check({ path: '/claims/arr', token: await corpToken({ realm_access: { roles: ['ops'] } }) }),
    );
    expectForbidden(
      await svc.check({ path: '/claims/arr', token: await corpToken({ realm_access: { roles: [] } }) }),
    );
    expectForbidden(
      await svc.check({
        path: '/claims/arr',
        token: await corpToken({ realm_access: { roles: 'eng ops' } }),
      }),
    );
  });

  it('boolean condition is type-strict', async () => {
    expectForbidden(await svc.check({ path: '/claims/admin', token: await corpToken({ admin: 'true' }) }));
    expectForbidden(await svc.check({ path: '/claims/admin', token: await corpToken({ admin: 1 }) }));
  });

  it('issuers failing → 403 forbidden', async () => {
    const d = await svc.check({ path: '/partner-only', token: await corpToken() });
    expectForbidden(d);
    expect(d.reason).toBe('issuer_not_allowed');
    expectAllow(await svc.check({ path: '/partner-only', token: await partnerToken() }));
  });
});
