import {
  constants,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { ConfigError } from '../core/errors.js';
import { JWS_ALGORITHMS } from '../config/schema.js';
import type { SigningConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import {
  ecCurveByAlg,
  ecCurveByNode,
  jwsFamily,
  jwsHashBytes,
  jwsHashName,
  MIN_RSA_BITS,
} from './algorithms.js';
import { octBytes, readKeyFile, readSecretFile } from './key-files.js';

// Keys this service signs with (downstream tokens, token endpoint access tokens).
// Loaded and checked once at startup; signing on the request path is synchronous
// node:crypto over a precomputed, cached base64url header.

export interface SigningKey {
  readonly alg: string;
  readonly kid: string;
  /** Private key (asymmetric algs) or secret key (HS*). */
  readonly key: KeyObject;
  /** kid, alg, use: 'sig' and the public members only; undefined for HS*. */
  readonly publicJwk?: JWK;
}

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

const family = jwsFamily;
const hashBytes = jwsHashBytes;
const hashName = (alg: string): string => jwsHashName(alg)!;

// ---------------------------------------------------------------------------
// Checking that a key fits its alg

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
  const fam = family(alg);
  if (fam === 'HS') {
    if (key.type !== 'secret') return `${alg} needs a secret key, got ${describeKey(key)}`;
    const min = hashBytes(alg);
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

// ---------------------------------------------------------------------------
// Loading

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

function keyFromJwk(jwk: JWK, alg: string, where: string): KeyObject {
  checkJwkMembers(jwk, alg, where);
  if (jwk.kty === 'oct') {
    if (family(alg) !== 'HS')
      throw new ConfigError([`${where}: ${alg} needs a private key, got an "oct" JWK`]);
    return createSecretKey(octBytes(jwk, where));
  }
  if (family(alg) === 'HS') {
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

function keyFromPem(pem: string, alg: string, where: string): KeyObject {
  if (family(alg) === 'HS') {
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

async function buildSigningKey(
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
  return buildSigningKey(
    alg,
    key,
    content.kind === 'jwk' ? (content.jwk.kid as string | undefined) : undefined,
  );
}

async function loadSecretFile(
  alg: string,
  file: string,
  where: string,
  ctx: SigningKeyContext,
): Promise<SigningKey> {
  if (family(alg) !== 'HS') {
    throw new ConfigError([`${where}: secret_file is only for HS256/HS384/HS512; ${alg} takes key_file`]);
  }
  const key = createSecretKey(readSecretFile(file, ctx.baseDir, where));
  const mismatch = signingKeyMismatch(alg, key);
  if (mismatch) throw new ConfigError([`${where}: ${mismatch}`]);
  return buildSigningKey(alg, key, undefined);
}

/** A fresh key for alg, for demo mode or a config without key files. */
export function generateSigningKeyObject(alg: string): KeyObject {
  switch (family(alg)) {
    case 'HS':
      return createSecretKey(randomBytes(hashBytes(alg)));
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
  const collect = async (load: () => Promise<SigningKey>): Promise<SigningKey | undefined> => {
    try {
      return await load();
    } catch (err) {
      if (err instanceof ConfigError) {
        problems.push(...err.problems);
        return undefined;
      }
      throw err;
    }
  };

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

// ---------------------------------------------------------------------------
// Signing (compact JWS)

type RawSigner = (input: Buffer, key: KeyObject) => Buffer;

function rawSignerFor(alg: string): RawSigner {
  const fam = family(alg);
  if (fam === 'EdDSA') return (input, key) => sign(null, input, key);
  const hash = hashName(alg);
  switch (fam) {
    case 'HS':
      return (input, key) => createHmac(hash, key).update(input).digest();
    case 'RS':
      return (input, key) => sign(hash, input, key);
    case 'PS': {
      const saltLength = hashBytes(alg);
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
  switch (family(alg)) {
    case 'EdDSA':
      return [null, key];
    case 'RS':
      return [hashName(alg), key];
    case 'PS':
      return [hashName(alg), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hashBytes(alg) }];
    case 'ES':
      return [hashName(alg), { key, dsaEncoding: 'ieee-p1363' }];
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
