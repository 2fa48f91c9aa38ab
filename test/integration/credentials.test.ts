// One credential per request, nothing unverified upstream, no method override, and no
// claim value that reads differently upstream — through the real gRPC server.
//
// A request carrying the token in more than one place (header and query, header and
// cookie, two cookies, two query parameters, query names backends normalise) is refused
// with 400 invalid_request (reason multiple_credentials) wherever the token is read; every
// allow removes every configured token source under every spelling.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closePolicyServices, startPolicyService, startupProblems, token } from '../helpers/policy.js';
import type { TestService } from '../helpers/harness.js';

afterAll(closePolicyServices);

const SOURCES = [
  { header: 'authorization', prefix: 'Bearer ' },
  { query: 'access_token' },
  { cookie: 'access_token' },
];
const RULES = [
  { name: 'open', match: { path_prefix: '/public' }, action: 'allow' },
  { name: 'maybe', match: { path_prefix: '/maybe' }, action: 'optional' },
  { name: 'reader', match: { path_prefix: '/orders', methods: ['GET'] } },
  { name: 'nobody', match: { path_prefix: '/orders' }, action: 'deny' },
];
const OVERRIDES = ['x-http-method-override', 'x-http-method', 'x-method-override'];

const upstream = (extra: Record<string, unknown> = {}) => ({
  claim_headers: { 'x-user-id': 'sub', 'x-user-roles': 'roles' },
  ...extra,
});

function expectMultiple(d: { decision: string; http_status?: number; reason?: string; body?: unknown }) {
  expect(d.decision).toBe('deny');
  expect(d.http_status).toBe(400);
  expect(d.reason).toBe('multiple_credentials');
  expect(d.body).toEqual({ error: 'invalid_request' });
}

describe('one credential per request', () => {
  let svc: TestService;
  let jwt: string;
  beforeAll(async () => {
    svc = await startPolicyService({ token_sources: SOURCES, rules: RULES, upstream: upstream() });
    jwt = await token();
  });

  for (const path of ['/orders/1', '/maybe/1']) {
    describe(`on ${path}`, () => {
      it('header + query parameter → 400 multiple_credentials', async () => {
        expectMultiple(await svc.check({ path: `${path}?access_token=${jwt}`, token: jwt }));
      });

      it('header + token cookie → 400', async () => {
        expectMultiple(
          await svc.check({ path, token: jwt, headers: { cookie: `a=1; access_token=${jwt}` } }),
        );
      });

      it('two token cookies → 400', async () => {
        expectMultiple(await svc.check({ path, headers: { cookie: `access_token=${jwt}; access_token=x` } }));
      });

      it('a token cookie on a second Cookie line (HTTP/1.1: Envoy joins the lines with ",") → 400', async () => {
        expectMultiple(await svc.check({ path, token: jwt, headers: { cookie: `a=1,access_token=forged` } }));
        expectMultiple(await svc.check({ path, headers: { cookie: `access_token=${jwt},access_token=x` } }));
      });

      it('two token query parameters → 400', async () => {
        expectMultiple(await svc.check({ path: `${path}?access_token=${jwt}&access_token=x` }));
      });

      it('a forged query token beside a valid header token → 400, under every spelling backends normalise', async () => {
        for (const name of [
          'access_token',
          'ACCESS_TOKEN',
          'Access_Token',
          'access.token',
          'access+token',
          'access%20token',
          'access%5Ftoken',
          'access_token[]',
          'access_token%5B%5D',
        ]) {
          const d = await svc.check({ path: `${path}?x=1&${name}=forged`, token: jwt });
          expect(d.reason, name).toBe('multiple_credentials');
          expectMultiple(d);
        }
      });

      it('a ";"-separated token query parameter is refused (Envoy cannot remove it)', async () => {
        for (const q of [`a=1;access_token=forged`, `access_token=${jwt};a=1`]) {
          const d = await svc.check({ path: `${path}?${q}`, token: jwt });
          expect(d.decision, q).toBe('deny');
          expect(d.http_status, q).toBe(400);
          expect(d.body).toEqual({ error: 'invalid_request' });
        }
      });

      it('the common request (one Authorization header) is allowed', async () => {
        const d = await svc.check({ path: `${path}?x=1`, token: jwt, headers: { cookie: 'a=1; b=2' } });
        expect(d.decision).toBe('allow');
        expect(d.query_parameters_to_remove ?? []).not.toContain('x');
        expect(d.headers.cookie).toBeUndefined();
      });
    });
  }

  it('a multiple-credential refusal is logged and counted under its reason, without the token', async () => {
    await svc.check({ path: `/orders/9?access_token=${jwt}`, token: jwt });
    const line = svc.logs.lines.find((l: any) => l.reason === 'multiple_credentials');
    expect(line).toMatchObject({ decision: 'deny', reason: 'multiple_credentials' });
    expect(JSON.stringify(svc.logs.lines)).not.toContain(jwt.split('.')[2]);
  });
});

describe('every allow removes every token source under every spelling', () => {
  let svc: TestService;
  let jwt: string;
  beforeAll(async () => {
    svc = await startPolicyService({ token_sources: SOURCES, rules: RULES, upstream: upstream() });
    jwt = await token();
  });

  it('allow route: a cookie on a second Cookie line is taken out of the joined value', async () => {
    const d = await svc.check({ path: '/public/x', headers: { cookie: 'a=1,access_token=forged; b=2' } });
    expect(d.decision).toBe('allow');
    expect(d.headers.cookie).toBe('a=1; b=2');
    const only = await svc.check({ path: '/public/x', headers: { cookie: 'access_token=x,access_token=y' } });
    expect(only.headers_to_remove).toContain('cookie');
  });

  it('optional route without a token but with a cookie on a second line → anonymous; the cookie is removed', async () => {
    // the only spelling the service reads is "access_token=" at the start of a crumb
    const d = await svc.check({ path: '/maybe/x', headers: { cookie: 'a=1, ACCESS_TOKEN=forged' } });
    expect(d.decision).toBe('allow');
    expect(d.headers.cookie).toBe('a=1');
  });

  it('allow route: every spelling of the query parameter is listed by its raw key', async () => {
    const spellings = [
      'ACCESS_TOKEN',
      'access.token',
      'access+token',
      'access_token[]',
      'access%5Ftoken',
      'Access.Token%5B%5D',
    ];
    const d = await svc.check({ path: `/public/x?keep=1&${spellings.map((s) => `${s}=f`).join('&')}` });
    expect(d.decision).toBe('allow');
    expect(d.query_parameters_to_remove).toEqual(expect.arrayContaining(spellings));
    expect(d.query_parameters_to_remove).not.toContain('keep');
  });

  it('optional route: a forged query spelling without a header → anonymous allow that removes it', async () => {
    const d = await svc.check({ path: '/maybe/x?ACCESS_TOKEN=forged' });
    expect(d.decision).toBe('allow');
    expect(d.dynamic_metadata).toEqual({ anonymous: true });
    expect(d.query_parameters_to_remove).toContain('ACCESS_TOKEN');
  });

  it('allow route: a ";"-separated token parameter cannot be removed by Envoy → 400', async () => {
    const d = await svc.check({ path: '/public/x?a=1;access_token=forged' });
    expect(d.decision).toBe('deny');
    expect(d.http_status).toBe(400);
    expect(d.body).toEqual({ error: 'invalid_request' });
    // ";" elsewhere is harmless
    expect((await svc.check({ path: '/public/x?a=1;b=2' })).decision).toBe('allow');
  });

  it('authenticated allow from a cookie: an empty token query parameter is removed too (and the decision is not reused for the next)', async () => {
    const first = await svc.check({
      path: '/orders/1?access_token=',
      headers: { cookie: `access_token=${jwt}` },
    });
    expect(first.decision).toBe('allow');
    expect(first.query_parameters_to_remove).toContain('access_token');
    expect(first.headers_to_remove).toContain('cookie');
    const header = await svc.check({ path: '/orders/1?ACCESS_TOKEN=', token: jwt });
    expect(header.decision).toBe('allow');
    expect(header.query_parameters_to_remove).toContain('ACCESS_TOKEN');
    const again = await svc.check({ path: '/orders/1', token: jwt });
    expect(again.query_parameters_to_remove ?? []).not.toContain('ACCESS_TOKEN');
    const third = await svc.check({ path: '/orders/1?access.token=', token: jwt });
    expect(third.query_parameters_to_remove).toContain('access.token');
  });
});

describe('allow routes with forward_original_token: true', () => {
  it('a credential nobody verified is still removed (the option keeps only a verified token)', async () => {
    const svc = await startPolicyService({
      token_sources: SOURCES,
      rules: RULES,
      upstream: upstream({ forward_original_token: true }),
    });
    const d = await svc.check({
      path: '/public/x?access_token=forged',
      token: 'forged',
      headers: { cookie: 'a=1; access_token=forged' },
    });
    expect(d.decision).toBe('allow');
    expect(d.headers_to_remove).toContain('authorization');
    expect(d.query_parameters_to_remove).toContain('access_token');
    expect(d.headers.cookie).toBe('a=1');
    // the verified one is kept
    const jwt = await token();
    const v = await svc.check({ path: '/orders/1', token: jwt });
    expect(v.decision).toBe('allow');
    expect(v.headers_to_remove ?? []).not.toContain('authorization');
  });
});

describe('method override headers', () => {
  it('are removed from every allow (authenticated, optional, allow rule), also memoised ones', async () => {
    const svc = await startPolicyService({ token_sources: SOURCES, rules: RULES, upstream: upstream() });
    const jwt = await token();
    const headers = Object.fromEntries(OVERRIDES.map((h) => [h, 'DELETE']));
    for (const call of [
      { path: '/orders/1', token: jwt, headers },
      { path: '/orders/1', token: jwt, headers }, // memoised decision
      { path: '/maybe/1', headers },
      { path: '/maybe/1', token: jwt, headers },
      { path: '/public/1', headers },
    ]) {
      const d = await svc.check(call);
      expect(d.decision, call.path).toBe('allow');
      expect(d.headers_to_remove, call.path).toEqual(expect.arrayContaining(OVERRIDES));
    }
    // the rule matches the real method: DELETE itself is refused
    expect((await svc.check({ path: '/orders/1', method: 'DELETE', token: jwt })).http_status).toBe(403);
  });

  it('upstream.allow_method_override must be a boolean (the problem names the field)', async () => {
    expect(await startupProblems({ upstream: { allow_method_override: 'yes' } })).toEqual([
      'upstream.allow_method_override: must be true or false, got string',
    ]);
  });

  it('upstream.allow_method_override: true keeps them', async () => {
    const svc = await startPolicyService({
      token_sources: SOURCES,
      rules: RULES,
      upstream: upstream({ allow_method_override: true }),
    });
    const jwt = await token();
    for (const call of [{ path: '/orders/1', token: jwt }, { path: '/public/1' }]) {
      const d = await svc.check({ ...call, headers: { 'x-http-method-override': 'DELETE' } });
      expect(d.decision).toBe('allow');
      for (const h of OVERRIDES) expect(d.headers_to_remove ?? []).not.toContain(h);
    }
  });
});

describe('claim values that change meaning upstream are not emitted', () => {
  const limits = [{ name: 'per-client', limit: 1, window_seconds: 60 }];

  it('sub with leading/trailing whitespace: no x-user-id (removed), logged at debug by name; the minted token and the rate-limit key keep the exact value', async () => {
    const svc = await startPolicyService({
      token_sources: SOURCES,
      rules: RULES,
      rate_limits: limits,
      upstream: upstream({
        token: { header: 'x-jwt-assertion', issuer: 'https://authz.test', audiences: ['backend'] },
      }),
    });
    const padded = await svc.check({ path: '/orders/1', token: await token({ sub: '  admin  ' }) });
    expect(padded.decision).toBe('allow');
    expect(padded.headers['x-user-id']).toBeUndefined();
    expect(padded.headers_to_remove).toContain('x-user-id');
    expect(decodeJwt(padded.headers['x-jwt-assertion']!).sub).toBe('  admin  ');
    const line = svc.logs.lines.find((l: any) => l.header === 'x-user-id');
    expect(line).toMatchObject({ level: 'debug', header: 'x-user-id', claim: 'sub' });
    expect(JSON.stringify(line)).not.toContain('admin');
    // its own bucket: "admin" is a different caller and is still allowed once
    const plain = await svc.check({ path: '/orders/1', token: await token({ sub: 'admin' }) });
    expect(plain.decision).toBe('allow');
    expect(plain.headers['x-user-id']).toBe('admin');
    expect((await svc.check({ path: '/orders/1', token: await token({ sub: '  admin  ' }) })).reason).toBe(
      'rate_limited',
    );
    for (const sub of ['admin ', '\tadmin', 'admin\u00a0']) {
      const d = await svc.check({ path: '/maybe/1', token: await token({ sub }) });
      expect(d.decision).toBe('allow');
      expect(d.headers['x-user-id'], JSON.stringify(sub)).toBeUndefined();
    }
  });

  it('a roles element containing "," is not emitted (it would read as two roles); plain lists still are', async () => {
    const svc = await startPolicyService({ token_sources: SOURCES, rules: RULES, upstream: upstream() });
    const d = await svc.check({ path: '/orders/1', token: await token({ roles: ['a@x,admin@x'] }) });
    expect(d.decision).toBe('allow');
    expect(d.headers['x-user-roles']).toBeUndefined();
    expect(d.headers_to_remove).toContain('x-user-roles');
    const ok = await svc.check({ path: '/orders/1', token: await token({ roles: ['a@x', 'b@x'] }) });
    expect(ok.headers['x-user-roles']).toBe('a@x,b@x');
    // a scalar may contain a comma: it is one value
    const scalar = await svc.check({ path: '/orders/1', token: await token({ roles: 'a,b' }) });
    expect(scalar.headers['x-user-roles']).toBe('a,b');
  });
});
