// Adversarial tokens against the real service (gRPC Check, as Envoy sends it): alg none,
// the per-issuer alg allow-list, signature tricks, crit, and the published RFC 7515 vectors.
// Every case asserts the exact outcome Envoy receives and the deny reason, and that the
// service still allows a valid token afterwards.
import { afterEach, describe, it } from 'vitest';
import { sign } from 'node:crypto';
import { b64url, forgeToken, joseSign, rawToken, standardClaims } from '../helpers/tokens.js';
import {
  ISS,
  ISS_ANY,
  AUD,
  RFC7515_A5_NONE,
  RFC7515_E_UNKNOWN_CRIT,
  rsa,
  ec,
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

  // ------------------------------------------------------------------ alg none
  it.each([
    ['none', ''],
    ['None', ''],
    ['NONE', ''],
  ])('alg %s with an empty signature is malformed (3 non-empty segments required)', async (alg, sig) => {
    const t = forgeToken({ header: { alg, typ: 'JWT' }, payload: standardClaims(ISS, AUD), signature: sig });
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it.each([
    ['none', 'AAAA'],
    ['None', 'AAAA'],
    ['none', 'c2lnbmF0dXJl'],
  ])('alg %s with a non-empty signature is not allowed', async (alg, sig) => {
    const t = forgeToken({
      header: { alg, typ: 'JWT', kid: 'rsa-main' },
      payload: standardClaims(ISS, AUD),
      signature: sig,
    });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
  });

  it('alg none is refused for an issuer with default algorithms too', async () => {
    const t = forgeToken({
      header: { alg: 'none' },
      payload: standardClaims(ISS_ANY, AUD),
      signature: 'AAAA',
    });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
  });

  it('a header without alg is not allowed', async () => {
    const t = forgeToken({
      header: { typ: 'JWT', kid: 'rsa-main' },
      payload: standardClaims(ISS, AUD),
      key: rsa.privateKey,
      signAlg: 'RS256',
    });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
  });

  // ------------------------------------------------------------------ allow-list
  it('ES256 by a key that is in the JWKS is refused when the issuer allows only RS256', async () => {
    const claims = standardClaims(ISS, AUD);
    const t = forgeToken({ header: { alg: 'ES256', kid: 'ec-main' }, payload: claims, key: ec.privateKey });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
    // Control: the same key and alg are accepted by an issuer whose allow-list has ES256.
    const control = forgeToken({
      header: { alg: 'ES256', kid: 'ec-main' },
      payload: { ...claims, iss: ISS_ANY },
      key: ec.privateKey,
    });
    expectAllow(await send(control), 'any-alg');
  });

  it('a jose-signed PS256 token by the trusted RSA key is refused (RS256 only)', async () => {
    const t = await joseSign(standardClaims(ISS, AUD) as never, rsa.privateKey, {
      alg: 'PS256',
      kid: 'rsa-main',
    });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
  });

  it('a header that says RS256 over a PS256 signature is a bad signature', async () => {
    const t = forgeToken({
      header: { alg: 'RS256', kid: 'rsa-main' },
      payload: standardClaims(ISS, AUD),
      key: rsa.privateKey,
      signAlg: 'PS256',
    });
    expectInvalid(await send(t), 'signature_invalid', { token: t });
  });

  it('a tampered payload (sub changed after signing) is a bad signature', async () => {
    const t = good({ sub: 'user-1' });
    const [h, , s] = t.split('.');
    const forged = rawToken(h!, b64url(standardClaims(ISS, AUD, { sub: 'admin' })), s!);
    expectInvalid(await send(forged), 'signature_invalid', { token: forged });
  });

  it.each(['rs256', 'RS256 ', ' RS256', 'RS256\u0000', 'HS256', 'ES256K'])(
    'alg %j is not allowed',
    async (alg) => {
      const t = forgeToken({
        header: { alg, kid: 'rsa-main' },
        payload: standardClaims(ISS, AUD),
        key: rsa.privateKey,
        signAlg: 'RS256',
      });
      expectInvalid(await send(t), 'alg_not_allowed', { token: t });
    },
  );

  it('an ES256 signature in DER (not JWS r||s) encoding is a bad signature', async () => {
    const claims = standardClaims(ISS_ANY, AUD);
    const h = b64url({ alg: 'ES256', kid: 'ec-main' });
    const p = b64url(claims);
    const der = sign('sha256', Buffer.from(`${h}.${p}`), { key: ec.privateKey, dsaEncoding: 'der' });
    const t = rawToken(h, p, b64url(der));
    expectInvalid(await send(t), 'signature_invalid', { token: t });
  });

  it('an all-zero ES256 signature (r = s = 0, CVE-2022-21449 shape) is a bad signature', async () => {
    const t = forgeToken({
      header: { alg: 'ES256', kid: 'ec-main' },
      payload: standardClaims(ISS_ANY, AUD),
      signature: b64url(Buffer.alloc(64)),
    });
    expectInvalid(await send(t), 'signature_invalid', { token: t });
  });

  // ------------------------------------------------------------------ crit
  it.each([
    ['an unknown extension', ['http://example.com/UNDEFINED'], { 'http://example.com/UNDEFINED': true }],
    ['a registered name', ['exp'], { exp: 1 }],
    ['b64 (RFC 7797)', ['b64'], { b64: true }],
    ['an empty list', [], {}],
  ])('crit with %s is rejected', async (_label, crit, extra) => {
    const t = good({}, { crit, ...extra });
    expectInvalid(await send(t), 'crit_unsupported', { token: t });
  });

  // ------------------------------------------------------------------ published vectors
  it('the RFC 7515 A.5 unsecured JWS (alg none, empty signature) is refused', async () => {
    expectInvalid(await send(RFC7515_A5_NONE), 'token_malformed', { token: RFC7515_A5_NONE });
  });

  it('the RFC 7515 E unknown-crit vector is refused', async () => {
    expectInvalid(await send(RFC7515_E_UNKNOWN_CRIT), 'token_malformed', { token: RFC7515_E_UNKNOWN_CRIT });
  });

  it('the RFC 7515 E crit header with a non-empty signature is refused (alg none first)', async () => {
    const [h, p] = RFC7515_E_UNKNOWN_CRIT.split('.');
    const t = rawToken(h!, p!, 'AAAA');
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });
});
