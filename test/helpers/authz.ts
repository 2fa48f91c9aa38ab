// Shared setup of the authz integration tests (test/integration/authz-*.test.ts): two
// issuers, the claim headers and rules they are configured with, token makers, the
// decision assertions, and the running services (live bindings set by useAuthzServices).
import { afterAll, beforeAll, expect } from 'vitest';
import { SignJWT } from 'jose';
import { generateEcKeyPair, makeJwks } from './keys.js';
import { startTestService, type Decision, type TestService } from './harness.js';

export const CORP_ISS = 'https://idp.example.com';
export const PARTNER_ISS = 'https://partner.example.net';
export const corpKey = generateEcKeyPair({ kid: 'corp-1' });
export const partnerKey = generateEcKeyPair({ kid: 'partner-1' });

export const CLAIM_HEADERS = {
  'x-user-id': 'sub',
  'x-user-roles': 'roles',
  'x-department': 'department',
  'x-profile': 'profile',
  'x-level': 'level',
  'x-verified': 'verified',
  'x-note': 'note',
  'x-email': 'email',
};
export const INJECTABLE = [...Object.keys(CLAIM_HEADERS), 'x-jwt-assertion'];

/** Claims given as `undefined` are left out of the token. */
export async function sign(
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
export function corpToken(claims: Record<string, unknown> = {}): Promise<string> {
  return sign({
    sub: 'alice',
    scope: 'read',
    realm_access: { roles: ['eng', 'ops'] },
    org: { department: 'eng' },
    level: 3,
    ...claims,
  });
}

export function partnerToken(claims: Record<string, unknown> = {}): Promise<string> {
  return sign({ sub: 'bob', scp: 'read', ...claims }, { iss: PARTNER_ISS, key: partnerKey });
}

export const ISSUERS = [
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

export const UPSTREAM = {
  claim_headers: CLAIM_HEADERS,
  token: {
    header: 'x-jwt-assertion',
    issuer: 'https://authz.internal',
    audiences: ['backend'],
    signing: { alg: 'ES256' },
  },
};

export function config(extra: Record<string, unknown>): Record<string, unknown> {
  return { realm: 'orders', issuers: ISSUERS, upstream: UPSTREAM, ...extra };
}

export const MAIN_RULES = [
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

export const expectAllow = (d: Decision): void => expect(d.decision, JSON.stringify(d)).toBe('allow');
export const expect401 = (d: Decision): void =>
  expect(d, JSON.stringify(d)).toMatchObject({ decision: 'deny', grpc_status: 16, http_status: 401 });
export const expectForbidden = (d: Decision): void => {
  expect(d, JSON.stringify(d)).toMatchObject({
    decision: 'deny',
    grpc_status: 7,
    http_status: 403,
    body: { error: 'forbidden' },
  });
  expect(d.headers['www-authenticate']).toBeUndefined();
};
export const expectInsufficient = (d: Decision, scope: string): void => {
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

export let svc: TestService;
export let denyDefault: TestService;
export let allowDefault: TestService;
export let sources: TestService;
export let forwarding: TestService;

/** Starts the services every authz test file checks against (the module-level lets above), and closes them after the file. */
export function useAuthzServices(): void {
  beforeAll(async () => {
    const tokenSources = [
      { header: 'authorization', prefix: 'Bearer ' },
      { query: 'access_token' },
      { cookie: 'access_token' },
    ];
    [svc, denyDefault, allowDefault, sources, forwarding] = await Promise.all([
      startTestService(
        config({
          rules: MAIN_RULES,
          default_action: 'authenticate',
          // what the context_extensions `audience` tests ask for
          upstream: {
            ...UPSTREAM,
            token: { ...UPSTREAM.token, allowed_audiences: ['backend', 'orders-svc', 'svc-a', 'svc-b'] },
          },
        }),
      ),
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
}
