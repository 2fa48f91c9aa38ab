// Adversarial claims against the real service: time claims, lifetimes, iss / aud / sub and
// required claims. Every case asserts the exact outcome Envoy receives and the deny reason,
// and that the service still allows a valid token afterwards.
import { afterEach, describe, expect, it } from 'vitest';
import { forgeToken, standardClaims } from '../helpers/tokens.js';
import {
  ISS,
  AUD,
  rsa,
  now,
  good,
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

  // ------------------------------------------------------------------ time claims
  it('an expired token (beyond the 60 s skew) is refused', async () => {
    const t = good({ iat: now() - 600, exp: now() - 120 });
    expectInvalid(await send(t), 'token_expired', { token: t });
  });

  it('a token expired within the clock skew is still accepted', async () => {
    expectAllow(await send(good({ iat: now() - 600, exp: now() - 30 })));
  });

  it('a not-yet-valid token (nbf beyond skew) is refused', async () => {
    const t = good({ nbf: now() + 600, exp: now() + 900 });
    expectInvalid(await send(t), 'token_not_yet_valid', { token: t });
  });

  it('a token issued in the future (iat beyond skew) is refused', async () => {
    const t = good({ iat: now() + 600, exp: now() + 900 });
    expectInvalid(await send(t), 'iat_in_future', { token: t });
  });

  it('a token without exp is refused (required claim)', async () => {
    const t = good({ exp: undefined });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  it.each([
    ['exp as a numeric string', { exp: String(now() + 300) }],
    ['exp as a boolean', { exp: true }],
    ['exp as an object', { exp: { $gt: 0 } }],
    ['nbf as a string', { nbf: 'yesterday' }],
    ['iat as a string', { iat: String(now()) }],
    ['iat as null', { iat: null }],
  ])('%s is an invalid claim', async (_label, claims) => {
    const t = good(claims);
    expectInvalid(await send(t), 'claim_invalid', { token: t });
  });

  it('exp = 1e308 (finite, absurd lifetime) is refused', async () => {
    const t = good({ exp: 1e308 });
    expectInvalid(await send(t), 'lifetime_exceeded', { token: t });
  });

  it.each([
    ['exp', '1e999'],
    ['exp', '-1e999'],
    ['nbf', '1e400'],
    ['iat', '-1e400'],
  ])('%s = %s (overflows to ±Infinity) is an invalid claim', async (name, literal) => {
    // A placeholder number, then the raw literal (JSON.stringify cannot write it).
    const json = JSON.stringify(standardClaims(ISS, AUD, { [name]: 0 }));
    const withClaim = json.replace(`"${name}":0`, `"${name}":${literal}`);
    expect(withClaim).toContain(`"${name}":${literal}`);
    const t = forgeToken({
      header: { alg: 'RS256', kid: 'rsa-main' },
      payload: { raw: withClaim },
      key: rsa.privateKey,
    });
    expectInvalid(await send(t), 'claim_invalid', { token: t });
  });

  it('a lifetime longer than max_lifetime_seconds (86400) is refused; exactly 86400 is fine', async () => {
    const iat = now();
    const t = good({ iat, exp: iat + 86401 });
    expectInvalid(await send(t), 'lifetime_exceeded', { token: t });
    expectAllow(await send(good({ iat, exp: iat + 86400 })));
  });

  // ------------------------------------------------------------------ iss / aud / sub
  it.each([
    ['host case changed', 'https://IDP.example.test'],
    ['scheme case changed', 'HTTPS://idp.example.test'],
    ['trailing slash', `${ISS}/`],
    ['trailing space', `${ISS} `],
    ['a look-alike host', 'https://idp.example.test.evil.test'],
  ])('iss with %s is an unknown issuer', async (_label, iss) => {
    const t = good({ iss });
    expectInvalid(await send(t), 'issuer_unknown', { token: t });
  });

  it.each(['__proto__', 'constructor', 'toString'])('iss %s is an unknown issuer', async (iss) => {
    const t = good({ iss });
    expectInvalid(await send(t), 'issuer_unknown', { token: t });
  });

  it('a sub hidden behind a "__proto__" member does not satisfy required sub', async () => {
    const json = JSON.stringify(standardClaims(ISS, AUD, { sub: undefined })).replace(
      /}$/,
      ',"__proto__":{"sub":"admin","exp":9999999999}}',
    );
    const t = forgeToken({
      header: { alg: 'RS256', kid: 'rsa-main' },
      payload: { raw: json },
      key: rsa.privateKey,
    });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  it('a token without iss is refused', async () => {
    const t = good({ iss: undefined });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  it.each([
    ['another audience', 'api://other'],
    ['a case-changed audience', 'API://orders'],
    ['an empty string', ''],
    ['an empty array', []],
    ['an array of other audiences', ['api://other', 'api://orders/']],
    ['no aud at all', undefined],
  ])('aud as %s is an invalid audience', async (_label, aud) => {
    const t = good({ aud });
    expectInvalid(await send(t), 'audience_invalid', { token: t });
  });

  it.each([
    ['a number', 42],
    ['an array with a number', [AUD, 42]],
    ['an object', { aud: AUD }],
  ])('aud as %s is an invalid claim', async (_label, aud) => {
    const t = good({ aud });
    expectInvalid(await send(t), 'claim_invalid', { token: t });
  });

  it('aud as an array that contains the audience is accepted', async () => {
    expectAllow(await send(good({ aud: ['api://other', AUD] })));
  });

  it('a token without sub is refused (required by default)', async () => {
    const t = good({ sub: undefined });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  it('a token without iat is refused (required by default)', async () => {
    const t = good({ iat: undefined });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });
});
