// Route rules through the real gRPC Check API: how a rule matches (path kinds, methods,
// hosts, first match), the actions, path normalisation, and 401 versus 403
// (docs/policies.md "Rules, scopes and context_extensions", docs/upstream.md "Decisions (what Envoy receives)").
import { describe, expect, it } from 'vitest';
import { generateEcKeyPair } from '../helpers/keys.js';
import { type Decision } from '../helpers/harness.js';
import { describeCheckResponse, envoyCheckRequest } from '../../src/cli/check.js';
import {
  INJECTABLE,
  sign,
  corpToken,
  expectAllow,
  expect401,
  expectForbidden,
  expectInsufficient,
  svc,
  denyDefault,
  allowDefault,
  useAuthzServices,
} from '../helpers/authz.js';

useAuthzServices();

// ------------------------------------------------------------------ rule kinds

describe('rule matching', () => {
  it('path (exact) matches only the exact path', async () => {
    expectAllow(await svc.check({ path: '/exact' }));
    expect401(await svc.check({ path: '/exact/' }));
    expect401(await svc.check({ path: '/exactly' }));
  });

  it('path_prefix is a plain string prefix (/public matches /publicity)', async () => {
    expectAllow(await svc.check({ path: '/public' }));
    expectAllow(await svc.check({ path: '/public/x/y' }));
    expectAllow(await svc.check({ path: '/publicity' }));
    expect401(await svc.check({ path: '/pub' }));
    expect401(await svc.check({ path: '/x/public' }));
  });

  it('path_separated_prefix matches /docs and /docs/… but not /docsx', async () => {
    expectAllow(await svc.check({ path: '/docs' }));
    expectAllow(await svc.check({ path: '/docs/' }));
    expectAllow(await svc.check({ path: '/docs/x' }));
    expect401(await svc.check({ path: '/docsx' }));
    expect401(await svc.check({ path: '/doc' }));
  });

  it('path_regex matches the whole path (anchored)', async () => {
    expectAllow(await svc.check({ path: '/reports/42' }));
    expect401(await svc.check({ path: '/reports/42/x' }));
    expect401(await svc.check({ path: '/x/reports/42' }));
    expect401(await svc.check({ path: '/reports/abc' }));
  });

  it('methods configured in lower/mixed case match the upper-case request method', async () => {
    expectAllow(await svc.check({ method: 'POST', path: '/m' }));
    expectAllow(await svc.check({ method: 'PUT', path: '/m' }));
    expect401(await svc.check({ method: 'GET', path: '/m' }));
    expect401(await svc.check({ method: 'DELETE', path: '/m' }));
  });

  it('a lower-case request method still matches', async () => {
    const req = envoyCheckRequest({
      method: 'POST',
      path: '/m',
      host: 'api.example.com',
      headers: [],
      context: [],
    });
    req.attributes.request.http.method = 'post';
    req.attributes.request.http.headers[':method'] = 'post';
    expectAllow(describeCheckResponse(await svc.checkRaw(req)) as unknown as Decision);
    req.attributes.request.http.method = 'get';
    req.attributes.request.http.headers[':method'] = 'get';
    expect401(describeCheckResponse(await svc.checkRaw(req)) as unknown as Decision);
  });

  it('hosts: exact host, with or without port in :authority, case-insensitive', async () => {
    expectAllow(await svc.check({ path: '/h', host: 'api.example.com' }));
    expectAllow(await svc.check({ path: '/h', host: 'api.example.com:8080' }));
    expectAllow(await svc.check({ path: '/h', host: 'API.Example.COM' }));
    expectAllow(await svc.check({ path: '/h', host: 'API.EXAMPLE.COM:443' }));
    expectAllow(await svc.check({ path: '/h', host: 'api.example.com.' }));
    expectAllow(await svc.check({ path: '/h', host: 'Api.Example.Com.:8080' }));
    expect401(await svc.check({ path: '/h', host: 'api.example.com.evil.com' }));
    expect401(await svc.check({ path: '/h', host: 'evil.com' }));
  });

  it('hosts: *.example.org wildcard needs a non-empty prefix', async () => {
    expectAllow(await svc.check({ path: '/h', host: 'shop.example.org' }));
    expectAllow(await svc.check({ path: '/h', host: 'A.B.Example.ORG:9000' }));
    expect401(await svc.check({ path: '/h', host: 'example.org' }));
    expect401(await svc.check({ path: '/h', host: 'example.org.evil.com' }));
  });

  it('hosts: an entry with a port only matches that port', async () => {
    expectAllow(await svc.check({ path: '/h', host: 'ported.example.net:8443' }));
    expect401(await svc.check({ path: '/h', host: 'ported.example.net:9000' }));
    expect401(await svc.check({ path: '/h', host: 'ported.example.net' }));
  });

  it('first match wins', async () => {
    // deny before allow
    expectForbidden(await svc.check({ path: '/first', token: await corpToken() }));
    expectAllow(await svc.check({ path: '/first/x' }));
    // allow before deny
    expectAllow(await svc.check({ path: '/order/x' }));
  });

  it('default_action authenticate: unmatched path needs a valid token', async () => {
    expect401(await svc.check({ path: '/unmatched' }));
    const d = await svc.check({ path: '/unmatched', token: await corpToken() });
    expectAllow(d);
    expect(d.headers['x-user-id']).toBe('alice');
  });

  it('default_action deny: unmatched path is 403 even with a valid token', async () => {
    expectForbidden(await denyDefault.check({ path: '/unmatched', token: await corpToken() }));
    expectForbidden(await denyDefault.check({ path: '/unmatched' }));
    expectAllow(await denyDefault.check({ path: '/api/x', token: await corpToken() }));
  });

  it('default_action allow: unmatched path needs no token and forwards no identity', async () => {
    const d = await allowDefault.check({ path: '/unmatched', token: await corpToken() });
    expectAllow(d);
    expect(d.headers).toEqual({});
    expect(d.dynamic_metadata).toBeUndefined();
    expect(d.headers_to_remove).toEqual(expect.arrayContaining(INJECTABLE));
    expect401(await allowDefault.check({ path: '/secure/x' }));
  });

  it('default_action allow never allows a suspicious (%2F) path without a token', async () => {
    expect401(await allowDefault.check({ path: '/x%2F..%2Fsecure' }));
    expectAllow(await allowDefault.check({ path: '/x%2F..%2Fsecure', token: await corpToken() }));
  });
});

// ------------------------------------------------------------------ actions

describe('actions', () => {
  it('allow needs no token', async () => {
    const d = await svc.check({ path: '/public/info' });
    expectAllow(d);
    expect(d.headers).toEqual({});
  });

  it('allow ignores an invalid token', async () => {
    const d = await svc.check({ path: '/public/info', token: 'not.a.token' });
    expectAllow(d);
    expect(d.headers).toEqual({});
    expect(d.dynamic_metadata).toBeUndefined();
  });

  it('allow with a valid token sets no identity headers and no metadata', async () => {
    const d = await svc.check({ path: '/public/info', token: await corpToken() });
    expectAllow(d);
    expect(d.headers['x-user-id']).toBeUndefined();
    expect(d.headers['x-jwt-assertion']).toBeUndefined();
    expect(d.dynamic_metadata).toBeUndefined();
  });

  it('allow lists every injectable header and the token header in headers_to_remove', async () => {
    const d = await svc.check({ path: '/public/info' });
    expect([...(d.headers_to_remove ?? [])].sort()).toEqual(
      [...INJECTABLE, 'authorization', 'x-http-method-override', 'x-http-method', 'x-method-override'].sort(),
    );
  });

  it('deny answers 403 {"error":"forbidden"} without www-authenticate', async () => {
    const d = await svc.check({ path: '/internal/x', token: await corpToken() });
    expectForbidden(d);
    expect(d.body).toEqual({ error: 'forbidden' });
    expect(d.headers['content-type']).toBe('application/json');
    expectForbidden(await svc.check({ path: '/internal/x' }));
    expectForbidden(await svc.check({ path: '/internal/x', token: 'garbage' }));
  });
});

// ------------------------------------------------------------------ path normalisation

describe('path normalisation through Check', () => {
  const cases = ['/public/../admin', '/public/%2e%2e/admin', '/public/%2E%2E/admin', '//admin'];
  for (const path of cases) {
    it(`${path} is matched as /admin`, async () => {
      expect401(await svc.check({ path }));
      expectInsufficient(await svc.check({ path, token: await corpToken() }), 'admin');
      expectAllow(await svc.check({ path, token: await corpToken({ scope: 'admin' }) }));
    });
  }

  it('/admin%2F.. is never allowed without a token', async () => {
    expect401(await svc.check({ path: '/admin%2F..' }));
    expectInsufficient(await svc.check({ path: '/admin%2F..', token: await corpToken() }), 'admin');
  });

  it('/public%2F..%2Fadmin never satisfies the public rule', async () => {
    const d = await svc.check({ path: '/public%2F..%2Fadmin' });
    expect401(d);
    expect401(await svc.check({ path: '/public%2f..%2fadmin' }));
    // An encoded backslash is ambiguous: refused before any rule.
    expect(await svc.check({ path: '/public%5C..%5Cadmin' })).toMatchObject({ http_status: 400 });
  });

  it('/public/.%2e/admin (mixed literal and encoded dots) is /admin', async () => {
    expect401(await svc.check({ path: '/public/.%2e/admin' }));
    expectInsufficient(await svc.check({ path: '/public/%2E./admin', token: await corpToken() }), 'admin');
  });

  it('/public//../admin (empty segment before ..) never satisfies the public rule', async () => {
    expect401(await svc.check({ path: '/public//../admin' }));
  });

  it('a literal backslash never satisfies the public rule (refused as ambiguous)', async () => {
    expect(await svc.check({ path: '/public\\..\\admin' })).toMatchObject({
      http_status: 400,
      body: { error: 'invalid_request' },
    });
  });

  it('context action=allow does not let a %2F path skip authentication', async () => {
    expect401(await svc.check({ path: '/public%2F..%2Fadmin', context: { action: 'allow' } }));
    expect401(await svc.check({ path: '/x%2F..%2Fadmin', context: { rule: 'public' } }));
  });

  it('/public/./x is /public/x', async () => {
    expectAllow(await svc.check({ path: '/public/./x' }));
    expectAllow(await svc.check({ path: '/./public/x' }));
  });

  it('the query string is ignored for matching', async () => {
    expectAllow(await svc.check({ path: '/public/x?next=/../../admin' }));
    expect401(await svc.check({ path: '/admin?x=/public' }));
    expectAllow(await svc.check({ path: '/exact?a=1' }));
  });

  it('the fragment is ignored for matching', async () => {
    expectAllow(await svc.check({ path: '/public/x#/../../admin' }));
    expect401(await svc.check({ path: '/admin#/public' }));
    expectAllow(await svc.check({ path: '/exact#frag' }));
  });

  it('%7E (and other unreserved escapes) are decoded', async () => {
    expectAllow(await svc.check({ path: '/%7Euser/home' }));
    expectAllow(await svc.check({ path: '/%7euser/home' }));
    expectAllow(await svc.check({ path: '/%70ublic/x' }));
  });
});

// ------------------------------------------------------------------ 401 vs 403

describe('401 vs 403', () => {
  it('no token → 401 without an error attribute', async () => {
    const d = await svc.check({ path: '/admin' });
    expect401(d);
    expect(d.headers['www-authenticate']).toBe('Bearer realm="orders"');
    expect(d.body).toEqual({ error: 'unauthorized' });
  });

  it('invalid token → 401 invalid_token', async () => {
    const d = await svc.check({ path: '/admin', token: 'abc.def.ghi' });
    expect401(d);
    expect(d.headers['www-authenticate']).toContain('error="invalid_token"');
    expect(d.body.error).toBe('invalid_token');
  });

  it('token from an untrusted key → 401 invalid_token, not 403', async () => {
    const forged = await sign(
      { sub: 'mallory', scope: 'admin' },
      { key: generateEcKeyPair({ kid: 'corp-1' }) },
    );
    const d = await svc.check({ path: '/admin', token: forged });
    expect401(d);
    expect(d.body.error).toBe('invalid_token');
  });

  it('valid token, insufficient scope → 403', async () => {
    expectInsufficient(await svc.check({ path: '/admin', token: await corpToken() }), 'admin');
  });

  it('deny rule → 403 forbidden', async () => {
    expectForbidden(await svc.check({ path: '/internal', token: 'abc.def.ghi' }));
  });
});
