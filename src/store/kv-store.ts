import type {
  FamilyMember,
  OpaqueTokenRecord,
  RateLimitPeek,
  RateLimitResult,
  RefreshTokenRecord,
  RefreshTokenState,
  Store,
} from './token-store.js';
import { msToSeconds, secondsToMs } from '../core/time.js';

/**
 * The few key-value primitives both backends provide. Every value has a TTL in whole
 * seconds; keys are already namespaced by the caller.
 */
export interface Kv {
  get(key: string): Promise<string | undefined>;
  mget(keys: string[]): Promise<(string | undefined)[]>;
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  /** Atomic set-if-absent; true when this call set it. */
  setNx(key: string, value: string, ttlSeconds: number): Promise<boolean>;
  del(keys: string[]): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Appends to a list and sets the list's TTL. */
  push(key: string, value: string, ttlSeconds: number): Promise<void>;
  list(key: string): Promise<string[]>;
  /**
   * One atomic sliding-window step: drop the hits at or before nowMs - windowMs, record
   * this one when fewer than `limit` remain. nowMs undefined: the backend's own clock.
   */
  windowHit(key: string, limit: number, windowMs: number, nowMs: number | undefined): Promise<WindowHit>;
  /**
   * The same window read without changing it: the hits after nowMs - windowMs (allowed
   * is always false: nothing is recorded). nowMs undefined: the backend's own clock.
   */
  windowPeek(key: string, windowMs: number, nowMs: number | undefined): Promise<WindowHit>;
}

/** What a sliding-window step saw, after recording the hit if it was allowed (epoch ms). */
export interface WindowHit {
  readonly allowed: boolean;
  /** Hits in the window, this one included when allowed. */
  readonly count: number;
  readonly oldest: number;
  readonly newest: number;
  readonly now: number;
}

// Key layout (after the backend's prefix):
//   at:<hash>   opaque access token record (JSON)
//   rt:<hash>   refresh token record (JSON)
//   rtu:<hash>  refresh token already exchanged (marker)
//   jti:<jti>   revoked JWT access token (marker)
//   fr:<id>     revoked refresh-token family (marker)
//   fm:<id>     members of a family (list of JSON)
//   once:<key>  remembered key, e.g. a used assertion jti (marker)
//   rl:<key>    rate-limit window (sorted set of hit times)
// On a Redis Cluster the id is wrapped in a hash tag (rt:{<hash>}, rtu:{<hash>}, fr:{<id>},
// fm:{<id>}, ...): Redis hashes only the part inside the first braces, so the keys one
// operation reads or deletes together (rt + rtu, fr + fm) live in one slot. The plain
// layout stays for a single node and Sentinel, so existing data (revocations above all)
// survives an upgrade.
export interface KeyLayout {
  access(h: string): string;
  refresh(h: string): string;
  refreshUsed(h: string): string;
  revokedJti(jti: string): string;
  familyRevoked(id: string): string;
  familyMembers(id: string): string;
  once(k: string): string;
  rateLimit(k: string): string;
}

function layout(tag: (id: string) => string): KeyLayout {
  return {
    access: (h) => `at:${tag(h)}`,
    refresh: (h) => `rt:${tag(h)}`,
    refreshUsed: (h) => `rtu:${tag(h)}`,
    revokedJti: (jti) => `jti:${tag(jti)}`,
    familyRevoked: (id) => `fr:${tag(id)}`,
    familyMembers: (id) => `fm:${tag(id)}`,
    once: (k) => `once:${tag(k)}`,
    rateLimit: (k) => `rl:${tag(k)}`,
  };
}

export const PLAIN_KEYS: KeyLayout = layout((id) => id);
export const HASH_TAGGED_KEYS: KeyLayout = layout((id) => `{${id}}`);

/** Whole seconds, at least 1 (a TTL of 0 would mean "no expiry" or "expire now" depending on the backend). */
export function ttl(seconds: number): number {
  return Number.isFinite(seconds) ? Math.max(1, Math.ceil(seconds)) : 1;
}

function parse<T>(raw: string | undefined): T | undefined {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

/** The Store semantics, written once over a Kv. */
export abstract class KvStore implements Store {
  abstract readonly type: 'memory' | 'redis';
  protected keys: KeyLayout = PLAIN_KEYS;
  abstract isReady(): boolean;
  abstract close(): Promise<void>;
  protected abstract readonly kv: Kv;

  async putAccessToken(hash: string, record: OpaqueTokenRecord, ttlSeconds: number): Promise<void> {
    await this.kv.set(this.keys.access(hash), JSON.stringify(record), ttl(ttlSeconds));
  }

  async getAccessToken(hash: string): Promise<OpaqueTokenRecord | undefined> {
    return parse<OpaqueTokenRecord>(await this.kv.get(this.keys.access(hash)));
  }

  async deleteAccessToken(hash: string): Promise<void> {
    await this.kv.del([this.keys.access(hash)]);
  }

  async putRefreshToken(hash: string, record: RefreshTokenRecord, ttlSeconds: number): Promise<void> {
    await this.kv.set(this.keys.refresh(hash), JSON.stringify(record), ttl(ttlSeconds));
  }

  async getRefreshToken(hash: string): Promise<RefreshTokenState | undefined> {
    const [raw, used] = await this.kv.mget([this.keys.refresh(hash), this.keys.refreshUsed(hash)]);
    const record = parse<RefreshTokenRecord>(raw);
    return record ? { record, used: used !== undefined } : undefined;
  }

  markRefreshTokenUsed(hash: string, ttlSeconds: number): Promise<boolean> {
    return this.kv.setNx(this.keys.refreshUsed(hash), '1', ttl(ttlSeconds));
  }

  async deleteRefreshToken(hash: string): Promise<void> {
    await this.kv.del([this.keys.refresh(hash), this.keys.refreshUsed(hash)]);
  }

  async revokeJti(jti: string, ttlSeconds: number): Promise<void> {
    await this.kv.set(this.keys.revokedJti(jti), '1', ttl(ttlSeconds));
  }

  isJtiRevoked(jti: string): Promise<boolean> {
    return this.kv.exists(this.keys.revokedJti(jti));
  }

  async addFamilyMember(familyId: string, member: FamilyMember, ttlSeconds: number): Promise<void> {
    await this.kv.push(this.keys.familyMembers(familyId), JSON.stringify(member), ttl(ttlSeconds));
  }

  async revokeFamily(familyId: string, ttlSeconds: number): Promise<FamilyMember[]> {
    // Marker first, members second: an issuer that adds a member and then re-checks the
    // marker (see the token service) can never slip a token past a revocation.
    await this.kv.set(this.keys.familyRevoked(familyId), '1', ttl(ttlSeconds));
    const raw = await this.kv.list(this.keys.familyMembers(familyId));
    const members: FamilyMember[] = [];
    for (const r of raw) {
      const m = parse<FamilyMember>(r);
      if (m) members.push(m);
    }
    return members;
  }

  isFamilyRevoked(familyId: string): Promise<boolean> {
    return this.kv.exists(this.keys.familyRevoked(familyId));
  }

  rememberOnce(key: string, ttlSeconds: number): Promise<boolean> {
    return this.kv.setNx(this.keys.once(key), '1', ttl(ttlSeconds));
  }

  async hit(key: string, limit: number, windowSeconds: number, nowMs?: number): Promise<RateLimitResult> {
    const windowMs = windowArgs(limit, windowSeconds);
    const h = await this.kv.windowHit(this.keys.rateLimit(key), limit, windowMs, nowMs);
    const resetSeconds = h.count > 0 ? Math.max(1, Math.ceil(msToSeconds(h.newest + windowMs - h.now))) : 0;
    const remaining = Math.max(0, limit - h.count);
    if (h.allowed) return { allowed: true, remaining, resetSeconds };
    return {
      allowed: false,
      remaining,
      resetSeconds,
      retryAfterSeconds: Math.max(1, Math.ceil(msToSeconds(h.oldest + windowMs - h.now))),
    };
  }

  async peek(key: string, limit: number, windowSeconds: number, nowMs?: number): Promise<RateLimitPeek> {
    const windowMs = windowArgs(limit, windowSeconds);
    const h = await this.kv.windowPeek(this.keys.rateLimit(key), windowMs, nowMs);
    const resetSeconds = h.count > 0 ? Math.max(1, Math.ceil(msToSeconds(h.newest + windowMs - h.now))) : 0;
    const remaining = Math.max(0, limit - h.count);
    if (h.count < limit) return { count: h.count, remaining, wouldRefuse: false, resetSeconds };
    return {
      count: h.count,
      remaining,
      wouldRefuse: true,
      resetSeconds,
      retryAfterSeconds: Math.max(1, Math.ceil(msToSeconds(h.oldest + windowMs - h.now))),
    };
  }
}

/** The window in ms, after checking the arguments hit and peek share. */
function windowArgs(limit: number, windowSeconds: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new RangeError(`rate limit: limit must be a positive integer, got ${limit}`);
  const windowMs = Math.round(secondsToMs(windowSeconds));
  if (!Number.isFinite(windowSeconds) || windowMs < 1)
    throw new RangeError(`rate limit: windowSeconds must be > 0, got ${windowSeconds}`);
  return windowMs;
}
