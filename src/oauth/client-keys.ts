import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { buildKeySet, makeKeySet } from '../authn/keys/jwk.js';
import type { KeySet, KeySource, KeySourceStatus, VerificationKey } from '../authn/keys/key-source.js';
import { parseCertificateFile, parseJsonFile, readConfigFile } from '../core/files.js';
import { systemClock, type Clock } from '../core/time.js';
import { ecCurveByNode, MIN_RSA_BITS } from '../crypto/algorithms.js';
import type { Logger } from '../observability/logger.js';

// Keys that never change while a config is active: a client's registered certificate
// or JWKS file, and this service's own token-signing keys.

/** A KeySource over a fixed KeySet: no I/O, no timers. */
export function staticKeySource(set: KeySet, kind: KeySource['kind'], clock: Clock = systemClock): KeySource {
  const status: KeySourceStatus = {
    state: 'ready',
    keys: set.keys.length,
    loaded: true,
    lastSuccessAt: clock.nowMs(),
  };
  return {
    kind,
    generation: 1,
    start: async () => undefined,
    current: () => set,
    refreshForUnknownKid: () => set,
    status: () => status,
    close: () => undefined,
  };
}

/**
 * A VerificationKey for a key object: the public half of a private key, or a secret
 * key (kty oct). Throws for unsupported key types.
 */
export function verificationKeyFor(
  key: KeyObject,
  extra: { kid?: string; alg?: string; x5tS256?: string; x5t?: string },
): VerificationKey {
  const base = {
    ...(extra.kid !== undefined ? { kid: extra.kid } : {}),
    ...(extra.alg !== undefined ? { alg: extra.alg } : {}),
    ...(extra.x5tS256 !== undefined ? { x5tS256: extra.x5tS256 } : {}),
    ...(extra.x5t !== undefined ? { x5t: extra.x5t } : {}),
  };
  if (key.type === 'secret') return Object.freeze({ ...base, kty: 'oct' as const, key });
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  switch (pub.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return Object.freeze({ ...base, kty: 'RSA' as const, key: pub });
    case 'ec': {
      const crv = ecCurveByNode(pub.asymmetricKeyDetails?.namedCurve)?.jwk;
      if (!crv) throw new Error(`EC curve ${pub.asymmetricKeyDetails?.namedCurve ?? '?'} is not supported`);
      return Object.freeze({ ...base, kty: 'EC' as const, crv, key: pub });
    }
    case 'ed25519':
      return Object.freeze({ ...base, kty: 'OKP' as const, crv: 'Ed25519', key: pub });
    default:
      throw new Error(`key type ${pub.asymmetricKeyType ?? '?'} is not supported for signatures`);
  }
}

export interface LoadedClientKeys {
  readonly set: KeySet;
  readonly kind: 'truststore' | 'jwks-file';
  /** Only one key (a certificate): the assertion's kid / thumbprint headers are not needed to pick it. */
  readonly single: boolean;
}

/**
 * Loads a registered client's certificate (X.509 PEM) into a one-key set. Returns a
 * problem string (prefixed with `where`) instead of throwing.
 */
export function loadClientCertificate(
  file: string,
  baseDir: string,
  where: string,
  now: number,
  logger?: Logger,
): LoadedClientKeys | string {
  const pem = readConfigFile(where, file, baseDir);
  if (typeof pem === 'string') return pem;
  const cert = parseCertificateFile(where, file, pem);
  if (typeof cert === 'string') return cert;
  const notAfter = Date.parse(cert.validTo);
  const notBefore = Date.parse(cert.validFrom);
  if (Number.isFinite(notAfter) && notAfter <= now)
    return `${where}: the certificate in ${file} expired on ${cert.validTo}`;
  if (Number.isFinite(notBefore) && notBefore > now) {
    logger?.warn({ config: where, valid_from: cert.validFrom }, 'client certificate is not valid yet');
  }
  const pub = cert.publicKey;
  if (pub.asymmetricKeyType === 'rsa' || pub.asymmetricKeyType === 'rsa-pss') {
    const bits = pub.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS)
      return `${where}: the certificate's RSA key has ${bits} bits (at least ${MIN_RSA_BITS} required)`;
  }
  let key: VerificationKey;
  try {
    key = verificationKeyFor(pub, {
      x5tS256: createHash('sha256').update(cert.raw).digest('base64url'),
      x5t: createHash('sha1').update(cert.raw).digest('base64url'),
    });
  } catch (err) {
    return `${where}: ${(err as Error).message}`;
  }
  return { set: makeKeySet([key], key), kind: 'truststore', single: true };
}

/** Loads a registered client's JWKS file. Returns a problem string instead of throwing. */
export function loadClientJwks(
  file: string,
  baseDir: string,
  where: string,
  logger?: Logger,
): LoadedClientKeys | string {
  const bytes = readConfigFile(where, file, baseDir);
  if (typeof bytes === 'string') return bytes;
  const doc = parseJsonFile(where, file, bytes.toString('utf8'), 'a JWK Set');
  if (typeof doc === 'string') return doc;
  let set: KeySet;
  try {
    set = buildKeySet(doc.json, { issuer: where, logger });
  } catch (err) {
    return `${where}: ${(err as Error).message}`;
  }
  if (set.keys.length === 0) return `${where}: ${file} holds no usable public signature key`;
  return { set, kind: 'jwks-file', single: false };
}
