// Another identity provider's opaque access tokens, checked at its RFC 7662 introspection
// endpoint (docs/configuration-guide.md "Introspection"), through gRPC Check on the real service: claims flow
// into rules and claim headers, inactive / wrong audience / expired tokens get 401, an
// unusable endpoint 503 unless a fresh cached answer exists, one request per new token.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, importJWK } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { startTestService, type TestService } from '../helpers/harness.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  makeJwks,
  type TestKeyPair,
} from '../helpers/keys.js';
import { startIntrospectionServer, type IntrospectionServer } from '../helpers/introspection-server.js';

const CLIENT_ID = 'envoy authz';
const SECRET = 'p@ss:word+/é';
const LEGACY_ISS = 'https://legacy-idp.example.com';
const CORP_ISS = 'https://idp.example.com';
const AUD = 'api://orders';

let dir: string;
let corp: TestKeyPair;
let idp: IntrospectionServer;
let svc: TestService | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'introspection-'));
  writeFileSync(join(dir, 'idp.secret'), `${SECRET}\n`);
  writeFileSync(join(dir, 'wrong.secret'), 'not-the-secret\n');
  corp = generateEcKeyPair({ kid: 'corp-1' });
  writeFileSync(join(dir, 'client.crt'), createSelfSignedCertificate(client, { subject: 'app' }).pem);
});
const client = generateRsaKeyPair({ kid: 'app-1' });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeEach(async () => {
  idp = await startIntrospectionServer({ clientId: CLIENT_ID, clientSecret: SECRET });
});
afterEach(async () => {
  vi.useRealTimers();
  await svc?.close();
  svc = undefined;
  await idp.close();
});

function config(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    issuers: [
      { name: 'corp', issuer: CORP_ISS, audiences: [AUD], jwks: makeJwks(corp) },
      {
        name: 'legacy',
        issuer: LEGACY_ISS,
        audiences: [AUD],
        clock_skew_seconds: 0,
        claim_mappings: [{ from: 'client_id', to: 'azp' }],
        introspection: {
          endpoint: idp.url,
          client_id: CLIENT_ID,
          client_secret_file: 'idp.secret',
          cache_seconds: 30,
          timeout_ms: 300,
          ...over,
        },
      },
    ],
    rules: [
      { name: 'writers', match: { path_prefix: '/write' }, require: { scopes_all: ['write'] } },
      { name: 'legacy-only', match: { path_prefix: '/legacy' }, require: { issuers: ['legacy'] } },
    ],
    default_action: 'authenticate',
    upstream: { claim_headers: { 'x-user': 'sub', 'x-client': 'azp' } },
  };
}

async function start(over: Record<string, unknown> = {}): Promise<TestService> {
  svc = await startTestService(config(over), { baseDir: dir });
  return svc;
}

const now = () => Math.floor(Date.now() / 1000);
let n = 0;
/** A fresh opaque token the IdP knows, with these claims. */
function known(claims: Record<string, unknown>): string {
  const token = `lgcy_${++n}_${Math.random().toString(36).slice(2)}AbC.x~y`;
  idp.tokens.set(token, claims);
  return token;
}

describe('introspection through Check', () => {
  it('an active token is allowed: claims mapped into headers, scope from `scope`, one Basic-authenticated POST', async () => {
    const s = await start();
    const token = known({ sub: 'alice', scope: 'read write', client_id: 'shop', aud: AUD, exp: now() + 600 });
    const d = await s.check({ token, path: '/write/orders' });
    expect(d.decision).toBe('allow');
    expect(d.headers['x-user']).toBe('alice');
    expect(d.headers['x-client']).toBe('shop');
    expect(d.dynamic_metadata?.issuer).toBe('legacy');
    expect((await s.check({ token, path: '/legacy/x' })).decision).toBe('allow');
    expect(idp.requests).toHaveLength(1);
    // client_id and secret are form-encoded before base64 (RFC 6749 2.3.1).
    expect(idp.requests[0]!.authorization).toBe(
      `Basic ${Buffer.from('envoy+authz:p%40ss%3Aword%2B%2F%C3%A9').toString('base64')}`,
    );
    expect(idp.requests[0]!.form.get('token')).toBe(token);
    expect(idp.requests[0]!.form.get('token_type_hint')).toBe('access_token');
  });

  it('a scope the answer lacks is 403 insufficient_scope', async () => {
    const s = await start();
    const token = known({ sub: 'bob', scope: 'read', aud: AUD, exp: now() + 600 });
    const d = await s.check({ token, path: '/write/orders' });
    expect(d.http_status).toBe(403);
    expect(d.reason).toBe('insufficient_scope');
  });

  it('inactive → 401 token_inactive; wrong aud → 401 audience_invalid; expired → 401 token_expired', async () => {
    const s = await start();
    const inactive = await s.check({ token: 'never-issued-token-0123456789' });
    expect([inactive.http_status, inactive.reason]).toEqual([401, 'token_inactive']);
    expect(inactive.headers['www-authenticate']).toContain('error="invalid_token"');
    const wrongAud = await s.check({ token: known({ sub: 'a', aud: 'api://other', exp: now() + 600 }) });
    expect([wrongAud.http_status, wrongAud.reason]).toEqual([401, 'audience_invalid']);
    const expired = await s.check({ token: known({ sub: 'a', aud: AUD, exp: now() - 5 }) });
    expect([expired.http_status, expired.reason]).toEqual([401, 'token_expired']);
  });

  it('audiences ["*"] accepts any aud', async () => {
    const cfg = config();
    (cfg.issuers as Record<string, unknown>[])[1]!.audiences = ['*'];
    svc = await startTestService(cfg, { baseDir: dir });
    const d = await svc.check({ token: known({ sub: 'a', aud: 'api://anything', exp: now() + 600 }) });
    expect(d.decision).toBe('allow');
  });

  it('endpoint down → 503 temporarily_unavailable, but a fresh cached answer still allows', async () => {
    const s = await start();
    const seen = known({ sub: 'alice', aud: AUD, exp: now() + 600 });
    expect((await s.check({ token: seen })).decision).toBe('allow');
    idp.mode = 'down';
    const fresh = known({ sub: 'carol', aud: AUD, exp: now() + 600 });
    const d = await s.check({ token: fresh });
    expect([d.http_status, d.reason]).toEqual([503, 'introspection_unavailable']);
    expect(d.body).toEqual({ error: 'temporarily_unavailable' });
    expect((await s.check({ token: seen })).decision).toBe('allow');
  });

  it('a slow endpoint (beyond timeout_ms) → 503', async () => {
    const s = await start();
    idp.delayMs = 1000;
    const d = await s.check({ token: known({ sub: 'a', aud: AUD }) });
    expect([d.http_status, d.reason]).toEqual([503, 'introspection_unavailable']);
  });

  it.each(['not-json', 'json-array', 'active-not-boolean', 'huge', 'status500'] as const)(
    'a garbage answer (%s) → 503, logged without the token',
    async (mode) => {
      const s = await start();
      idp.mode = mode;
      const token = known({ sub: 'a', aud: AUD });
      const d = await s.check({ token });
      expect([d.http_status, d.reason]).toEqual([503, 'introspection_unavailable']);
      expect(s.logs.lines.some((l) => l.msg === 'token introspection failed' && l.issuer === 'legacy')).toBe(
        true,
      );
      expect(s.logs.text()).not.toContain(token);
    },
  );

  it('a wrong client secret (the endpoint answers 401) → 503, the secret never logged', async () => {
    const s = await start({ client_secret_file: 'wrong.secret' });
    const d = await s.check({ token: known({ sub: 'a', aud: AUD }) });
    expect([d.http_status, d.reason]).toEqual([503, 'introspection_unavailable']);
    expect(s.logs.lines.some((l) => l.reason === 'status 401')).toBe(true);
    expect(s.logs.text()).not.toContain('not-the-secret');
    expect(s.logs.text()).not.toContain(SECRET);
  });

  it('cache_seconds: the answer is reused until it ends, then asked again', async () => {
    const s = await start();
    vi.useFakeTimers({ toFake: ['Date'] });
    const token = known({ sub: 'alice', aud: AUD });
    expect((await s.check({ token })).decision).toBe('allow');
    vi.setSystemTime(Date.now() + 29_000);
    expect((await s.check({ token })).decision).toBe('allow');
    expect(idp.requests).toHaveLength(1);
    idp.tokens.delete(token); // revoked at the IdP
    vi.setSystemTime(Date.now() + 2_000);
    expect((await s.check({ token })).reason).toBe('token_inactive');
    expect(idp.requests).toHaveLength(2);
  });

  it('never reuses an answer beyond the token exp', async () => {
    const s = await start();
    vi.useFakeTimers({ toFake: ['Date'] });
    const token = known({ sub: 'alice', aud: AUD, exp: now() + 5 });
    expect((await s.check({ token })).decision).toBe('allow');
    vi.setSystemTime(Date.now() + 6_000);
    idp.tokens.delete(token);
    expect((await s.check({ token })).reason).toBe('token_inactive');
    expect(idp.requests).toHaveLength(2);
  });

  it('20 concurrent checks of one new token make one introspection request', async () => {
    const s = await start();
    idp.delayMs = 50;
    const token = known({ sub: 'alice', aud: AUD });
    const all = await Promise.all(Array.from({ length: 20 }, () => s.check({ token })));
    expect(all.every((d) => d.decision === 'allow')).toBe(true);
    expect(idp.requests).toHaveLength(1);
  });

  it('JWTs are still verified with keys, never introspected; a JWT naming the introspected issuer is refused', async () => {
    const s = await start();
    const key = await importJWK(corp.privateJwk, 'ES256');
    const jwt = (iss: string) =>
      new SignJWT({ sub: 'svc' })
        .setProtectedHeader({ alg: 'ES256', kid: 'corp-1' })
        .setIssuer(iss)
        .setAudience(AUD)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(key);
    expect((await s.check({ token: await jwt(CORP_ISS) })).decision).toBe('allow');
    const forged = await s.check({ token: await jwt(LEGACY_ISS) });
    expect([forged.http_status, forged.reason]).toEqual([401, 'key_not_found']);
    expect(idp.requests).toHaveLength(0);
  });

  it('several introspected issuers are asked in config order; the first that knows the token owns it', async () => {
    const second = await startIntrospectionServer({ clientId: CLIENT_ID, clientSecret: SECRET });
    try {
      const cfg = config();
      const issuers = cfg.issuers as Record<string, any>[];
      issuers.push({
        ...issuers[1],
        name: 'second',
        issuer: 'https://second-idp.example.com',
        introspection: { ...issuers[1]!.introspection, endpoint: second.url },
      });
      svc = await startTestService(cfg, { baseDir: dir });
      const both = known({ sub: 'first-user', aud: AUD });
      second.tokens.set(both, { sub: 'second-user', aud: AUD });
      const d1 = await svc.check({ token: both });
      expect([d1.dynamic_metadata?.issuer, d1.headers['x-user']]).toEqual(['legacy', 'first-user']);
      expect(second.requests).toHaveLength(0);
      const onlySecond = 'second-only-token-0123456789';
      second.tokens.set(onlySecond, { sub: 'bob', aud: AUD });
      const d2 = await svc.check({ token: onlySecond });
      expect([d2.dynamic_metadata?.issuer, d2.headers['x-user']]).toEqual(['second', 'bob']);
      expect(idp.requests.map((r) => r.form.get('token'))).toContain(onlySecond);
      // The first endpoint down and the second not knowing it: nobody can say, so 503, not 401.
      idp.mode = 'down';
      const d3 = await svc.check({ token: 'unknown-anywhere-0123456789' });
      expect([d3.http_status, d3.reason]).toEqual([503, 'introspection_unavailable']);
    } finally {
      await second.close();
    }
  });

  it('counts introspection cache hits and misses in /metrics', async () => {
    const s = await start();
    const token = known({ sub: 'alice', aud: AUD });
    await s.check({ token });
    await s.check({ token });
    const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
    expect(text).toMatch(/authz_cache_hits_total\{cache="introspection"\} 1\n/);
    expect(text).toMatch(/authz_cache_misses_total\{cache="introspection"\} 1\n/);
  });

  it('an introspected issuer has no keys to load: /readyz is ready', async () => {
    const s = await start();
    const res = await fetch(`${s.httpUrl}/readyz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { issuers: Record<string, { state: string }> };
    expect(body.issuers.legacy?.state).toBe('ready');
  });

  it("with the token endpoint's opaque tokens: its own are found in its store and never sent to the IdP", async () => {
    const cfg = config();
    cfg.token_endpoint = {
      enabled: true,
      issuer: 'https://authz.example.com',
      audience: 'https://authz.example.com/oauth2/token',
      access_token: { format: 'opaque' },
      clients: [{ client_id: 'app', certificate_file: 'client.crt', scopes: ['read'] }],
    };
    svc = await startTestService(cfg, { baseDir: dir });
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuer('app')
      .setSubject('app')
      .setAudience('https://authz.example.com/oauth2/token')
      .setIssuedAt(now)
      .setExpirationTime(now + 120)
      .sign(client.privateKey);
    const res = await fetch(`${svc.httpUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }),
    });
    const own = ((await res.json()) as { access_token: string }).access_token;
    const mine = await svc.check({ token: own });
    expect(mine.decision).toBe('allow');
    expect(mine.dynamic_metadata?.issuer).toBe('self');
    expect(idp.requests).toHaveLength(0);
    const theirs = await svc.check({ token: known({ sub: 'alice', aud: AUD }) });
    expect(theirs.dynamic_metadata?.issuer).toBe('legacy');
    expect(idp.requests).toHaveLength(1);
  });
});
