import { RSA_ALGORITHMS } from '../config/sections/constants.js';

// What the service knows about JOSE algorithms and the keys that fit them, in one
// place: verification (authn), signing, encryption and client keys all read these
// tables, so a curve or a minimum key size cannot drift between them.

/** Smallest RSA modulus accepted anywhere (verification, signing, encryption, client certificates). */
export const MIN_RSA_BITS = 2048;

export type JwkCurve = 'P-256' | 'P-384' | 'P-521';

export interface EcCurve {
  /** JWK `crv`. */
  readonly jwk: JwkCurve;
  /** node:crypto / OpenSSL curve name (`asymmetricKeyDetails.namedCurve`). */
  readonly node: string;
  /** The ECDSA JWS alg of the curve. */
  readonly alg: 'ES256' | 'ES384' | 'ES512';
  /** Length in bytes of a raw (IEEE P1363, r || s) signature. */
  readonly sigLen: number;
}

/** The NIST curves supported for ECDSA signatures and ECDH-ES key agreement. */
export const EC_CURVES: readonly EcCurve[] = Object.freeze([
  Object.freeze({ jwk: 'P-256', node: 'prime256v1', alg: 'ES256', sigLen: 64 } as const),
  Object.freeze({ jwk: 'P-384', node: 'secp384r1', alg: 'ES384', sigLen: 96 } as const),
  Object.freeze({ jwk: 'P-521', node: 'secp521r1', alg: 'ES512', sigLen: 132 } as const),
]);

// Maps, not object literals: lookups take untrusted strings (a JWK's crv, a token's alg),
// which must never reach Object.prototype members.
const BY_JWK = new Map<string, EcCurve>(EC_CURVES.map((c) => [c.jwk, c]));
const BY_NODE = new Map<string, EcCurve>(EC_CURVES.map((c) => [c.node, c]));
const BY_ALG = new Map<string, EcCurve>(EC_CURVES.map((c) => [c.alg, c]));

/** The curve of a JWK `crv` value (P-256, P-384, P-521). */
export function ecCurveByJwk(crv: string | undefined): EcCurve | undefined {
  return crv === undefined ? undefined : BY_JWK.get(crv);
}

/** The curve of a node:crypto named curve (prime256v1, secp384r1, secp521r1). */
export function ecCurveByNode(namedCurve: string | undefined): EcCurve | undefined {
  return namedCurve === undefined ? undefined : BY_NODE.get(namedCurve);
}

/** The curve an ES256/ES384/ES512 alg signs on. */
export function ecCurveByAlg(alg: string): EcCurve | undefined {
  return BY_ALG.get(alg);
}

/** RSA signature algs (PKCS#1 v1.5 and PSS). */
export const RSA_SIGNATURE_ALGS: ReadonlySet<string> = new Set(RSA_ALGORITHMS);

/** Algs an Ed25519 (OKP) JWK may declare. */
export const OKP_SIGNATURE_ALGS: ReadonlySet<string> = new Set(['EdDSA', 'Ed25519']);

export type JwsFamily = 'HS' | 'RS' | 'PS' | 'ES' | 'EdDSA';

/** The family of a JWS alg of the supported list. */
export function jwsFamily(alg: string): JwsFamily {
  if (alg === 'EdDSA') return 'EdDSA';
  return alg.slice(0, 2) as JwsFamily;
}

/** Hash output length in bytes of an HS/RS/PS/ES alg (256 → 32, 384 → 48, 512 → 64). */
export function jwsHashBytes(alg: string): number {
  return Number(alg.slice(2)) / 8;
}

const HASH_NAMES = new Map<string, string>([
  ['256', 'sha256'],
  ['384', 'sha384'],
  ['512', 'sha512'],
]);

/** node:crypto hash name of an HS/RS/PS/ES alg (`ES384` → `sha384`); undefined for others. */
export function jwsHashName(alg: string): string | undefined {
  return HASH_NAMES.get(alg.slice(2));
}

// ---------------------------------------------------------------------------
// JWE (nested tokens)

/** Key-wrap key sizes (bytes) for AxxxKW and ECDH-ES+AxxxKW. */
const KW_BYTES: Record<string, number> = { A128KW: 16, A192KW: 24, A256KW: 32 };

/** Content-encryption key sizes (bytes): what a `dir` key must be. */
const ENC_KEY_BYTES: Record<string, number> = {
  'A128CBC-HS256': 32,
  'A192CBC-HS384': 48,
  'A256CBC-HS512': 64,
  A128GCM: 16,
  A192GCM: 24,
  A256GCM: 32,
};

export type JweKeyKind = 'rsa' | 'ecdh' | 'symmetric';

/** The kind of recipient key a JWE key-management alg takes. */
export function jweKeyKind(alg: string): JweKeyKind {
  if (alg.startsWith('RSA-OAEP')) return 'rsa';
  if (alg.startsWith('ECDH-ES')) return 'ecdh';
  return 'symmetric';
}

/** Required symmetric key size for alg/enc (AxxxKW or dir). */
export function jweSymmetricKeyBytes(alg: string, enc: string): number {
  return alg === 'dir' ? ENC_KEY_BYTES[enc]! : KW_BYTES[alg]!;
}
