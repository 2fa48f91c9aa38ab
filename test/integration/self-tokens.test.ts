// The service's own access tokens (docs/token-endpoint.md) checked by the REAL service: tokens
// from POST /oauth2/token go through gRPC Check like any other bearer token (issuer
// "self", typ at+jwt, opaque tokens looked up in the store, revocation within 2 s),
// on one instance, on two instances sharing Redis, and with Redis going away.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  makeJwks,
  type TestKeyPair,
} from '../helpers/keys.js';
import {
  freePort,
  getRedisUrl,
  redisServerOnPath,
  redisSkipReason,
  RedisServerProcess,
  uniquePrefix,
} from '../helpers/redis.js';
import { sleep } from '../helpers/wait.js';
import { clientAssertion } from '../helpers/tokens.js';

const ISSUER = 'https://authz.example.com';
const AUD = 'https://authz.example.com/oauth2/token';
const CORP_ISS = 'https://idp.example.com';
const CLIENT = 'SampleConfidentialApp';
const PORTAL = 'portal';
const PORTAL_SECRET = 'portal-secret';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const REVOCATION_BOUND_MS = 2000;

let dir: string;
let clientKey: TestKeyPair;
let signing: TestKeyPair;
let corp: TestKeyPair;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'self-tokens-'));
  // The Axway client: an RSA key whose self-signed certificate is registered with the service.
  clientKey = generateRsaKeyPair({ kid: 'client-1' });
  writeFileSync(join(dir, 'client.crt'), createSelfSignedCertificate(clientKey, { subject: CLIENT }).pem);
  // The token endpoint's signing key, one file shared by every instance (replicas).
  signing = generateEcKeyPair({ kid: 'at-1' });
  writeFileSync(join(dir, 'signing.jwk.json'), JSON.stringify(signing.privateJwk));
  writeFileSync(join(dir, 'portal.secret'), `${PORTAL_SECRET}\n`);
  // Another configured issuer, so that rules can name one that is not "self".
  corp = generateEcKeyPair({ kid: 'corp-1' });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type StoreCfg = Record<string, unknown>;

interface Opts {
  format?: 'jwt' | 'opaque';
  store?: StoreCfg;
  refresh?: boolean;
}

function config(opts: Opts = {}): Record<string, unknown> {
  return {
    issuers: [{ name: 'corp', issuer: CORP_ISS, audiences: ['api://orders'], jwks: makeJwks(corp) }],
    rules: [
      { name: 'self-only', match: { path_prefix: '/self-only' }, require: { issuers: ['self'] } },
      { name: 'corp-only', match: { path_prefix: '/corp-only' }, require: { issuers: ['corp'] } },
      { name: 'writers', match: { path_prefix: '/write' }, require: { scopes_all: ['write'] } },
      { name: 'admin', match: { path_prefix: '/admin' }, require: { scopes_all: ['admin'] } },
    ],
    default_action: 'authenticate',
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
        { client_id: CLIENT, certificate_file: 'client.crt', scopes: ['read', 'write'] },
        { client_id: PORTAL, client_secret_file: 'portal.secret', scopes: ['read'] },
      ],
    },
    ...(opts.store ? { store: opts.store } : {}),
  };
}

const services: TestService[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.close();
});

async function start(opts: Opts = {}): Promise<TestService> {
  const svc = await startTestService(config(opts), { baseDir: dir, logLevel: 'info' });
  services.push(svc);
  return svc;
}

/** An assertion signed by the registered client (Axway JWT flow: iss = sub = client_id). */
const assertion = (): string => clientAssertion(clientKey, CLIENT, AUD);

interface Posted {
  status: number;
  json: Record<string, any>;
}

async function post(svc: TestService, path: string, form: Record<string, string>): Promise<Posted> {
  const res = await fetch(`${svc.httpUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  let json: Record<string, any> = {};
  try {
    json = text === '' ? {} : (JSON.parse(text) as Record<string, any>);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json };
}

/** POST /oauth2/token with a fresh client assertion; returns the access token. */
async function issue(svc: TestService, scope?: string): Promise<string> {
  const res = await post(svc, '/oauth2/token', {
    grant_type: JWT_BEARER,
    assertion: await assertion(),
    ...(scope ? { scope } : {}),
  });
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  expect(res.json.token_type).toBe('Bearer');
  return res.json.access_token as string;
}

/** POST /oauth2/revoke, the certificate client authenticating with a client assertion (RFC 7523 §2.2). */
async function revoke(svc: TestService, token: string): Promise<void> {
  const res = await post(svc, '/oauth2/revoke', {
    token,
    client_assertion_type: CLIENT_ASSERTION_TYPE,
    client_assertion: await assertion(),
  });
  expect(res.status, JSON.stringify(res.json)).toBe(200);
}

/**
 * Polls Check every 100 ms until `until` holds; returns the decision and the time it took.
 * Fails the test if it takes `limitMs` or more.
 */
async function pollCheck(
  svc: TestService,
  token: string,
  until: (d: Decision) => boolean,
  limitMs: number,
  path = '/api/orders',
): Promise<{ decision: Decision; ms: number }> {
  const t0 = Date.now();
  for (;;) {
    const decision = await svc.check({ token, path });
    const ms = Date.now() - t0;
    if (until(decision)) return { decision, ms };
    if (ms >= limitMs)
      throw new Error(`no matching decision after ${ms} ms; last: ${JSON.stringify(decision)}`);
    await sleep(100);
  }
}

function expectAllowed(d: Decision): void {
  expect(d.decision, JSON.stringify(d)).toBe('allow');
  expect(d.grpc_status).toBe(0);
}

function expectDenied(d: Decision, http: number, reason: string): void {
  expect(d.decision, JSON.stringify(d)).toBe('deny');
  expect(d.http_status).toBe(http);
  expect(d.reason).toBe(reason);
}

/** A JWT signed with the service's own signing key (what an attacker holding it could not do, but a bug might). */
function ownKeyJwt(typ: string, claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: CLIENT, scope: 'read write', jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: signing.kid, typ })
    .setIssuer(ISSUER)
    .setSubject(CLIENT)
    .setAudience(ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(signing.privateKey);
}

// ---------------------------------------------------------------- one instance, memory store

describe('own JWT access tokens through Check (memory store)', () => {
  it('a token from POST /oauth2/token is allowed as issuer "self"; require.issuers and scopes apply', async () => {
    const svc = await start();
    const token = await issue(svc);

    const ok = await svc.check({ token, path: '/api/orders' });
    expectAllowed(ok);
    expect(ok.dynamic_metadata?.issuer).toBe('self');
    expect(ok.dynamic_metadata?.sub).toBe(CLIENT);
    expect(ok.dynamic_metadata?.scope).toBe('read write');
    expect(ok.dynamic_metadata?.claims?.client_id).toBe(CLIENT);

    expectAllowed(await svc.check({ token, path: '/self-only' }));
    const corpOnly = await svc.check({ token, path: '/corp-only' });
    expectDenied(corpOnly, 403, 'issuer_not_allowed');
    expect(corpOnly.grpc_status).toBe(7);

    // scopes_all is driven by the token's `scope` claim.
    expectAllowed(await svc.check({ token, path: '/write' }));
    const admin = await svc.check({ token, path: '/admin' });
    expectDenied(admin, 403, 'insufficient_scope');
    expect(admin.headers['www-authenticate']).toContain('scope="admin"');

    // A narrower grant (scope=read) no longer reaches the write route.
    const readOnly = await issue(svc, 'read');
    const ro = await svc.check({ token: readOnly, path: '/api/orders' });
    expectAllowed(ro);
    expect(ro.dynamic_metadata?.scope).toBe('read');
    const denied = await svc.check({ token: readOnly, path: '/write' });
    expectDenied(denied, 403, 'insufficient_scope');
    expect(denied.headers['www-authenticate']).toContain('scope="write"');
  });

  it('a JWT signed by our key with typ JWT (not at+jwt) is refused: 401 typ_invalid', async () => {
    const svc = await start();
    // Control: the same claims with typ at+jwt are accepted, so only typ differs.
    expectAllowed(await svc.check({ token: await ownKeyJwt('at+jwt') }));
    for (const typ of ['JWT', 'jwt']) {
      const d = await svc.check({ token: await ownKeyJwt(typ) });
      expectDenied(d, 401, 'typ_invalid');
      expect(d.headers['www-authenticate']).toContain('error="invalid_token"');
    }
  });

  it('revoked (after a cached verification) → 401 token_revoked within 2 s', async () => {
    const svc = await start();
    const token = await issue(svc);
    // Verified twice: the second answer comes from the verified-token cache.
    expectAllowed(await svc.check({ token }));
    expectAllowed(await svc.check({ token }));
    await revoke(svc, token);
    const { decision, ms } = await pollCheck(svc, token, (d) => d.decision === 'deny', REVOCATION_BOUND_MS);
    expectDenied(decision, 401, 'token_revoked');
    expect(ms).toBeLessThan(REVOCATION_BOUND_MS);
    // It stays revoked.
    expectDenied(await svc.check({ token }), 401, 'token_revoked');
  });
});

describe('opaque access tokens through Check (memory store)', () => {
  it('allowed via the store; unknown → 401 token_inactive; a dotted non-JWT → 401 token_malformed', async () => {
    const svc = await start({ format: 'opaque' });
    const token = await issue(svc);
    expect(token).toMatch(/^[A-Za-z0-9_-]{54}$/);

    const ok = await svc.check({ token, path: '/self-only' });
    expectAllowed(ok);
    expect(ok.dynamic_metadata?.issuer).toBe('self');
    expect(ok.dynamic_metadata?.scope).toBe('read write');
    expectAllowed(await svc.check({ token, path: '/write' }));
    expectDenied(await svc.check({ token, path: '/corp-only' }), 403, 'issuer_not_allowed');
    expectDenied(await svc.check({ token, path: '/admin' }), 403, 'insufficient_scope');

    const unknown = await svc.check({ token: 'A'.repeat(54) });
    expectDenied(unknown, 401, 'token_inactive');
    expectDenied(
      await svc.check({ token: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` }),
      401,
      'token_inactive',
    );
    expectDenied(await svc.check({ token: 'abc.def' }), 401, 'token_malformed');
    expectDenied(
      await svc.check({ token: `${token.slice(0, 20)}.${token.slice(20)}` }),
      401,
      'token_malformed',
    );
  });

  it('revoked → 401 token_inactive within 2 s, also after an earlier successful check', async () => {
    const svc = await start({ format: 'opaque' });
    const token = await issue(svc);
    expectAllowed(await svc.check({ token }));
    expectAllowed(await svc.check({ token }));
    await revoke(svc, token);
    const { decision, ms } = await pollCheck(svc, token, (d) => d.decision === 'deny', REVOCATION_BOUND_MS);
    expectDenied(decision, 401, 'token_inactive');
    expect(ms).toBeLessThan(REVOCATION_BOUND_MS);
  });
});

describe('refresh-token families through Check (memory store)', () => {
  for (const [format, reason] of [
    ['jwt', 'token_revoked'],
    ['opaque', 'token_inactive'],
  ] as const) {
    it(`${format}: refresh reuse revokes every access token of the grant; Check refuses them within 2 s`, async () => {
      const svc = await start({ format, refresh: true });
      const first = await post(svc, '/oauth2/token', {
        grant_type: JWT_BEARER,
        assertion: await assertion(),
      });
      expect(first.status).toBe(200);
      const access1 = first.json.access_token as string;
      const refresh1 = first.json.refresh_token as string;
      expect(refresh1).toMatch(/^[A-Za-z0-9_-]{46}$/);
      const refreshed = async (refresh: string) =>
        post(svc, '/oauth2/token', {
          grant_type: 'refresh_token',
          refresh_token: refresh,
          client_assertion_type: CLIENT_ASSERTION_TYPE,
          client_assertion: await assertion(),
        });
      const second = await refreshed(refresh1);
      expect(second.status, JSON.stringify(second.json)).toBe(200);
      const access2 = second.json.access_token as string;
      expectAllowed(await svc.check({ token: access1 }));
      expectAllowed(await svc.check({ token: access2 }));

      const reuse = await refreshed(refresh1);
      expect(reuse.status).toBe(400);
      expect(reuse.json.error).toBe('invalid_grant');
      for (const token of [access1, access2]) {
        const { decision, ms } = await pollCheck(
          svc,
          token,
          (d) => d.decision === 'deny',
          REVOCATION_BOUND_MS,
        );
        expectDenied(decision, 401, reason);
        expect(ms).toBeLessThan(REVOCATION_BOUND_MS);
      }
    });
  }

  it('revoking a refresh token also revokes the access tokens issued from it', async () => {
    const svc = await start({ refresh: true });
    const first = await post(svc, '/oauth2/token', { grant_type: JWT_BEARER, assertion: await assertion() });
    const access = first.json.access_token as string;
    expectAllowed(await svc.check({ token: access }));
    await revoke(svc, first.json.refresh_token as string);
    const { decision, ms } = await pollCheck(svc, access, (d) => d.decision === 'deny', REVOCATION_BOUND_MS);
    expectDenied(decision, 401, 'token_revoked');
    expect(ms).toBeLessThan(REVOCATION_BOUND_MS);
  });
});

// ---------------------------------------------------------------- Redis

const redis = await getRedisUrl();
if (!redis) console.warn(`[redis] SKIPPED: self tokens on a shared Redis store — ${redisSkipReason}`);
afterAll(async () => {
  await redis?.stop();
});

describe.skipIf(!redis)('two service instances sharing one Redis', () => {
  const shared = (prefix: string): StoreCfg => ({ type: 'redis', redis_url: redis!.url, key_prefix: prefix });

  async function ready(svc: TestService): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if ((await fetch(`${svc.httpUrl}/readyz`)).status === 200) return;
      await sleep(50);
    }
    throw new Error('service did not become ready');
  }

  it('JWT: issued by A, accepted by B; revoked on A → refused by B within 2 s', async () => {
    const prefix = uniquePrefix('self-tokens');
    const a = await start({ store: shared(prefix) });
    const b = await start({ store: shared(prefix) });
    await Promise.all([ready(a), ready(b)]);
    const token = await issue(a);
    const onB = await b.check({ token, path: '/self-only' });
    expectAllowed(onB);
    expect(onB.dynamic_metadata?.issuer).toBe('self');
    expectAllowed(await b.check({ token })); // now cached on B (verified token + revocation answer)

    await revoke(a, token);
    const { decision, ms } = await pollCheck(b, token, (d) => d.decision === 'deny', REVOCATION_BOUND_MS);
    expectDenied(decision, 401, 'token_revoked');
    expect(ms).toBeLessThan(REVOCATION_BOUND_MS);
    expectDenied(await a.check({ token }), 401, 'token_revoked');
  });

  it('opaque: issued by A, accepted by B; revoked on A → refused by B within 2 s', async () => {
    const prefix = uniquePrefix('self-tokens');
    const a = await start({ format: 'opaque', store: shared(prefix) });
    const b = await start({ format: 'opaque', store: shared(prefix) });
    await Promise.all([ready(a), ready(b)]);
    const token = await issue(a);
    expectAllowed(await b.check({ token }));
    expectAllowed(await b.check({ token }));
    await revoke(a, token);
    const { decision, ms } = await pollCheck(b, token, (d) => d.decision === 'deny', REVOCATION_BOUND_MS);
    expectDenied(decision, 401, 'token_inactive');
    expect(ms).toBeLessThan(REVOCATION_BOUND_MS);
  });
});

const dedicated = redisServerOnPath();
if (!dedicated)
  console.warn(
    '[redis] SKIPPED: Redis stopped mid-test — redis-server is not on PATH (needs a dedicated process)',
  );

describe.skipIf(!dedicated)('Redis stopped mid-test (dedicated redis-server)', () => {
  let server: RedisServerProcess | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  async function readyz(svc: TestService): Promise<{ status: number; body: Record<string, any> }> {
    const res = await fetch(`${svc.httpUrl}/readyz`);
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  }

  async function waitReadyz(svc: TestService, status: number, ms = 10_000): Promise<Record<string, any>> {
    const t0 = Date.now();
    for (;;) {
      const r = await readyz(svc);
      if (r.status === status) return r.body;
      if (Date.now() - t0 > ms) throw new Error(`/readyz stayed ${r.status}: ${JSON.stringify(r.body)}`);
      await sleep(50);
    }
  }

  it('store-backed tokens → 503 temporarily_unavailable (never allow), /readyz 503, issuance 503; recovers after restart', async () => {
    server = await RedisServerProcess.start();
    const store = { type: 'redis', redis_url: server.url, key_prefix: uniquePrefix('down') };
    const jwtSvc = await start({ store });
    const opaqueSvc = await start({ format: 'opaque', store });
    await waitReadyz(jwtSvc, 200);
    await waitReadyz(opaqueSvc, 200);
    const jwt = await issue(jwtSvc);
    const opaque = await issue(opaqueSvc);
    expectAllowed(await jwtSvc.check({ token: jwt }));
    expectAllowed(await opaqueSvc.check({ token: opaque }));

    await server.stop();
    const body = await waitReadyz(jwtSvc, 503);
    expect(body.store).toEqual({ type: 'redis', ready: false });
    await waitReadyz(opaqueSvc, 503);
    // Store answers cached by Check live at most 1 s (docs/token-endpoint.md "Overview"); past that, every
    // store-backed check must say "unavailable".
    await sleep(1100);
    for (const [svc, token] of [
      [jwtSvc, jwt],
      [opaqueSvc, opaque],
    ] as const) {
      for (const path of ['/api/orders', '/self-only']) {
        const d = await svc.check({ token, path });
        expectDenied(d, 503, 'store_unavailable');
        expect(d.grpc_status).toBe(14);
        expect(d.body).toEqual({ error: 'temporarily_unavailable' });
      }
    }
    // A token that does not need the store (another issuer's) is still served.
    const corpToken = await new SignJWT({ scope: 'read' })
      .setProtectedHeader({ alg: 'ES256', kid: corp.kid, typ: 'JWT' })
      .setIssuer(CORP_ISS)
      .setSubject('alice')
      .setAudience('api://orders')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(corp.privateKey);
    expectAllowed(await jwtSvc.check({ token: corpToken }));

    for (const svc of [jwtSvc, opaqueSvc]) {
      const res = await post(svc, '/oauth2/token', { grant_type: JWT_BEARER, assertion: await assertion() });
      expect(res.status).toBe(503);
      expect(res.json.error).toBe('temporarily_unavailable');
    }

    await server.start(); // same port, empty data set
    await waitReadyz(jwtSvc, 200);
    await waitReadyz(opaqueSvc, 200);
    // The JWT needs only the revocation lookup: allowed again.
    await pollCheck(jwtSvc, jwt, (d) => d.decision === 'allow', 10_000);
    // The restarted Redis kept no data (no persistence), so the old opaque token is
    // gone; a new one is issued and accepted.
    const fresh = await issue(opaqueSvc);
    await pollCheck(opaqueSvc, fresh, (d) => d.decision === 'allow', 10_000);
  }, 60_000);

  it('Redis unreachable at start: the service starts, /readyz 503 with the store not ready, store-backed checks 503', async () => {
    const port = await freePort(); // nothing listens there
    const svc = await start({
      store: { type: 'redis', redis_url: `redis://127.0.0.1:${port}`, key_prefix: 'x:' },
    });
    const { status, body } = await readyz(svc);
    expect(status).toBe(503);
    expect(body.status).toBe('not_ready');
    expect(body.store).toEqual({ type: 'redis', ready: false });
    expect((await fetch(`${svc.httpUrl}/healthz`)).status).toBe(200);
    // Our own, validly signed token needs the revocation lookup: 503, never allow.
    const d = await svc.check({ token: await ownKeyJwt('at+jwt') });
    expectDenied(d, 503, 'store_unavailable');
    expect(d.grpc_status).toBe(14);
    const res = await post(svc, '/oauth2/token', { grant_type: JWT_BEARER, assertion: await assertion() });
    expect(res.status).toBe(503);
    expect(res.json.error).toBe('temporarily_unavailable');

    // Redis appears on that port: the service connects by itself.
    server = await RedisServerProcess.start(port);
    await waitReadyz(svc, 200);
    expectAllowed(await svc.check({ token: await ownKeyJwt('at+jwt') }));
  }, 60_000);
});
