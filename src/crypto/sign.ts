import { constants, createHmac, sign, type KeyObject } from 'node:crypto';
import { JWS_ALGORITHMS } from '../config/schema.js';
import { jwsFamily, jwsHashBytes, jwsHashName } from './algorithms.js';
import type { SigningKey } from './key-import.js';

// Compact JWS signing with node:crypto over a cached base64url header: synchronous
// for the request path, or on the thread pool for asymmetric algs.

type RawSigner = (input: Buffer, key: KeyObject) => Buffer;

function rawSignerFor(alg: string): RawSigner {
  const fam = jwsFamily(alg);
  if (fam === 'EdDSA') return (input, key) => sign(null, input, key);
  const hash = jwsHashName(alg)!;
  switch (fam) {
    case 'HS':
      return (input, key) => createHmac(hash, key).update(input).digest();
    case 'RS':
      return (input, key) => sign(hash, input, key);
    case 'PS': {
      const saltLength = jwsHashBytes(alg);
      return (input, key) => sign(hash, input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
    }
    case 'ES':
      return (input, key) => sign(hash, input, { key, dsaEncoding: 'ieee-p1363' });
    default:
      throw new Error(`unsupported JWS alg ${alg}`);
  }
}

const RAW_SIGNERS = new Map<string, RawSigner>(JWS_ALGORITHMS.map((alg) => [alg, rawSignerFor(alg)]));

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** The standard header `{alg, kid, typ: 'JWT'}` of a key; one frozen object per key. */
const STANDARD_HEADERS = new WeakMap<SigningKey, Readonly<Record<string, unknown>>>();
export function jwtHeader(key: SigningKey): Readonly<Record<string, unknown>> {
  let header = STANDARD_HEADERS.get(key);
  if (!header) {
    header = Object.freeze({ alg: key.alg, kid: key.kid, typ: 'JWT' });
    STANDARD_HEADERS.set(key, header);
  }
  return header;
}

// Encoded headers keyed by header object identity: callers that pass the same
// header object each time (jwtHeader(key), or their own constant) encode it once.
const ENCODED_HEADERS = new WeakMap<SigningKey, WeakMap<object, string>>();

function encodedHeader(key: SigningKey, header: Readonly<Record<string, unknown>>): string {
  let perKey = ENCODED_HEADERS.get(key);
  if (!perKey) {
    perKey = new WeakMap();
    ENCODED_HEADERS.set(key, perKey);
  }
  let encoded = perKey.get(header);
  if (encoded === undefined) {
    if (header.alg !== undefined && header.alg !== key.alg) {
      throw new Error(`JWS header alg ${String(header.alg)} does not match the key's alg ${key.alg}`);
    }
    encoded = b64json(header.alg === undefined ? { alg: key.alg, ...header } : header);
    perKey.set(header, encoded);
  }
  return encoded;
}

/**
 * A compact JWS of `payload` signed by `key`. `header.alg` must be absent (it is
 * then set to the key's alg, first) or equal the key's alg. Pass the same header
 * object each time (e.g. `jwtHeader(key)`) to reuse its encoding.
 */
export function signJws(
  key: SigningKey,
  header: Readonly<Record<string, unknown>>,
  payload: Readonly<Record<string, unknown>>,
): string {
  const signer = RAW_SIGNERS.get(key.alg);
  if (!signer) throw new Error(`unsupported JWS alg ${key.alg}`);
  const signingInput = `${encodedHeader(key, header)}.${b64json(payload)}`;
  const signature = signer(Buffer.from(signingInput, 'latin1'), key.key);
  return `${signingInput}.${signature.toString('base64url')}`;
}

/** Arguments of node:crypto sign() for an asymmetric JWS alg (undefined for HS*). */
function asymmetricSignArgs(
  alg: string,
  key: KeyObject,
): [string | null, Parameters<typeof sign>[2]] | undefined {
  switch (jwsFamily(alg)) {
    case 'EdDSA':
      return [null, key];
    case 'RS':
      return [jwsHashName(alg)!, key];
    case 'PS':
      return [
        jwsHashName(alg)!,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: jwsHashBytes(alg) },
      ];
    case 'ES':
      return [jwsHashName(alg)!, { key, dsaEncoding: 'ieee-p1363' }];
    default:
      return undefined;
  }
}

/**
 * signJws, with the asymmetric signature computed on libuv's thread pool (node:crypto
 * sign with a callback), so the event loop keeps serving checks meanwhile. HS* is
 * cheap and stays synchronous.
 */
export function signJwsAsync(
  key: SigningKey,
  header: Readonly<Record<string, unknown>>,
  payload: Readonly<Record<string, unknown>>,
): Promise<string> {
  const args = asymmetricSignArgs(key.alg, key.key);
  if (!args) {
    try {
      return Promise.resolve(signJws(key, header, payload));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => {
    const signingInput = `${encodedHeader(key, header)}.${b64json(payload)}`; // may throw: rejects
    sign(args[0], Buffer.from(signingInput, 'latin1'), args[1], (err, signature) =>
      err ? reject(err) : resolve(`${signingInput}.${signature.toString('base64url')}`),
    );
  });
}
