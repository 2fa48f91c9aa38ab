import { deny, type Deny } from '../core/decision.js';
import { checkSignature, keyFitsAlg, parseCompactJws, type ParsedJws } from './jws.js';
import type { CompiledSenderConstraint } from './sender-constraint.js';
import type { KeySet, KeySource, VerificationKey } from './keys/key-source.js';
import {
  nowSeconds,
  secondsToMs,
  systemClock,
  type Clock,
  type EpochMs,
  type EpochSeconds,
} from '../core/time.js';
import type { TokenStatusCheck } from './token-status.js';

/** An issuer compiled from config: everything the verifier needs, nothing else. */
export interface CompiledIssuer {
  /** Configured name (logs, metrics, rules); "self" for this service's own tokens. */
  readonly name: string;
  /** Exact `iss` value. */
  readonly issuer: string;
  /** Accepted audiences, or 'any' for ["*"]. */
  readonly audiences: ReadonlySet<string> | 'any';
  readonly algorithms: ReadonlySet<string>;
  readonly keySource: KeySource;
  readonly clockSkewSeconds: number;
  readonly requiredClaims: readonly string[];
  readonly maxLifetimeSeconds: number;
  /** When set, the JWS header `typ` must be this media type (e.g. "at+jwt", RFC 9068). */
  readonly requiredTyp?: string;
  /** Proof-of-possession checks for this issuer's tokens; undefined when none. */
  readonly senderConstraint?: CompiledSenderConstraint;
  /** Revocation and opaque-token lookups, for issuers whose tokens can be revoked (this service's own). */
  readonly status?: TokenStatusCheck;
}

export interface VerifiedJwt {
  readonly ok: true;
  readonly issuer: CompiledIssuer;
  /** Key-set generation the signature was checked against (read together with the keys). */
  readonly generation: number;
  /** When the key that verified it stops being valid (certificates), if ever. */
  readonly keyNotAfter?: EpochMs;
  readonly header: Record<string, unknown>;
  readonly claims: Record<string, unknown>;
}

export type VerifyResult =
  VerifiedJwt | { readonly ok: false; readonly deny: Deny; readonly issuer?: CompiledIssuer };

export interface VerifyOptions {
  /** Current time (tests pin it). */
  readonly now?: EpochSeconds;
  /** When a request-triggered key fetch must have finished (the caller's deadline). */
  readonly deadline?: EpochMs;
  readonly maxTokenBytes?: number;
}

/** At most this many keys are tried for one token (bounds the cost of a token with no kid). */
export const MAX_CANDIDATE_KEYS = 4;

const fail = (d: Deny, issuer?: CompiledIssuer): VerifyResult => ({ ok: false, deny: d, issuer });

/**
 * Verifies a compact JWS against the issuer its unverified `iss` names. `lookupIssuer`
 * maps an exact `iss` string to a compiled issuer.
 */
export async function verifyJwt(
  token: string,
  lookupIssuer: (iss: string) => CompiledIssuer | undefined,
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const parsed = parseCompactJws(token, opts.maxTokenBytes ?? 16384);
  if ('kind' in parsed) return fail(parsed);
  const iss = parsed.payload.iss;
  if (typeof iss !== 'string') return fail(deny('claim_missing', 'the token has no issuer (iss)'));
  const issuer = lookupIssuer(iss);
  if (!issuer) return fail(deny('issuer_unknown', 'the token issuer is not trusted'));
  return verifyParsedJwt(parsed, issuer, opts);
}

/** Steps 3–6 of docs/verification.md "Verification rules" for an already parsed token and a chosen issuer. */
export async function verifyParsedJwt(
  parsed: ParsedJws,
  issuer: CompiledIssuer,
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const headerProblem = checkHeader(parsed.header, issuer);
  if (headerProblem) return fail(headerProblem, issuer);
  const alg = parsed.header.alg as string;

  const nowMs = secondsToMs(opts.now ?? nowSeconds());
  // The generation is read in the same synchronous step as the keys it describes: a
  // refresh landing while the signature is checked must not relabel this result.
  let generation = issuer.keySource.generation;
  let keys = issuer.keySource.current();
  let candidates = keys ? selectCandidates(keys, parsed.header, alg, nowMs) : undefined;
  if (!candidates || candidates.unknownKid) {
    // Unknown kid, or no keys at all: one request-triggered refetch (cooldown and
    // coalescing live in the key source), bounded by the caller's deadline. When no fetch
    // runs (the cooldown, a local source) the answer is synchronous: an
    // unknown-kid flood in the cooldown costs no promise, timer or await.
    const refetch = issuer.keySource.refreshForUnknownKid();
    if (refetch instanceof Promise) {
      const refreshed = await withDeadline(refetch, opts.deadline);
      if (refreshed === TIMED_OUT) {
        return fail(deny('keys_unavailable', 'the issuer keys could not be obtained in time'), issuer);
      }
      generation = issuer.keySource.generation;
      keys = issuer.keySource.current();
    } else {
      keys = refetch;
    }
    if (!keys) return fail(deny('keys_unavailable', 'the issuer keys are unavailable'), issuer);
    candidates = selectCandidates(keys, parsed.header, alg, nowMs);
  }
  if (candidates.keys.length === 0) {
    return fail(deny('key_not_found', 'no trusted key matches the token (kid)'), issuer);
  }
  let verifiedBy: VerificationKey | undefined;
  for (const key of candidates.keys) {
    const ok = checkSignature(alg, key.key, parsed.signingInput, parsed.signature);
    if (ok === true || (ok !== false && (await ok))) {
      verifiedBy = key;
      break;
    }
  }
  if (!verifiedBy) return fail(deny('signature_invalid', 'the token signature is invalid'), issuer);

  const claimProblem = checkClaims(parsed.payload, issuer, opts.now ?? nowSeconds());
  if (claimProblem) return fail(claimProblem, issuer);
  return {
    ok: true,
    issuer,
    generation,
    keyNotAfter: verifiedBy.notAfter,
    header: parsed.header,
    claims: parsed.payload,
  };
}

function checkHeader(header: Record<string, unknown>, issuer: CompiledIssuer): Deny | undefined {
  const alg = header.alg;
  if (typeof alg !== 'string' || !issuer.algorithms.has(alg)) {
    return deny('alg_not_allowed', 'the token algorithm is not allowed');
  }
  const kid = header.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length > 256)) {
    return deny('header_invalid', 'the token key id (kid) is invalid');
  }
  // We implement no JWS extensions, so any critical header parameter is unknown (RFC 7515 §4.1.11).
  if (header.crit !== undefined)
    return deny('crit_unsupported', 'the token uses unsupported critical header parameters');
  if (header.b64 !== undefined && header.b64 !== true)
    return deny('header_invalid', 'unencoded payloads are not accepted');
  if (issuer.requiredTyp !== undefined) {
    const typ =
      typeof header.typ === 'string' ? header.typ.toLowerCase().replace(/^application\//, '') : undefined;
    if (typ !== issuer.requiredTyp)
      return deny('typ_invalid', `the token type must be ${issuer.requiredTyp}`);
  }
  for (const name of ['x5t#S256', 'x5t'] as const) {
    if (header[name] !== undefined && typeof header[name] !== 'string') {
      return deny('header_invalid', `the token header ${name} is invalid`);
    }
  }
  return undefined;
}

interface Candidates {
  readonly keys: readonly VerificationKey[];
  /** The token named a kid that no key has (worth one refetch). */
  readonly unknownKid: boolean;
}

// docs/verification.md "Verification rules". The token's own jwk/jku/x5u/x5c headers are never read.
function selectCandidates(
  set: KeySet,
  header: Record<string, unknown>,
  alg: string,
  nowMs: number,
): Candidates {
  // A secret_file key has no kid and no certificate: whatever kid or thumbprint the token
  // names, the secret is the candidate.
  if (set.ignoresKid) return usable(set.keys, alg, nowMs);
  const kid = header.kid as string | undefined;
  let pool: readonly VerificationKey[] | undefined;
  if (kid !== undefined) pool = set.byKid.get(kid);
  if (!pool || pool.length === 0) {
    // A truststore also finds a certificate under WSO2's spellings of its thumbprints
    // (see wso2Thumbprints), indexed when it was loaded: still one map lookup here.
    const byThumb =
      (typeof header['x5t#S256'] === 'string' ? set.byX5tS256.get(header['x5t#S256']) : undefined) ??
      (typeof header.x5t === 'string' ? set.byX5t.get(header.x5t) : undefined);
    if (byThumb) pool = [byThumb];
    else if (kid !== undefined) return { keys: [], unknownKid: true };
    else if (header['x5t#S256'] !== undefined || header.x5t !== undefined)
      return { keys: [], unknownKid: false };
    else pool = set.defaultKey ? [set.defaultKey] : set.keys;
  }
  return usable(pool, alg, nowMs);
}

/** The keys of `pool` that may verify `alg` now (at most MAX_CANDIDATE_KEYS). */
function usable(pool: readonly VerificationKey[], alg: string, nowMs: number): Candidates {
  const keys: VerificationKey[] = [];
  for (const key of pool) {
    // Certificates are checked at use, not only when the truststore was loaded.
    if (key.notAfter !== undefined && nowMs > key.notAfter) continue;
    if (key.notBefore !== undefined && nowMs < key.notBefore) continue;
    if (keyFitsAlg(key, alg)) {
      keys.push(key);
      if (keys.length === MAX_CANDIDATE_KEYS) break;
    }
  }
  return { keys, unknownKid: false };
}

const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * The claim rules of docs/verification.md "Verification rules" (times with the issuer's skew, required
 * claims, audience, lifetime): for a JWT's payload and for an introspection answer alike.
 */
export function checkClaims(
  claims: Record<string, unknown>,
  issuer: Pick<CompiledIssuer, 'requiredClaims' | 'clockSkewSeconds' | 'audiences' | 'maxLifetimeSeconds'>,
  now: number,
): Deny | undefined {
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    if (claims[name] !== undefined && !isTime(claims[name])) {
      return deny('claim_invalid', `the ${name} claim must be a number`);
    }
  }
  for (const name of issuer.requiredClaims) {
    if (claims[name] === undefined) return deny('claim_missing', `the token has no ${name} claim`);
  }
  if (claims.sub !== undefined && typeof claims.sub !== 'string')
    return deny('claim_invalid', 'the sub claim must be a string');
  const skew = issuer.clockSkewSeconds;
  const exp = claims.exp as number | undefined;
  const nbf = claims.nbf as number | undefined;
  const iat = claims.iat as number | undefined;
  if (exp !== undefined && exp <= now - skew) return deny('token_expired', 'the token has expired');
  if (nbf !== undefined && nbf > now + skew)
    return deny('token_not_yet_valid', 'the token is not valid yet (nbf)');
  if (iat !== undefined && iat > now + skew)
    return deny('iat_in_future', 'the token was issued in the future (iat)');
  const audProblem = checkAudience(claims.aud, issuer.audiences);
  if (audProblem) return audProblem;
  if (exp !== undefined && exp - (iat ?? now) > issuer.maxLifetimeSeconds) {
    return deny('lifetime_exceeded', 'the token lifetime is longer than this issuer allows');
  }
  return undefined;
}

function checkAudience(aud: unknown, accepted: ReadonlySet<string> | 'any'): Deny | undefined {
  if (aud === undefined) {
    return accepted === 'any' ? undefined : deny('audience_invalid', 'the token has no audience (aud)');
  }
  const list = typeof aud === 'string' ? [aud] : aud;
  if (!Array.isArray(list) || list.some((a) => typeof a !== 'string')) {
    return deny('claim_invalid', 'the aud claim must be a string or a list of strings');
  }
  if (accepted === 'any') return undefined;
  for (const a of list as string[]) if (accepted.has(a)) return undefined;
  return deny('audience_invalid', 'the token is not intended for this audience');
}

const TIMED_OUT = Symbol('timed out');

/** Races `p` against the deadline; the deadline is on the clock its timer runs on (the wall clock). */
async function withDeadline<T>(
  p: Promise<T>,
  deadline: EpochMs | undefined,
  clock: Clock = systemClock,
): Promise<T | typeof TIMED_OUT> {
  if (deadline === undefined) return p;
  const ms = deadline - clock.nowMs();
  if (ms <= 0) return TIMED_OUT;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
