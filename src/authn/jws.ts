import { isUtf8 } from 'node:buffer';
import { constants, createHmac, timingSafeEqual, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { deny, type Deny } from '../core/decision.js';
import { isPlainObject } from '../core/objects.js';
import { ecCurveByAlg, jwsHashBytes, jwsHashName } from '../crypto/algorithms.js';
import { verifiesInline } from '../crypto/offload.js';
import type { VerificationKey } from './keys/key-source.js';

// Strict compact JWS parsing and signature checks (docs/verification.md "Verification rules").
// jose accepts padded or non-canonical base64url; we do not, because the token
// string is used as a cache key and must not be malleable.

const SEGMENT = /^[A-Za-z0-9_-]+$/;

export interface ParsedJws {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
  /** ASCII bytes of `<header>.<payload>`. */
  readonly signingInput: string;
  readonly signature: Buffer;
}

function decodeSegment(seg: string): Buffer | undefined {
  if (!SEGMENT.test(seg) || seg.length % 4 === 1) return undefined;
  return Buffer.from(seg, 'base64url');
}

function parseJsonObject(bytes: Buffer): Record<string, unknown> | undefined {
  // JSON text is UTF-8: invalid sequences are refused, not replaced with U+FFFD (which
  // would let different signed bytes read as the same claims).
  if (!isUtf8(bytes)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  return isPlainObject(value) ? value : undefined;
}

/** UTF-8 size above max (cheap for the usual ASCII token: byteLength only when it could matter). */
export function exceedsBytes(token: string, maxBytes: number): boolean {
  return (
    token.length > maxBytes || (token.length * 3 > maxBytes && Buffer.byteLength(token, 'utf8') > maxBytes)
  );
}

export function parseCompactJws(token: string, maxBytes: number): ParsedJws | Deny {
  if (exceedsBytes(token, maxBytes)) return deny('token_too_large', 'the token is too large');
  const d1 = token.indexOf('.');
  const d2 = d1 < 0 ? -1 : token.indexOf('.', d1 + 1);
  if (d1 <= 0 || d2 <= d1 + 1 || d2 === token.length - 1) {
    return deny('token_malformed', 'the token is not a compact JWS (three base64url parts)');
  }
  if (token.indexOf('.', d2 + 1) !== -1) {
    return deny('token_malformed', 'encrypted (JWE) or otherwise malformed tokens are not accepted');
  }
  const h = decodeSegment(token.slice(0, d1));
  const p = decodeSegment(token.slice(d1 + 1, d2));
  const sigSeg = token.slice(d2 + 1);
  const s = decodeSegment(sigSeg);
  // The signature must be canonical base64url, so one signature has one spelling.
  if (!h || !p || !s || s.toString('base64url') !== sigSeg) {
    return deny('token_malformed', 'the token is not valid base64url (no padding or whitespace allowed)');
  }
  const header = parseJsonObject(h);
  if (!header) return deny('token_malformed', 'the token header is not a UTF-8 JSON object');
  const payload = parseJsonObject(p);
  if (!payload) return deny('token_malformed', 'the token payload is not a UTF-8 JSON object');
  return { header, payload, signingInput: token.slice(0, d2), signature: s };
}

/** Whether a key may verify a given JWS alg (type, curve, declared alg, HMAC key length). */
export function keyFitsAlg(key: VerificationKey, alg: string): boolean {
  if (key.alg !== undefined && key.alg !== alg) return false;
  const family = alg.slice(0, 2);
  switch (family) {
    case 'RS':
    case 'PS':
      return key.kty === 'RSA';
    case 'ES':
      return key.kty === 'EC' && ecCurveByAlg(alg)?.jwk === key.crv;
    case 'Ed':
      return alg === 'EdDSA' && key.kty === 'OKP' && key.crv === 'Ed25519';
    case 'HS':
      return key.kty === 'oct' && (key.key.symmetricKeySize ?? 0) >= jwsHashBytes(alg);
    default:
      return false;
  }
}

/** Verifies a JWS signature with node:crypto. Never throws; false on any error. */
export function verifySignature(
  alg: string,
  key: KeyObject,
  signingInput: string,
  signature: Buffer,
): boolean {
  try {
    const hash = jwsHashName(alg);
    switch (alg.slice(0, 2)) {
      case 'RS':
        return cryptoVerify(hash, Buffer.from(signingInput, 'latin1'), key, signature);
      case 'PS':
        return cryptoVerify(
          hash,
          Buffer.from(signingInput, 'latin1'),
          { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
          signature,
        );
      case 'ES':
        if (signature.length !== ecCurveByAlg(alg)?.sigLen) return false;
        return cryptoVerify(
          hash,
          Buffer.from(signingInput, 'latin1'),
          { key, dsaEncoding: 'ieee-p1363' },
          signature,
        );
      case 'Ed':
        return cryptoVerify(null, Buffer.from(signingInput, 'latin1'), key, signature);
      case 'HS': {
        const mac = createHmac(hash!, key).update(signingInput).digest();
        return mac.length === signature.length && timingSafeEqual(mac, signature);
      }
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/**
 * A signature check where it costs least (crypto/offload.ts): inline for cheap keys
 * (RSA up to 4096 bits, P-256, Ed25519, HMAC), on the thread pool for the rest.
 */
export function checkSignature(
  alg: string,
  key: KeyObject,
  signingInput: string,
  signature: Buffer,
): boolean | Promise<boolean> {
  return alg.charCodeAt(0) === 72 /* H */ || verifiesInline(key)
    ? verifySignature(alg, key, signingInput, signature)
    : verifySignatureAsync(alg, key, signingInput, signature);
}

/**
 * verifySignature on libuv's thread pool (node:crypto verify with a callback), so the
 * event loop keeps serving other checks while RSA/ECDSA/EdDSA math runs. HMAC is cheap
 * and stays synchronous. Never rejects; false on any error.
 */
export function verifySignatureAsync(
  alg: string,
  key: KeyObject,
  signingInput: string,
  signature: Buffer,
): Promise<boolean> {
  const family = alg.slice(0, 2);
  if (family === 'HS') return Promise.resolve(verifySignature(alg, key, signingInput, signature));
  if (family === 'ES' && signature.length !== ecCurveByAlg(alg)?.sigLen) return Promise.resolve(false);
  const hash = family === 'Ed' ? null : (jwsHashName(alg) ?? null);
  const keyArg =
    family === 'PS'
      ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : family === 'ES'
        ? { key, dsaEncoding: 'ieee-p1363' as const }
        : key;
  return new Promise((resolve) => {
    try {
      cryptoVerify(hash, Buffer.from(signingInput, 'latin1'), keyArg, signature, (err, ok) =>
        resolve(!err && ok),
      );
    } catch {
      resolve(false);
    }
  });
}
