import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import {
  ecCurveByJwk,
  MIN_RSA_BITS,
  OKP_SIGNATURE_ALGS,
  RSA_SIGNATURE_ALGS,
} from '../../crypto/algorithms.js';
import { isPlainObject } from '../../core/objects.js';
import type { Logger } from '../../observability/logger.js';
import type { KeySet, VerificationKey } from './key-source.js';
import { AuthzError } from '../../core/errors.js';

/** A JWKS document larger than this is refused as a whole (a truncated set could drop the signing key). */
export const MAX_JWKS_KEYS = 100;
/** Longest `kid` we accept (docs/verification.md "Verification rules" applies the same limit to token headers). */
export const MAX_KID_LENGTH = 256;

/** The JWKS document itself is unusable (not an object, no `keys` list, too many keys). */
export class KeySetError extends AuthzError {
  readonly code = 'ERR_JWKS_INVALID';

  constructor(readonly reason: string) {
    super(reason);
    this.name = 'KeySetError';
  }
}

export interface BuildKeySetOptions {
  /** Issuer name, for log lines. */
  readonly issuer: string;
  readonly logger?: Logger;
  /** Default MAX_JWKS_KEYS. */
  readonly maxKeys?: number;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const THUMBPRINT_S256 = /^[A-Za-z0-9_-]{43}$/;
const THUMBPRINT_SHA1 = /^[A-Za-z0-9_-]{27}$/;

/** A kid as it may appear in a log line: strings only, shortened; never key material. */
function kidForLog(kid: unknown): string | undefined {
  if (kid === undefined) return undefined;
  if (typeof kid !== 'string') return `(${kid === null ? 'null' : typeof kid})`;
  return kid.length > 64 ? `${kid.slice(0, 64)}…` : kid;
}

type ImportResult = { key: VerificationKey } | { skip: string };

/**
 * Checks one untrusted JWK and imports its public part. Returns the reason when the key
 * is not a verification candidate. Never throws.
 */
export function importVerificationJwk(jwk: unknown): ImportResult {
  if (!isPlainObject(jwk)) return { skip: 'not a JSON object' };
  const { kid, use, key_ops: keyOps, kty, alg } = jwk;
  if (kid !== undefined && typeof kid !== 'string') return { skip: 'kid is not a string' };
  if (typeof kid === 'string' && kid.length > MAX_KID_LENGTH)
    return { skip: `kid longer than ${MAX_KID_LENGTH}` };
  if (use !== undefined && use !== 'sig') return { skip: `use is ${JSON.stringify(use)}, not "sig"` };
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify'))) {
    return { skip: 'key_ops does not include "verify"' };
  }
  if (alg !== undefined && typeof alg !== 'string') return { skip: 'alg is not a string' };
  if (typeof kty !== 'string') return { skip: 'kty missing' };

  let members: Record<string, unknown>;
  let vkty: VerificationKey['kty'];
  let crv: string | undefined;
  switch (kty) {
    case 'oct':
      return { skip: 'symmetric (kty oct) keys are never taken from a JWKS' };
    case 'RSA':
      if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') return { skip: 'RSA key without n/e' };
      if (alg !== undefined && !RSA_SIGNATURE_ALGS.has(alg))
        return { skip: `alg ${alg} is not an RSA signature algorithm` };
      members = { kty, n: jwk.n, e: jwk.e };
      vkty = 'RSA';
      break;
    case 'EC': {
      const curve = typeof jwk.crv === 'string' ? ecCurveByJwk(jwk.crv) : undefined;
      if (!curve) return { skip: `EC curve ${JSON.stringify(jwk.crv)} not supported (P-256, P-384, P-521)` };
      if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') return { skip: 'EC key without x/y' };
      if (alg !== undefined && alg !== curve.alg) return { skip: `alg ${alg} does not fit curve ${jwk.crv}` };
      members = { kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
      vkty = 'EC';
      crv = jwk.crv as string;
      break;
    }
    case 'OKP':
      if (jwk.crv !== 'Ed25519')
        return { skip: `OKP curve ${JSON.stringify(jwk.crv)} not supported (Ed25519)` };
      if (typeof jwk.x !== 'string') return { skip: 'OKP key without x' };
      if (alg !== undefined && !OKP_SIGNATURE_ALGS.has(alg))
        return { skip: `alg ${alg} does not fit Ed25519` };
      members = { kty, crv: 'Ed25519', x: jwk.x };
      vkty = 'OKP';
      crv = 'Ed25519';
      break;
    default:
      return { skip: `kty ${JSON.stringify(kty).slice(0, 20)} not supported` };
  }
  // `members` only ever holds public members; this is belt and braces.
  for (const m of PRIVATE_MEMBERS) delete members[m];

  let key: KeyObject;
  try {
    key = createPublicKey({ key: members as never, format: 'jwk' });
  } catch {
    return { skip: 'cannot be imported' };
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (vkty === 'RSA') {
    if (key.asymmetricKeyType !== 'rsa') return { skip: 'cannot be imported as RSA' };
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return { skip: `RSA modulus ${bits} bits < ${MIN_RSA_BITS}` };
    const e = details.publicExponent ?? 0n;
    if (e < 3n || e % 2n === 0n) return { skip: 'RSA public exponent invalid' };
  } else if (vkty === 'EC') {
    if (key.asymmetricKeyType !== 'ec' || details.namedCurve !== ecCurveByJwk(crv)?.node) {
      return { skip: 'EC key does not match its curve' };
    }
  } else if (key.asymmetricKeyType !== 'ed25519') {
    return { skip: 'cannot be imported as Ed25519' };
  }

  const x5tS256 =
    typeof jwk['x5t#S256'] === 'string' && THUMBPRINT_S256.test(jwk['x5t#S256'])
      ? jwk['x5t#S256']
      : undefined;
  const x5t = typeof jwk.x5t === 'string' && THUMBPRINT_SHA1.test(jwk.x5t) ? jwk.x5t : undefined;
  const vk: VerificationKey = {
    kty: vkty,
    key,
    ...(kid !== undefined ? { kid } : {}),
    ...(alg !== undefined ? { alg } : {}),
    ...(crv !== undefined ? { crv } : {}),
    ...(x5tS256 !== undefined ? { x5tS256 } : {}),
    ...(x5t !== undefined ? { x5t } : {}),
  };
  return { key: Object.freeze(vk) };
}

/**
 * Builds a KeySet from an untrusted JWKS document (remote, inline or file). Unfit keys
 * are skipped with a warn log naming the issuer and kid. Throws KeySetError when the
 * document itself is unusable. May return an empty set (callers decide whether that is
 * an error).
 */
export function buildKeySet(jwks: unknown, opts: BuildKeySetOptions): KeySet {
  if (!isPlainObject(jwks)) throw new KeySetError('JWKS is not a JSON object');
  const list = jwks.keys;
  if (!Array.isArray(list)) throw new KeySetError('JWKS has no "keys" list');
  const max = opts.maxKeys ?? MAX_JWKS_KEYS;
  if (list.length > max) throw new KeySetError(`JWKS has ${list.length} keys (more than ${max})`);
  const keys: VerificationKey[] = [];
  for (const [index, jwk] of list.entries()) {
    const result = importVerificationJwk(jwk);
    if ('skip' in result) {
      opts.logger?.warn(
        {
          issuer: opts.issuer,
          kid: kidForLog(isPlainObject(jwk) ? jwk.kid : undefined),
          index,
          reason: result.skip,
        },
        'JWKS key skipped',
      );
      continue;
    }
    if (isPlainObject(jwk) && PRIVATE_MEMBERS.some((m) => m in jwk)) {
      opts.logger?.warn(
        { issuer: opts.issuer, kid: kidForLog(jwk.kid), index },
        'JWKS key carries private members; only its public part is used',
      );
    }
    keys.push(result.key);
  }
  return makeKeySet(keys);
}

/** Indexes keys into an immutable KeySet. Duplicate kids are all kept; the first key wins a thumbprint. */
export function makeKeySet(keys: readonly VerificationKey[], defaultKey?: VerificationKey): KeySet {
  const byKid = new Map<string, VerificationKey[]>();
  const byX5tS256 = new Map<string, VerificationKey>();
  const byX5t = new Map<string, VerificationKey>();
  for (const k of keys) {
    if (k.kid !== undefined) {
      const list = byKid.get(k.kid);
      if (list) list.push(k);
      else byKid.set(k.kid, [k]);
    }
    if (k.x5tS256 !== undefined && !byX5tS256.has(k.x5tS256)) byX5tS256.set(k.x5tS256, k);
    if (k.x5t !== undefined && !byX5t.has(k.x5t)) byX5t.set(k.x5t, k);
    for (const t of k.x5tS256Also ?? []) if (!byX5tS256.has(t)) byX5tS256.set(t, k);
    for (const t of k.x5tAlso ?? []) if (!byX5t.has(t)) byX5t.set(t, k);
  }
  for (const list of byKid.values()) Object.freeze(list);
  const set: KeySet = {
    keys: Object.freeze([...keys]),
    byKid,
    byX5tS256,
    byX5t,
    ...(defaultKey ? { defaultKey } : {}),
  };
  return Object.freeze(set);
}

export const EMPTY_KEY_SET: KeySet = makeKeySet([]);

const fingerprints = new WeakMap<KeySet, string>();

function keyMaterialDigest(key: KeyObject): string {
  const material = key.type === 'secret' ? key.export() : key.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(material).digest('base64url');
}

/**
 * A digest of everything that matters for verification (kids, algs, thumbprints, key
 * material, default key). Two sets with the same fingerprint verify the same tokens.
 */
export function keySetFingerprint(set: KeySet): string {
  const cached = fingerprints.get(set);
  if (cached !== undefined) return cached;
  const describe = (k: VerificationKey): string =>
    JSON.stringify([
      k.kid ?? null,
      k.alg ?? null,
      k.kty,
      k.crv ?? null,
      k.x5tS256 ?? null,
      k.x5t ?? null,
      keyMaterialDigest(k.key),
    ]);
  const parts = set.keys.map(describe).sort();
  parts.push(`default:${set.defaultKey ? describe(set.defaultKey) : ''}`);
  const fp = createHash('sha256').update(parts.join('\n')).digest('base64url');
  fingerprints.set(set, fp);
  return fp;
}
