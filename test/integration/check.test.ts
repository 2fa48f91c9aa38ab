import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, jwtVerify, SignJWT } from 'jose';
import { generateEcKeyPair, generateRsaKeyPair, makeJwks } from '../helpers/keys.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { jwtMinter } from '../helpers/tokens.js';

const ISS = 'https://idp.example.com';
const rsa = generateRsaKeyPair({ kid: 'rsa-1' });

const token = jwtMinter(
  rsa,
  {
    iss: ISS,
    aud: 'api://orders',
    sub: 'alice',
    scope: 'read orders:write',
    realm_access: { roles: ['eng', 'ops'] },
  },
  { ttlSeconds: 600 },
);

describe('Check through the real gRPC server', () => {
  let jwks: JwksServer;
  let svc: TestService;

  beforeAll(async () => {
    jwks = await startJwksServer({ jwks: makeJwks(rsa) });
    svc = await startTestService({
      realm: 'orders',
      issuers: [
        {
          name: 'corp',
          issuer: ISS,
          audiences: ['api://orders'],
          jwks_uri: jwks.url,
          claim_mappings: [{ from: 'realm_access.roles', to: 'roles' }],
        },
      ],
      rules: [
        { name: 'public', match: { path_prefix: '/public' }, action: 'allow' },
        { name: 'blocked', match: { path_prefix: '/internal' }, action: 'deny' },
        { name: 'admin', match: { path_prefix: '/admin' }, require: { scopes_all: ['admin'] } },
      ],
      upstream: {
        claim_headers: { 'x-user-id': 'sub', 'x-user-roles': 'roles' },
        token: { issuer: 'https://authz.internal', audiences: ['backend'], signing: { alg: 'ES256' } },
      },
    });
  });
  afterAll(async () => {
    await svc?.close();
    await jwks?.close();
  });

  it('allows a valid token, sets claim headers and a downstream JWT, removes the token, carries metadata', async () => {
    const d = await svc.check({ token: token() });
    expect(d.decision).toBe('allow');
    expect(d.headers['x-user-id']).toBe('alice');
    expect(d.headers['x-user-roles']).toBe('eng,ops');
    expect(d.headers_to_remove).toContain('authorization');
    expect(d.headers_to_remove).not.toContain('x-user-id');
    expect(d.dynamic_metadata).toMatchObject({ issuer: 'corp', sub: 'alice', scope: 'read orders:write' });
    expect(d.dynamic_metadata?.claims.roles).toEqual(['eng', 'ops']);
    // The downstream token verifies against our own published JWKS.
    const set = createRemoteJWKSet(new URL(`${svc.httpUrl}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(d.headers['x-jwt-assertion']!, set, {
      issuer: 'https://authz.internal',
      audience: 'backend',
    });
    expect(payload.sub).toBe('alice');
  });

  it('sets every header with append unset (Envoy replaces the client value: false is the default in a CheckResponse)', async () => {
    const raw = await svc.checkRaw({ token: token() });
    expect(raw.ok_response.headers.length).toBeGreaterThan(0);
    for (const h of raw.ok_response.headers) expect(h.append).toBeUndefined();
  });

  it('401 without error attribute when no token is sent', async () => {
    const d = await svc.check({});
    expect(d).toMatchObject({
      decision: 'deny',
      grpc_status: 16,
      http_status: 401,
      body: { error: 'unauthorized' },
    });
    expect(d.headers['www-authenticate']).toBe('Bearer realm="orders"');
    expect(d.headers['content-type']).toBe('application/json');
  });

  it('401 invalid_token with a description for a bad signature', async () => {
    const other = generateRsaKeyPair({ kid: 'rsa-1' });
    const forged = await new SignJWT({ sub: 'mallory' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .setIssuer(ISS)
      .setAudience('api://orders')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(other.privateKey);
    const d = await svc.check({ token: forged });
    expect(d).toMatchObject({ grpc_status: 16, http_status: 401, reason: 'signature_invalid' });
    expect(d.headers['www-authenticate']).toBe(
      'Bearer realm="orders", error="invalid_token", error_description="the token signature is invalid"',
    );
    expect(d.body).toEqual({ error: 'invalid_token', error_description: 'the token signature is invalid' });
    expect(svc.logs.text()).not.toContain(forged);
  });

  it('403 insufficient_scope names the needed scope', async () => {
    const d = await svc.check({ path: '/admin/users', token: token() });
    expect(d).toMatchObject({ grpc_status: 7, http_status: 403, reason: 'insufficient_scope' });
    expect(d.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect(d.headers['www-authenticate']).toContain('scope="admin"');
  });

  it('deny rule answers 403 forbidden without reading the token', async () => {
    const d = await svc.check({ path: '/internal/x', token: 'not-even-a-token' });
    expect(d).toMatchObject({ grpc_status: 7, http_status: 403, body: { error: 'forbidden' } });
    expect(d.headers['www-authenticate']).toBeUndefined();
  });

  it('allow rule ignores an invalid token and strips spoofed identity headers', async () => {
    const d = await svc.check({ path: '/public/info', token: 'garbage', headers: { 'x-user-id': 'admin' } });
    expect(d.decision).toBe('allow');
    expect(d.headers['x-user-id']).toBeUndefined();
    expect(d.headers_to_remove).toEqual(
      expect.arrayContaining(['x-user-id', 'x-user-roles', 'x-jwt-assertion']),
    );
    expect(d.dynamic_metadata).toBeUndefined();
  });

  it('a malformed or empty CheckRequest gets a deny, not a gRPC error', async () => {
    const empty = await svc.checkRaw({ attributes: {} });
    expect(empty.status.code).not.toBe(0);
    expect(empty.denied_response.status.code).toBe(400);
    const noHeaders = await svc.checkRaw({ attributes: { request: { http: { path: '/api' } } } });
    expect(noHeaders.status.code).toBe(16);
  });

  it('a valid token signed by an unknown issuer is refused', async () => {
    const ec = generateEcKeyPair({ kid: 'rsa-1' });
    const t = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'ES256', kid: 'rsa-1' })
      .setIssuer('https://evil.example.com')
      .setAudience('api://orders')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(ec.privateKey);
    expect((await svc.check({ token: t })).reason).toBe('issuer_unknown');
  });

  it('health and readiness report per-issuer key status', async () => {
    expect((await fetch(`${svc.httpUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${svc.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as any;
    expect(body.issuers.corp).toMatchObject({ state: 'ready', keys: 1, loaded: true });
  });

  it('exposes Prometheus metrics with decision counters', async () => {
    const text = await (await fetch(`${svc.httpUrl}/metrics`)).text();
    expect(text).toMatch(/authz_check_total\{decision="allow",reason="authenticated",issuer="corp"\} \d+/);
    expect(text).toContain('authz_check_duration_seconds_bucket');
    expect(text).toMatch(/authz_jwks_keys\{issuer="corp"\} 1/);
  });
});
