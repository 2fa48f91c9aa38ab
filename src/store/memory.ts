import { secondsToMs, systemClock, type Clock, type EpochMs } from '../core/time.js';
import { KvStore, type Kv, type WindowHit } from './kv-store.js';

interface Entry {
  value: string | string[];
  expiresAt: EpochMs;
}

/** In-process Kv. Expired entries are invisible at once and purged on a timer. */
export class MemoryKv implements Kv {
  private readonly entries = new Map<string, Entry>();
  /** Rate-limit windows: hit times (epoch ms, ascending) per key. */
  private readonly windows = new Map<string, { hits: number[]; windowMs: number }>();

  constructor(private readonly clock: Clock = systemClock) {}

  get size(): number {
    return this.entries.size;
  }

  /** Rate-limit keys held (tests check that idle ones are purged). */
  get windowCount(): number {
    return this.windows.size;
  }

  /** Every live key (tests inspect what is stored). */
  keys(): string[] {
    const now = this.clock.nowMs();
    return [...this.entries].filter(([, e]) => e.expiresAt > now).map(([k]) => k);
  }

  /** Raw value of a live key (tests). */
  peek(key: string): string | string[] | undefined {
    return this.live(key)?.value;
  }

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.clock.nowMs()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  purgeExpired(): number {
    const now = this.clock.nowMs();
    let n = 0;
    for (const [k, e] of this.entries) {
      if (e.expiresAt <= now) {
        this.entries.delete(k);
        n++;
      }
    }
    for (const [k, w] of this.windows) {
      const newest = w.hits[w.hits.length - 1];
      if (newest === undefined || newest <= now - w.windowMs) {
        this.windows.delete(k);
        n++;
      }
    }
    return n;
  }

  async get(key: string): Promise<string | undefined> {
    const v = this.live(key)?.value;
    return typeof v === 'string' ? v : undefined;
  }

  async mget(keys: string[]): Promise<(string | undefined)[]> {
    return keys.map((k) => {
      const v = this.live(k)?.value;
      return typeof v === 'string' ? v : undefined;
    });
  }

  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    this.entries.set(key, { value, expiresAt: this.clock.nowMs() + secondsToMs(ttlSeconds) });
  }

  async setNx(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    // Synchronous check-and-set: atomic within the process.
    if (this.live(key)) return false;
    this.entries.set(key, { value, expiresAt: this.clock.nowMs() + secondsToMs(ttlSeconds) });
    return true;
  }

  async del(keys: string[]): Promise<void> {
    for (const k of keys) this.entries.delete(k);
  }

  async exists(key: string): Promise<boolean> {
    return this.live(key) !== undefined;
  }

  async push(key: string, value: string, ttlSeconds: number): Promise<void> {
    const e = this.live(key);
    const list = e && Array.isArray(e.value) ? e.value : [];
    list.push(value);
    this.entries.set(key, { value: list, expiresAt: this.clock.nowMs() + secondsToMs(ttlSeconds) });
  }

  async list(key: string): Promise<string[]> {
    const v = this.live(key)?.value;
    return Array.isArray(v) ? [...v] : [];
  }

  async windowHit(
    key: string,
    limit: number,
    windowMs: number,
    nowMs: number | undefined,
  ): Promise<WindowHit> {
    // Synchronous from here to the return: atomic within the process.
    const now = nowMs ?? this.clock.nowMs();
    let w = this.windows.get(key);
    if (!w) {
      w = { hits: [], windowMs };
      this.windows.set(key, w);
    }
    w.windowMs = windowMs;
    const hits = w.hits;
    const floor = now - windowMs;
    let stale = 0;
    while (stale < hits.length && hits[stale]! <= floor) stale++;
    if (stale > 0) hits.splice(0, stale);
    const allowed = hits.length < limit;
    if (allowed) {
      // Callers passing their own time may go backwards a little; keep the log sorted.
      let i = hits.length;
      while (i > 0 && hits[i - 1]! > now) i--;
      hits.splice(i, 0, now);
    }
    if (hits.length === 0) this.windows.delete(key);
    return {
      allowed,
      count: hits.length,
      oldest: hits[0] ?? now,
      newest: hits[hits.length - 1] ?? now,
      now,
    };
  }

  async windowPeek(key: string, windowMs: number, nowMs: number | undefined): Promise<WindowHit> {
    // Reads only: stale hits are skipped, not dropped (hit and the purge timer drop them).
    const now = nowMs ?? this.clock.nowMs();
    const hits = this.windows.get(key)?.hits ?? [];
    const floor = now - windowMs;
    let first = 0;
    while (first < hits.length && hits[first]! <= floor) first++;
    const count = hits.length - first;
    return {
      allowed: false,
      count,
      oldest: count > 0 ? hits[first]! : now,
      newest: count > 0 ? hits[hits.length - 1]! : now,
      now,
    };
  }
}

export interface MemoryStoreOptions {
  /** docs/token-endpoint.md "Overview" purge_interval_seconds (default 60). */
  readonly purgeIntervalSeconds?: number;
  readonly clock?: Clock;
}

/** store.type: memory — one process only; expired entries purged every purge_interval_seconds. */
export class MemoryStore extends KvStore {
  readonly type = 'memory' as const;
  protected readonly kv: MemoryKv;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: MemoryStoreOptions = {}) {
    super();
    this.kv = new MemoryKv(opts.clock);
    const every = secondsToMs(Math.max(1, opts.purgeIntervalSeconds ?? 60));
    this.timer = setInterval(() => this.kv.purgeExpired(), every);
    this.timer.unref();
  }

  /** The underlying map (tests inspect it). */
  get raw(): MemoryKv {
    return this.kv;
  }

  isReady(): boolean {
    return true;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
