import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importPKCS8,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type JWK,
} from 'jose';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildKeySet } from '../../src/authn/keys/jwk.js';
import { verifyJwt, type CompiledIssuer } from '../../src/authn/verify.js';
import { loadConfigObject } from '../../src/config/load.js';
import type { TokenEndpointConfig } from '../../src/config/types.js';
import { staticKeySource } from '../../src/oauth/client-keys.js';
import { SELF_SKEW_SECONDS } from '../../src/oauth/token-service.js';
import { createTokenService, registerOAuthRoutes, type TokenService } from '../../src/oauth/index.js';
import { Metrics } from '../../src/observability/metrics.js';
import { hashToken, MemoryStore, RedisStore, type Store } from '../../src/store/index.js';
import {
  getRedisUrl,
  redisServerOnPath,
  redisSkipReason,
  RedisServerProcess,
  uniquePrefix,
} from '../helpers/redis.js';

// End-to-end over real HTTP: a fastify app with registerOAuthRoutes on 127.0.0.1:0,
// called with fetch. Seeds 000 / 003 (Axway JWT flow) and 001 (WSO2 JWT grant).

const ISSUER = 'https://authz.example.com';
const AUD = 'https://authz.example.com/oauth2/token';
const IDP_ISS = 'https://localhost:9444/oauth2/token';
const CERT_CLIENT = 'SampleConfidentialApp';
const SECRET_CLIENT = 'portal';
const PORTAL_SECRET = 'portal-s3cret:with/odd+chars';
const OTHER_CLIENT = 'other';
const OTHER_SECRET = 'other-secret';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let dir: string;
let clientKey: CryptoKey;
let otherKey: CryptoKey;
let idpPrivate: CryptoKey;
let idpPublicJwk: JWK;
let wso2is: CompiledIssuer;
const logLines: string[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  }),
);

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oauth-it-'));
  // The Axway client: an RSA key and its self-signed certificate, registered with the service.
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'client.key',
    '-out',
    'client.crt',
    '-days',
    '2',
    '-subj',
    `/CN=${CERT_CLIENT}`,
  ]);
  // Another key, never registered.
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'other.key']);
  const { readFileSync } = await import('node:fs');
  clientKey = await importPKCS8(readFileSync(join(dir, 'client.key'), 'utf8'), 'RS256');
  otherKey = await importPKCS8(readFileSync(join(dir, 'other.key'), 'utf8'), 'RS256');
  // Access-token signing key (ES256 private JWK).
  const signing = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(
    join(dir, 'signing.jwk.json'),
    JSON.stringify({ ...(await exportJWK(signing.privateKey)), kid: 'at-1' }),
  );
  writeFileSync(join(dir, 'portal.secret'), `${PORTAL_SECRET}\n`);
  writeFileSync(join(dir, 'other.secret'), OTHER_SECRET);
  // The external identity provider (WSO2 IS): an ES256 key published as an inline JWKS.
  const idp = await generateKeyPair('ES256', { extractable: true });
  idpPrivate = idp.privateKey;
  idpPublicJwk = { ...(await exportJWK(idp.publicKey)), kid: 'idp-1', use: 'sig' };
  wso2is = {
    name: 'wso2is',
    issuer: IDP_ISS,
    // The issuer entry's own audiences; they must NOT apply to assertions (docs/token-endpoint.md "Overview").
    audiences: new Set(['api://orders']),
    algorithms: new Set(['ES256']),
    keySource: staticKeySource(buildKeySet({ keys: [idpPublicJwk] }, { issuer: 'wso2is' }), 'local-jwks'),
    clockSkewSeconds: 60,
    requiredClaims: ['iss', 'sub', 'exp'],
    maxLifetimeSeconds: 86400,
  };
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Options {
  format?: 'jwt' | 'opaque';
  refresh?: boolean;
  tokenEndpoint?: Record<string, unknown>;
}

function endpointConfig(opts: Options = {}): TokenEndpointConfig {
  const loaded = loadConfigObject(
    {
      issuers: [
        { name: 'wso2is', issuer: IDP_ISS, audiences: ['api://orders'], jwks: { keys: [idpPublicJwk] } },
      ],
      token_endpoint: {
        enabled: true,
        issuer: ISSUER,
        audience: AUD,
        access_token: {
          format: opts.format ?? 'jwt',
          signing: { alg: 'ES256', key_file: 'signing.jwk.json' },
        },
        refresh_token: { enabled: opts.refresh ?? false },
        clients: [
          {
            client_id: CERT_CLIENT,
            certificate_file: 'client.crt',
            scopes: ['read', 'write'],
            token_claims: { department: 'engineering' },
          },
          { client_id: SECRET_CLIENT, client_secret_file: 'portal.secret', scopes: ['read'] },
          { client_id: OTHER_CLIENT, client_secret_file: 'other.secret', scopes: ['read', 'write'] },
        ],
        grant_issuers: ['wso2is'],
        ...opts.tokenEndpoint,
      },
    },
    dir,
    {},
  );
  return loaded.config.token_endpoint;
}

const metrics = new Metrics({ processMetrics: false });

async function makeService(
  store: Store,
  opts: Options & { storeCacheMs?: number } = {},
): Promise<TokenService> {
  return createTokenService(endpointConfig(opts), {
    baseDir: dir,
    logger,
    metrics,
    store,
    issuersByName: new Map([['wso2is', wso2is]]),
    realm: 'test-realm',
    storeCacheMs: opts.storeCacheMs ?? 0,
  });
}

interface Server {
  app: FastifyInstance;
  base: string;
  setService(s: TokenService | undefined): void;
}

async function startServer(svc: TokenService | undefined): Promise<Server> {
  const app = Fastify({ logger: false });
  let current = svc;
  registerOAuthRoutes(app, () => current);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { app, base: `http://127.0.0.1:${port}`, setService: (s) => (current = s) };
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function post(
  server: Server,
  path: string,
  params: Record<string, string> | string,
  init: { auth?: string; contentType?: string } = {},
): Promise<{ status: number; headers: Headers; text: string; json: Record<string, unknown> }> {
  const res = await fetch(server.base + path, {
    method: 'POST',
    headers: {
      'content-type': init.contentType ?? 'application/x-www-form-urlencoded',
      ...(init.auth ? { authorization: init.auth } : {}),
    },
    body: typeof params === 'string' ? params : new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, json };
}

const nowSec = () => Math.floor(Date.now() / 1000);

async function clientAssertion(
  claims: Record<string, unknown> = {},
  key: CryptoKey = clientKey,
  header: Record<string, unknown> = { alg: 'RS256' },
): Promise<string> {
  const t = nowSec();
  const body = {
    iss: CERT_CLIENT,
    sub: CERT_CLIENT,
    aud: AUD,
    iat: t,
    exp: t + 120,
    jti: randomUUID(),
    ...claims,
  };
  for (const k of Object.keys(body))
    if (body[k as keyof typeof body] === undefined) delete body[k as keyof typeof body];
  return new SignJWT(body).setProtectedHeader(header as { alg: string }).sign(key);
}

async function idpAssertion(claims: Record<string, unknown> = {}): Promise<string> {
  const t = nowSec();
  const body = {
    iss: IDP_ISS,
    sub: 'admin',
    aud: AUD,
    iat: t,
    nbf: t,
    exp: t + 120,
    jti: randomUUID(),
    ...claims,
  };
  return new SignJWT(body).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).sign(idpPrivate);
}

const grant = (assertion: string, extra: Record<string, string> = {}) => ({
  grant_type: JWT_BEARER,
  assertion,
  ...extra,
});

// ---------------------------------------------------------------------------------------

describe('token endpoint (memory store, JWT access tokens)', () => {
  let store: MemoryStore;
  let svc: TokenService;
  let server: Server;
  beforeAll(async () => {
    store = new MemoryStore();
    svc = await makeService(store);
    server = await startServer(svc);
  });
  afterAll(async () => {
    await server.app.close();
    await svc.close();
    await store.close();
  });

  it('Axway JWT flow: a certificate-signed assertion gets an RFC 9068 access token', async () => {
    const res = await post(server, '/oauth2/token', grant(await clientAssertion()));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('pragma')).toBe('no-cache');
    expect(res.json).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'read write' });
    expect(res.json.refresh_token).toBeUndefined();
    const token = res.json.access_token as string;
    expect(decodeProtectedHeader(token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256', kid: 'at-1' });
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: svc.publicJwks() }), {
      issuer: ISSUER,
      audience: ISSUER,
      typ: 'at+jwt',
    });
    expect(payload).toMatchObject({
      sub: CERT_CLIENT,
      client_id: CERT_CLIENT,
      scope: 'read write',
      department: 'engineering',
    });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(typeof payload.jti).toBe('string');
    // Check accepts it as issuer "self".
    const verified = await verifyJwt(token, (iss) => (iss === ISSUER ? svc.self.issuer : undefined));
    expect(verified.ok).toBe(true);
    expect(svc.self.issuer.name).toBe('self');
    expect(await svc.self.isRevoked(payload as Record<string, unknown>)).toBe(false);
    expect(svc.self.issuesOpaqueTokens).toBe(false);
  });

  it('accepts an assertion with a kid header and without sub (iss = client_id)', async () => {
    const a = await clientAssertion({ sub: undefined }, clientKey, { alg: 'RS256', kid: 'whatever' });
    const res = await post(server, '/oauth2/token', grant(a, { scope: 'read' }));
    expect(res.status).toBe(200);
    expect(res.json.scope).toBe('read');
  });

  it('WSO2 JWT grant: an external IdP assertion with HTTP Basic client authentication', async () => {
    const res = await post(server, '/oauth2/token', grant(await idpAssertion()), {
      auth: basic(SECRET_CLIENT, PORTAL_SECRET),
    });
    expect(res.status).toBe(200);
    const { payload } = await jwtVerify(
      res.json.access_token as string,
      createLocalJWKSet({ keys: svc.publicJwks() }),
    );
    expect(payload).toMatchObject({ iss: ISSUER, sub: 'admin', client_id: SECRET_CLIENT, scope: 'read' });
    expect(payload.department).toBeUndefined();
  });

  it('WSO2 grant without or with wrong client credentials: 401 invalid_client with a Basic challenge', async () => {
    const none = await post(server, '/oauth2/token', grant(await idpAssertion()));
    expect(none.status).toBe(401);
    expect(none.json.error).toBe('invalid_client');
    expect(none.headers.get('www-authenticate')).toBe('Basic realm="test-realm"');
    expect(none.headers.get('cache-control')).toBe('no-store');
    const wrong = await post(server, '/oauth2/token', grant(await idpAssertion()), {
      auth: basic(SECRET_CLIENT, 'nope'),
    });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error).toBe('invalid_client');
    const unknown = await post(server, '/oauth2/token', grant(await idpAssertion()), {
      auth: basic('ghost', 'x'),
    });
    expect(unknown.status).toBe(401);
    const garbage = await post(server, '/oauth2/token', grant(await idpAssertion()), { auth: 'Basic !!!' });
    expect(garbage.status).toBe(401);
  });

  it('WSO2 grant: the IdP entry audiences do not apply; aud must be the token endpoint', async () => {
    const res = await post(server, '/oauth2/token', grant(await idpAssertion({ aud: 'api://orders' })), {
      auth: basic(SECRET_CLIENT, PORTAL_SECRET),
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_grant');
  });

  it('WSO2 grant: sub is required', async () => {
    const res = await post(server, '/oauth2/token', grant(await idpAssertion({ sub: undefined })), {
      auth: basic(SECRET_CLIENT, PORTAL_SECRET),
    });
    expect(res.json.error).toBe('invalid_grant');
  });

  it('a replayed assertion (same jti) is invalid_grant', async () => {
    const a = await clientAssertion();
    expect((await post(server, '/oauth2/token', grant(a))).status).toBe(200);
    const again = await post(server, '/oauth2/token', grant(a));
    expect(again.status).toBe(400);
    expect(again.json.error).toBe('invalid_grant');
    expect(String(again.json.error_description)).toMatch(/already been used/);
    // Also for IdP assertions.
    const b = await idpAssertion();
    expect(
      (await post(server, '/oauth2/token', grant(b), { auth: basic(SECRET_CLIENT, PORTAL_SECRET) })).status,
    ).toBe(200);
    expect(
      (await post(server, '/oauth2/token', grant(b), { auth: basic(SECRET_CLIENT, PORTAL_SECRET) })).json
        .error,
    ).toBe('invalid_grant');
  });

  it('a scope error does not burn the assertion', async () => {
    const a = await clientAssertion();
    expect((await post(server, '/oauth2/token', grant(a, { scope: 'admin' }))).json.error).toBe(
      'invalid_scope',
    );
    expect((await post(server, '/oauth2/token', grant(a, { scope: 'write' }))).status).toBe(200);
  });

  it('exp more than five minutes ahead is invalid_grant (no skew on this bound)', async () => {
    const sixMinutes = await post(
      server,
      '/oauth2/token',
      grant(await clientAssertion({ exp: nowSec() + 360 })),
    );
    expect(sixMinutes.status).toBe(400);
    expect(sixMinutes.json.error).toBe('invalid_grant');
    expect(String(sixMinutes.json.error_description)).toMatch(/300 seconds/);
    const justOver = await post(
      server,
      '/oauth2/token',
      grant(await clientAssertion({ exp: nowSec() + 302 })),
    );
    expect(justOver.json.error).toBe('invalid_grant');
    const within = await post(server, '/oauth2/token', grant(await clientAssertion({ exp: nowSec() + 290 })));
    expect(within.status).toBe(200);
  });

  it('expired, not-yet-valid, missing exp or jti: invalid_grant', async () => {
    for (const claims of [
      { exp: nowSec() - 120 },
      { nbf: nowSec() + 600 },
      { iat: nowSec() + 600 },
      { exp: undefined },
      { jti: undefined },
      { jti: 42 },
    ]) {
      const res = await post(server, '/oauth2/token', grant(await clientAssertion(claims)));
      expect(res.status, JSON.stringify(claims)).toBe(400);
      expect(res.json.error).toBe('invalid_grant');
    }
  });

  it('wrong aud is invalid_grant; aud as a list containing the token endpoint is fine', async () => {
    expect(
      (
        await post(
          server,
          '/oauth2/token',
          grant(await clientAssertion({ aud: 'http://apigateway/api/oauth/token' })),
        )
      ).json.error,
    ).toBe('invalid_grant');
    expect(
      (await post(server, '/oauth2/token', grant(await clientAssertion({ aud: ['x', AUD] })))).status,
    ).toBe(200);
  });

  it('unknown client (iss) is invalid_grant', async () => {
    const res = await post(
      server,
      '/oauth2/token',
      grant(await clientAssertion({ iss: 'Stranger', sub: 'Stranger' })),
    );
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_grant');
  });

  it('an assertion signed by another key than the registered certificate is invalid_grant', async () => {
    const res = await post(server, '/oauth2/token', grant(await clientAssertion({}, otherKey)));
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_grant');
    expect(String(res.json.error_description)).toMatch(/signature/);
  });

  it('sub other than the client_id is invalid_grant', async () => {
    expect(
      (await post(server, '/oauth2/token', grant(await clientAssertion({ sub: 'someone-else' })))).json.error,
    ).toBe('invalid_grant');
  });

  it('a client without a certificate using its own assertion is unauthorized_client', async () => {
    const a = await clientAssertion({ iss: SECRET_CLIENT, sub: SECRET_CLIENT });
    const res = await post(server, '/oauth2/token', grant(a));
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('unauthorized_client');
  });

  it('RFC 6749 §5.2 request errors', async () => {
    const missingGrant = await post(server, '/oauth2/token', { assertion: 'x' });
    expect([missingGrant.status, missingGrant.json.error]).toEqual([400, 'invalid_request']);
    const unsupported = await post(server, '/oauth2/token', {
      grant_type: 'password',
      username: 'a',
      password: 'b',
    });
    expect([unsupported.status, unsupported.json.error]).toEqual([400, 'unsupported_grant_type']);
    const refreshDisabled = await post(server, '/oauth2/token', {
      grant_type: 'refresh_token',
      refresh_token: 'abc',
    });
    expect(refreshDisabled.json.error).toBe('unsupported_grant_type');
    const missingAssertion = await post(server, '/oauth2/token', { grant_type: JWT_BEARER });
    expect([missingAssertion.status, missingAssertion.json.error]).toEqual([400, 'invalid_request']);
    const notJwt = await post(server, '/oauth2/token', grant('not.a-jwt'));
    expect([notJwt.status, notJwt.json.error]).toEqual([400, 'invalid_grant']);
    const scope = await post(
      server,
      '/oauth2/token',
      grant(await clientAssertion(), { scope: 'read admin' }),
    );
    expect([scope.status, scope.json.error]).toEqual([400, 'invalid_scope']);
    const twice = await post(
      server,
      '/oauth2/token',
      `grant_type=${encodeURIComponent(JWT_BEARER)}&assertion=a&assertion=b`,
    );
    expect([twice.status, twice.json.error]).toEqual([400, 'invalid_request']);
    const badFormat = await post(server, '/oauth2/token', grant(await clientAssertion(), { format: 'yaml' }));
    expect([badFormat.status, badFormat.json.error]).toEqual([400, 'invalid_request']);
    for (const r of [missingGrant, unsupported, missingAssertion, notJwt, scope, twice]) {
      expect(r.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('form bodies only, capped at max_body_bytes', async () => {
    const json = await post(server, '/oauth2/token', JSON.stringify({ grant_type: JWT_BEARER }), {
      contentType: 'application/json',
    });
    expect(json.status).toBe(415);
    expect(json.json.error).toBe('invalid_request');
    const text = await post(server, '/oauth2/token', 'grant_type=x', { contentType: 'text/plain' });
    expect(text.status).toBe(415);
    const big = await post(server, '/oauth2/token', {
      grant_type: JWT_BEARER,
      assertion: 'a'.repeat(70_000),
    });
    expect(big.status).toBe(413);
    expect(big.json.error).toBe('invalid_request');
    // Chunked (no content-length) is capped as well.
    const chunks = new ReadableStream({
      start(c) {
        for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode('a'.repeat(5000)));
        c.close();
      },
    });
    const res = await fetch(`${server.base}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: chunks,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
  });

  it('format=urlencoded and format=xml (success and error)', async () => {
    const url = await post(server, '/oauth2/token', grant(await clientAssertion(), { format: 'urlencoded' }));
    expect(url.status).toBe(200);
    expect(url.headers.get('content-type')).toMatch(/^application\/x-www-form-urlencoded/);
    const form = new URLSearchParams(url.text);
    expect(form.get('token_type')).toBe('Bearer');
    expect(form.get('expires_in')).toBe('3600');
    expect(form.get('scope')).toBe('read write');
    expect(form.get('access_token')).toMatch(/^ey/);

    const xml = await post(server, '/oauth2/token', grant(await clientAssertion(), { format: 'xml' }));
    expect(xml.status).toBe(200);
    expect(xml.headers.get('content-type')).toMatch(/^application\/xml/);
    expect(xml.text).toMatch(
      /<token_response><access_token>ey[^<]+<\/access_token><token_type>Bearer<\/token_type><expires_in>3600<\/expires_in><scope>read write<\/scope><\/token_response>$/,
    );

    const xmlErr = await post(server, '/oauth2/token', grant('x.y.z', { format: 'xml' }));
    expect(xmlErr.status).toBe(400);
    expect(xmlErr.headers.get('content-type')).toMatch(/^application\/xml/);
    expect(xmlErr.text).toMatch(
      /<error_response><error>invalid_grant<\/error><error_description>[^<]+<\/error_description><\/error_response>$/,
    );
    const urlErr = await post(server, '/oauth2/token', grant('x.y.z', { format: 'urlencoded' }));
    expect(new URLSearchParams(urlErr.text).get('error')).toBe('invalid_grant');
  });

  it('revoke and introspect JWT access tokens: own vs another client', async () => {
    const issued = await post(server, '/oauth2/token', grant(await idpAssertion()), {
      auth: basic(SECRET_CLIENT, PORTAL_SECRET),
    });
    const token = issued.json.access_token as string;
    const own = basic(SECRET_CLIENT, PORTAL_SECRET);
    const other = basic(OTHER_CLIENT, OTHER_SECRET);

    const mine = await post(server, '/oauth2/introspect', { token }, { auth: own });
    expect(mine.status).toBe(200);
    expect(mine.json).toMatchObject({
      active: true,
      sub: 'admin',
      client_id: SECRET_CLIENT,
      scope: 'read',
      iss: ISSUER,
    });
    expect(mine.headers.get('cache-control')).toBe('no-store');
    expect((await post(server, '/oauth2/introspect', { token }, { auth: other })).json).toEqual({
      active: false,
    });

    const noAuth = await post(server, '/oauth2/introspect', { token });
    expect([noAuth.status, noAuth.json.error]).toEqual([401, 'invalid_client']);
    expect((await post(server, '/oauth2/revoke', { token })).status).toBe(401);
    expect((await post(server, '/oauth2/revoke', {}, { auth: own })).json.error).toBe('invalid_request');

    // Another client's revocation: 200, nothing changes.
    const foreign = await post(server, '/oauth2/revoke', { token }, { auth: other });
    expect(foreign.status).toBe(200);
    expect((await post(server, '/oauth2/introspect', { token }, { auth: own })).json.active).toBe(true);

    // The revocation must outlive exp by Check's clock skew on our own tokens, or a
    // revoked token would be accepted again between exp and exp + skew.
    const ttls: number[] = [];
    const revokeJti = store.revokeJti.bind(store);
    store.revokeJti = (jti: string, ttl: number) => {
      ttls.push(ttl);
      return revokeJti(jti, ttl);
    };
    const revoked = await post(
      server,
      '/oauth2/revoke',
      { token, token_type_hint: 'access_token' },
      { auth: own },
    );
    store.revokeJti = revokeJti;
    expect(revoked.status).toBe(200);
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number };
    expect(ttls).toHaveLength(1);
    expect(ttls[0]).toBeGreaterThanOrEqual(claims.exp + SELF_SKEW_SECONDS - nowSec() - 1);
    expect((await post(server, '/oauth2/introspect', { token }, { auth: own })).json).toEqual({
      active: false,
    });
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: svc.publicJwks() }));
    expect(await svc.self.isRevoked(payload as Record<string, unknown>)).toBe(true);

    // Unknown tokens: 200 / inactive.
    expect((await post(server, '/oauth2/revoke', { token: 'unknown-token' }, { auth: own })).status).toBe(
      200,
    );
    expect(
      (await post(server, '/oauth2/introspect', { token: 'unknown-token' }, { auth: own })).json,
    ).toEqual({ active: false });
  });

  it('a certificate client authenticates to introspect with a client assertion (RFC 7523 §2.2)', async () => {
    const issued = await post(server, '/oauth2/token', grant(await clientAssertion()));
    const res = await post(server, '/oauth2/introspect', {
      token: issued.json.access_token as string,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: await clientAssertion(),
    });
    expect(res.json).toMatchObject({ active: true, client_id: CERT_CLIENT });
    const forged = await post(server, '/oauth2/introspect', {
      token: issued.json.access_token as string,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: await clientAssertion({}, otherKey),
    });
    expect([forged.status, forged.json.error]).toEqual([401, 'invalid_client']);
  });

  it('routes answer 404 while the endpoint is disabled', async () => {
    const off = await startServer(undefined);
    try {
      const res = await post(off, '/oauth2/token', grant('x'));
      expect(res.status).toBe(404);
      expect((await post(off, '/oauth2/introspect', { token: 'x' })).status).toBe(404);
      off.setService(svc);
      expect((await post(off, '/oauth2/token', grant(await clientAssertion()))).status).toBe(200);
    } finally {
      await off.app.close();
    }
  });

  it('counts requests in authz_token_requests_total', async () => {
    const text = await metrics.registry.getSingleMetricAsString('authz_token_requests_total');
    expect(text).toMatch(/grant_type="jwt_bearer",result="success"/);
    expect(text).toMatch(/grant_type="jwt_bearer",result="invalid_grant"/);
  });

  it('never logs tokens, assertions or secrets', async () => {
    const a = await clientAssertion();
    const res = await post(server, '/oauth2/token', grant(a));
    await post(server, '/oauth2/token', grant(a));
    const all = logLines.join('\n');
    expect(all).toContain('token request');
    expect(all).not.toContain(a);
    expect(all).not.toContain(a.split('.')[2]!);
    expect(all).not.toContain(res.json.access_token as string);
    expect(all).not.toContain(PORTAL_SECRET);
    expect(all).not.toContain(OTHER_SECRET);
  });
});

describe('token endpoint (opaque access tokens, refresh tokens)', () => {
  let store: MemoryStore;
  let svc: TokenService;
  let server: Server;
  beforeAll(async () => {
    store = new MemoryStore();
    svc = await makeService(store, { format: 'opaque', refresh: true });
    server = await startServer(svc);
  });
  afterAll(async () => {
    await server.app.close();
    await svc.close();
    await store.close();
  });

  it('opaque tokens: exactly opaque_length base64url chars, stored only as their SHA-256 hash', async () => {
    const res = await post(server, '/oauth2/token', grant(await clientAssertion()));
    expect(res.status).toBe(200);
    const token = res.json.access_token as string;
    const refresh = res.json.refresh_token as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{54}$/);
    expect(refresh).toMatch(/^[A-Za-z0-9_-]{46}$/);
    expect(svc.self.issuesOpaqueTokens).toBe(true);
    expect(svc.publicJwks()).toEqual([]);
    const keys = store.raw.keys();
    const dump = JSON.stringify(keys.map((k) => [k, store.raw.peek(k)]));
    expect(dump).not.toContain(token);
    expect(dump).not.toContain(refresh);
    expect(keys).toContain(`at:${hashToken(token)}`);
    expect(keys).toContain(`rt:${hashToken(refresh)}`);
    const found = await svc.self.lookupOpaque(token);
    expect(found.status).toBe('active');
    expect(found.status === 'active' && found.claims).toMatchObject({
      iss: ISSUER,
      sub: CERT_CLIENT,
      client_id: CERT_CLIENT,
      scope: 'read write',
      department: 'engineering',
    });
    expect(await svc.self.lookupOpaque('x'.repeat(54))).toEqual({ status: 'inactive' });
    expect(await svc.self.lookupOpaque('not base64url!')).toEqual({ status: 'inactive' });
  });

  const refreshWithAssertion = async (refresh: string, extra: Record<string, string> = {}) =>
    post(server, '/oauth2/token', {
      grant_type: 'refresh_token',
      refresh_token: refresh,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: await clientAssertion(),
      ...extra,
    });

  it('refresh rotates the refresh token; reuse of a rotated one revokes the whole family', async () => {
    const first = await post(server, '/oauth2/token', grant(await clientAssertion()));
    const r1 = first.json.refresh_token as string;
    const a1 = first.json.access_token as string;

    const noAuth = await post(server, '/oauth2/token', { grant_type: 'refresh_token', refresh_token: r1 });
    expect([noAuth.status, noAuth.json.error]).toEqual([401, 'invalid_client']);
    expect(noAuth.headers.get('www-authenticate')).toMatch(/^Basic realm=/);

    const second = await refreshWithAssertion(r1, { scope: 'read' });
    expect(second.status).toBe(200);
    expect(second.json.scope).toBe('read');
    const r2 = second.json.refresh_token as string;
    const a2 = second.json.access_token as string;
    expect(r2).not.toBe(r1);
    expect((await svc.self.lookupOpaque(a2)).status).toBe('active');

    // The refresh token keeps the original grant's scope.
    const third = await refreshWithAssertion(r2);
    expect(third.json.scope).toBe('read write');
    const r3 = third.json.refresh_token as string;
    const a3 = third.json.access_token as string;

    // Reuse of r1 (already rotated): invalid_grant, and the family is gone.
    const reuse = await refreshWithAssertion(r1);
    expect([reuse.status, reuse.json.error]).toEqual([400, 'invalid_grant']);
    for (const a of [a1, a2, a3]) expect(await svc.self.lookupOpaque(a)).toEqual({ status: 'inactive' });
    expect((await refreshWithAssertion(r3)).json.error).toBe('invalid_grant');
  });

  it('refresh: scope beyond the grant is invalid_scope; another client cannot use the token', async () => {
    const first = await post(server, '/oauth2/token', grant(await clientAssertion(), { scope: 'read' }));
    const r1 = first.json.refresh_token as string;
    expect((await refreshWithAssertion(r1, { scope: 'write' })).json.error).toBe('invalid_scope');
    const stolen = await post(
      server,
      '/oauth2/token',
      { grant_type: 'refresh_token', refresh_token: r1 },
      { auth: basic(OTHER_CLIENT, OTHER_SECRET) },
    );
    expect(stolen.json.error).toBe('invalid_grant');
    // Still usable by its owner.
    expect((await refreshWithAssertion(r1)).status).toBe(200);
  });

  it('WSO2 client refreshes with HTTP Basic', async () => {
    const auth = basic(SECRET_CLIENT, PORTAL_SECRET);
    const first = await post(server, '/oauth2/token', grant(await idpAssertion()), { auth });
    const res = await post(
      server,
      '/oauth2/token',
      { grant_type: 'refresh_token', refresh_token: first.json.refresh_token as string },
      { auth },
    );
    expect(res.status).toBe(200);
    const found = await svc.self.lookupOpaque(res.json.access_token as string);
    expect(found.status === 'active' && found.claims.sub).toBe('admin');
  });

  it('revoke / introspect opaque and refresh tokens; revoking a refresh token revokes its access tokens', async () => {
    const own = basic(SECRET_CLIENT, PORTAL_SECRET);
    const other = basic(OTHER_CLIENT, OTHER_SECRET);
    const first = await post(server, '/oauth2/token', grant(await idpAssertion()), { auth: own });
    const access = first.json.access_token as string;
    const refresh = first.json.refresh_token as string;

    expect((await post(server, '/oauth2/introspect', { token: access }, { auth: own })).json).toMatchObject({
      active: true,
      client_id: SECRET_CLIENT,
      sub: 'admin',
      token_type: 'Bearer',
    });
    expect((await post(server, '/oauth2/introspect', { token: refresh }, { auth: own })).json).toMatchObject({
      active: true,
      token_type: 'refresh_token',
    });
    expect((await post(server, '/oauth2/introspect', { token: access }, { auth: other })).json).toEqual({
      active: false,
    });
    expect((await post(server, '/oauth2/introspect', { token: refresh }, { auth: other })).json).toEqual({
      active: false,
    });

    // Another client's revocation changes nothing.
    expect((await post(server, '/oauth2/revoke', { token: refresh }, { auth: other })).status).toBe(200);
    expect((await post(server, '/oauth2/revoke', { token: access }, { auth: other })).status).toBe(200);
    expect((await svc.self.lookupOpaque(access)).status).toBe('active');

    expect(
      (
        await post(
          server,
          '/oauth2/revoke',
          { token: refresh, token_type_hint: 'refresh_token' },
          { auth: own },
        )
      ).status,
    ).toBe(200);
    expect(await svc.self.lookupOpaque(access)).toEqual({ status: 'inactive' });
    expect((await post(server, '/oauth2/introspect', { token: refresh }, { auth: own })).json).toEqual({
      active: false,
    });
    const reuse = await post(
      server,
      '/oauth2/token',
      { grant_type: 'refresh_token', refresh_token: refresh },
      { auth: own },
    );
    expect(reuse.json.error).toBe('invalid_grant');

    // Revoking a single opaque access token.
    const next = await post(server, '/oauth2/token', grant(await idpAssertion()), { auth: own });
    const a2 = next.json.access_token as string;
    expect((await post(server, '/oauth2/revoke', { token: a2 }, { auth: own })).status).toBe(200);
    expect(await svc.self.lookupOpaque(a2)).toEqual({ status: 'inactive' });
  });
});

describe('token endpoint with JWT access tokens and refresh: reuse revokes the family JWTs', () => {
  it('revokes the jti of every access token of the family', async () => {
    const store = new MemoryStore();
    const svc = await makeService(store, { refresh: true });
    const server = await startServer(svc);
    try {
      const auth = basic(SECRET_CLIENT, PORTAL_SECRET);
      const first = await post(server, '/oauth2/token', grant(await idpAssertion()), { auth });
      const r1 = first.json.refresh_token as string;
      const second = await post(
        server,
        '/oauth2/token',
        { grant_type: 'refresh_token', refresh_token: r1 },
        { auth },
      );
      expect(second.status).toBe(200);
      const jwks = createLocalJWKSet({ keys: svc.publicJwks() });
      const claims = async (t: unknown) =>
        (await jwtVerify(t as string, jwks)).payload as Record<string, unknown>;
      const c1 = await claims(first.json.access_token);
      const c2 = await claims(second.json.access_token);
      expect(await svc.self.isRevoked(c1)).toBe(false);
      expect(await svc.self.isRevoked(c2)).toBe(false);
      expect(
        (await post(server, '/oauth2/token', { grant_type: 'refresh_token', refresh_token: r1 }, { auth }))
          .json.error,
      ).toBe('invalid_grant');
      expect(await svc.self.isRevoked(c1)).toBe(true);
      expect(await svc.self.isRevoked(c2)).toBe(true);
    } finally {
      await server.app.close();
      await svc.close();
      await store.close();
    }
  });
});

// ---------------------------------------------------------------------------------------
// Redis

const redis = await getRedisUrl();
if (!redis) console.warn(`[redis] SKIPPED: token endpoint on Redis — ${redisSkipReason}`);
afterAll(async () => {
  await redis?.stop();
});

describe.skipIf(!redis)('token endpoint on Redis: two service instances share one store', () => {
  const stores: RedisStore[] = [];
  const services: TokenService[] = [];
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.app.close();
    for (const s of services.splice(0)) await s.close();
    for (const s of stores.splice(0)) await s.close();
  });

  async function replica(
    prefix: string,
    opts: Options & { storeCacheMs?: number },
  ): Promise<[TokenService, Server, RedisStore]> {
    const store = new RedisStore({ url: redis!.url, keyPrefix: prefix });
    expect(await store.waitUntilReady(5000)).toBe(true);
    const svc = await makeService(store, opts);
    const server = await startServer(svc);
    stores.push(store);
    services.push(svc);
    servers.push(server);
    return [svc, server, store];
  }

  it('a used assertion jti is refused by the other replica; concurrent replays: exactly one wins', async () => {
    const prefix = uniquePrefix('oauth');
    const [, a] = await replica(prefix, {});
    const [, b] = await replica(prefix, {});
    const assertion = await clientAssertion();
    expect((await post(a, '/oauth2/token', grant(assertion))).status).toBe(200);
    expect((await post(b, '/oauth2/token', grant(assertion))).json.error).toBe('invalid_grant');
    const racing = await clientAssertion();
    const results = await Promise.all([a, b, a, b].map((s) => post(s, '/oauth2/token', grant(racing))));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
  });

  it('revocations and opaque tokens are shared; a cached answer is at most 1 s old', async () => {
    const prefix = uniquePrefix('oauth');
    const [svcA, a] = await replica(prefix, { format: 'jwt', storeCacheMs: 1000 });
    const [svcB] = await replica(prefix, { format: 'jwt', storeCacheMs: 1000 });
    const auth = basic(SECRET_CLIENT, PORTAL_SECRET);
    const issued = await post(a, '/oauth2/token', grant(await idpAssertion()), { auth });
    const token = issued.json.access_token as string;
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: svcA.publicJwks() }));
    const claims = payload as Record<string, unknown>;
    expect(await svcB.self.isRevoked(claims)).toBe(false); // now cached on B
    expect((await post(a, '/oauth2/revoke', { token }, { auth })).status).toBe(200);
    expect(await svcA.self.isRevoked(claims)).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await svcB.self.isRevoked(claims)).toBe(true);

    const [, c] = await replica(prefix, { format: 'opaque' });
    const [svcD] = await replica(prefix, { format: 'opaque' });
    const opaque = await post(c, '/oauth2/token', grant(await clientAssertion()));
    const found = await svcD.self.lookupOpaque(opaque.json.access_token as string);
    expect(found.status).toBe('active');
  });
});

describe.skipIf(!redisServerOnPath())(
  'token endpoint with Redis stopped mid-test (dedicated redis-server)',
  () => {
    it('503 temporarily_unavailable, lookups "unavailable" (never "not revoked"), recovery after restart', async () => {
      const server = await RedisServerProcess.start();
      const store = new RedisStore({ url: server.url, keyPrefix: uniquePrefix('down') });
      let svc: TokenService | undefined;
      let http: Server | undefined;
      try {
        expect(await store.waitUntilReady(5000)).toBe(true);
        svc = await makeService(store, { format: 'opaque' });
        http = await startServer(svc);
        const ok = await post(http, '/oauth2/token', grant(await clientAssertion()));
        expect(ok.status).toBe(200);
        const opaque = ok.json.access_token as string;
        expect((await svc.self.lookupOpaque(opaque)).status).toBe('active');

        await server.stop();
        for (let i = 0; i < 250 && store.isReady(); i++) await new Promise((r) => setTimeout(r, 20));
        expect(store.isReady()).toBe(false);

        const down = await post(http, '/oauth2/token', grant(await clientAssertion()));
        expect(down.status).toBe(503);
        expect(down.json.error).toBe('temporarily_unavailable');
        expect(down.headers.get('cache-control')).toBe('no-store');
        const xml = await post(http, '/oauth2/token', grant(await clientAssertion(), { format: 'xml' }));
        expect(xml.status).toBe(503);
        expect(xml.text).toContain('<error>temporarily_unavailable</error>');
        expect(await svc.self.lookupOpaque(opaque)).toEqual({ status: 'unavailable' });
        expect(await svc.self.isRevoked({ jti: randomUUID() })).toBe('unavailable');
        expect(
          (
            await post(
              http,
              '/oauth2/introspect',
              { token: opaque },
              { auth: basic(SECRET_CLIENT, PORTAL_SECRET) },
            )
          ).status,
        ).toBe(503);

        await server.start();
        expect(await store.waitUntilReady(8000)).toBe(true);
        const again = await post(http, '/oauth2/token', grant(await clientAssertion()));
        expect(again.status).toBe(200);
        expect((await svc.self.lookupOpaque(again.json.access_token as string)).status).toBe('active');
        expect(await svc.self.isRevoked({ jti: randomUUID() })).toBe(false);
      } finally {
        await http?.app.close();
        await svc?.close();
        await store.close();
        await server.stop();
      }
    });
  },
);
