// The verified-token cache: a token string that verified recently maps to its principal,
// so a repeated token is not verified again. An entry is used only while the token has
// not expired, its issuer's key set is the one it was verified against (a key change
// invalidates every entry of that issuer: the generation), and those keys are still usable.

import { LRUCache } from 'lru-cache';
import { keyTail, SecondSighting, type CacheAdmission } from '../core/admission.js';
import type { Allow } from '../core/decision.js';
import type { Principal } from '../core/request.js';
import type { Clock, EpochMs, EpochSeconds } from '../core/time.js';
import type { Metrics } from '../observability/metrics.js';
import type { CompiledTokenSource } from './extract.js';
import type { CompiledIssuer } from './verify.js';

/** An allow decision made for a principal, reused by the check layer while it is valid. */
export interface MemoisedAllow {
  readonly source: CompiledTokenSource;
  readonly decision: Allow;
  readonly reuseUntil: EpochMs;
}

/** A principal whose allow decisions are memoised: a cached token's, or an API key's. */
export interface MemoHolder {
  readonly principal: Principal;
  /** After this the entry is useless (exp + skew). */
  readonly expiresAt: EpochSeconds;
  /** Allow decisions already made for this principal, by rule (identity); owned by the check layer. */
  allows?: Map<object, MemoisedAllow>;
}

export interface CachedPrincipal extends MemoHolder {
  readonly issuer: CompiledIssuer;
  /** Key-set generation the token was verified against; a key change invalidates. */
  readonly generation: number;
  /** Raw claims, for the revocation check of issuers that have one (issuer.status). */
  readonly claims?: Record<string, unknown>;
}

/** Size accounting of the cache (see the constructor). */
const ENTRY_BUDGET_BYTES = 4096;
const ENTRY_OVERHEAD_BYTES = 1024;

// The LRU is keyed by the token's tail (core/admission.ts keyTail: hashing a whole token
// on every lookup costs ten times as much); a slot keeps the whole token, and only an
// exact match of it is a hit.
interface Slot {
  readonly token: string;
  readonly entry: CachedPrincipal;
}

export class PrincipalCache {
  private readonly lru: LRUCache<string, Slot>;
  /** Admission on the second sighting (core/admission.ts); absent: every verified token is cached. */
  private readonly admission: SecondSighting | undefined;

  constructor(
    maxEntries: number,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    admission: CacheAdmission = 'second_use',
  ) {
    this.admission = admission === 'second_use' ? new SecondSighting(maxEntries) : undefined;
    // Bounded by count and by an estimate of bytes: a typical entry (token, principal,
    // memoised decision with its wire bytes) is about 4 KiB; large tokens count for more,
    // so max_entries tokens of 16 KiB cannot hold 16x the memory.
    this.lru = new LRUCache({
      max: maxEntries,
      maxSize: maxEntries * ENTRY_BUDGET_BYTES,
      sizeCalculation: (slot) => ENTRY_OVERHEAD_BYTES + slot.token.length * 4,
    });
  }

  /** The slot holding exactly this token, if any (recency updated when `touch`). */
  private slot(token: string, touch: boolean): Slot | undefined {
    const key = keyTail(token);
    const slot = touch ? this.lru.get(key) : this.lru.peek(key);
    return slot !== undefined && slot.token === token ? slot : undefined;
  }

  /** A still-valid cached verification of exactly this token string, if any (counted as a hit or a miss). */
  get(token: string): CachedPrincipal | undefined {
    const cached = this.slot(token, true)?.entry;
    if (!cached) {
      this.metrics.misses.verifiedToken.inc();
      return undefined;
    }
    const source = cached.issuer.keySource;
    // Valid while the token has not expired, the key set is unchanged, and the keys
    // are still usable (not stale beyond max_stale_seconds).
    if (
      cached.expiresAt > this.clock.nowSeconds() &&
      cached.generation === source.generation &&
      source.current() !== undefined
    ) {
      this.metrics.hits.verifiedToken.inc();
      return cached;
    }
    this.lru.delete(keyTail(token));
    this.metrics.misses.verifiedToken.inc();
    return undefined;
  }

  /** The entry as it is, unchecked and uncounted (recency unchanged). */
  peek(token: string): CachedPrincipal | undefined {
    return this.slot(token, false)?.entry;
  }

  /** Caches `entry` unless this is the token's first sighting (admission). */
  set(token: string, entry: CachedPrincipal): void {
    if (this.admission && !this.admission.admit(token)) return;
    // Two verified tokens with the same tail (for signed tokens, practically never) share
    // one slot: the later replaces the earlier, which then costs one more verification.
    this.lru.set(keyTail(token), { token, entry });
  }
}
