import { X509Certificate, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { CompactEncrypt, calculateJwkThumbprint, type JWK } from 'jose';
import { ConfigError } from '../core/errors.js';
import { systemClock, type Clock } from '../core/time.js';
import { JWE_CONTENT_ENCRYPTION, JWE_KEY_MANAGEMENT } from '../config/schema.js';
import type { EncryptionConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { ecCurveByNode, jweKeyKind, jweSymmetricKeyBytes, MIN_RSA_BITS } from './algorithms.js';
import { octBytes, readKeyFile, readSecretFile, type KeyFileContent } from './key-files.js';

// The recipient key of a nested JWT (sign, then encrypt with cty "JWT"). The key
// and both algorithms are checked at load, and one trial encryption proves the
// combination works before the service takes traffic.

export interface EncryptionKey {
  readonly alg: string;
  readonly enc: string;
  readonly kid?: string;
  /** Compact JWE with header {alg, enc, cty: 'JWT', kid?} around a compact JWS. */
  encrypt(jws: string): Promise<string>;
}

export interface EncryptionKeyContext {
  readonly baseDir: string;
  readonly logger: Logger;
  /** Checks a recipient certificate's expiry; the system clock by default. */
  readonly clock?: Clock;
}

const RSA1_5_REFUSED =
  'RSA1_5 is refused: RSAES-PKCS1-v1_5 key encryption is open to padding-oracle (Bleichenbacher) attacks ' +
  'and RFC 8725 (JWT Best Current Practices, section 3.2) advises against it; use RSA-OAEP-256 instead';

function describePublicKey(key: KeyObject): string {
  const t = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails;
  if (t === 'rsa' || t === 'rsa-pss') return `an ${t.toUpperCase()} ${d?.modulusLength ?? '?'}-bit key`;
  if (t === 'ec')
    return `an EC key on ${ecCurveByNode(d?.namedCurve)?.jwk ?? d?.namedCurve ?? 'an unknown curve'}`;
  return `an ${t ?? 'unknown'} key`;
}

/** Why `key` cannot be the recipient key of `alg`, or undefined when it fits. */
export function encryptionKeyMismatch(
  alg: string,
  enc: string,
  key: KeyObject | Uint8Array,
): string | undefined {
  const kind = jweKeyKind(alg);
  if (kind === 'symmetric') {
    const want = jweSymmetricKeyBytes(alg, enc);
    if (!(key instanceof Uint8Array))
      return `${alg} needs a ${want}-byte symmetric key, got ${describePublicKey(key)}`;
    if (key.length !== want) {
      return alg === 'dir'
        ? `dir with ${enc} needs a key of exactly ${want} bytes, got ${key.length}`
        : `${alg} needs a key of exactly ${want} bytes, got ${key.length}`;
    }
    return undefined;
  }
  if (key instanceof Uint8Array) return `${alg} needs a public key, got a symmetric key`;
  const t = key.asymmetricKeyType;
  if (kind === 'rsa') {
    if (t !== 'rsa') return `${alg} needs an RSA public key, got ${describePublicKey(key)}`;
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return `${alg} needs an RSA key of at least ${MIN_RSA_BITS} bits, got ${bits}`;
    return undefined;
  }
  if (t === 'x25519') return undefined;
  if (t === 'ec' && ecCurveByNode(key.asymmetricKeyDetails?.namedCurve) !== undefined) return undefined;
  return `${alg} needs an EC P-256, P-384 or P-521 or an X25519 public key, got ${describePublicKey(key)}`;
}

function checkJwkMembers(jwk: JWK, alg: string, where: string): void {
  if (jwk.alg !== undefined && jwk.alg !== alg) {
    throw new ConfigError([
      `${where}: the JWK declares alg ${String(jwk.alg)}, but the configured alg is ${alg}`,
    ]);
  }
  if (jwk.use !== undefined && jwk.use !== 'enc') {
    throw new ConfigError([`${where}: the JWK has use "${String(jwk.use)}"; an encryption key needs "enc"`]);
  }
}

function publicKeyFromFile(content: KeyFileContent, where: string, logger: Logger, clock: Clock): KeyObject {
  if (content.kind === 'jwk') {
    const jwk = content.jwk;
    if (jwk.d !== undefined) {
      logger.warn(
        { config: where },
        `${where}: the JWK holds a private key; only its public part is used. Keep the recipient's private key with the recipient`,
      );
    }
    try {
      return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    } catch (err) {
      throw new ConfigError([`${where}: cannot import the JWK (${(err as Error).message})`]);
    }
  }
  const pem = content.pem;
  if (pem.includes('-----BEGIN CERTIFICATE-----')) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (err) {
      throw new ConfigError([`${where}: cannot parse the certificate (${(err as Error).message})`]);
    }
    if (Date.parse(cert.validTo) < clock.nowMs()) {
      logger.warn(
        { config: where, valid_to: cert.validTo },
        `${where}: the recipient certificate has expired`,
      );
    }
    return cert.publicKey;
  }
  if (/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError([
      `${where}: expected the recipient's public key (SPKI "BEGIN PUBLIC KEY") or certificate, got a private key`,
    ]);
  }
  try {
    return createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new ConfigError([`${where}: cannot parse the PEM public key (${(err as Error).message})`]);
  }
}

/** Checks alg and enc; throws a ConfigError with the explanation for RSA1_5. */
export function checkEncryptionAlgorithms(
  cfg: Pick<EncryptionConfig, 'alg' | 'enc'>,
  configPath: string,
): void {
  const problems: string[] = [];
  if (cfg.alg === 'RSA1_5') problems.push(`${configPath}.alg: ${RSA1_5_REFUSED}`);
  else if (!(JWE_KEY_MANAGEMENT as readonly string[]).includes(cfg.alg)) {
    problems.push(
      `${configPath}.alg: unsupported key management algorithm; allowed: ${JWE_KEY_MANAGEMENT.join(', ')}`,
    );
  }
  if (!(JWE_CONTENT_ENCRYPTION as readonly string[]).includes(cfg.enc)) {
    problems.push(
      `${configPath}.enc: unsupported content encryption; allowed: ${JWE_CONTENT_ENCRYPTION.join(', ')}`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

/**
 * Loads and checks the recipient key of an `encryption` section (e.g.
 * `upstream.token.encryption`) and proves it with one trial encryption.
 */
export async function loadEncryptionKey(
  cfg: EncryptionConfig,
  configPath: string,
  ctx: EncryptionKeyContext,
): Promise<EncryptionKey> {
  checkEncryptionAlgorithms(cfg, configPath);
  const { alg, enc } = cfg;
  const kind = jweKeyKind(alg);
  if (cfg.key_file !== undefined && cfg.secret_file !== undefined) {
    throw new ConfigError([`${configPath}.secret_file: give either key_file or secret_file, not both`]);
  }
  if (cfg.key_file === undefined && cfg.secret_file === undefined) {
    throw new ConfigError([
      `${configPath}.key_file: required: the recipient's ${kind === 'symmetric' ? 'symmetric key' : 'public key'} ` +
        `(${kind === 'symmetric' ? 'an "oct" JWK in key_file, or secret_file' : 'a public JWK, SPKI PEM or certificate PEM'})`,
    ]);
  }

  let key: KeyObject | Uint8Array;
  let kid: string | undefined;
  let where: string;
  if (cfg.secret_file !== undefined) {
    where = `${configPath}.secret_file`;
    if (kind !== 'symmetric') {
      throw new ConfigError([`${where}: ${alg} needs the recipient's public key in key_file, not a secret`]);
    }
    key = new Uint8Array(readSecretFile(cfg.secret_file, ctx.baseDir, where));
  } else {
    where = `${configPath}.key_file`;
    const content = readKeyFile(cfg.key_file!, ctx.baseDir, where);
    if (content.kind === 'jwk') {
      checkJwkMembers(content.jwk, alg, where);
      kid = content.jwk.kid;
    }
    if (content.kind === 'jwk' && content.jwk.kty === 'oct') {
      if (kind !== 'symmetric')
        throw new ConfigError([`${where}: ${alg} needs a public key, got an "oct" JWK`]);
      key = new Uint8Array(octBytes(content.jwk, where));
    } else {
      if (kind === 'symmetric') {
        const what = content.kind === 'jwk' ? `a "${content.jwk.kty}" JWK` : 'a PEM file';
        throw new ConfigError([`${where}: ${alg} needs an "oct" JWK or secret_file, got ${what}`]);
      }
      const pub = publicKeyFromFile(content, where, ctx.logger, ctx.clock ?? systemClock);
      key = pub;
      if (kid === undefined) {
        kid = await calculateJwkThumbprint(pub.export({ format: 'jwk' }), 'sha256');
      }
    }
  }
  const mismatch = encryptionKeyMismatch(alg, enc, key);
  if (mismatch) throw new ConfigError([`${where}: ${mismatch}`]);

  const header = Object.freeze(kid === undefined ? { alg, enc, cty: 'JWT' } : { alg, enc, cty: 'JWT', kid });
  const encoder = new TextEncoder();
  const encrypt = (jws: string): Promise<string> =>
    new CompactEncrypt(encoder.encode(jws)).setProtectedHeader({ ...header }).encrypt(key);

  try {
    await encrypt('trial.encryption.at-startup');
  } catch (err) {
    throw new ConfigError([
      `${where}: trial encryption with ${alg}/${enc} failed (${(err as Error).message})`,
    ]);
  }
  return Object.freeze({ alg, enc, ...(kid === undefined ? {} : { kid }), encrypt });
}
