// Route rules, scopes, context_extensions, claim mappings and upstream enrichment,
// exercised through the real gRPC Check API (README "Configuration" / README "Decisions (what Envoy receives)" / README "What upstream services receive"; README "Rules, scopes
// and context_extensions" and "What upstream services receive").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, SignJWT } from 'jose';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';
import { describeCheckResponse, envoyCheckRequest } from '../../src/cli/check.js';

const CORP_ISS = 'https://idp.example.com';
const PARTNER_ISS = 'https://partner.example.net';
const corpKey = generateEcKeyPair({ kid: 'corp-1' });
const partnerKey = generateEcKeyPair({ kid: 'partner-1' });

const CLAIM_HEADERS = {
  'x-user-id': 'sub',
  'x-user-roles': 'roles',
  'x-department': 'department',
  'x-profile': 'profile',
  'x-level': 'level',
  'x-verified': 'verified',
  'x-note': 'note',
  'x-email': 'email',
};
const INJECTABLE = [...Object.keys(CLAIM_HEADERS), 'x-jwt-assertion'];

/** Claims given as `undefined` are left out of the token. */
async function sign(
  claims: Record<string, unknown>,
  opts: { iss?: string; key?: typeof corpKey; aud?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  // Object.fromEntries defines own properties, so a "__proto__" claim stays a claim.
  const payload = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
  const key = opts.key ?? corpKey;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(opts.iss ?? CORP_ISS)
    .setAudience(opts.aud ?? 'api://orders')
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(key.privateKey);
}

/** A corp token: sub alice, scope "read", realm roles eng+ops, org department eng, level 3. */
function corpToken(claims: Record<string, unknown> = {}): Promise<string> {
  return sign({
    sub: 'alice',
    scope: 'read',
    realm_access: { roles: ['eng', 'ops'] },
    org: { department: 'eng' },
    level: 3,
    ...claims,
  });
}

function partnerToken(claims: Record<string, unknown> = {}): Promise<string> {
  return sign({ sub: 'bob', scp: 'read', ...claims }, { iss: PARTNER_ISS, key: partnerKey });
}

const ISSUERS = [
  {
    name: 'corp',
    issuer: CORP_ISS,
    audiences: ['api://orders'],
    algorithms: ['ES256'],
    jwks: makeJwks(corpKey),
    claim_mappings: [
      { from: 'realm_access.roles', to: 'roles' },
      { from: 'org.department', to: 'department' },
    ],
  },
  {
    name: 'partner',
    issuer: PARTNER_ISS,
    audiences: ['api://orders'],
    algorithms: ['ES256'],
    jwks: makeJwks(partnerKey),
  },
];

const UPSTREAM = {
  claim_headers: CLAIM_HEADERS,
  token: {
    header: 'x-jwt-assertion',
    issuer: 'https://authz.internal',
    audiences: ['backend'],
    signing: { alg: 'ES256' },
  },
};

function config(extra: Record<string, unknown>): Record<string, unknown> {
  return { realm: 'orders', issuers: ISSUERS, upstream: UPSTREAM, ...extra };
}

const MAIN_RULES = [
  { name: 'public', match: { path_prefix: '/public' }, action: 'allow' },
  { name: 'blocked', match: { path_prefix: '/internal' }, action: 'deny' },
  { name: 'docs', match: { path_separated_prefix: '/docs' }, action: 'allow' },
  { name: 'exact', match: { path: '/exact' }, action: 'allow' },
  { name: 'tilde', match: { path: '/~user/home' }, action: 'allow' },
  { name: 'reports', match: { path_regex: '/reports/[0-9]+' }, action: 'allow' },
  { name: 'methods', match: { path_prefix: '/m', methods: ['post', 'Put'] }, action: 'allow' },
  {
    name: 'hosts',
    match: { path_prefix: '/h', hosts: ['api.example.com', '*.example.org', 'ported.example.net:8443'] },
    action: 'allow',
  },
  { name: 'first-deny', match: { path: '/first' }, action: 'deny' },
  { name: 'first-allow', match: { path_prefix: '/first' }, action: 'allow' },
  { name: 'order-allow', match: { path_prefix: '/order' }, action: 'allow' },
  { name: 'order-deny', match: { path: '/order/x' }, action: 'deny' },
  { name: 'admin', match: { path_prefix: '/admin' }, require: { scopes_all: ['admin'] } },
  { name: 'anyscope', match: { path_prefix: '/anyscope' }, require: { scopes_any: ['read', 'write'] } },
  { name: 'both', match: { path_prefix: '/both' }, require: { scopes_all: ['a'], scopes_any: ['b', 'c'] } },
  { name: 'claims-str', match: { path: '/claims/str' }, require: { claims: { department: ['eng'] } } },
  { name: 'claims-num', match: { path: '/claims/num' }, require: { claims: { level: [3] } } },
  { name: 'claims-numstr', match: { path: '/claims/numstr' }, require: { claims: { level: ['3'] } } },
  { name: 'claims-arr', match: { path: '/claims/arr' }, require: { claims: { roles: ['ops'] } } },
  { name: 'claims-admin', match: { path: '/claims/admin' }, require: { claims: { admin: [true] } } },
  { name: 'partner-only', match: { path_prefix: '/partner-only' }, require: { issuers: ['partner'] } },
  { name: 'named-admin', match: { path: '/never/matched' }, require: { scopes_all: ['superuser'] } },
];

const expectAllow = (d: Decision): void => expect(d.decision, JSON.stringify(d)).toBe('allow');
const expect401 = (d: Decision): void =>
  expect(d, JSON.stringify(d)).toMatchObject({ decision: 'deny', grpc_status: 16, http_status: 401 });
const expectForbidden = (d: Decision): void => {
  expect(d, JSON.stringify(d)).toMatchObject({
    decision: 'deny',
    grpc_status: 7,
    http_status: 403,
    body: { error: 'forbidden' },
  });
  expect(d.headers['www-authenticate']).toBeUndefined();
};
const expectInsufficient = (d: Decision, scope: string): void => {
  expect(d, JSON.stringify(d)).toMatchObject({
    decision: 'deny',
    grpc_status: 7,
    http_status: 403,
    reason: 'insufficient_scope',
    body: { error: 'insufficient_scope' },
  });
  expect(d.headers['www-authenticate']).toContain('error="insufficient_scope"');
  expect(d.headers['www-authenticate']).toContain(`scope="${scope}"`);
};

let svc: TestService;
let denyDefault: TestService;
let allowDefault: TestService;
let sources: TestService;
let forwarding: TestService;

beforeAll(async () => {
  const tokenSources = [
    { header: 'authorization', prefix: 'Bearer ' },
    { query: 'access_token' },
    { cookie: 'access_token' },
  ];
  [svc, denyDefault, allowDefault, sources, forwarding] = await Promise.all([
    startTestService(config({ rules: MAIN_RULES, default_action: 'authenticate' })),
    startTestService(
      config({ rules: [{ name: 'api', match: { path_prefix: '/api' } }], default_action: 'deny' }),
    ),
    startTestService(
      config({
        rules: [{ name: 'secure', match: { path_prefix: '/secure' }, action: 'authenticate' }],
        default_action: 'allow',
      }),
    ),
    startTestService(config({ token_sources: tokenSources })),
    startTestService(
      config({ token_sources: tokenSources, upstream: { ...UPSTREAM, forward_original_token: true } }),
    ),
  ]);
});
afterAll(async () => {
  await Promise.all([svc, denyDefault, allowDefault, sources, forwarding].map((s) => s?.close()));
});

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
    expect([...(d.headers_to_remove ?? [])].sort()).toEqual([...INJECTABLE, 'authorization'].sort());
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

// ------------------------------------------------------------------ context_extensions

describe('context_extensions', () => {
  it('action=allow lets an authenticate route through without a token', async () => {
    const d = await svc.check({ path: '/api/x', context: { action: 'allow' } });
    expectAllow(d);
    expect(d.headers_to_remove).toEqual(expect.arrayContaining(INJECTABLE));
  });

  it('action=allow overrides a deny rule', async () => {
    expectAllow(await svc.check({ path: '/internal/x', context: { action: 'allow' } }));
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

  it('scopes_any replaces the matched rule’s whole scope requirement', async () => {
    // /admin requires scopes_all [admin]; the extension replaces it.
    const d = await svc.check({
      path: '/admin/x',
      token: await corpToken(),
      context: { scopes_any: 'read' },
    });
    expectAllow(d);
    expectInsufficient(
      await svc.check({
        path: '/admin/x',
        token: await corpToken({ scope: 'admin' }),
        context: { scopes_any: 'read' },
      }),
      'read',
    );
  });

  it('scopes_all replaces a rule with both scopes_all and scopes_any', async () => {
    const d = await svc.check({
      path: '/both',
      token: await corpToken({ scope: 'z' }),
      context: { scopes_all: 'z' },
    });
    expectAllow(d);
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

  it('issuers overrides the rule’s require.issuers', async () => {
    expectAllow(
      await svc.check({ path: '/partner-only', token: await corpToken(), context: { issuers: 'corp' } }),
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

  it('rule combined with a scope override', async () => {
    const d = await svc.check({
      path: '/x',
      token: await corpToken(),
      context: { rule: 'named-admin', scopes_all: 'read' },
    });
    expectAllow(d);
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

// ------------------------------------------------------------------ spoofing

describe('spoofed identity headers', () => {
  it('client-sent x-user-id / x-jwt-assertion are overwritten on authenticated allow', async () => {
    const raw = await svc.checkRaw({
      path: '/api/x',
      token: await corpToken(),
      headers: { 'x-user-id': 'admin', 'x-jwt-assertion': 'forged' },
    });
    expect(raw.status.code).toBe(0);
    const set = Object.fromEntries(
      raw.ok_response.headers.map((h: any) => [h.header.key, { value: h.header.value, append: h.append }]),
    );
    expect(set['x-user-id']).toEqual({ value: 'alice', append: { value: false } });
    expect(set['x-jwt-assertion'].append).toEqual({ value: false });
    expect(set['x-jwt-assertion'].value).not.toBe('forged');
    expect(decodeJwt(set['x-jwt-assertion'].value).sub).toBe('alice');
    expect(raw.ok_response.headers_to_remove ?? []).not.toContain('x-user-id');
    expect(raw.ok_response.headers_to_remove ?? []).not.toContain('x-jwt-assertion');
  });

  it('spoofed headers are removed on public routes', async () => {
    const d = await svc.check({
      path: '/public/x',
      headers: { 'x-user-id': 'admin', 'x-jwt-assertion': 'forged', 'x-user-roles': 'admin' },
    });
    expectAllow(d);
    expect(d.headers).toEqual({});
    expect(d.headers_to_remove).toEqual(
      expect.arrayContaining(['x-user-id', 'x-jwt-assertion', 'x-user-roles']),
    );
  });

  it('a claim the token lacks puts its header in headers_to_remove', async () => {
    const d = await svc.check({
      path: '/api/x',
      token: await corpToken(),
      headers: { 'x-email': 'ceo@example.com' },
    });
    expectAllow(d);
    expect(d.headers['x-email']).toBeUndefined();
    expect(d.headers_to_remove).toContain('x-email');
    expect(d.headers_to_remove).toContain('x-profile');
    expect(d.headers_to_remove).not.toContain('x-user-id');
  });
});

// ------------------------------------------------------------------ original token

describe('forward_original_token', () => {
  it('false (default): Authorization header token → authorization removed', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken() });
    expectAllow(d);
    expect(d.headers_to_remove).toContain('authorization');
    expect(d.query_parameters_to_remove ?? []).toEqual([]);
  });

  it('false: query token → query_parameters_to_remove [access_token]', async () => {
    const t = await corpToken();
    const d = await sources.check({ path: `/api/x?a=1&access_token=${t}` });
    expectAllow(d);
    expect(d.query_parameters_to_remove).toEqual(['access_token']);
    expect(d.headers_to_remove).not.toContain('authorization');
    expect(d.headers.cookie).toBeUndefined();
  });

  it('false: cookie token → cookie header re-set without it, others kept', async () => {
    const t = await corpToken();
    const d = await sources.check({
      path: '/api/x',
      headers: { cookie: `theme=dark; access_token=${t}; lang=en` },
    });
    expectAllow(d);
    expect(d.headers.cookie).toBe('theme=dark; lang=en');
    expect(d.headers_to_remove).not.toContain('cookie');
    expect(d.query_parameters_to_remove ?? []).toEqual([]);
  });

  it('false: the rewritten cookie header is set with append=false', async () => {
    const raw = await sources.checkRaw({
      path: '/api/x',
      headers: { cookie: `access_token=${await corpToken()}; theme=dark` },
    });
    expect(raw.status.code).toBe(0);
    const cookie = raw.ok_response.headers.find((h: any) => h.header.key === 'cookie');
    expect(cookie?.header.value).toBe('theme=dark');
    expect(cookie?.append).toEqual({ value: false });
  });

  it('false: cookie token as the only cookie → cookie header removed', async () => {
    const d = await sources.check({
      path: '/api/x',
      headers: { cookie: `access_token=${await corpToken()}` },
    });
    expectAllow(d);
    expect(d.headers.cookie).toBeUndefined();
    expect(d.headers_to_remove).toContain('cookie');
  });

  it('true: nothing about the original token is removed', async () => {
    const t = await corpToken();
    const viaHeader = await forwarding.check({ path: '/api/x', token: t });
    expectAllow(viaHeader);
    expect(viaHeader.headers_to_remove).not.toContain('authorization');

    const viaQuery = await forwarding.check({ path: `/api/x?access_token=${t}` });
    expectAllow(viaQuery);
    expect(viaQuery.query_parameters_to_remove ?? []).toEqual([]);

    const viaCookie = await forwarding.check({
      path: '/api/x',
      headers: { cookie: `a=1; access_token=${t}` },
    });
    expectAllow(viaCookie);
    expect(viaCookie.headers.cookie).toBeUndefined();
    expect(viaCookie.headers_to_remove).not.toContain('cookie');
  });
});

// ------------------------------------------------------------------ metadata & claims

describe('dynamic_metadata and claim mappings', () => {
  it('carries {issuer, sub, scope, claims}', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken({ scope: 'read write' }) });
    expectAllow(d);
    expect(d.dynamic_metadata).toMatchObject({ issuer: 'corp', sub: 'alice', scope: 'read write' });
    expect(d.dynamic_metadata?.claims).toMatchObject({
      sub: 'alice',
      roles: ['eng', 'ops'],
      department: 'eng',
    });
  });

  it('issuer is the configured name for the second issuer too', async () => {
    const d = await svc.check({ path: '/api/x', token: await partnerToken({ scp: ['read', 'write'] }) });
    expectAllow(d);
    expect(d.dynamic_metadata).toMatchObject({ issuer: 'partner', sub: 'bob', scope: 'read write' });
  });

  it('nested realm_access.roles → roles feeds require.claims and a claim header', async () => {
    const d = await svc.check({ path: '/claims/arr', token: await corpToken() });
    expectAllow(d);
    expect(d.headers['x-user-roles']).toBe('eng,ops');
    expectForbidden(
      await svc.check({ path: '/claims/arr', token: await corpToken({ realm_access: { roles: ['eng'] } }) }),
    );
  });

  it('a mapping onto an existing claim replaces it', async () => {
    const d = await svc.check({
      path: '/claims/str',
      token: await corpToken({ roles: ['superadmin'], department: 'sales', org: { department: 'eng' } }),
    });
    expectAllow(d);
    expect(d.headers['x-user-roles']).toBe('eng,ops');
    expect(d.headers['x-department']).toBe('eng');
    expect(d.dynamic_metadata?.claims.roles).toEqual(['eng', 'ops']);
    expect(d.dynamic_metadata?.claims.department).toBe('eng');
  });

  it('a mapping replaces an existing claim also when that makes a condition fail', async () => {
    const d = await svc.check({
      path: '/claims/str',
      token: await corpToken({ department: 'eng', org: { department: 'sales' } }),
    });
    expectForbidden(d);
  });

  it('"__proto__": {"admin": true} does not grant admin and does not pollute', async () => {
    const evil = JSON.parse('{"__proto__": {"admin": true}, "constructor": {"prototype": {"admin": true}}}');
    const evilToken = await corpToken(evil);
    const sent = JSON.parse(Buffer.from(evilToken.split('.')[1]!, 'base64url').toString());
    expect(Object.keys(sent)).toEqual(expect.arrayContaining(['__proto__', 'constructor']));
    const d = await svc.check({ path: '/claims/admin', token: evilToken });
    expectForbidden(d);
    expect(({} as any).admin).toBeUndefined();
    expect((Object.prototype as any).admin).toBeUndefined();
    // A clean token afterwards is not granted either.
    expectForbidden(await svc.check({ path: '/claims/admin', token: await corpToken() }));
    // A real admin claim is.
    expectAllow(await svc.check({ path: '/claims/admin', token: await corpToken({ admin: true }) }));
    const ok = await svc.check({ path: '/api/x', token: await corpToken(evil) });
    expectAllow(ok);
    expect(Object.keys(ok.dynamic_metadata?.claims ?? {})).not.toContain('__proto__');
    expect(Object.keys(ok.dynamic_metadata?.claims ?? {})).not.toContain('constructor');
    expect(ok.dynamic_metadata?.claims.admin).toBeUndefined();
  });
});

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

// ------------------------------------------------------------------ claim headers

describe('claim header encoding', () => {
  it('arrays joined with ",", objects as JSON, numbers and booleans as strings', async () => {
    const d = await svc.check({
      path: '/api/x',
      token: await corpToken({ profile: { team: 'core', n: 1 }, level: 7, verified: true }),
    });
    expectAllow(d);
    expect(d.headers['x-user-roles']).toBe('eng,ops');
    expect(JSON.parse(d.headers['x-profile']!)).toEqual({ team: 'core', n: 1 });
    expect(d.headers['x-profile']).toBe('{"team":"core","n":1}');
    expect(d.headers['x-level']).toBe('7');
    expect(d.headers['x-verified']).toBe('true');
  });

  it('false and 0 are encoded, not dropped', async () => {
    const d = await svc.check({ path: '/api/x', token: await corpToken({ level: 0, verified: false }) });
    expect(d.headers['x-level']).toBe('0');
    expect(d.headers['x-verified']).toBe('false');
  });

  it('a claim containing CR/LF is not set, is removed, and logged as a warning', async () => {
    const before = svc.logs.lines.length;
    const d = await svc.check({
      path: '/api/x',
      token: await corpToken({ note: 'hello\r\nx-user-id: admin' }),
      headers: { 'x-note': 'spoofed' },
    });
    expectAllow(d);
    expect(d.headers['x-note']).toBeUndefined();
    expect(d.headers_to_remove).toContain('x-note');
    expect(d.headers['x-user-id']).toBe('alice');
    const warns = svc.logs.lines.slice(before).filter((l) => l.level === 'warn' && l.header === 'x-note');
    expect(warns.length).toBe(1);
    expect(warns[0]!.claim).toBe('note');
    expect(JSON.stringify(warns[0])).not.toContain('hello');
  });
});
