// Paths that backends read differently from Envoy (path parameters, double
// encoding, overlong UTF-8, control characters, backslashes) are refused before
// any rule, and `match.case_sensitive: false` rules cannot be bypassed by case.
// Exercised through the real gRPC Check API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';
import { jwtMinter } from '../helpers/tokens.js';

const ISS = 'https://idp.example.com';
const key = generateEcKeyPair({ kid: 'paths-1' });

const mint = jwtMinter(key, { iss: ISS, aud: 'api://orders', sub: 'alice' }, { ttlSeconds: 600 });
const token = (scope: string): string => mint({ scope });

const RULES = [
  { name: 'public', match: { path_prefix: '/public' }, action: 'allow' },
  {
    name: 'admin',
    match: { path_prefix: '/Admin', case_sensitive: false },
    require: { scopes_all: ['admin'] },
  },
  { name: 'internal', match: { path_separated_prefix: '/Internal', case_sensitive: false }, action: 'deny' },
  { name: 'secret', match: { path: '/secret' }, action: 'deny' },
  { name: 'reports', match: { path_regex: '/reports/[a-z]+', case_sensitive: false }, action: 'deny' },
  { name: 'cafe', match: { path: '/café' }, action: 'deny' },
  { name: 'tea', match: { path_prefix: '/th%C3%A9' }, action: 'deny' },
];

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    realm: 'orders',
    issuers: [
      { name: 'corp', issuer: ISS, audiences: ['api://orders'], algorithms: ['ES256'], jwks: makeJwks(key) },
    ],
    rules: RULES,
    ...extra,
  };
}

const AMBIGUOUS = [
  '/public/..;/admin',
  '/public/..%3B/admin',
  '/public;jsessionid=1/../admin',
  '/public/%252e%252e/admin',
  '/public/%C0%AE%C0%AE/admin',
  '/public/%E0%80%AE%E0%80%AE/admin',
  '/public/%00/../admin',
  '/public/%0a',
  '/public\\..\\admin',
  '/public/%5C..%5Cadmin',
  '/public/%ff',
  '/public/%zz',
  '/public/%2',
  '/public/a b',
  '/public/"x"',
];

function expectInvalidRequest(d: Decision): void {
  expect(d, JSON.stringify(d)).toMatchObject({
    decision: 'deny',
    grpc_status: 7,
    reason: 'request_invalid',
    http_status: 400,
    body: { error: 'invalid_request' },
  });
  expect(d.headers['content-type']).toBe('application/json');
  expect(d.headers['www-authenticate']).toBeUndefined();
}

const expectAllow = (d: Decision): void => expect(d.decision, JSON.stringify(d)).toBe('allow');
const expect401 = (d: Decision): void =>
  expect(d, JSON.stringify(d)).toMatchObject({ grpc_status: 16, http_status: 401, reason: 'token_missing' });
const expectForbidden = (d: Decision): void =>
  expect(d, JSON.stringify(d)).toMatchObject({
    grpc_status: 7,
    http_status: 403,
    reason: 'rule_deny',
    body: { error: 'forbidden' },
  });
const expectInsufficient = (d: Decision): void =>
  expect(d, JSON.stringify(d)).toMatchObject({
    grpc_status: 7,
    http_status: 403,
    reason: 'insufficient_scope',
  });

describe('ambiguous paths (reject_ambiguous_paths: true, the default)', () => {
  let svc: TestService;
  beforeAll(async () => {
    // Every refusal logged: these tests send dozens of them within a second, beyond the
    // default per-reason log budget (log.denials_per_second).
    svc = await startTestService(config({ log: { denials_per_second: 0 } }));
  });
  afterAll(() => svc.close());

  for (const path of AMBIGUOUS) {
    it(`${JSON.stringify(path)} → 400 invalid_request, with or without a token`, async () => {
      expectInvalidRequest(await svc.check({ path }));
      expectInvalidRequest(await svc.check({ path, token: token('admin') }));
    });
  }

  it('/public/..;/admin is refused, not allowed by the /public rule', async () => {
    expectInvalidRequest(await svc.check({ path: '/public/..;/admin' }));
  });

  it('is refused before any rule: a deny rule, context action=allow, a named rule', async () => {
    expectInvalidRequest(await svc.check({ path: '/internal;x' }));
    expectInvalidRequest(await svc.check({ path: '/public/..;/admin', context: { action: 'allow' } }));
    expectInvalidRequest(await svc.check({ path: '/x;y', context: { rule: 'public' } }));
  });

  it('an invalid token on an ambiguous path is not read (400, not 401)', async () => {
    expectInvalidRequest(await svc.check({ path: '/admin;x', token: 'not-a-token' }));
  });

  it('counts and logs the refusal under reason request_invalid', async () => {
    await svc.check({ path: '/public/%252e%252e/admin', headers: { 'x-request-id': 'ambiguous-1' } });
    // The CLI request builder sets its own x-request-id; Envoy-style joining appends ours.
    const line = svc.logs.lines.find((l: any) => String(l.request_id).endsWith('ambiguous-1')) as any;
    expect(line).toMatchObject({ decision: 'deny', reason: 'request_invalid' });
    const metrics = await (await fetch(`${svc.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/authz_check_total\{decision="deny",reason="request_invalid",issuer=""\} [1-9]/);
  });

  it('ordinary paths keep their answers', async () => {
    expectAllow(await svc.check({ path: '/public/x?next=;%25' }));
    expectAllow(await svc.check({ path: '/public/%2e%2e/public/x' }));
    expect401(await svc.check({ path: '/public/../admin' }));
    expect401(await svc.check({ path: '/%7Euser' }));
  });

  it('valid percent-encoded UTF-8 is accepted; a rule on /café matches /caf%C3%A9', async () => {
    expectForbidden(await svc.check({ path: '/caf%C3%A9' }));
    expectForbidden(await svc.check({ path: '/caf%c3%a9' }));
    expectForbidden(await svc.check({ path: '/th%C3%A9/vert' }));
    expectAllow(await svc.check({ path: '/public/caf%C3%A9' }));
    // Raw non-ASCII is outside RFC 3986 (Envoy never forwards it unencoded).
    expectInvalidRequest(await svc.check({ path: '/café' }));
  });

  it('/public%2Fx is not refused, and still never satisfies the allow rule', async () => {
    expect401(await svc.check({ path: '/public%2F..%2Fadmin' }));
  });
});

describe('reject_ambiguous_paths: false', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService(config({ reject_ambiguous_paths: false }));
  });
  afterAll(() => svc.close());

  it('restores the previous answers', async () => {
    // Rule matching sees "..;" as a segment name, so the /public rule applies.
    expectAllow(await svc.check({ path: '/public/..;/admin' }));
    expectAllow(await svc.check({ path: '/public/%252e%252e/admin' }));
    expectAllow(await svc.check({ path: '/public/%C0%AE%C0%AE/admin' }));
    // Invalid escapes and backslashes are still kept from satisfying an allow.
    expect401(await svc.check({ path: '/public/%zz' }));
    expect401(await svc.check({ path: '/public\\..\\admin' }));
  });

  it('is a boolean: a string is a config error naming the key', async () => {
    await expect(startTestService(config({ reject_ambiguous_paths: 'no' }))).rejects.toThrow(
      /reject_ambiguous_paths: must be true or false/,
    );
  });
});

describe('match.case_sensitive: false', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService(config());
  });
  afterAll(() => svc.close());

  it('a rule on /Admin requiring a scope applies to /admin and /ADMIN', async () => {
    for (const path of ['/Admin/x', '/admin/x', '/ADMIN/x', '/aDmIn']) {
      expect401(await svc.check({ path }));
      expectInsufficient(await svc.check({ path, token: token('read') }));
      expectAllow(await svc.check({ path, token: token('admin') }));
    }
  });

  it('a deny rule cannot be bypassed by case', async () => {
    for (const path of ['/Internal', '/internal/x', '/INTERNAL/x', '/iNtErNaL/%2e/x']) {
      expectForbidden(await svc.check({ path, token: token('admin') }));
    }
    // Separated prefix still holds: /internals is another route.
    expect401(await svc.check({ path: '/INTERNALS' }));
  });

  it('path_regex gets the i flag', async () => {
    expectForbidden(await svc.check({ path: '/REPORTS/Q' }));
    expectForbidden(await svc.check({ path: '/reports/q' }));
  });

  it('rules are case-sensitive by default', async () => {
    expectForbidden(await svc.check({ path: '/secret' }));
    expect401(await svc.check({ path: '/SECRET' }));
  });

  it('case_sensitive without a path matcher is a config error naming the field', async () => {
    const bad = config({
      rules: [{ name: 'm', match: { methods: ['GET'], case_sensitive: false }, action: 'deny' }],
    });
    await expect(startTestService(bad)).rejects.toThrow(
      /rules\[0\]\.match\.case_sensitive: only applies to path/,
    );
  });
});
