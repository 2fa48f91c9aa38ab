import { createSecretKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signingKeyMismatch } from '../../../src/crypto/key-checks.js';

const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve });

describe('signingKeyMismatch', () => {
  it('accepts a key that fits its alg', () => {
    expect(signingKeyMismatch('ES384', ec('secp384r1').privateKey)).toBeUndefined();
    expect(signingKeyMismatch('HS256', createSecretKey(randomBytes(32)))).toBeUndefined();
    expect(signingKeyMismatch('EdDSA', generateKeyPairSync('ed25519').privateKey)).toBeUndefined();
  });

  it('names the curve the alg needs and the one it got', () => {
    expect(signingKeyMismatch('ES256', ec('secp384r1').privateKey)).toBe(
      'ES256 needs an EC P-256 key, got an EC key on P-384',
    );
  });

  it('refuses a public key, a short secret and a small RSA key', () => {
    expect(signingKeyMismatch('ES256', ec('prime256v1').publicKey)).toBe(
      'ES256 needs a private key, got a public key',
    );
    expect(signingKeyMismatch('HS512', createSecretKey(randomBytes(32)))).toBe(
      'HS512 needs a secret of at least 64 bytes, got 32',
    );
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expect(signingKeyMismatch('PS256', small)).toBe('PS256 needs an RSA key of at least 2048 bits, got 1024');
  });
});
