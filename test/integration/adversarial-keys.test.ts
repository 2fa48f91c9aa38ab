// Adversarial tokens against the real service: key confusion, keys carried in the header
// (jwk, jku, x5u, x5c) and hostile kids. Every case asserts the exact outcome Envoy receives
// and the deny reason, and that the service still allows a valid token afterwards.
import { afterEach, describe, expect, it } from 'vitest';
import { forgeToken, standardClaims, type SigningKey } from '../helpers/tokens.js';
import { sleep } from '../helpers/wait.js';
import {
  ISS,
  ISS_ANY,
  AUD,
  rsa,
  attacker,
  attackerCert,
  clean,
  good,
  canary,
  expectInvalid,
  expectAllow,
  send,
  useAdversarialService,
} from '../helpers/adversarial.js';

useAdversarialService();

describe('adversarial tokens (default max_token_bytes)', () => {
  afterEach(async () => {
    // After every case the process still answers a fresh valid token.
    expectAllow(await send(good()));
  });

  // ------------------------------------------------------------------ key confusion
  const confusionSecrets: [string, () => SigningKey][] = [
    ['SPKI PEM', () => rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string],
    ['PKCS#1 PEM', () => rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string],
    ['SPKI DER', () => rsa.publicKey.export({ type: 'spki', format: 'der' })],
    ['PKCS#1 DER', () => rsa.publicKey.export({ type: 'pkcs1', format: 'der' })],
    ['JWK JSON', () => JSON.stringify(rsa.publicJwk)],
  ];
  it.each(confusionSecrets)(
    'HS256 keyed with the issuer RSA public key (%s) is refused',
    async (_label, secret) => {
      for (const [iss, kid] of [
        [ISS, 'rsa-main'],
        [ISS_ANY, 'rsa-main'],
        [ISS, undefined],
      ] as const) {
        const t = forgeToken({
          header: clean({ alg: 'HS256', typ: 'JWT', kid }),
          payload: standardClaims(iss, AUD),
          key: secret(),
        });
        expectInvalid(await send(t), 'alg_not_allowed', { token: t });
      }
    },
  );

  // ------------------------------------------------------------------ header-borne keys
  it('an embedded jwk header carrying the attacker key is never used', async () => {
    const claims = standardClaims(ISS, AUD);
    const jwk = { ...attacker.publicJwk };
    delete jwk.kid;
    // No kid: every trusted key is tried, none verifies.
    const noKid = forgeToken({ header: { alg: 'RS256', jwk }, payload: claims, key: attacker.privateKey });
    expectInvalid(await send(noKid), 'signature_invalid', { token: noKid });
    // The trusted kid: that key does not verify the attacker's signature.
    const trustedKid = forgeToken({
      header: { alg: 'RS256', kid: 'rsa-main', jwk },
      payload: claims,
      key: attacker.privateKey,
    });
    expectInvalid(await send(trustedKid), 'signature_invalid', { token: trustedKid });
    // The attacker's own kid, with its key embedded: unknown kid.
    const ownKid = forgeToken({
      header: { alg: 'RS256', kid: 'attacker-kid', jwk: attacker.publicJwk },
      payload: claims,
      key: attacker.privateKey,
    });
    expectInvalid(await send(ownKid), 'key_not_found', { token: ownKid, kid: 'attacker-kid' });
  });

  it('jku and x5u pointing at a canary server are never fetched', async () => {
    canary.resetCounts();
    const claims = standardClaims(ISS, AUD);
    const headers = [
      { alg: 'RS256', kid: 'attacker-kid', jku: canary.url },
      { alg: 'RS256', jku: canary.url },
      { alg: 'RS256', kid: 'attacker-kid', x5u: `${canary.baseUrl}/x5u.pem` },
      { alg: 'RS256', x5u: `${canary.baseUrl}/x5u.pem` },
      { alg: 'RS256', kid: 'attacker-kid', jku: canary.url, x5u: `${canary.baseUrl}/x5u.pem` },
    ];
    for (const header of headers) {
      const t = forgeToken({ header, payload: claims, key: attacker.privateKey });
      const d = await send(t);
      expectInvalid(d, 'kid' in header ? 'key_not_found' : 'signature_invalid', { token: t });
    }
    await sleep(200); // nothing fetched in the background either
    expect(canary.log).toHaveLength(0);
    expect(canary.requests).toBe(0);
  });

  it('an x5c header with the attacker certificate is never used', async () => {
    const x5c = [attackerCert.der.toString('base64')];
    const t = forgeToken({
      header: { alg: 'RS256', x5c },
      payload: standardClaims(ISS, AUD),
      key: attacker.privateKey,
    });
    expectInvalid(await send(t), 'signature_invalid', { token: t });
    const withThumb = forgeToken({
      header: { alg: 'RS256', x5c, 'x5t#S256': attackerCert.x5tS256 },
      payload: standardClaims(ISS, AUD),
      key: attacker.privateKey,
    });
    expectInvalid(await send(withThumb), 'key_not_found', { token: withThumb });
  });

  // ------------------------------------------------------------------ kid
  it('a path-traversal kid is just an unknown kid', async () => {
    const kid = '../../etc/passwd';
    const t = good({}, { kid });
    expectInvalid(await send(t), 'key_not_found', { token: t, kid });
  });

  it('a kid of 257 characters is an invalid header', async () => {
    const kid = 'k'.repeat(257);
    const t = good({}, { kid });
    expectInvalid(await send(t), 'header_invalid', { token: t, kid });
  });

  it('a kid of 100k characters exceeds max_token_bytes', async () => {
    const kid = 'K'.repeat(100_000);
    const t = good({}, { kid });
    expectInvalid(await send(t), 'token_too_large', { token: t, kid });
  });

  it.each(['__proto__', 'constructor', 'hasOwnProperty', 'toString'])(
    'kid %s (an Object.prototype name) is just an unknown kid',
    async (kid) => {
      const t = good({}, { kid });
      expectInvalid(await send(t), 'key_not_found', { token: t, kid });
    },
  );

  it.each([
    ['a number', 12345],
    ['an object', { path: '../../etc/passwd' }],
    ['an array', ['rsa-main']],
    ['null', null],
    ['a boolean', true],
  ])('a kid that is %s is an invalid header', async (_label, kid) => {
    const t = good({}, { kid });
    expectInvalid(await send(t), 'header_invalid', { token: t, kid });
  });
});
