import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigObject } from '../../src/config/load.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  makeJwks,
} from '../helpers/keys.js';
import { dpopProof, jktOf } from '../helpers/dpop.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { getRedisUrl, redisSkipReason, uniquePrefix, type RedisHandle } from '../helpers/redis.js';
import { jwtMinter } from '../helpers/tokens.js';

const idp = generateRsaKeyPair({ kid: 'idp-1' });
const clientKey = generateEcKeyPair();
const cert = createSelfSignedCertificate(clientKey, { subject: 'client-a' });
const otherCert = createSelfSignedCertificate(generateEcKeyPair(), { subject: 'client-b' });
const dpopKey = generateEcKeyPair();
const HOST = 'api.example.com';
const URL_ = `https://${HOST}/api/orders`;

const mint = jwtMinter(idp, { sub: 'alice', scope: 'read', aud: 'api://orders' }, { ttlSeconds: 600 });
const token = (iss: string, cnf?: Record<string, unknown>, extra: Record<string, unknown> = {}): string =>
  mint({ ...(cnf ? { cnf } : {}), ...extra, iss });

const issuer = (name: string, iss: string, sender_constraint?: Record<string, string>) => ({
  name,
  issuer: iss,
  audiences: ['api://orders'],
  jwks: makeJwks(idp),
  ...(sender_constraint ? { sender_constraint } : {}),
});

const dpopCall = (tok: string, proof: string | undefined, over: Record<string, unknown> = {}) => ({
  scheme: 'https',
  host: HOST,
  path: '/api/orders?page=2',
  headers: { authorization: `DPoP ${tok}`, ...(proof ? { dpop: proof } : {}) },
  ...over,
});

describe('sender-constrained tokens through Check', () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startTestService({
      realm: 'orders',
      issuers: [
        issuer('mtls', 'https://mtls.example.com', { mtls: 'required' }),
        issuer('mtls-opt', 'https://mtls-opt.example.com', { mtls: 'optional' }),
        issuer('dpop', 'https://dpop.example.com', { dpop: 'required' }),
        issuer('dpop-opt', 'https://dpop-opt.example.com', { dpop: 'optional' }),
        issuer('plain', 'https://plain.example.com'),
      ],
      upstream: { claim_headers: { 'x-user-id': 'sub' } },
    });
  });
  afterAll(async () => {
    await svc?.close();
  });

  describe('certificate-bound tokens (mTLS)', () => {
    it('allows the certificate the token is bound to, on every request', async () => {
      const tok = token('https://mtls.example.com', { 'x5t#S256': cert.x5tS256 });
      for (let i = 0; i < 3; i++) {
        const d = await svc.check({ token: tok, clientCertificate: cert.pem });
        expect(d.decision).toBe('allow');
        expect(d.headers['x-user-id']).toBe('alice');
      }
    });

    it('refuses another certificate even after the token was allowed (cached decision)', async () => {
      const tok = token('https://mtls.example.com', { 'x5t#S256': cert.x5tS256 });
      expect((await svc.check({ token: tok, clientCertificate: cert.pem })).decision).toBe('allow');
      expect((await svc.check({ token: tok, clientCertificate: cert.pem })).decision).toBe('allow');
      const d = await svc.check({ token: tok, clientCertificate: otherCert.pem });
      expect(d).toMatchObject({ decision: 'deny', http_status: 401, reason: 'cnf_mismatch' });
      expect(d.headers['www-authenticate']).toBe(
        'Bearer realm="orders", error="invalid_token", error_description="the client certificate does not match the token (cnf x5t#S256)"',
      );
      expect(JSON.stringify(d)).not.toContain('BEGIN CERTIFICATE');
      const none = await svc.check({ token: tok });
      expect(none).toMatchObject({ decision: 'deny', http_status: 401, reason: 'cnf_mismatch' });
      expect(none.body.error_description).toMatch(/presented none/);
    });

    it('required refuses a token without a certificate binding; optional allows it', async () => {
      const unbound = await svc.check({
        token: token('https://mtls.example.com'),
        clientCertificate: cert.pem,
      });
      expect(unbound).toMatchObject({ decision: 'deny', http_status: 401, reason: 'cnf_missing' });
      const optional = await svc.check({ token: token('https://mtls-opt.example.com') });
      expect(optional.decision).toBe('allow');
      const boundOptional = await svc.check({
        token: token('https://mtls-opt.example.com', { 'x5t#S256': cert.x5tS256 }),
        clientCertificate: otherCert.pem,
      });
      expect(boundOptional.reason).toBe('cnf_mismatch');
    });

    it('an issuer without a sender constraint ignores cnf as before', async () => {
      const d = await svc.check({
        token: token('https://plain.example.com', { 'x5t#S256': cert.x5tS256 }),
      });
      expect(d.decision).toBe('allow');
    });
  });

  describe('DPoP-bound tokens', () => {
    it('allows a token with a fresh proof of its key on every request, and refuses a replayed proof', async () => {
      const tok = token('https://dpop.example.com', { jkt: await jktOf(dpopKey) });
      for (let i = 0; i < 3; i++) {
        const proof = await dpopProof(dpopKey, { token: tok, htu: URL_, htm: 'GET' });
        const d = await svc.check(dpopCall(tok, proof));
        expect(d.decision).toBe('allow');
        expect(d.headers_to_remove).toEqual(expect.arrayContaining(['authorization', 'dpop']));
      }
      const proof = await dpopProof(dpopKey, { token: tok, htu: URL_ });
      expect((await svc.check(dpopCall(tok, proof))).decision).toBe('allow');
      const replay = await svc.check(dpopCall(tok, proof));
      expect(replay).toMatchObject({ decision: 'deny', http_status: 401, reason: 'dpop_replayed' });
      expect(replay.headers['www-authenticate']).toMatch(
        /^DPoP realm="orders", algs="[^"]*ES256[^"]*", error="invalid_dpop_proof", error_description="the DPoP proof has already been used \(jti\)"$/,
      );
      expect(replay.body).toEqual({
        error: 'invalid_dpop_proof',
        error_description: 'the DPoP proof has already been used (jti)',
      });
    });

    it('refuses proofs for another URL or method, by another key, or missing (cached token or not)', async () => {
      const tok = token('https://dpop.example.com', { jkt: await jktOf(dpopKey) });
      const ok = await dpopProof(dpopKey, { token: tok, htu: URL_ });
      expect((await svc.check(dpopCall(tok, ok))).decision).toBe('allow');
      const wrongUrl = await dpopProof(dpopKey, { token: tok, htu: `https://${HOST}/api/admin` });
      expect(await svc.check(dpopCall(tok, wrongUrl))).toMatchObject({
        reason: 'dpop_invalid',
        http_status: 401,
      });
      const httpUrl = await dpopProof(dpopKey, { token: tok, htu: `http://${HOST}/api/orders` });
      expect((await svc.check(dpopCall(tok, httpUrl))).reason).toBe('dpop_invalid');
      const wrongMethod = await dpopProof(dpopKey, { token: tok, htu: URL_, htm: 'DELETE' });
      expect((await svc.check(dpopCall(tok, wrongMethod))).reason).toBe('dpop_invalid');
      const otherKey = await dpopProof(generateEcKeyPair(), { token: tok, htu: URL_ });
      const mismatch = await svc.check(dpopCall(tok, otherKey));
      expect(mismatch).toMatchObject({ reason: 'cnf_mismatch', http_status: 401 });
      expect(mismatch.headers['www-authenticate']).toMatch(/^DPoP realm="orders", error="invalid_token"/);
      const missing = await svc.check(dpopCall(tok, undefined));
      expect(missing.reason).toBe('dpop_invalid');
      expect(missing.body.error_description).toBe('the request has no DPoP proof');
    });

    it('matches htu case-insensitively in scheme and host, with the scheme written in any case', async () => {
      const tok = token('https://dpop.example.com', { jkt: await jktOf(dpopKey) });
      const proof = await dpopProof(dpopKey, { token: tok, htu: `HTTPS://API.EXAMPLE.COM:443/api/orders` });
      const d = await svc.check({
        ...dpopCall(tok, proof),
        headers: { authorization: `dpop ${tok}`, dpop: proof },
      });
      expect(d.decision).toBe('allow');
    });

    it('refuses a DPoP-bound token sent as Bearer, and an unbound token where DPoP is required', async () => {
      const tok = token('https://dpop.example.com', { jkt: await jktOf(dpopKey) });
      const proof = await dpopProof(dpopKey, { token: tok, htu: URL_ });
      const bearer = await svc.check({
        ...dpopCall(tok, proof),
        headers: { authorization: `Bearer ${tok}`, dpop: proof },
      });
      expect(bearer).toMatchObject({ reason: 'cnf_mismatch', http_status: 401 });
      expect(bearer.headers['www-authenticate']).toMatch(/^DPoP realm="orders", error="invalid_token"/);
      const unbound = await svc.check({
        scheme: 'https',
        host: HOST,
        token: token('https://dpop.example.com'),
      });
      expect(unbound).toMatchObject({ reason: 'cnf_missing', http_status: 401 });
      const optionalUnbound = await svc.check({ token: token('https://dpop-opt.example.com') });
      expect(optionalUnbound.decision).toBe('allow');
    });

    it('refuses the DPoP scheme for an issuer that does not accept DPoP', async () => {
      const tok = token('https://plain.example.com', { jkt: await jktOf(dpopKey) });
      const proof = await dpopProof(dpopKey, { token: tok, htu: URL_ });
      const d = await svc.check(dpopCall(tok, proof));
      expect(d).toMatchObject({ reason: 'cnf_mismatch', http_status: 401 });
      expect(d.headers['www-authenticate']).toMatch(/^Bearer realm="orders", error="invalid_token"/);
    });
  });

  it('a bad sender_constraint value is a config error naming the field', () => {
    expect(() =>
      loadConfigObject(
        { issuers: [{ ...issuer('x', 'https://x'), sender_constraint: { dpop: 'sometimes' } }] },
        '.',
        {},
      ),
    ).toThrow(/issuers\[0\]\.sender_constraint\.dpop: must be one of off, optional, required/);
    expect(() =>
      loadConfigObject(
        { issuers: [{ ...issuer('x', 'https://x'), sender_constraint: { mtls: 'on', tls: 1 } }] },
        '.',
        {},
      ),
    ).toThrow(/issuers\[0\]\.sender_constraint\.tls: unknown key/);
  });
});

describe('sender-constrained tokens without the verified-token cache', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({
      issuers: [
        issuer('mtls', 'https://mtls.example.com', { mtls: 'required' }),
        issuer('dpop', 'https://dpop.example.com', { dpop: 'required' }),
      ],
      verified_token_cache: { enabled: false },
    });
  });
  afterAll(async () => {
    await svc?.close();
  });

  it('checks the certificate and the DPoP proof on the uncached path too', async () => {
    const bound = token('https://mtls.example.com', { 'x5t#S256': cert.x5tS256 });
    expect((await svc.check({ token: bound, clientCertificate: cert.pem })).decision).toBe('allow');
    expect((await svc.check({ token: bound, clientCertificate: otherCert.pem })).reason).toBe('cnf_mismatch');
    const tok = token('https://dpop.example.com', { jkt: await jktOf(dpopKey) });
    const proof = await dpopProof(dpopKey, { token: tok, htu: URL_ });
    expect((await svc.check(dpopCall(tok, proof))).decision).toBe('allow');
    expect((await svc.check(dpopCall(tok, proof))).reason).toBe('dpop_replayed');
  });
});

let redis: RedisHandle | undefined;
const redisAvailable = await getRedisUrl().then((h) => ((redis = h), h !== undefined));

describe.skipIf(!redisAvailable)('DPoP replay across replicas (shared store)', () => {
  if (!redisAvailable) console.log(`[redis] SKIPPED: ${redisSkipReason}`);
  let a: TestService;
  let b: TestService;

  beforeAll(async () => {
    const config = {
      issuers: [issuer('dpop', 'https://dpop.example.com', { dpop: 'required' })],
      token_endpoint: {
        enabled: true,
        issuer: 'https://authz.example.com',
        audience: 'https://authz.example.com/token',
      },
      store: { type: 'redis', redis_url: redis!.url, key_prefix: uniquePrefix('dpop') },
    };
    a = await startTestService(config);
    b = await startTestService(config);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('a proof used on one replica is refused on another', async () => {
    const tok = token('https://dpop.example.com', { jkt: await jktOf(dpopKey) });
    const proof = await dpopProof(dpopKey, { token: tok, htu: URL_ });
    expect((await a.check(dpopCall(tok, proof))).decision).toBe('allow');
    expect(await b.check(dpopCall(tok, proof))).toMatchObject({ decision: 'deny', reason: 'dpop_replayed' });
  });
});
