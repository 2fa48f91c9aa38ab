// Envoy's per-route context_extensions may only tighten the service config: a `deny`
// rule is final, a configured rule's action and requirements are a floor, and the
// `audience` key may only name upstream.token.allowed_audiences (by default every
// configured audience). Through the real gRPC server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import {
  ISSUERS,
  UPSTREAM,
  corpToken,
  expect401,
  expectAllow,
  expectForbidden,
  expectInsufficient,
  partnerToken,
} from '../helpers/authz.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import type { CapturedLog } from '../helpers/logger.js';

const RULES = [
  { name: 'internal', match: { path_separated_prefix: '/internal' }, action: 'deny' },
  { name: 'public', match: { path_separated_prefix: '/public' }, action: 'allow' },
  { name: 'admin', match: { path_separated_prefix: '/admin' }, require: { scopes_all: ['admin'] } },
  { name: 'anyof', match: { path_separated_prefix: '/anyof' }, require: { scopes_any: ['read', 'write'] } },
  { name: 'corp-only', match: { path_separated_prefix: '/corp-only' }, require: { issuers: ['corp'] } },
  {
    name: 'reports',
    match: { path_separated_prefix: '/reports' },
    token: { audiences: ['reports-svc'] },
  },
];

let derived: TestService; // allowed_audiences left to its default
let explicit: TestService; // allowed_audiences set (started by the audience tests)

beforeAll(async () => {
  derived = await startTestService({ realm: 'orders', issuers: ISSUERS, rules: RULES, upstream: UPSTREAM });
});
afterAll(async () => {
  await Promise.all([explicit, derived].map((s) => s?.close()));
});

/** The lines with this message logged while `fn` ran. */
async function logged<T>(svc: TestService, msg: RegExp, fn: () => Promise<T>): Promise<[T, CapturedLog[]]> {
  const before = svc.logs.lines.length;
  const result = await fn();
  return [result, svc.logs.lines.slice(before).filter((l) => msg.test(l.msg))];
}

const LOOSEN = /cannot loosen the configured rule/;
const AUDIENCE = /audience is not in upstream\.token\.allowed_audiences/;

describe('a service deny rule is final', () => {
  it('action: allow on a path a deny rule matches → 403, logged at warn with the rule name', async () => {
    const [d, lines] = await logged(derived, LOOSEN, () =>
      derived.check({ path: '/internal/x', context: { action: 'allow' } }),
    );
    expectForbidden(d);
    expect(d.reason).toBe('rule_deny');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'warn',
      rule: 'internal',
      extension_key: 'action',
      extension_value: 'allow',
    });
    // the same action as the rule's is no loosening: nothing logged
    const [same, none] = await logged(derived, LOOSEN, () =>
      derived.check({ path: '/internal/x', context: { action: 'deny' } }),
    );
    expectForbidden(same);
    expect(none).toEqual([]);
  });

  it('action: authenticate or optional with a valid token is still denied', async () => {
    const token = await corpToken({ scope: 'read admin' });
    for (const action of ['authenticate', 'optional']) {
      const d = await derived.check({ path: '/internal/x', token, context: { action } });
      expectForbidden(d);
      expect(d.reason).toBe('rule_deny');
    }
  });

  it('rule naming an allow rule on a path a deny rule matches → 403, logged at warn', async () => {
    const [d, lines] = await logged(derived, LOOSEN, () =>
      derived.check({ path: '/internal/x', context: { rule: 'public' } }),
    );
    expectForbidden(d);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', rule: 'internal', extension_key: 'rule' });
  });

  it('every repeated request is refused and logged (no cached loosening)', async () => {
    const [results, lines] = await logged(derived, LOOSEN, () =>
      Promise.all([1, 2, 3].map(() => derived.check({ path: '/internal/y', context: { action: 'allow' } }))),
    );
    for (const d of results) expectForbidden(d);
    expect(lines).toHaveLength(3);
  });
});

describe('a configured rule is a floor for the route', () => {
  it('action: allow over an authenticate rule keeps authenticate (401 without a token), logged at warn', async () => {
    const [d, lines] = await logged(derived, LOOSEN, () =>
      derived.check({ path: '/admin/x', context: { action: 'allow' } }),
    );
    expect401(d);
    expect(lines[0]).toMatchObject({ level: 'warn', rule: 'admin', extension_value: 'allow' });
    // and the rule's requirement still applies with a token
    expectInsufficient(
      await derived.check({ path: '/admin/x', token: await corpToken(), context: { action: 'optional' } }),
      'admin',
    );
    // a stricter action applies; over default_action (no rule matched) the route's replaces it
    expect401(await derived.check({ path: '/public/x', context: { action: 'authenticate' } }));
    expectAllow(await derived.check({ path: '/elsewhere', context: { action: 'allow' } }));
  });

  it('scopes_all adds to the rule’s scopes_all', async () => {
    const context = { scopes_all: 'audit' };
    expectInsufficient(
      await derived.check({ path: '/admin/x', token: await corpToken({ scope: 'audit' }), context }),
      'admin audit',
    );
    expectAllow(
      await derived.check({ path: '/admin/x', token: await corpToken({ scope: 'admin audit' }), context }),
    );
  });

  it('scopes_any replaces nothing: one of the rule’s and one of the route’s', async () => {
    const context = { scopes_any: 'orders:read orders:write' };
    // read satisfies the rule, nothing satisfies the route
    expectInsufficient(
      await derived.check({ path: '/anyof/x', token: await corpToken({ scope: 'read' }), context }),
      'read write orders:read orders:write',
    );
    // the route's alone does not drop the rule's
    expectInsufficient(
      await derived.check({ path: '/anyof/x', token: await corpToken({ scope: 'orders:read' }), context }),
      'read write orders:read orders:write',
    );
    expectAllow(
      await derived.check({
        path: '/anyof/x',
        token: await corpToken({ scope: 'write orders:read' }),
        context,
      }),
    );
  });

  it('scopes_all on the route keeps the rule’s scopes_any', async () => {
    expectInsufficient(
      await derived.check({
        path: '/anyof/x',
        token: await corpToken({ scope: 'extra' }),
        context: { scopes_all: 'extra' },
      }),
      'extra read write',
    );
  });

  it('issuers narrows the rule’s issuers (never widens them)', async () => {
    const widened = await derived.check({
      path: '/corp-only/x',
      token: await partnerToken(),
      context: { issuers: 'corp partner' },
    });
    expectForbidden(widened);
    expect(widened.reason).toBe('issuer_not_allowed');
    expectAllow(
      await derived.check({
        path: '/corp-only/x',
        token: await corpToken(),
        context: { issuers: 'corp partner' },
      }),
    );
    const disjoint = await derived.check({
      path: '/corp-only/x',
      token: await corpToken(),
      context: { issuers: 'partner' },
    });
    expectForbidden(disjoint);
    expect(disjoint.reason).toBe('issuer_not_allowed');
  });
});

describe('context_extensions audience: only allowed audiences', () => {
  beforeAll(async () => {
    explicit = await startTestService({
      realm: 'orders',
      issuers: ISSUERS,
      rules: RULES,
      upstream: {
        ...UPSTREAM,
        token: { ...UPSTREAM.token, allowed_audiences: ['backend', 'orders-svc', 'billing-svc'] },
      },
    });
  });

  it('an allowed audience is minted into the downstream token', async () => {
    const d = await explicit.check({
      path: '/api/x',
      token: await corpToken(),
      context: { audience: 'orders-svc' },
    });
    expectAllow(d);
    expect(decodeJwt(d.headers['x-jwt-assertion']!).aud).toBe('orders-svc');
    const two = await explicit.check({
      path: '/api/x',
      token: await corpToken(),
      context: { audience: 'orders-svc billing-svc' },
    });
    expect(decodeJwt(two.headers['x-jwt-assertion']!).aud).toEqual(['orders-svc', 'billing-svc']);
  });

  it('another audience → 403 forbidden, logged at error with the requested audience', async () => {
    const token = await corpToken();
    const [d, lines] = await logged(explicit, AUDIENCE, () =>
      explicit.check({ path: '/api/x', token, context: { audience: 'payments-admin' } }),
    );
    expectForbidden(d);
    expect(d.headers['x-jwt-assertion']).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', audience: 'payments-admin', extension_key: 'audience' });
    expect(explicit.logs.text()).not.toContain(token);
  });

  it('one audience outside the list among allowed ones → 403', async () => {
    expectForbidden(
      await explicit.check({
        path: '/api/x',
        token: await corpToken(),
        context: { audience: 'orders-svc payments-admin' },
      }),
    );
  });

  it('also without a token, and on an allow route (nothing is decided on an audience not allowed)', async () => {
    expectForbidden(await explicit.check({ path: '/api/x', context: { audience: 'payments-admin' } }));
    expectForbidden(await explicit.check({ path: '/public/x', context: { audience: 'payments-admin' } }));
  });

  it('memoised allows: the same token with an allowed and then a refused audience', async () => {
    const token = await corpToken({ sub: 'memo-user' });
    for (let i = 0; i < 2; i++) {
      const ok = await explicit.check({ path: '/api/x', token, context: { audience: 'orders-svc' } });
      expectAllow(ok);
      expect(decodeJwt(ok.headers['x-jwt-assertion']!).aud).toBe('orders-svc');
      expectForbidden(
        await explicit.check({ path: '/api/x', token, context: { audience: 'payments-admin' } }),
      );
      const plain = await explicit.check({ path: '/api/x', token });
      expect(decodeJwt(plain.headers['x-jwt-assertion']!).aud).toBe('backend');
    }
  });
});

describe('context_extensions audience: the default allowed list', () => {
  it('default list: upstream.token.audiences and the rules’ token audiences', async () => {
    const token = await corpToken();
    const own = await derived.check({ path: '/api/x', token, context: { audience: 'backend' } });
    expect(decodeJwt(own.headers['x-jwt-assertion']!).aud).toBe('backend');
    const fromProfile = await derived.check({ path: '/api/x', token, context: { audience: 'reports-svc' } });
    expectAllow(fromProfile);
    expect(decodeJwt(fromProfile.headers['x-jwt-assertion']!).aud).toBe('reports-svc');
    const [d, lines] = await logged(derived, AUDIENCE, () =>
      derived.check({ path: '/api/x', token, context: { audience: 'orders-svc' } }),
    );
    expectForbidden(d);
    expect(lines[0]).toMatchObject({ level: 'error', audience: 'orders-svc' });
  });
});
