import type { KeyObject } from 'node:crypto';
import { ecCurveByAlg, ecCurveByNode, jwsFamily, jwsHashBytes, MIN_RSA_BITS } from './algorithms.js';

// Whether a key object can sign with a JWS alg: type, size and curve, with a
// reason a person can act on when it cannot.

function describeKey(key: KeyObject): string {
  if (key.type === 'secret') return `a ${key.symmetricKeySize ?? 0}-byte secret key`;
  const t = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails;
  if (t === 'rsa' || t === 'rsa-pss') return `an ${t.toUpperCase()} ${d?.modulusLength ?? '?'}-bit key`;
  if (t === 'ec') return `an EC key on ${curveLabel(d?.namedCurve)}`;
  return `an ${t ?? 'unknown'} key`;
}

function curveLabel(nodeCurve: string | undefined): string {
  return ecCurveByNode(nodeCurve)?.jwk ?? nodeCurve ?? 'an unknown curve';
}

/** Why `key` cannot sign with `alg`, or undefined when it fits. */
export function signingKeyMismatch(alg: string, key: KeyObject): string | undefined {
  const fam = jwsFamily(alg);
  if (fam === 'HS') {
    if (key.type !== 'secret') return `${alg} needs a secret key, got ${describeKey(key)}`;
    const min = jwsHashBytes(alg);
    const size = key.symmetricKeySize ?? 0;
    if (size < min) return `${alg} needs a secret of at least ${min} bytes, got ${size}`;
    return undefined;
  }
  if (key.type !== 'private') {
    return `${alg} needs a private key, got ${key.type === 'public' ? 'a public key' : describeKey(key)}`;
  }
  const t = key.asymmetricKeyType;
  if (fam === 'RS' || fam === 'PS') {
    if (t !== 'rsa') return `${alg} needs an RSA key, got ${describeKey(key)}`;
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return `${alg} needs an RSA key of at least ${MIN_RSA_BITS} bits, got ${bits}`;
    return undefined;
  }
  if (fam === 'ES') {
    const want = ecCurveByAlg(alg)!;
    if (t !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== want.node) {
      return `${alg} needs an EC ${want.jwk} key, got ${describeKey(key)}`;
    }
    return undefined;
  }
  if (t !== 'ed25519') return `EdDSA needs an Ed25519 key, got ${describeKey(key)}`;
  return undefined;
}
