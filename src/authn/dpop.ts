import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  EmbeddedJWK,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import { DPOP_ALGORITHMS } from '../config/sections/constants.js';
import { deny, type Deny } from '../core/decision.js';
import type { AuthRequest } from '../core/request.js';
import { secondsToMs } from '../core/time.js';

// DPoP proofs (RFC 9449): a JWT the client signs per request with the key its access
// token is bound to. Everything about the proof is client-controlled, so it is
// size-checked before parsing and every claim is compared to what Envoy saw.

export { DPOP_ALGORITHMS };

/** Proofs longer than this are refused unread. */
export const MAX_DPOP_PROOF_BYTES = 8192;

/** How old a proof may be (beyond the issuer's clock skew); also how long its jti is remembered. */
export const DPOP_PROOF_MAX_AGE_SECONDS = 60;

// Members that only a private or symmetric JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const ALGORITHMS = DPOP_ALGORITHMS;

export interface DpopProofInput {
  /** The DPoP header as received. */
  readonly proof: string | undefined;
  /** Upper-case request method. */
  readonly method: string;
  /** The request URL as normalised by requestUrl(). */
  readonly url: string;
  /**
   * The access token the proof must be bound to (ath). Undefined for a proof sent to the
   * token endpoint, which presents no access token (ath is then not checked).
   */
  readonly accessToken: string | undefined;
  /** Seconds since the epoch. */
  readonly now: number;
  readonly clockSkewSeconds: number;
}

export interface VerifiedDpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key. */
  readonly jkt: string;
  readonly jti: string;
  readonly iat: number;
}

const invalidProof = (description: string): Deny => deny('dpop_invalid', description, { scheme: 'DPoP' });

/** Verifies one proof's form, signature and claims (not its jti's freshness: see replayKey). */
export async function verifyDpopProof(input: DpopProofInput): Promise<VerifiedDpopProof | Deny> {
  const proof = input.proof;
  if (proof === undefined || proof.length === 0) return invalidProof('the request has no DPoP proof');
  if (proof.length > MAX_DPOP_PROOF_BYTES) return invalidProof('the DPoP proof is too large');
  // Envoy joins repeated headers with ','; a compact JWS never contains one.
  if (proof.indexOf(',') >= 0) return invalidProof('the request carries more than one DPoP proof');

  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    return invalidProof('the DPoP proof is not a well-formed JWT');
  }
  if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== 'dpop+jwt')
    return invalidProof('the DPoP proof type (typ) must be dpop+jwt');
  if (typeof header.alg !== 'string' || !ALGORITHMS.includes(header.alg))
    return invalidProof('the DPoP proof algorithm is not allowed (asymmetric algorithms only)');
  const jwk = header.jwk;
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk))
    return invalidProof('the DPoP proof has no public key (jwk)');
  for (const member of PRIVATE_JWK_MEMBERS) {
    if (Object.hasOwn(jwk, member))
      return invalidProof('the DPoP proof key (jwk) must be a public key without private members');
  }

  let claims: Record<string, unknown>;
  try {
    const verified = await jwtVerify(proof, EmbeddedJWK, {
      algorithms: [...ALGORITHMS],
      typ: 'dpop+jwt',
      currentDate: new Date(secondsToMs(input.now)),
      clockTolerance: input.clockSkewSeconds,
    });
    claims = verified.payload;
  } catch (err) {
    return invalidProof(
      err instanceof joseErrors.JWSSignatureVerificationFailed
        ? 'the DPoP proof signature is invalid'
        : 'the DPoP proof is invalid',
    );
  }

  const jti = claims.jti;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256)
    return invalidProof('the DPoP proof has no valid jti');
  if (claims.htm !== input.method)
    return invalidProof('the DPoP proof htm does not match the request method');
  if (typeof claims.htu !== 'string' || normalizeHtu(claims.htu) !== input.url)
    return invalidProof('the DPoP proof htu does not match the request URL');
  const iat = claims.iat;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return invalidProof('the DPoP proof has no iat');
  if (iat > input.now + input.clockSkewSeconds)
    return invalidProof('the DPoP proof was issued in the future');
  if (iat < input.now - input.clockSkewSeconds - DPOP_PROOF_MAX_AGE_SECONDS)
    return invalidProof('the DPoP proof is too old (iat)');
  if (input.accessToken !== undefined && claims.ath !== accessTokenHash(input.accessToken))
    return invalidProof('the DPoP proof ath does not match the access token');

  let jkt: string;
  try {
    jkt = await calculateJwkThumbprint(jwk, 'sha256');
  } catch {
    return invalidProof('the DPoP proof key (jwk) is invalid');
  }
  return { jkt, jti, iat };
}

/** ath: base64url of the SHA-256 of the access token's ASCII bytes. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

/**
 * The URL a proof's htu is compared with: scheme, host and path of the request as Envoy
 * received it, without query and fragment, normalised. Undefined when it cannot be known.
 */
export function requestUrl(req: AuthRequest): string | undefined {
  const scheme = req.scheme?.toLowerCase();
  if ((scheme !== 'http' && scheme !== 'https') || req.host.length === 0) return undefined;
  let end = req.rawPath.length;
  for (const c of ['?', '#']) {
    const i = req.rawPath.indexOf(c);
    if (i >= 0 && i < end) end = i;
  }
  const path = req.rawPath.slice(0, end);
  if (!path.startsWith('/')) return undefined;
  return normalizeHtu(`${scheme}://${req.host}${path}`);
}

/**
 * Syntax- and scheme-based normalisation (RFC 3986 §6.2.2–6.2.3): lower-case scheme and
 * host, default port dropped, dot segments resolved, percent-encoding of unreserved
 * characters decoded and the rest upper-cased; query and fragment are ignored.
 */
export function normalizeHtu(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return `${url.protocol}//${url.host}${url.pathname.replace(/%([0-9A-Fa-f]{2})/g, percent)}`;
}

function percent(_match: string, hex: string): string {
  const c = String.fromCharCode(parseInt(hex, 16));
  return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${hex.toUpperCase()}`;
}

/** Records a key once for a while; true the first time. The token store is one (shared by replicas). */
export interface ReplayCache {
  rememberOnce(key: string, ttlSeconds: number): Promise<boolean>;
}

/** Store key of a proof's jti, per proof key so one client cannot use up another's jtis. */
export function replayKey(proof: VerifiedDpopProof): string {
  return `dpop:${createHash('sha256').update(`${proof.jkt}\n${proof.jti}`).digest('base64url')}`;
}

/** Seconds a jti must be remembered: as long as a proof with its iat would still be accepted. */
export function replayTtlSeconds(proof: VerifiedDpopProof, now: number, clockSkewSeconds: number): number {
  return Math.max(1, Math.ceil(proof.iat + clockSkewSeconds + DPOP_PROOF_MAX_AGE_SECONDS - now));
}

/**
 * A process-local replay cache, for when no token store is configured: a proof replayed
 * to another replica is not noticed then. Bounded; the oldest entries go first.
 */
export class MemoryReplayCache implements ReplayCache {
  private readonly seen: LRUCache<string, true>;

  constructor(max = 100_000) {
    this.seen = new LRUCache({ max, ttlAutopurge: false });
  }

  rememberOnce(key: string, ttlSeconds: number): Promise<boolean> {
    if (this.seen.has(key)) return Promise.resolve(false);
    this.seen.set(key, true, { ttl: secondsToMs(ttlSeconds) });
    return Promise.resolve(true);
  }
}
