import { createSecretKey } from 'node:crypto';
import type { JWK } from 'jose';
import { collectProblems, ConfigError } from '../core/errors.js';
import { JWS_ALGORITHMS } from '../config/schema.js';
import type { SigningConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { jwsFamily } from './algorithms.js';
import { signingKeyMismatch } from './key-checks.js';
import { readKeyFile, readSecretFile } from './key-files.js';
import {
  buildSigningKey,
  generateSigningKeyObject,
  keyFromJwk,
  keyFromPem,
  type SigningKey,
} from './key-import.js';

// Loading the keys this service signs with (downstream tokens, token endpoint access
// tokens) from a `signing` section, once at startup and on reload.

// Kept for callers that import signing from here (the token endpoint).
export type { SigningKey } from './key-import.js';
export { jwtHeader, signJws, signJwsAsync } from './sign.js';

export interface SigningKeys {
  readonly current: SigningKey;
  readonly previous: readonly SigningKey[];
  /** Public JWKs of current and previous keys (asymmetric only). */
  publicJwks(): JWK[];
  /** `current` was generated in memory (no key file): a reload must hand it on or lose it. */
  readonly ephemeral: boolean;
}

export interface SigningKeyContext {
  readonly baseDir: string;
  readonly logger: Logger;
  /**
   * An ephemeral key generated before a reload. Used instead of a new one when the
   * section still names no key file and its alg is unchanged, so tokens signed before
   * the reload keep verifying.
   */
  readonly ephemeralKey?: SigningKey;
}

async function loadKeyFile(
  alg: string,
  file: string,
  where: string,
  ctx: SigningKeyContext,
): Promise<SigningKey> {
  const content = readKeyFile(file, ctx.baseDir, where);
  const key =
    content.kind === 'jwk' ? keyFromJwk(content.jwk, alg, where) : keyFromPem(content.pem, alg, where);
  const mismatch = signingKeyMismatch(alg, key);
  if (mismatch) throw new ConfigError([`${where}: ${mismatch}`]);
  return buildSigningKey(alg, key, content.kind === 'jwk' ? content.jwk.kid : undefined);
}

async function loadSecretFile(
  alg: string,
  file: string,
  where: string,
  ctx: SigningKeyContext,
): Promise<SigningKey> {
  if (jwsFamily(alg) !== 'HS') {
    throw new ConfigError([`${where}: secret_file is only for HS256/HS384/HS512; ${alg} takes key_file`]);
  }
  const key = createSecretKey(readSecretFile(file, ctx.baseDir, where));
  const mismatch = signingKeyMismatch(alg, key);
  if (mismatch) throw new ConfigError([`${where}: ${mismatch}`]);
  return buildSigningKey(alg, key, undefined);
}

/** A fresh key for alg, for demo mode or a config without key files. */

class LoadedSigningKeys implements SigningKeys {
  private readonly jwks: readonly JWK[];
  constructor(
    readonly current: SigningKey,
    readonly previous: readonly SigningKey[],
    readonly ephemeral: boolean,
  ) {
    this.jwks = [current, ...previous].flatMap((k) => (k.publicJwk ? [k.publicJwk] : []));
  }
  publicJwks(): JWK[] {
    return this.jwks.map((k) => ({ ...k }));
  }
}

/**
 * Loads the current and previous signing keys of a `signing` section. Every problem
 * is a ConfigError naming `${configPath}.key_file` / `.secret_file` /
 * `.previous_key_files[i]`. Without any key file an ephemeral key is generated.
 */
export async function loadSigningKeys(
  cfg: SigningConfig,
  configPath: string,
  ctx: SigningKeyContext,
): Promise<SigningKeys> {
  const { alg } = cfg;
  if (!(JWS_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new ConfigError([`${configPath}.alg: must be one of ${JWS_ALGORITHMS.join(', ')}`]);
  }
  if (cfg.key_file !== undefined && cfg.secret_file !== undefined) {
    throw new ConfigError([`${configPath}.secret_file: give either key_file or secret_file, not both`]);
  }
  const problems: string[] = [];
  const collect = (load: () => Promise<SigningKey>) => collectProblems(problems, load);

  let current: SigningKey | undefined;
  let ephemeral = false;
  if (cfg.key_file !== undefined) {
    const file = cfg.key_file;
    current = await collect(() => loadKeyFile(alg, file, `${configPath}.key_file`, ctx));
  } else if (cfg.secret_file !== undefined) {
    const file = cfg.secret_file;
    current = await collect(() => loadSecretFile(alg, file, `${configPath}.secret_file`, ctx));
  } else if (ctx.ephemeralKey?.alg === alg) {
    current = ctx.ephemeralKey;
    ephemeral = true;
    ctx.logger.info(
      { config: configPath, alg, kid: current.kid },
      `${configPath}: keeping the ephemeral ${alg} key across the reload`,
    );
  } else {
    current = await buildSigningKey(alg, generateSigningKeyObject(alg), undefined);
    ephemeral = true;
    ctx.logger.warn(
      { config: configPath, alg, kid: current.kid },
      `${configPath}: no key_file or secret_file; using an ephemeral ${alg} key generated at startup. ` +
        'Tokens signed with it will not verify across restarts or replicas; configure a key file for production',
    );
  }

  const previous: SigningKey[] = [];
  for (const [i, file] of (cfg.previous_key_files ?? []).entries()) {
    const where = `${configPath}.previous_key_files[${i}]`;
    const key = await collect(() => loadKeyFile(alg, file, where, ctx));
    if (!key) continue;
    const clash = [current, ...previous].find((k) => k?.kid === key.kid);
    if (clash) {
      problems.push(`${where}: kid "${key.kid}" is already used by another signing key`);
      continue;
    }
    previous.push(key);
  }
  if (problems.length > 0 || !current) throw new ConfigError(problems);
  return new LoadedSigningKeys(current, previous, ephemeral);
}
