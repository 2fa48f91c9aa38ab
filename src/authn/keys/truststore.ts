import { createHash, X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { CERTIFICATE_EXTENSIONS } from '../../config/sections/constants.js';
import { ecCurveByNode, MIN_RSA_BITS } from '../../crypto/algorithms.js';
import { EMPTY_KEY_SET, makeKeySet } from './jwk.js';
import {
  fsReason,
  isMissing,
  KeyLoadError,
  LocalKeySource,
  type LocalSourceOptions,
} from './local-source.js';
import type { KeySet, VerificationKey } from './key-source.js';
import type { EpochMs } from '../../core/time.js';

export const TRUSTSTORE_EXTENSIONS = CERTIFICATE_EXTENSIONS;

/** The clock of LocalSourceOptions also checks certificate validity. */
export type TruststoreOptions = LocalSourceOptions;

/** base64url SHA-256 and SHA-1 of the DER certificate (JWS `x5t#S256` / `x5t`). */
export function certificateThumbprints(der: Buffer): { x5tS256: string; x5t: string } {
  return {
    x5tS256: createHash('sha256').update(der).digest('base64url'),
    x5t: createHash('sha1').update(der).digest('base64url'),
  };
}

/**
 * The thumbprints as WSO2 writes them: base64url of the lower-case hex digest, the SHA-256
 * one in `x5t#S256` and (WSO2 Identity Server) in `x5t` as well. Their lengths (86 and 54
 * characters) differ from the standard forms' (43 and 27), so no spelling can be another's.
 */
export function wso2Thumbprints(der: Buffer): { x5tS256Also: string[]; x5tAlso: string[] } {
  const hex = (alg: string) =>
    Buffer.from(createHash(alg).update(der).digest('hex'), 'latin1').toString('base64url');
  const s256 = hex('sha256');
  return { x5tS256Also: [s256], x5tAlso: [hex('sha1'), s256] };
}

/**
 * Turns one certificate into a verification key (kid = alias), or says why not.
 * Expired / not yet valid certificates, RSA < 2048 bits and unsupported key types are refused.
 */
export function certificateKey(
  alias: string,
  cert: X509Certificate,
  now: EpochMs,
): { key: VerificationKey } | { refuse: string } {
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (!Number.isFinite(notAfter) || notAfter < now)
    return { refuse: `certificate expired (${cert.validTo})` };
  if (!Number.isFinite(notBefore) || notBefore > now)
    return { refuse: `certificate not yet valid (${cert.validFrom})` };
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  // Validity travels with the key: the verifier refuses it once expired, whatever
  // the outcome of the next reload of the folder.
  const thumbprints = {
    ...certificateThumbprints(cert.raw),
    ...wso2Thumbprints(cert.raw),
    notBefore,
    notAfter,
  };
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = details.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) return { refuse: `RSA key ${bits} bits < ${MIN_RSA_BITS}` };
      return { key: Object.freeze({ kid: alias, kty: 'RSA', key, ...thumbprints }) };
    }
    case 'ec': {
      const crv = ecCurveByNode(details.namedCurve)?.jwk;
      if (!crv) return { refuse: `EC curve ${details.namedCurve ?? '?'} not supported` };
      return { key: Object.freeze({ kid: alias, kty: 'EC', crv, key, ...thumbprints }) };
    }
    case 'ed25519':
      return { key: Object.freeze({ kid: alias, kty: 'OKP', crv: 'Ed25519', key, ...thumbprints }) };
    default:
      return { refuse: `key type ${key.asymmetricKeyType ?? '?'} not supported` };
  }
}

/**
 * A folder of PEM certificates (`.pem`, `.crt`, `.cer`); alias = file name without
 * extension = kid. `default_alias` becomes KeySet.defaultKey. Reloaded when the folder
 * listing changes and periodically (default every 60 s, which also retires certificates
 * that expire while running). The folder's content is authoritative: a deleted certificate
 * (or folder) loses trust at the next reload. A certificate file that is still there but
 * cannot be read or parsed (caught mid-write) keeps the key it held before.
 */
export class TruststoreKeySource extends LocalKeySource {
  readonly kind = 'truststore' as const;
  private readonly dir: string;
  /** File name → the key it yielded at the last successful load. */
  private keyByFile: ReadonlyMap<string, VerificationKey> = new Map();

  constructor(
    private readonly config: { path: string; default_alias?: string },
    baseDir: string,
    opts: TruststoreOptions,
  ) {
    super({ reloadIntervalMs: 60_000, ...opts });
    this.dir = resolve(baseDir, config.path);
  }

  protected override watchedPaths(): string[] {
    return [this.dir];
  }

  protected async load(): Promise<KeySet> {
    const { issuer, logger } = this.opts;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isMissing(err) && this.hasLoadedKeys) {
        logger.warn(
          { issuer, source: this.kind, path: this.config.path },
          'truststore folder removed; its certificates are no longer trusted',
        );
        this.keyByFile = new Map();
        return EMPTY_KEY_SET;
      }
      throw new KeyLoadError(`truststore ${this.config.path}: cannot read folder (${fsReason(err)})`);
    }
    const keys: VerificationKey[] = [];
    const byFile = new Map<string, VerificationKey>();
    const now = this.clock.nowMs();
    /** The key this file held before, if still valid: kept while the file is unreadable. */
    const keepPrevious = (alias: string, file: string, reason: string): void => {
      const old = this.keyByFile.get(file);
      if (old && (old.notAfter === undefined || old.notAfter >= now)) {
        logger.error(
          { issuer, alias, file, reason },
          'truststore certificate cannot be loaded; keeping the previous one',
        );
        keys.push(old);
        byFile.set(file, old);
      } else {
        logger.warn({ issuer, alias, file, reason }, 'truststore certificate refused');
      }
    };
    for (const name of names.sort()) {
      const ext = extname(name).toLowerCase();
      if (!(TRUSTSTORE_EXTENSIONS as readonly string[]).includes(ext)) continue;
      const alias = name.slice(0, -ext.length);
      if (alias === '') continue;
      let bytes: Buffer;
      try {
        bytes = await readFile(join(this.dir, name));
      } catch (err) {
        // Deleted since the listing: removed like any other certificate.
        if (isMissing(err)) continue;
        keepPrevious(alias, name, `unreadable (${fsReason(err)})`);
        continue;
      }
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(bytes);
      } catch {
        keepPrevious(alias, name, 'not a certificate');
        continue;
      }
      const result = certificateKey(alias, cert, now);
      if ('refuse' in result) {
        logger.warn({ issuer, alias, file: name, reason: result.refuse }, 'truststore certificate refused');
        continue;
      }
      keys.push(result.key);
      byFile.set(name, result.key);
    }
    // An empty folder is an answer, not a failure: nothing in it is trusted.
    if (keys.length === 0) {
      this.keyByFile = byFile;
      return EMPTY_KEY_SET;
    }
    let defaultKey: VerificationKey | undefined;
    const alias = this.config.default_alias;
    if (alias !== undefined) {
      defaultKey = keys.find((k) => k.kid === alias);
      if (!defaultKey) {
        const problem = `truststore ${this.config.path}: default_alias "${alias}" is missing or its certificate was refused`;
        // At start this is most likely a wrong alias. Later, the certificate was removed
        // or retired: tokens that relied on it are refused, the other aliases still work.
        if (!this.hasLoadedKeys) throw new KeyLoadError(problem);
        logger.warn({ issuer, source: this.kind, alias }, problem);
      }
    }
    this.keyByFile = byFile;
    return makeKeySet(keys, defaultKey);
  }
}
