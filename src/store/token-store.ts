// The shared token store (docs/token-endpoint.md "Overview"): exactly what the token endpoint and Check need.
// Every entry has a lifetime; the store forgets it afterwards. Tokens are never stored
// in clear: callers pass SHA-256 hashes (see hashToken).

import { AuthzError } from '../core/errors.js';

/** The store cannot answer (Redis down or too slow). Callers map it to 503 / "unavailable", never to "not found". */
export class StoreUnavailableError extends AuthzError {
  readonly code = 'ERR_STORE_UNAVAILABLE';

  constructor(message = 'the token store is unavailable', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** An opaque access token, stored under the hash of the token. */
export interface OpaqueTokenRecord {
  /** The token's claims as Check sees them: iss, sub, aud, client_id, scope, iat, exp, jti, plus client claims. */
  readonly claims: Record<string, unknown>;
  /** Refresh-token family the token was issued in, if any. */
  readonly familyId?: string;
}

/** A refresh token, stored under the hash of the token. */
export interface RefreshTokenRecord {
  readonly clientId: string;
  readonly sub: string;
  /** Space-delimited scope granted to the family. */
  readonly scope: string;
  readonly familyId: string;
  /** epoch seconds: absolute end of the family (first grant + refresh_token.ttl_seconds). */
  readonly familyExp: number;
  /** Claims copied from the identity provider's assertion (grant_issuers copy_claims), for every token of the family. */
  readonly claims?: Record<string, unknown>;
  /** RFC 7638 thumbprint of the DPoP key the token is bound to: refreshing it needs a proof signed with that key. */
  readonly jkt?: string;
}

export interface RefreshTokenState {
  readonly record: RefreshTokenRecord;
  /** The token has already been exchanged (rotated); presenting it again is reuse. */
  readonly used: boolean;
}

/** A token issued within a refresh-token family, revoked with the family. */
export type FamilyMember =
  | { readonly kind: 'jwt'; readonly jti: string; readonly exp: number }
  | { readonly kind: 'opaque'; readonly hash: string };

/** The answer of Store.hit for one request. */
export interface RateLimitResult {
  /** This request is within the limit (and was counted). */
  readonly allowed: boolean;
  /** Further requests allowed right now (limit minus the requests in the window). */
  readonly remaining: number;
  /** Whole seconds until every request counted now has left the window (the full limit is back). */
  readonly resetSeconds: number;
  /** Denied requests only: whole seconds (at least 1) until a request can be allowed again. */
  readonly retryAfterSeconds?: number;
}

/** The answer of Store.peek: a rate-limit window as it stands, nothing counted. */
export interface RateLimitPeek {
  /** Requests counted in the window (now - windowSeconds, now]. */
  readonly count: number;
  /** Further requests allowed right now (limit minus count, at least 0). */
  readonly remaining: number;
  /** A request counted now would be refused (the window already holds `limit`). */
  readonly wouldRefuse: boolean;
  /** Whole seconds until every request counted now has left the window (0 when none is). */
  readonly resetSeconds: number;
  /** When a request would be refused: whole seconds (at least 1) until one can be allowed again. */
  readonly retryAfterSeconds?: number;
}

/**
 * All durations are relative TTLs in whole seconds (at least 1), so the store's own clock
 * never has to agree with the caller's. Every method rejects with StoreUnavailableError
 * when the backend cannot answer.
 */
export interface Store {
  readonly type: 'memory' | 'redis';
  /** false while the backend is disconnected (readiness). */
  isReady(): boolean;

  putAccessToken(hash: string, record: OpaqueTokenRecord, ttlSeconds: number): Promise<void>;
  getAccessToken(hash: string): Promise<OpaqueTokenRecord | undefined>;
  deleteAccessToken(hash: string): Promise<void>;

  putRefreshToken(hash: string, record: RefreshTokenRecord, ttlSeconds: number): Promise<void>;
  getRefreshToken(hash: string): Promise<RefreshTokenState | undefined>;
  /**
   * Marks a refresh token as exchanged. Atomic: of several concurrent callers (on any
   * replica) exactly one gets true; the others must treat the token as reused.
   */
  markRefreshTokenUsed(hash: string, ttlSeconds: number): Promise<boolean>;
  deleteRefreshToken(hash: string): Promise<void>;

  /** Records a revoked JWT by its jti until it expires anyway. */
  revokeJti(jti: string, ttlSeconds: number): Promise<void>;
  isJtiRevoked(jti: string): Promise<boolean>;

  /** Remembers a token issued in a family (so revoking the family reaches it). */
  addFamilyMember(familyId: string, member: FamilyMember, ttlSeconds: number): Promise<void>;
  /**
   * Marks a family revoked for ttlSeconds and returns its members; the caller then
   * revokes each (revokeJti / deleteAccessToken) with its own clock.
   */
  revokeFamily(familyId: string, ttlSeconds: number): Promise<FamilyMember[]>;
  isFamilyRevoked(familyId: string): Promise<boolean>;

  /**
   * Set-if-absent with a TTL (used assertion jtis). Atomic across replicas: true when
   * this call recorded the key, false when it was already there.
   */
  rememberOnce(key: string, ttlSeconds: number): Promise<boolean>;

  /**
   * Counts one request against `key` with a sliding-window log: the request is allowed
   * when fewer than `limit` allowed requests fall in the window (now - windowSeconds, now],
   * and is then recorded; a denied request is not recorded. So no window of windowSeconds
   * ever holds more than `limit` allowed requests, across every replica sharing the store.
   * One atomic step (one Lua script on Redis, timed by the Redis server's clock unless
   * `nowMs` is given). `limit` is a positive integer, `windowSeconds` > 0 (ms precision).
   */
  hit(key: string, limit: number, windowSeconds: number, nowMs?: number): Promise<RateLimitResult>;

  /**
   * Reads the window `hit` would count against, with the same key, limit and window
   * arithmetic, and records nothing: peeking any number of times leaves the allowance
   * of the next hit unchanged (explanations use it).
   */
  peek(key: string, limit: number, windowSeconds: number, nowMs?: number): Promise<RateLimitPeek>;

  close(): Promise<void>;
}
