// Per-route context_extensions set by Envoy override rules, tighten scopes, issuers and
// actions, and set the minted audience (docs/policies.md "Rules, scopes and context_extensions");
// that they never loosen the service config is authz-extensions-floor.test.ts.
import { describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import {
  INJECTABLE,
  corpToken,
  partnerToken,
  expectAllow,
  expect401,
  expectForbidden,
  expectInsufficient,
  svc,
  useAuthzServices,
} from '../helpers/authz.js';

useAuthzServices();

// ------------------------------------------------------------------ context_extensions

describe('context_extensions', () => {
  it('action=allow lets an authenticate route through without a token', async () => {
    const d = await svc.check({ path: '/api/x', context: { action: 'allow' } });
    expectAllow(d);
    expect(d.headers_to_remove).toEqual(expect.arrayContaining(INJECTABLE));
  });

  it('action=allow never overrides a deny rule', async () => {
    expectForbidden(await svc.check({ path: '/internal/x', context: { action: 'allow' } }));
  });

  it('action=deny overrides an allow rule', async () => {
    expectForbidden(await svc.check({ path: '/public/x', context: { action: 'deny' } }));
  });

  it('action=authenticate overrides an allow rule', async () => {
    expect401(await svc.check({ path: '/public/x', context: { action: 'authenticate' } }));
    const d = await svc.check({
      path: '/public/x',
      token: await corpToken(),
      context: { action: 'authenticate' },
    });
    expectAllow(d);
    expect(d.headers['x-user-id']).toBe('alice');
  });

  it('an invalid action value denies', async () => {
    expectForbidden(await svc.check({ path: '/public/x', context: { action: 'maybe' } }));
    expectForbidden(
      await svc.check({ path: '/api/x', token: await corpToken(), context: { action: 'ALLOW' } }),
    );
  });

  it('scopes_all requires every listed scope', async () => {
    const context = { scopes_all: 'admin audit' };
    expectInsufficient(await svc.check({ path: '/api/x', token: await corpToken(), context }), 'admin audit');
    expectInsufficient(
      await svc.check({ path: '/api/x', token: await corpToken({ scope: 'admin' }), context }),
      'admin audit',
    );
    expectAllow(
      await svc.check({ path: '/api/x', token: await corpToken({ scope: 'audit admin' }), context }),
    );
  });

  it('scopes_any requires one of the listed scopes', async () => {
    const context = { scopes_any: 'write delete' };
    expectInsufficient(
      await svc.check({ path: '/api/x', token: await corpToken(), context }),
      'write delete',
    );
    expectAllow(await svc.check({ path: '/api/x', token: await corpToken({ scope: 'delete' }), context }));
  });

  it('scopes_all and scopes_any together', async () => {
    const context = { scopes_all: 'a', scopes_any: 'b c' };
    expectInsufficient(
      await svc.check({ path: '/api/x', token: await corpToken({ scope: 'b c' }), context }),
      'a b c',
    );
    expectInsufficient(
      await svc.check({ path: '/api/x', token: await corpToken({ scope: 'a' }), context }),
      'a b c',
    );
    expectAllow(await svc.check({ path: '/api/x', token: await corpToken({ scope: 'a c' }), context }));
  });

  it('scopes_any adds to the matched rule’s scope requirement', async () => {
    // /admin requires scopes_all [admin]; the extension adds a scopes_any.
    const context = { scopes_any: 'read' };
    expectInsufficient(
      await svc.check({ path: '/admin/x', token: await corpToken(), context }),
      'admin read',
    );
    expectInsufficient(
      await svc.check({ path: '/admin/x', token: await corpToken({ scope: 'admin' }), context }),
      'admin read',
    );
    expectAllow(
      await svc.check({ path: '/admin/x', token: await corpToken({ scope: 'admin read' }), context }),
    );
  });

  it('scopes_all adds to a rule with both scopes_all and scopes_any', async () => {
    const context = { scopes_all: 'z' };
    expectInsufficient(
      await svc.check({ path: '/both', token: await corpToken({ scope: 'z' }), context }),
      'a z b c',
    );
    expectAllow(await svc.check({ path: '/both', token: await corpToken({ scope: 'a z c' }), context }));
  });

  it('issuers restricts the accepted issuer names', async () => {
    expectForbidden(
      await svc.check({ path: '/api/x', token: await corpToken(), context: { issuers: 'partner' } }),
    );
    expectAllow(
      await svc.check({ path: '/api/x', token: await partnerToken(), context: { issuers: 'partner' } }),
    );
    expectAllow(
      await svc.check({ path: '/api/x', token: await corpToken(), context: { issuers: 'partner corp' } }),
    );
  });

  it('issuers with an unknown name is 403', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken(), context: { issuers: 'nosuch' } });
    expectForbidden(d);
    expect(d.reason).toBe('issuer_not_allowed');
  });

  it('an empty issuers value denies (a blank extension fails closed)', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken(), context: { issuers: '' } });
    expectForbidden(d);
    expect(d.reason).toBe('rule_deny');
  });

  it('an empty audience denies (a blank extension fails closed)', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken(), context: { audience: '' } });
    expectForbidden(d);
    expect(d.reason).toBe('rule_deny');
  });

  it('issuers is checked before scopes (403 forbidden, not insufficient_scope)', async () => {
    const d = await svc.check({
      path: '/partner-only',
      token: await corpToken(),
      context: { scopes_all: 'admin' },
    });
    expectForbidden(d);
    expect(d.reason).toBe('issuer_not_allowed');
  });

  it('issuers never widens the rule’s require.issuers', async () => {
    const d = await svc.check({
      path: '/partner-only',
      token: await corpToken(),
      context: { issuers: 'corp partner' },
    });
    expectForbidden(d);
    expect(d.reason).toBe('issuer_not_allowed');
    expectAllow(
      await svc.check({
        path: '/partner-only',
        token: await partnerToken(),
        context: { issuers: 'corp partner' },
      }),
    );
  });

  it('audience sets the minted token’s aud', async () => {
    const d = await svc.check({
      path: '/api/x',
      token: await corpToken(),
      context: { audience: 'orders-svc' },
    });
    expectAllow(d);
    expect(decodeJwt(d.headers['x-jwt-assertion']!).aud).toBe('orders-svc');
  });

  it('audience with several space-separated values gives an aud array', async () => {
    const d = await svc.check({
      path: '/api/x',
      token: await corpToken(),
      context: { audience: 'svc-a  svc-b' },
    });
    expectAllow(d);
    expect(decodeJwt(d.headers['x-jwt-assertion']!).aud).toEqual(['svc-a', 'svc-b']);
  });

  it('without audience the configured audience is used', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken() });
    const claims = decodeJwt(d.headers['x-jwt-assertion']!);
    expect(claims.aud).toBe('backend');
    expect(claims.sub).toBe('alice');
    expect(claims.iss).toBe('https://authz.internal');
  });

  it('rule applies a named rule instead of matching', async () => {
    const context = { rule: 'named-admin' };
    expect401(await svc.check({ path: '/public/x', context }));
    expectInsufficient(
      await svc.check({ path: '/public/x', token: await corpToken(), context }),
      'superuser',
    );
    expectAllow(
      await svc.check({ path: '/public/x', token: await corpToken({ scope: 'superuser' }), context }),
    );
    // and a named allow rule on an otherwise protected path
    expectAllow(await svc.check({ path: '/admin/x', context: { rule: 'public' } }));
  });

  it('rule with an unknown name denies', async () => {
    expectForbidden(await svc.check({ path: '/public/x', context: { rule: 'nosuch' } }));
    expectForbidden(
      await svc.check({ path: '/api/x', token: await corpToken(), context: { rule: 'nosuch' } }),
    );
  });

  it('rule combined with a scope that adds to it', async () => {
    const context = { rule: 'named-admin', scopes_all: 'read' };
    expectInsufficient(await svc.check({ path: '/x', token: await corpToken(), context }), 'superuser read');
    expectAllow(
      await svc.check({ path: '/x', token: await corpToken({ scope: 'read superuser' }), context }),
    );
  });

  it('an unknown key is ignored', async () => {
    const before = svc.logs.lines.length;
    expectAllow(await svc.check({ path: '/public/x', context: { colour: 'blue' } }));
    expect401(await svc.check({ path: '/api/x', context: { colour: 'blue' } }));
    expectInsufficient(
      await svc.check({ path: '/admin', token: await corpToken(), context: { colour: 'x' } }),
      'admin',
    );
    const logged = svc.logs.lines
      .slice(before)
      .filter((l) => l.msg === 'ignored unknown context_extensions key');
    expect(logged.length).toBeGreaterThan(0);
    expect(logged[0]!.level).toBe('debug');
  });
});
