// DPoP-bound tokens from our own token endpoint: POST /oauth2/token over real HTTP with a
// DPoP proof the test signs, then the token through the real gRPC Check, where issuer
// "self" enforces the binding (cnf.jkt) even though no sender_constraint is configured.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dpopProof, jktOf } from '../helpers/dpop.js';
import { startTestService, type Decision, type TestService } from '../helpers/harness.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  type TestKeyPair,
} from '../helpers/keys.js';
import { getRedisUrl, redisSkipReason, uniquePrefix } from '../helpers/redis.js';
import { clientAssertion } from '../helpers/tokens.js';

const ISSUER = 'https://authz.example.com';
const AUD = 'https://authz.example.com/oauth2/token';
const CLIENT = 'SampleConfidentialApp';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const API_HOST = 'api.example.com';
const API_URL = `https://${API_HOST}/api/orders`;

let dir: string;
let clientKey: TestKeyPair;
let dpopKey: TestKeyPair;
let otherKey: TestKeyPair;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'token-dpop-'));
  clientKey = generateRsaKeyPair({ kid: 'client-1' });
  writeFileSync(join(dir, 'client.crt'), createSelfSignedCertificate(clientKey, { subject: CLIENT }).pem);
  const signing = generateEcKeyPair({ kid: 'at-1' });
  writeFileSync(join(dir, 'signing.jwk.json'), JSON.stringify(signing.privateJwk));
  dpopKey = generateEcKeyPair();
  otherKey = generateEcKeyPair();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Opts {
  format?: 'jwt' | 'opaque';
  required?: boolean;
  publicBaseUrl?: string;
  store?: Record<string, unknown>;
}

const services: TestService[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.close();
});

async function start(opts: Opts = {}): Promise<TestService> {
  const svc = await startTestService(
    {
      ...(opts.publicBaseUrl ? { public_base_url: opts.publicBaseUrl } : {}),
      ...(opts.store ? { store: opts.store } : {}),
      default_action: 'authenticate',
      token_endpoint: {
        enabled: true,
        issuer: ISSUER,
        audience: AUD,
        access_token: {
          format: opts.format ?? 'jwt',
          signing: { alg: 'ES256', key_file: 'signing.jwk.json' },
        },
        refresh_token: { enabled: true },
        ...(opts.required !== undefined ? { dpop: { required: opts.required } } : {}),
        clients: [{ client_id: CLIENT, certificate_file: 'client.crt', scopes: ['read', 'write'] }],
      },
    },
    { baseDir: dir, logLevel: 'info' },
  );
  services.push(svc);
  return svc;
}

/** An assertion signed by the registered client (iss = sub = client_id). */
const assertion = (): string => clientAssertion(clientKey, CLIENT, AUD);

interface Posted {
  status: number;
  headers: Headers;
  json: Record<string, any>;
}

async function post(
  svc: TestService,
  path: string,
  form: Record<string, string>,
  dpop?: string,
): Promise<Posted> {
  const res = await fetch(`${svc.httpUrl}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(dpop !== undefined ? { dpop } : {}),
    },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === '' ? {} : JSON.parse(text) };
}

/** The URL the test's fetch reaches the token endpoint at (what a proof's htu must be without public_base_url). */
const tokenUrl = (svc: TestService) => `${svc.httpUrl}/oauth2/token`;

/** A proof for POST /oauth2/token at the service's URL. */
const tokenProof = (svc: TestService, key: TestKeyPair, over: { htm?: string; htu?: string } = {}) =>
  dpopProof(key, { htm: over.htm ?? 'POST', htu: over.htu ?? tokenUrl(svc) });

async function jwtGrant(svc: TestService, dpop?: string): Promise<Posted> {
  return post(svc, '/oauth2/token', { grant_type: JWT_BEARER, assertion: await assertion() }, dpop);
}

async function refresh(svc: TestService, refreshToken: string, dpop?: string): Promise<Posted> {
  return post(
    svc,
    '/oauth2/token',
    {
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: await assertion(),
    },
    dpop,
  );
}

/** Check of GET https://api.example.com/api/orders with `Authorization: DPoP` and a fresh proof by `key` (or none). */
async function checkDpop(svc: TestService, token: string, key: TestKeyPair | undefined): Promise<Decision> {
  const proof = key ? await dpopProof(key, { htm: 'GET', htu: API_URL, token }) : undefined;
  return svc.check({
    scheme: 'https',
    host: API_HOST,
    path: '/api/orders',
    headers: { authorization: `DPoP ${token}`, ...(proof ? { dpop: proof } : {}) },
  });
}

const checkBearer = (svc: TestService, token: string) =>
  svc.check({ scheme: 'https', host: API_HOST, path: '/api/orders', token });

function expectDenied(d: Decision, reason: string): void {
  expect(d.decision, JSON.stringify(d)).toBe('deny');
  expect(d.http_status).toBe(401);
  expect(d.reason).toBe(reason);
}

function expectInvalidProof(res: Posted): void {
  expect(res.status, JSON.stringify(res.json)).toBe(400);
  expect(res.json.error).toBe('invalid_dpop_proof');
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(res.json.access_token).toBeUndefined();
}

describe('token endpoint: DPoP-bound JWT access tokens', () => {
  it('a request with a proof gets token_type DPoP and cnf.jkt of the proof key; Check enforces the binding', async () => {
    const svc = await start();
    const res = await jwtGrant(svc, await tokenProof(svc, dpopKey));
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.token_type).toBe('DPoP');
    const token = res.json.access_token as string;
    expect(decodeJwt(token).cnf).toEqual({ jkt: await jktOf(dpopKey) });

    // A fresh proof by the same key, on every request.
    for (let i = 0; i < 2; i++) {
      const ok = await checkDpop(svc, token, dpopKey);
      expect(ok.decision, JSON.stringify(ok)).toBe('allow');
      expect(ok.dynamic_metadata?.issuer).toBe('self');
    }
    // Presented as a bearer token, with another key's proof, or without a proof: refused.
    expectDenied(await checkBearer(svc, token), 'cnf_mismatch');
    expectDenied(await checkDpop(svc, token, otherKey), 'cnf_mismatch');
    expectDenied(await checkDpop(svc, token, undefined), 'dpop_invalid');
  });

  it('introspection says token_type DPoP and returns cnf.jkt', async () => {
    const svc = await start();
    const res = await jwtGrant(svc, await tokenProof(svc, dpopKey));
    const intro = await post(svc, '/oauth2/introspect', {
      token: res.json.access_token as string,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: await assertion(),
    });
    expect(intro.status).toBe(200);
    expect(intro.json.active).toBe(true);
    expect(intro.json.token_type).toBe('DPoP');
    expect(intro.json.cnf).toEqual({ jkt: await jktOf(dpopKey) });
  });

  it('without a proof the token is an ordinary bearer token (no cnf), accepted as Bearer', async () => {
    const svc = await start();
    const res = await jwtGrant(svc);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.token_type).toBe('Bearer');
    const token = res.json.access_token as string;
    expect(decodeJwt(token).cnf).toBeUndefined();
    expect((await checkBearer(svc, token)).decision).toBe('allow');
    // An unbound token sent with the DPoP scheme is refused.
    expectDenied(await checkDpop(svc, token, dpopKey), 'cnf_missing');
    // Its refresh token is not bound either.
    const next = await refresh(svc, res.json.refresh_token as string);
    expect(next.status, JSON.stringify(next.json)).toBe(200);
    expect(next.json.token_type).toBe('Bearer');
  });
});

describe('discovery advertises DPoP', () => {
  it('openid-configuration lists dpop_signing_alg_values_supported (asymmetric algorithms only)', async () => {
    const svc = await start();
    const doc = (await (await fetch(`${svc.httpUrl}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    const algs = doc.dpop_signing_alg_values_supported as string[];
    expect(algs).toEqual(expect.arrayContaining(['ES256', 'RS256', 'EdDSA']));
    expect(algs.some((a) => a.startsWith('HS') || a === 'none')).toBe(false);
  });
});

describe('token endpoint: DPoP-bound opaque access tokens', () => {
  it('the stored token carries the binding: Check allows it only with a proof by the same key', async () => {
    const svc = await start({ format: 'opaque' });
    const res = await jwtGrant(svc, await tokenProof(svc, dpopKey));
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.token_type).toBe('DPoP');
    const token = res.json.access_token as string;
    expect(token).not.toContain('.');

    const ok = await checkDpop(svc, token, dpopKey);
    expect(ok.decision, JSON.stringify(ok)).toBe('allow');
    expectDenied(await checkBearer(svc, token), 'cnf_mismatch');
    expectDenied(await checkDpop(svc, token, otherKey), 'cnf_mismatch');

    // An unbound opaque token keeps working as Bearer.
    const plain = await jwtGrant(svc);
    expect(plain.json.token_type).toBe('Bearer');
    expect((await checkBearer(svc, plain.json.access_token as string)).decision).toBe('allow');
  });
});

describe('token endpoint: invalid proofs', () => {
  it('a replayed proof is refused with 400 invalid_dpop_proof', async () => {
    const svc = await start();
    const proof = await tokenProof(svc, dpopKey);
    expect((await jwtGrant(svc, proof)).status).toBe(200);
    const replay = await jwtGrant(svc, proof);
    expectInvalidProof(replay);
    expect(replay.json.error_description).toMatch(/already been used/);
  });

  it('a proof for another URL or method, malformed or too old is refused', async () => {
    const svc = await start();
    expectInvalidProof(
      await jwtGrant(svc, await tokenProof(svc, dpopKey, { htu: `${svc.httpUrl}/oauth2/revoke` })),
    );
    expectInvalidProof(
      await jwtGrant(
        svc,
        await tokenProof(svc, dpopKey, { htu: 'https://elsewhere.example.com/oauth2/token' }),
      ),
    );
    expectInvalidProof(await jwtGrant(svc, await tokenProof(svc, dpopKey, { htm: 'GET' })));
    expectInvalidProof(await jwtGrant(svc, 'not-a-jwt'));
    // A proof that is too old.
    const old = await dpopProof(dpopKey, {
      htm: 'POST',
      htu: tokenUrl(svc),
      iat: Math.floor(Date.now() / 1000) - 600,
    });
    expectInvalidProof(await jwtGrant(svc, old));
    // A refused proof does not use up the proof key: a good proof still works.
    expect((await jwtGrant(svc, await tokenProof(svc, dpopKey))).status).toBe(200);
  });

  it('with public_base_url the proof must name the public token endpoint URL, not the one the request reached', async () => {
    const svc = await start({ publicBaseUrl: 'https://login.example.com/auth/' });
    expectInvalidProof(await jwtGrant(svc, await tokenProof(svc, dpopKey)));
    const res = await jwtGrant(
      svc,
      await tokenProof(svc, dpopKey, { htu: 'https://login.example.com/auth/oauth2/token' }),
    );
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.token_type).toBe('DPoP');
  });
});

describe('token endpoint: DPoP-bound refresh tokens', () => {
  it('refreshing needs a proof by the same key; another key or none is invalid_grant and does not use up the token', async () => {
    const svc = await start();
    const first = await jwtGrant(svc, await tokenProof(svc, dpopKey));
    expect(first.status).toBe(200);
    const rt = first.json.refresh_token as string;
    expect(rt).toBeTruthy();

    const wrong = await refresh(svc, rt, await tokenProof(svc, otherKey));
    expect(wrong.status).toBe(400);
    expect(wrong.json.error).toBe('invalid_grant');
    const none = await refresh(svc, rt);
    expect(none.status).toBe(400);
    expect(none.json.error).toBe('invalid_grant');

    const ok = await refresh(svc, rt, await tokenProof(svc, dpopKey));
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(ok.json.token_type).toBe('DPoP');
    const token = ok.json.access_token as string;
    expect(decodeJwt(token).cnf).toEqual({ jkt: await jktOf(dpopKey) });
    expect((await checkDpop(svc, token, dpopKey)).decision).toBe('allow');

    // The rotated refresh token is bound too.
    const rotated = ok.json.refresh_token as string;
    expect((await refresh(svc, rotated, await tokenProof(svc, otherKey))).json.error).toBe('invalid_grant');
    expect((await refresh(svc, rotated, await tokenProof(svc, dpopKey))).status).toBe(200);
  });
});

describe('token endpoint: refresh with a proof for an unbound refresh token', () => {
  it('binds the new tokens, and the rotated refresh token, to the proof key', async () => {
    const svc = await start();
    const first = await jwtGrant(svc);
    expect(first.json.token_type).toBe('Bearer');
    const ok = await refresh(svc, first.json.refresh_token as string, await tokenProof(svc, dpopKey));
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(ok.json.token_type).toBe('DPoP');
    expect(decodeJwt(ok.json.access_token as string).cnf).toEqual({ jkt: await jktOf(dpopKey) });
    const again = await refresh(svc, ok.json.refresh_token as string);
    expect(again.status).toBe(400);
    expect(again.json.error).toBe('invalid_grant');
  });
});

describe('token_endpoint.dpop.required', () => {
  it('refuses token requests without a proof (invalid_dpop_proof) and serves those with one', async () => {
    const svc = await start({ required: true });
    const res = await jwtGrant(svc);
    expectInvalidProof(res);
    expect(res.json.error_description).toMatch(/requires a DPoP proof/);
    const ok = await jwtGrant(svc, await tokenProof(svc, dpopKey));
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(ok.json.token_type).toBe('DPoP');
  });
});

const redis = await getRedisUrl();
if (!redis) console.warn(`[redis] SKIPPED: DPoP-bound tokens on a shared Redis store — ${redisSkipReason}`);
afterAll(async () => {
  await redis?.stop();
});

describe.skipIf(!redis)('two instances sharing one Redis', () => {
  const PUBLIC = 'https://login.example.com';
  const PUBLIC_TOKEN_URL = `${PUBLIC}/oauth2/token`;

  async function ready(svc: TestService): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if ((await fetch(`${svc.httpUrl}/readyz`)).status === 200) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('service did not become ready');
  }

  it('a proof used on one replica is refused on the other; the binding of opaque and refresh tokens is shared', async () => {
    const store = { type: 'redis', redis_url: redis!.url, key_prefix: uniquePrefix('token-dpop') };
    const a = await start({ format: 'opaque', publicBaseUrl: PUBLIC, store });
    const b = await start({ format: 'opaque', publicBaseUrl: PUBLIC, store });
    await Promise.all([ready(a), ready(b)]);

    const proof = await tokenProof(a, dpopKey, { htu: PUBLIC_TOKEN_URL });
    const issued = await jwtGrant(a, proof);
    expect(issued.status, JSON.stringify(issued.json)).toBe(200);
    expectInvalidProof(await jwtGrant(b, proof));

    const token = issued.json.access_token as string;
    expect((await checkDpop(b, token, dpopKey)).decision).toBe('allow');
    expectDenied(await checkBearer(b, token), 'cnf_mismatch');

    const rt = issued.json.refresh_token as string;
    const wrong = await refresh(b, rt, await tokenProof(b, otherKey, { htu: PUBLIC_TOKEN_URL }));
    expect(wrong.json.error).toBe('invalid_grant');
    const ok = await refresh(b, rt, await tokenProof(b, dpopKey, { htu: PUBLIC_TOKEN_URL }));
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(ok.json.token_type).toBe('DPoP');
  });
});
