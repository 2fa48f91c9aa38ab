import { decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyObject, signingKeyFromKeyObject } from '../../../src/crypto/key-import.js';
import { jwtHeader, signJws, signJwsAsync } from '../../../src/crypto/sign.js';
import { jwksFromRoute } from '../../helpers/mint.js';

async function freshKey(alg: string) {
  return signingKeyFromKeyObject(alg, generateSigningKeyObject(alg));
}

describe('signJws', () => {
  it('refuses a header whose alg differs from the key', async () => {
    const key = await freshKey('ES256');
    expect(() => signJws(key, { alg: 'HS256' }, {})).toThrow(/does not match/);
  });

  it('fills alg into a header without one and keeps other members', async () => {
    const key = await freshKey('ES256');
    const token = signJws(key, { typ: 'at+jwt', kid: key.kid }, { sub: 'x' });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: key.kid });
    const { keySet } = await jwksFromRoute(() => [key.publicJwk!]);
    await expect(jwtVerify(token, keySet, { typ: 'at+jwt' })).resolves.toBeTruthy();
  });

  it('jwtHeader is one frozen object per key', async () => {
    const key = await freshKey('EdDSA');
    expect(jwtHeader(key)).toBe(jwtHeader(key));
    expect(Object.isFrozen(jwtHeader(key))).toBe(true);
    expect(jwtHeader(key)).toEqual({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' });
  });
});

describe('signJwsAsync', () => {
  it.each(['RS256', 'PS384', 'ES512', 'EdDSA', 'HS256'])('%s: a token that verifies', async (alg) => {
    const key = await freshKey(alg);
    const token = await signJwsAsync(key, jwtHeader(key), { sub: 'alice' });
    if (key.publicJwk) {
      const { keySet } = await jwksFromRoute(() => [key.publicJwk!]);
      await expect(jwtVerify(token, keySet)).resolves.toMatchObject({ payload: { sub: 'alice' } });
    } else {
      await expect(jwtVerify(token, key.key)).resolves.toMatchObject({ payload: { sub: 'alice' } });
    }
  });

  it('rejects (does not throw) on a header whose alg differs from the key', async () => {
    const key = await freshKey('ES256');
    await expect(signJwsAsync(key, { alg: 'ES384' }, {})).rejects.toThrow(/does not match/);
  });
});
