import {
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { ConfigError } from '../core/errors.js';
import { ecCurveByAlg, jwsFamily, jwsHashBytes, MIN_RSA_BITS } from './algorithms.js';
import { octBytes } from './key-files.js';
import { signingKeyMismatch } from './key-checks.js';

// Turning key material (a JWK, a PEM private key, a generated or in-memory key) into
// a SigningKey: the key object plus its kid and published public JWK.

export interface SigningKey {
  readonly alg: string;
  readonly kid: string;
  /** Private key (asymmetric algs) or secret key (HS*). */
  readonly key: KeyObject;
  /** kid, alg, use: 'sig' and the public members only; undefined for HS*. */
  readonly publicJwk?: JWK;
}

function checkJwkMembers(jwk: JWK, alg: string, where: string): void {
  if (jwk.alg !== undefined && jwk.alg !== alg) {
    throw new ConfigError([
      `${where}: the JWK declares alg ${String(jwk.alg)}, but the configured alg is ${alg}`,
    ]);
  }
  if (jwk.use !== undefined && jwk.use !== 'sig') {
    throw new ConfigError([`${where}: the JWK has use "${String(jwk.use)}"; a signing key needs "sig"`]);
  }
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('sign'))) {
    throw new ConfigError([`${where}: the JWK's key_ops do not include "sign"`]);
  }
}

export function keyFromJwk(jwk: JWK, alg: string, where: string): KeyObject {
  checkJwkMembers(jwk, alg, where);
  if (jwk.kty === 'oct') {
    if (jwsFamily(alg) !== 'HS')
      throw new ConfigError([`${where}: ${alg} needs a private key, got an "oct" JWK`]);
    return createSecretKey(octBytes(jwk, where));
  }
  if (jwsFamily(alg) === 'HS') {
    throw new ConfigError([`${where}: ${alg} needs an "oct" JWK or secret_file, got a "${jwk.kty}" JWK`]);
  }
  if (jwk.d === undefined) {
    throw new ConfigError([`${where}: the JWK is a public key; signing needs the private key (with "d")`]);
  }
  try {
    return createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw new ConfigError([`${where}: cannot import the JWK (${(err as Error).message})`]);
  }
}

export function keyFromPem(pem: string, alg: string, where: string): KeyObject {
  if (jwsFamily(alg) === 'HS') {
    throw new ConfigError([`${where}: ${alg} takes an "oct" JWK or secret_file, not a PEM file`]);
  }
  if (pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----')) {
    throw new ConfigError([
      `${where}: encrypted PEM private keys are not supported; give an unencrypted PKCS#8 key`,
    ]);
  }
  if (!/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError([`${where}: expected a PKCS#8 private key (a PEM block labelled "PRIVATE KEY")`]);
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new ConfigError([`${where}: cannot parse the PEM private key (${(err as Error).message})`]);
  }
}

export async function buildSigningKey(
  alg: string,
  key: KeyObject,
  declaredKid: string | undefined,
): Promise<SigningKey> {
  if (key.type === 'secret') {
    const kid =
      declaredKid ??
      (await calculateJwkThumbprint({ kty: 'oct', k: key.export().toString('base64url') }, 'sha256'));
    return Object.freeze({ alg, kid, key });
  }
  const pub = createPublicKey(key).export({ format: 'jwk' }) as JWK;
  const kid = declaredKid ?? (await calculateJwkThumbprint(pub, 'sha256'));
  const publicJwk: JWK = Object.freeze({ ...pub, kid, alg, use: 'sig' });
  return Object.freeze({ alg, kid, key, publicJwk });
}

export function generateSigningKeyObject(alg: string): KeyObject {
  switch (jwsFamily(alg)) {
    case 'HS':
      return createSecretKey(randomBytes(jwsHashBytes(alg)));
    case 'RS':
    case 'PS':
      return generateKeyPairSync('rsa', { modulusLength: MIN_RSA_BITS }).privateKey;
    case 'ES':
      return generateKeyPairSync('ec', { namedCurve: ecCurveByAlg(alg)!.node }).privateKey;
    default:
      return generateKeyPairSync('ed25519').privateKey;
  }
}

/** A signing key from an in-memory KeyObject (checked against alg like a key file). */
export async function signingKeyFromKeyObject(
  alg: string,
  key: KeyObject,
  kid?: string,
): Promise<SigningKey> {
  const mismatch = signingKeyMismatch(alg, key);
  if (mismatch) throw new Error(mismatch);
  return buildSigningKey(alg, key, kid);
}
