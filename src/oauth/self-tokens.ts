import { LRUCache } from 'lru-cache';
import { parseCompactJws } from '../authn/jws.js';
import { EMPTY_KEY_SET, makeKeySet } from '../authn/keys/jwk.js';
import type { CompiledSenderConstraint } from '../authn/sender-constraint.js';
import type { OpaqueLookup, TokenStatusCheck } from '../authn/token-status.js';
import { verifyParsedJwt, type CompiledIssuer } from '../authn/verify.js';
import type { TokenEndpointConfig } from '../config/types.js';
import type { SigningKey, SigningKeys } from '../crypto/signing-keys.js';
import { wholeSeconds, type Clock } from '../core/time.js';
import { hashToken } from '../store/index.js';
import { staticKeySource, verificationKeyFor } from './client-keys.js';
import { isRandomTokenShape } from './requests.js';
import type { OAuthState, TokenServiceContext } from './state.js';

// This service's own access tokens as Check sees them: an issuer named "self" whose
// keys are our signing keys, whose JWTs can be revoked, and whose opaque tokens live
// in the store.

/** Clock skew Check allows on this service's own access tokens; revocations outlive exp by it. */
export const SELF_SKEW_SECONDS = 60;
/** Longest store-answer cache entry (docs/token-endpoint.md "Overview": a revocation may be delayed by at most 1 s). */
export const MAX_STORE_CACHE_MS = 1000;
/** The name of our own issuer in logs, metrics and require.issuers. */
export const SELF_ISSUER_NAME = 'self';

const SELF_SENDER_CONSTRAINT: CompiledSenderConstraint = Object.freeze({
  mtls: 'off',
  dpop: 'optional',
  clockSkewSeconds: SELF_SKEW_SECONDS,
});

/** What the Check pipeline needs to accept this service's own access tokens. */
export interface SelfTokenSupport extends TokenStatusCheck {
  /** name "self", requiredTyp "at+jwt", audiences = access_token.audiences or [issuer], keys = own public signing keys; its status is this. */
  readonly issuer: CompiledIssuer;
}

export class SelfTokens implements SelfTokenSupport {
  readonly issuer: CompiledIssuer;
  readonly issuesOpaqueTokens: boolean;
  private readonly cache: LRUCache<string, { v: OpaqueLookup | boolean }> | undefined;

  constructor(
    cfg: TokenEndpointConfig,
    issuer: string,
    keys: SigningKeys | undefined,
    private readonly ctx: TokenServiceContext,
    private readonly clock: Clock,
  ) {
    this.issuesOpaqueTokens = cfg.access_token.format === 'opaque';
    const cacheMs = Math.min(MAX_STORE_CACHE_MS, Math.max(0, ctx.storeCacheMs ?? MAX_STORE_CACHE_MS));
    this.cache = cacheMs > 0 ? new LRUCache({ max: 10_000, ttl: cacheMs, ttlAutopurge: false }) : undefined;
    this.issuer = selfIssuerFor(cfg, issuer, keys, this, clock);
  }

  async lookupOpaque(token: string): Promise<OpaqueLookup> {
    if (!isRandomTokenShape(token)) return { status: 'inactive' };
    const hash = hashToken(token);
    const key = `o:${hash}`;
    const cached = this.cache?.get(key);
    if (cached) {
      this.ctx.metrics.hits.store.inc();
      return cached.v as OpaqueLookup;
    }
    if (this.cache) this.ctx.metrics.misses.store.inc();
    let answer: OpaqueLookup;
    try {
      const rec = await this.ctx.store.getAccessToken(hash);
      const exp = rec?.claims.exp;
      answer =
        rec && typeof exp === 'number' && exp > wholeSeconds(this.clock.nowSeconds())
          ? { status: 'active', claims: rec.claims }
          : { status: 'inactive' };
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message }, 'opaque token lookup failed: store unavailable');
      return { status: 'unavailable' };
    }
    this.cache?.set(key, { v: answer });
    return answer;
  }

  async isRevoked(claims: Record<string, unknown>): Promise<boolean | 'unavailable'> {
    const jti = claims.jti;
    if (typeof jti !== 'string' || jti === '') return false;
    const key = `j:${jti}`;
    const cached = this.cache?.get(key);
    if (cached) {
      this.ctx.metrics.hits.store.inc();
      return cached.v as boolean;
    }
    if (this.cache) this.ctx.metrics.misses.store.inc();
    let revoked: boolean;
    try {
      revoked = await this.ctx.store.isJtiRevoked(jti);
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message }, 'revocation lookup failed: store unavailable');
      return 'unavailable';
    }
    this.cache?.set(key, { v: revoked });
    return revoked;
  }

  close(): void {
    this.issuer.keySource.close();
    this.cache?.clear();
  }
}

function selfIssuerFor(
  cfg: TokenEndpointConfig,
  issuer: string,
  keys: SigningKeys | undefined,
  status: TokenStatusCheck,
  clock: Clock,
): CompiledIssuer {
  const all: SigningKey[] = keys ? [keys.current, ...keys.previous] : [];
  const vks = all.map((k) => verificationKeyFor(k.key, { kid: k.kid, alg: k.alg }));
  const set = vks.length > 0 ? makeKeySet(vks) : EMPTY_KEY_SET;
  const auds = cfg.access_token.audiences.length > 0 ? cfg.access_token.audiences : [issuer];
  return Object.freeze({
    name: SELF_ISSUER_NAME,
    issuer,
    audiences: new Set(auds),
    algorithms: new Set(all.map((k) => k.alg)),
    keySource: staticKeySource(set, 'self', clock),
    clockSkewSeconds: SELF_SKEW_SECONDS,
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    maxLifetimeSeconds: cfg.access_token.ttl_seconds,
    requiredTyp: 'at+jwt',
    status,
    // Our tokens are DPoP-bound when their request had a proof (cnf.jkt): such a token
    // needs a proof with its key; one without cnf.jkt stays a bearer token.
    senderConstraint: SELF_SENDER_CONSTRAINT,
  });
}

/**
 * undefined: not a compact JWS. false: a JWS we did not issue or that is no longer
 * valid. Else its claims.
 */
export async function verifyOwnJwt(
  state: OAuthState,
  token: string,
): Promise<Record<string, unknown> | false | undefined> {
  const parsed = parseCompactJws(token, 16384);
  if ('kind' in parsed) return token.includes('.') ? false : undefined;
  if (!state.keys) return false;
  const result = await verifyParsedJwt(parsed, state.selfIssuer, { now: state.clock.nowSeconds() });
  return result.ok ? result.claims : false;
}
