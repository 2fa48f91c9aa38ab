import { describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import {
  MAX_DPOP_PROOF_BYTES,
  MemoryReplayCache,
  normalizeHtu,
  replayKey,
  replayTtlSeconds,
  requestUrl,
  verifyDpopProof,
  type DpopProofInput,
} from '../../../src/authn/dpop.js';
import type { AuthRequest } from '../../../src/core/request.js';
import { generateEcKeyPair, generateEd25519KeyPair, generateRsaKeyPair } from '../../helpers/keys.js';
import { dpopProof, jktOf, proofParts } from '../../helpers/dpop.js';
import { forgeToken } from '../../helpers/tokens.js';

const ec = generateEcKeyPair();
const other = generateEcKeyPair();
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
const URL_ = 'https://api.example.com/api/orders';
const NOW = Math.floor(Date.now() / 1000);

function input(proof: string | undefined, over: Partial<DpopProofInput> = {}): DpopProofInput {
  return { proof, method: 'GET', url: URL_, accessToken: TOKEN, now: NOW, clockSkewSeconds: 10, ...over };
}

async function description(proof: string | undefined, over: Partial<DpopProofInput> = {}) {
  const r = await verifyDpopProof(input(proof, over));
  if (!('kind' in r)) throw new Error('expected a denial');
  expect(r.reason).toBe('dpop_invalid');
  expect(r.scheme).toBe('DPoP');
  return r.description;
}

describe('verifyDpopProof', () => {
  it('accepts a proof signed with its embedded key and returns the key thumbprint', async () => {
    for (const pair of [ec, generateRsaKeyPair(), generateEd25519KeyPair()]) {
      const proof = await dpopProof(pair, { token: TOKEN, iat: NOW });
      const r = await verifyDpopProof(input(proof));
      expect(r).toMatchObject({ jkt: await jktOf(pair), iat: NOW });
    }
  });

  it('refuses a request without a proof', async () => {
    expect(await description(undefined)).toBe('the request has no DPoP proof');
  });

  it('refuses a wrong htm and a wrong htu', async () => {
    const post = await dpopProof(ec, { token: TOKEN, iat: NOW, htm: 'POST' });
    expect(await description(post)).toMatch(/htm does not match/);
    const elsewhere = await dpopProof(ec, {
      token: TOKEN,
      iat: NOW,
      htu: 'https://api.example.com/api/other',
    });
    expect(await description(elsewhere)).toMatch(/htu does not match/);
    const http = await dpopProof(ec, { token: TOKEN, iat: NOW, htu: 'http://api.example.com/api/orders' });
    expect(await description(http)).toMatch(/htu does not match/);
  });

  it('compares htu after normalisation, ignoring query and fragment', async () => {
    const proof = await dpopProof(ec, {
      token: TOKEN,
      iat: NOW,
      htu: 'HTTPS://API.Example.COM:443/api/%6Frders?page=2#top',
    });
    expect('kind' in (await verifyDpopProof(input(proof)))).toBe(false);
  });

  it('refuses a stale iat and one in the future, within the clock skew either way', async () => {
    const stale = await dpopProof(ec, { token: TOKEN, iat: NOW - 60 - 10 - 1 });
    expect(await description(stale)).toMatch(/too old/);
    const oldButFine = await dpopProof(ec, { token: TOKEN, iat: NOW - 60 - 10 });
    expect('kind' in (await verifyDpopProof(input(oldButFine)))).toBe(false);
    const future = await dpopProof(ec, { token: TOKEN, iat: NOW + 11 });
    expect(await description(future)).toMatch(/in the future/);
  });

  it('refuses a mismatched or missing ath', async () => {
    const forOther = await dpopProof(ec, { token: `${TOKEN}x`, iat: NOW });
    expect(await description(forOther)).toMatch(/ath does not match/);
    const without = await dpopProof(ec, { iat: NOW });
    expect(await description(without)).toMatch(/ath does not match/);
  });

  it('refuses symmetric and none algorithms', async () => {
    const { claims, header } = proofParts(ec, { token: TOKEN, iat: NOW });
    const hs = forgeToken({ header: { ...header, alg: 'HS256' }, payload: claims, key: Buffer.alloc(32, 7) });
    expect(await description(hs)).toMatch(/algorithm is not allowed/);
    const none = forgeToken({ header: { ...header, alg: 'none' }, payload: claims });
    expect(await description(none)).toMatch(/algorithm is not allowed/);
  });

  it('refuses a jwk with private key members, and a symmetric jwk', async () => {
    const { claims, header } = proofParts(ec, { token: TOKEN, iat: NOW });
    const { kid: _k, alg: _a, ...priv } = ec.privateJwk;
    const leaky = await new SignJWT(claims)
      .setProtectedHeader({ ...(header as { alg: string }), jwk: priv })
      .sign(ec.privateKey);
    expect(await description(leaky)).toMatch(/must be a public key/);
    const oct = forgeToken({
      header: { ...header, alg: 'ES256', jwk: { kty: 'oct', k: 'c2VjcmV0' } },
      payload: claims,
      key: ec.privateKey,
    });
    expect(await description(oct)).toMatch(/must be a public key/);
  });

  it('refuses a proof larger than 8 KiB before parsing it', async () => {
    const big = await dpopProof(ec, {
      token: TOKEN,
      iat: NOW,
      claims: { pad: 'x'.repeat(MAX_DPOP_PROOF_BYTES) },
    });
    expect(big.length).toBeGreaterThan(MAX_DPOP_PROOF_BYTES);
    expect(await description(big)).toBe('the DPoP proof is too large');
  });

  it('refuses a wrong typ, a missing jwk, a signature by another key and repeated proofs', async () => {
    const jwt = await dpopProof(ec, { token: TOKEN, iat: NOW, header: { typ: 'JWT' } });
    expect(await description(jwt)).toMatch(/typ/);
    const nokey = await dpopProof(ec, { token: TOKEN, iat: NOW, header: { jwk: undefined } });
    expect(await description(nokey)).toMatch(/no public key/);
    const { claims, header } = proofParts(ec, { token: TOKEN, iat: NOW });
    const forged = forgeToken({ header, payload: claims, key: other.privateKey });
    expect(await description(forged)).toBe('the DPoP proof signature is invalid');
    const good = await dpopProof(ec, { token: TOKEN, iat: NOW });
    expect(await description(`${good},${good}`)).toMatch(/more than one/);
    expect(await description('not-a-jwt')).toMatch(/well-formed/);
  });

  it('refuses a proof without a jti', async () => {
    const proof = await dpopProof(ec, { token: TOKEN, iat: NOW, claims: { jti: undefined } });
    expect(await description(proof)).toMatch(/jti/);
  });
});

describe('replay cache', () => {
  it('remembers a proof (per key and jti) once, for as long as the proof is acceptable', async () => {
    const cache = new MemoryReplayCache();
    const proof = { jkt: 'k1', jti: 'j1', iat: NOW };
    expect(await cache.rememberOnce(replayKey(proof), 70)).toBe(true);
    expect(await cache.rememberOnce(replayKey(proof), 70)).toBe(false);
    expect(await cache.rememberOnce(replayKey({ ...proof, jkt: 'k2' }), 70)).toBe(true);
    expect(replayKey(proof).startsWith('dpop:')).toBe(true);
    expect(replayTtlSeconds(proof, NOW, 10)).toBe(70);
    expect(replayTtlSeconds({ ...proof, iat: NOW - 1000 }, NOW, 10)).toBe(1);
  });
});

describe('request URL', () => {
  const req = (over: Partial<AuthRequest>): AuthRequest => ({
    method: 'GET',
    rawPath: '/api/orders?x=1',
    host: 'api.example.com',
    headers: {},
    contextExtensions: {},
    scheme: 'https',
    ...over,
  });
  it('is scheme, host and path without the query, normalised; unknown without scheme or host', () => {
    expect(requestUrl(req({}))).toBe('https://api.example.com/api/orders');
    expect(requestUrl(req({ host: 'API.example.com:443', rawPath: '/a/%7e/b#f' }))).toBe(
      'https://api.example.com/a/~/b',
    );
    expect(requestUrl(req({ scheme: 'http', host: 'h:8080', rawPath: '/%2f' }))).toBe('http://h:8080/%2F');
    expect(requestUrl(req({ scheme: undefined }))).toBeUndefined();
    expect(requestUrl(req({ host: '' }))).toBeUndefined();
    expect(normalizeHtu('ftp://x/y')).toBeUndefined();
  });
});
