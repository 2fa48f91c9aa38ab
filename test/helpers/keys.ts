// Test key material: key pairs as KeyObjects plus public / private JWKs, JWKS documents,
// and self-signed X.509 certificates with arbitrary validity (built in-process with a
// tiny DER encoder, so expired or not-yet-valid certificates are easy to make).
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

export interface Jwk {
  kty: string;
  kid?: string;
  alg?: string;
  use?: string;
  key_ops?: string[];
  crv?: string;
  [member: string]: unknown;
}

export interface TestKeyPair {
  readonly kid: string;
  /** The JWS alg this key is meant for (RS256, ES256, EdDSA, …). */
  readonly alg: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** Public JWK with kid, alg and use: sig. */
  readonly publicJwk: Jwk;
  /** Private JWK with kid and alg. */
  readonly privateJwk: Jwk;
}

let counter = 0;
const nextKid = (prefix: string): string => `${prefix}-${++counter}-${randomBytes(3).toString('hex')}`;

function pair(kid: string, alg: string, privateKey: KeyObject, publicKey: KeyObject): TestKeyPair {
  const publicJwk = { ...(publicKey.export({ format: 'jwk' }) as Jwk), kid, alg, use: 'sig' };
  const privateJwk = { ...(privateKey.export({ format: 'jwk' }) as Jwk), kid, alg };
  return { kid, alg, privateKey, publicKey, publicJwk, privateJwk };
}

/** RSA key pair (default 2048 bits, RS256). 1024 bits is allowed here for refusal tests. */
export function generateRsaKeyPair(opts: { kid?: string; bits?: number; alg?: string } = {}): TestKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: opts.bits ?? 2048 });
  return pair(opts.kid ?? nextKid('rsa'), opts.alg ?? 'RS256', privateKey, publicKey);
}

const EC_ALG: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };
const EC_NODE: Record<string, string> = {
  'P-256': 'prime256v1',
  'P-384': 'secp384r1',
  'P-521': 'secp521r1',
  secp256k1: 'secp256k1',
};

/** EC key pair (default P-256 / ES256). */
export function generateEcKeyPair(
  opts: { kid?: string; crv?: 'P-256' | 'P-384' | 'P-521' | 'secp256k1' } = {},
): TestKeyPair {
  const crv = opts.crv ?? 'P-256';
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: EC_NODE[crv]! });
  return pair(opts.kid ?? nextKid('ec'), EC_ALG[crv] ?? 'ES256K', privateKey, publicKey);
}

/** Ed25519 key pair (alg EdDSA). */
export function generateEd25519KeyPair(opts: { kid?: string } = {}): TestKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return pair(opts.kid ?? nextKid('ed'), 'EdDSA', privateKey, publicKey);
}

/** A JWKS document of the given public keys (pairs or raw JWKs; anything else is passed through as is). */
export function makeJwks(...keys: (TestKeyPair | Jwk)[]): { keys: Jwk[] } {
  const one = (k: TestKeyPair | Jwk): Jwk => {
    if (typeof k !== 'object' || k === null) return k;
    return 'publicJwk' in k ? { ...(k as TestKeyPair).publicJwk } : { ...k };
  };
  return { keys: keys.map(one) };
}

// ---------------------------------------------------------------- X.509 (DER)

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}
const seq = (...c: Buffer[]): Buffer => der(0x30, ...c);
const set = (...c: Buffer[]): Buffer => der(0x31, ...c);
const nul = (): Buffer => Buffer.from([0x05, 0x00]);
function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const parts: number[] = [];
    let v = arc;
    do {
      parts.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < parts.length - 1; i++) parts[i]! |= 0x80;
    out.push(...parts);
  }
  return der(0x06, Buffer.from(out));
}
function positiveInteger(bytes: Buffer): Buffer {
  const b = bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  return der(0x02, b);
}
function time(d: Date): Buffer {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return der(0x17, Buffer.from(`${p(y % 100)}${rest}`, 'ascii'));
  return der(0x18, Buffer.from(`${p(y, 4)}${rest}`, 'ascii'));
}
function name(cn: string): Buffer {
  return seq(set(seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn, 'utf8')))));
}

export interface TestCertificate {
  readonly pem: string;
  readonly der: Buffer;
  /** base64url SHA-256 / SHA-1 of the DER certificate. */
  readonly x5tS256: string;
  readonly x5t: string;
}

/**
 * A self-signed X.509 v1 certificate for the pair's public key (RSA, EC or Ed25519),
 * valid from `notBefore` (default: 1 hour ago) to `notAfter` (default: in 1 year).
 */
export function createSelfSignedCertificate(
  keyPair: Pick<TestKeyPair, 'privateKey' | 'publicKey'>,
  opts: { subject?: string; notBefore?: Date; notAfter?: Date } = {},
): TestCertificate {
  const type = keyPair.privateKey.asymmetricKeyType;
  let algId: Buffer;
  let digest: string | null;
  if (type === 'rsa') {
    algId = seq(oid('1.2.840.113549.1.1.11'), nul()); // sha256WithRSAEncryption
    digest = 'sha256';
  } else if (type === 'ec') {
    algId = seq(oid('1.2.840.10045.4.3.2')); // ecdsa-with-SHA256
    digest = 'sha256';
  } else if (type === 'ed25519') {
    algId = seq(oid('1.3.101.112'));
    digest = null;
  } else {
    throw new Error(`unsupported key type ${type}`);
  }
  const subject = name(opts.subject ?? 'test certificate');
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600_000);
  const notAfter = opts.notAfter ?? new Date(Date.now() + 365 * 86400_000);
  const serial = randomBytes(8);
  serial[0]! &= 0x7f;
  serial[0]! |= 0x01;
  const spki = keyPair.publicKey.export({ type: 'spki', format: 'der' });
  const tbs = seq(
    positiveInteger(serial),
    algId,
    subject,
    seq(time(notBefore), time(notAfter)),
    subject,
    spki,
  );
  const signature = sign(digest, tbs, keyPair.privateKey);
  const cert = seq(tbs, algId, der(0x03, Buffer.from([0]), signature));
  const b64 = cert.toString('base64').replace(/(.{64})/g, '$1\n');
  return {
    der: cert,
    pem: `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`,
    x5tS256: createHash('sha256').update(cert).digest('base64url'),
    x5t: createHash('sha1').update(cert).digest('base64url'),
  };
}
