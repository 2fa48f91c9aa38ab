// Hardening of route configuration, claims and what reaches the upstream, through the
// real gRPC Check API (docs/policies.md "Rules, scopes and context_extensions" and
// docs/upstream.md "What upstream services receive"): blank context_extensions fail closed, a claim mapping owns its
// target, one claim-path reader serves require.claims / claim_headers / copy_claims,
// and credentials nobody verified are never forwarded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, SignJWT } from 'jose';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';

const ISS = 'https://idp.example.com';
const key = generateEcKeyPair({ kid: 'hard-1' });

async function sign(claims: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(ISS)
    .setAudience('api://orders')
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(key.privateKey);
}

const TOKEN_SOURCES = [
  { header: 'authorization', prefix: 'Bearer ' },
  { query: 'access_token' },
  { cookie: 'session_token' },
];

function config(upstream: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    realm: 'orders',
    issuers: [
      {
        name: 'corp',
        issuer: ISS,
        audiences: ['api://orders'],
        algorithms: ['ES256'],
        jwks: makeJwks(key),
        claim_mappings: [{ from: 'realm_access.roles', to: 'roles' }],
      },
    ],
    token_sources: TOKEN_SOURCES,
    rules: [
      { name: 'public', match: { path_prefix: '/public' }, action: 'allow' },
      { name: 'admin', match: { path_prefix: '/admin' }, require: { scopes_all: ['admin'] } },
      { name: 'roles-admin', match: { path_prefix: '/roles' }, require: { claims: { roles: ['admin'] } } },
    ],
    default_action: 'authenticate',
    upstream: {
      claim_headers: {
        'x-roles': 'roles',
        'x-role': 'https://example.com/claims.role',
        'x-org-id': 'org.id',
        'x-note': 'note',
      },
      token: {
        header: 'x-jwt-assertion',
        issuer: 'https://authz.internal',
        audiences: ['backend'],
        signing: { alg: 'ES256' },
        copy_claims: ['roles', 'https://example.com/claims.role', 'org.id'],
      },
      ...upstream,
    },
  };
}

let svc: TestService;
let forwarding: TestService;

beforeAll(async () => {
  [svc, forwarding] = await Promise.all([
    startTestService(config()),
    startTestService(config({ forward_original_token: true })),
  ]);
});
afterAll(async () => {
  await Promise.all([svc, forwarding].map((s) => s?.close()));
});

const expectAllow = (d: Decision): void => {
  expect(d.decision, JSON.stringify(d)).toBe('allow');
};

const expectForbidden = (d: Decision): void => {
  expect(d, JSON.stringify(d)).toMatchObject({
    decision: 'deny',
    grpc_status: 7,
    http_status: 403,
    body: { error: 'forbidden' },
  });
  expect(d.headers['www-authenticate']).toBeUndefined();
};

// ------------------------------------------------------------------ context_extensions

describe('a blank context_extensions value fails closed', () => {
  const cases: [string, Record<string, string>][] = [
    ['scopes_all ""', { scopes_all: '' }],
    ['scopes_all "  "', { scopes_all: '  ' }],
    ['scopes_any "\\t"', { scopes_any: '\t' }],
    ['action ""', { action: '' }],
    ['rule ""', { rule: '' }],
    ['audience ""', { audience: '' }],
    ['issuers " "', { issuers: ' ' }],
  ];

  it.each(cases)('%s → 403 forbidden and an error log naming the key', async (_label, context) => {
    const key = Object.keys(context)[0]!;
    // The token has every scope the route needs, so only the blank value can deny.
    const token = await sign({ sub: 'alice', scope: 'admin' });
    const before = svc.logs.lines.length;
    const d = await svc.check({ path: '/admin/x', token, context });
    expectForbidden(d);
    const errors = svc.logs.lines.slice(before).filter((l) => l.level === 'error');
    expect(errors.map((l) => l.extension_key)).toContain(key);
  });

  it('a blank value denies even on an allow route, without reading a token', async () => {
    const before = svc.logs.lines.length;
    expectForbidden(await svc.check({ path: '/public/x', context: { scopes_all: '' } }));
    const errors = svc.logs.lines.slice(before).filter((l) => l.level === 'error');
    expect(errors.map((l) => l.extension_key)).toEqual(['scopes_all']);
  });

  it('non-blank values still apply (the route is usable when the variable is set)', async () => {
    const token = await sign({ sub: 'alice', scope: 'admin read' });
    expectAllow(await svc.check({ path: '/admin/x', token, context: { scopes_all: 'read' } }));
  });
});

// ------------------------------------------------------------------ claims

describe('a claim mapping owns its target', () => {
  it('a top-level roles claim does not stand in for an absent realm_access.roles', async () => {
    const token = await sign({ sub: 'mallory', roles: ['admin'] });
    const denied = await svc.check({ path: '/roles/x', token });
    expectForbidden(denied);
    expect(denied.reason).toBe('claims_condition');

    const allowed = await svc.check({ path: '/api/x', token, headers: { 'x-roles': 'admin' } });
    expectAllow(allowed);
    expect(allowed.headers['x-roles']).toBeUndefined();
    expect(allowed.headers_to_remove).toContain('x-roles');
    expect(decodeJwt(allowed.headers['x-jwt-assertion']!).roles).toBeUndefined();
    expect((allowed.dynamic_metadata?.claims as Record<string, unknown>).roles).toBeUndefined();
  });

  it('the mapped source satisfies the condition and wins over a top-level claim', async () => {
    const token = await sign({ sub: 'alice', roles: ['nobody'], realm_access: { roles: ['admin'] } });
    const d = await svc.check({ path: '/roles/x', token });
    expectAllow(d);
    expect(d.headers['x-roles']).toBe('admin');
    expect(decodeJwt(d.headers['x-jwt-assertion']!).roles).toEqual(['admin']);
  });
});

describe('one claim-path reader for claim_headers and copy_claims', () => {
  it('a nested claim under a key with dots, and a nested path, are copied as claim_headers read them', async () => {
    const token = await sign({
      sub: 'alice',
      'https://example.com/claims': { role: 'editor' },
      org: { id: 42 },
    });
    const d = await svc.check({ path: '/api/x', token });
    expectAllow(d);
    expect(d.headers['x-role']).toBe('editor');
    expect(d.headers['x-org-id']).toBe('42');
    const minted = decodeJwt(d.headers['x-jwt-assertion']!);
    expect(minted.role).toBe('editor');
    expect(minted.id).toBe(42);
  });

  it('an exact key containing dots wins over the nested path, in both', async () => {
    const token = await sign({
      sub: 'alice',
      'https://example.com/claims.role': 'exact',
      'https://example.com/claims': { role: 'nested' },
    });
    const d = await svc.check({ path: '/api/x', token });
    expectAllow(d);
    expect(d.headers['x-role']).toBe('exact');
    expect(decodeJwt(d.headers['x-jwt-assertion']!).role).toBe('exact');
  });
});

// ------------------------------------------------------------------ upstream

describe('claim header values with C1 controls or Unicode line separators', () => {
  it.each([
    ['NEL U+0085', 'a\u0085b'],
    ['U+009B', 'a\u009bb'],
    ['LINE SEPARATOR U+2028', 'a\u2028x-user: admin'],
    ['PARAGRAPH SEPARATOR U+2029', 'a\u2029b'],
  ])('%s: the header is not set, is removed, and a warning names header and claim', async (_l, note) => {
    const before = svc.logs.lines.length;
    const d = await svc.check({
      path: '/api/x',
      token: await sign({ sub: 'alice', note }),
      headers: { 'x-note': 'spoofed' },
    });
    expectAllow(d);
    expect(d.headers['x-note']).toBeUndefined();
    expect(d.headers_to_remove).toContain('x-note');
    const warns = svc.logs.lines.slice(before).filter((l) => l.header === 'x-note');
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: 'warn', claim: 'note' });
    expect(JSON.stringify(warns[0])).not.toContain(note.slice(1));
  });

  it('printable non-ASCII text is still set', async () => {
    const d = await svc.check({ path: '/api/x', token: await sign({ sub: 'alice', note: 'Zoë ¡olé!' }) });
    expect(d.headers['x-note']).toBe('Zoë ¡olé!');
  });
});

describe('query-parameter tokens under their raw name only', () => {
  it('a percent-encoded variant of the parameter name is not a token source', async () => {
    const token = await sign({ sub: 'alice' });
    const d = await svc.check({ path: `/api/x?acc%65ss_token=${token}` });
    expect(d).toMatchObject({ decision: 'deny', http_status: 401, reason: 'token_missing' });
  });

  it('the raw name is, and is listed for removal under that name', async () => {
    const token = await sign({ sub: 'alice' });
    const d = await svc.check({ path: `/api/x?a=1&access_token=${token}&b=2` });
    expectAllow(d);
    expect(d.query_parameters_to_remove).toEqual(['access_token']);
  });

  it('a name that only ends with the configured one is not it', async () => {
    const token = await sign({ sub: 'alice' });
    const d = await svc.check({ path: `/api/x?my_access_token=${token}` });
    expect(d).toMatchObject({ decision: 'deny', http_status: 401, reason: 'token_missing' });
  });
});

describe('allow routes do not forward credentials nobody verified', () => {
  const call = {
    path: '/public/x?access_token=x&page=2',
    token: 'garbage',
    headers: { cookie: 'theme=dark; session_token=abc; lang=en' },
  };

  it('header, query parameter and cookie token sources are removed', async () => {
    const d = await svc.check(call);
    expectAllow(d);
    expect(d.headers_to_remove).toContain('authorization');
    expect(d.query_parameters_to_remove).toEqual(['access_token']);
    expect(d.headers.cookie).toBe('theme=dark; lang=en');
    expect(d.headers_to_remove).not.toContain('cookie');
    expect(d.dynamic_metadata).toBeUndefined();
  });

  it('a token cookie that is the only cookie removes the cookie header', async () => {
    const d = await svc.check({ path: '/public/x', headers: { cookie: 'session_token=abc' } });
    expectAllow(d);
    expect(d.headers.cookie).toBeUndefined();
    expect(d.headers_to_remove).toContain('cookie');
  });

  it('other cookies are left alone', async () => {
    const d = await svc.check({ path: '/public/x', headers: { cookie: 'theme=dark; my_session_token=1' } });
    expectAllow(d);
    expect(d.headers.cookie).toBeUndefined();
    expect(d.headers_to_remove).not.toContain('cookie');
  });

  it('forward_original_token: true removes them all the same (it keeps only a token that was verified)', async () => {
    const d = await forwarding.check(call);
    expectAllow(d);
    expect(d.headers_to_remove).toContain('authorization');
    expect(d.headers_to_remove).toContain('x-jwt-assertion');
    expect(d.query_parameters_to_remove).toContain('access_token');
    expect(d.headers.cookie).toBe('theme=dark; lang=en');
  });
});
