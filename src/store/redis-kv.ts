import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { Kv, WindowHit } from './kv-store.js';
import { StoreUnavailableError } from './token-store.js';

// The Redis side of the key-value operations KvStore builds the token store from: plain
// commands under the key prefix, and the rate-limit windows as Lua scripts (one atomic
// step each), every call bounded by a deadline.

export type RedisClient = Redis | Cluster;

/** Lua: `now` in ms from ARGV[n], or from the Redis server's clock when ARGV[n] is ''. */
function luaNow(n: number): string {
  return `local now
if ARGV[${n}] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[${n}])
end`;
}

// Sliding-window log, one atomic step. KEYS[1]: sorted set of hit times (score = member
// time in ms). ARGV: limit, window ms, now ms ('' = the Redis server's clock, so replicas
// with skewed clocks still share one timeline), a member unique to this hit.
// Hits at or before now - window are dropped; the hit is recorded only when allowed.
const WINDOW_HIT_LUA = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
${luaNow(3)}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  count = count + 1
  allowed = 1
end
local oldest = now
local newest = now
if count > 0 then
  oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  redis.call('PEXPIRE', KEYS[1], math.max(1, newest + window - now))
end
return {allowed, count, oldest, newest, now}
`;

// The same window read only (explanations): the hits after now - window, counted with the
// same clock and arithmetic as WINDOW_HIT_LUA, on the same key; nothing is written, not
// even the expiry. KEYS[1]: the sorted set. ARGV: window ms, now ms ('' = server clock).
const WINDOW_PEEK_LUA = `
local window = tonumber(ARGV[1])
${luaNow(2)}
local floor = '(' .. (now - window)
local count = redis.call('ZCOUNT', KEYS[1], floor, '+inf')
local oldest = now
local newest = now
if count > 0 then
  oldest = tonumber(redis.call('ZRANGEBYSCORE', KEYS[1], floor, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2])
  newest = tonumber(redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', floor, 'WITHSCORES', 'LIMIT', 0, 1)[2])
end
return {0, count, oldest, newest, now}
`;

type WindowHitCommand = (
  key: string,
  limit: number,
  windowMs: number,
  now: string,
  member: string,
) => Promise<[number, number, number, number, number]>;

// Members of the rate-limit sets must be unique per hit across replicas.
const HIT_ID_PREFIX = randomBytes(9).toString('base64url');
let hitSeq = 0;

type WindowPeekCommand = (
  key: string,
  windowMs: number,
  now: string,
) => Promise<[number, number, number, number, number]>;

export class RedisKv implements Kv {
  private readonly windowHitCmd: WindowHitCommand;
  private readonly windowPeekCmd: WindowPeekCommand;

  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly deadlineMs: number,
  ) {
    client.defineCommand('authzWindowHit', { numberOfKeys: 1, lua: WINDOW_HIT_LUA });
    const cmd = (client as unknown as { authzWindowHit: WindowHitCommand }).authzWindowHit;
    this.windowHitCmd = cmd.bind(client);
    client.defineCommand('authzWindowPeek', { numberOfKeys: 1, lua: WINDOW_PEEK_LUA });
    const peek = (client as unknown as { authzWindowPeek: WindowPeekCommand }).authzWindowPeek;
    this.windowPeekCmd = peek.bind(client);
  }

  // Every command fails fast while disconnected (no offline queue) and the whole call,
  // cluster redirections and failover retries included, is bounded by deadlineMs; any
  // failure becomes StoreUnavailableError, never an empty answer.
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.client.status !== 'ready')
      throw new StoreUnavailableError('the token store (redis) is not connected');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.deadlineMs} ms`)), this.deadlineMs);
    });
    try {
      return await Promise.race([fn(), deadline]);
    } catch (err) {
      throw new StoreUnavailableError(`the token store (redis) failed: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private k(key: string): string {
    return this.prefix + key;
  }

  get(key: string): Promise<string | undefined> {
    return this.run(async () => (await this.client.get(this.k(key))) ?? undefined);
  }

  mget(keys: string[]): Promise<(string | undefined)[]> {
    return this.run(async () =>
      (await this.client.mget(keys.map((k) => this.k(k)))).map((v) => v ?? undefined),
    );
  }

  set(key: string, value: string, ttlSeconds: number): Promise<void> {
    return this.run(async () => {
      await this.client.set(this.k(key), value, 'EX', ttlSeconds);
    });
  }

  setNx(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    return this.run(async () => (await this.client.set(this.k(key), value, 'EX', ttlSeconds, 'NX')) === 'OK');
  }

  del(keys: string[]): Promise<void> {
    return this.run(async () => {
      if (keys.length > 0) await this.client.del(...keys.map((k) => this.k(k)));
    });
  }

  exists(key: string): Promise<boolean> {
    return this.run(async () => (await this.client.exists(this.k(key))) > 0);
  }

  push(key: string, value: string, ttlSeconds: number): Promise<void> {
    return this.run(async () => {
      const results = await this.client
        .multi()
        .rpush(this.k(key), value)
        .expire(this.k(key), ttlSeconds)
        .exec();
      if (!results) throw new Error('transaction aborted');
      for (const [err] of results) if (err) throw err;
    });
  }

  list(key: string): Promise<string[]> {
    return this.run(() => this.client.lrange(this.k(key), 0, -1));
  }

  windowHit(key: string, limit: number, windowMs: number, nowMs: number | undefined): Promise<WindowHit> {
    return this.run(async () => {
      const member = `${HIT_ID_PREFIX}:${(hitSeq = (hitSeq + 1) % Number.MAX_SAFE_INTEGER)}`;
      const now = nowMs === undefined ? '' : String(Math.floor(nowMs));
      const [allowed, count, oldest, newest, at] = await this.windowHitCmd(
        this.k(key),
        limit,
        windowMs,
        now,
        member,
      );
      return { allowed: allowed === 1, count, oldest, newest, now: at };
    });
  }

  windowPeek(key: string, windowMs: number, nowMs: number | undefined): Promise<WindowHit> {
    return this.run(async () => {
      const now = nowMs === undefined ? '' : String(Math.floor(nowMs));
      const [, count, oldest, newest, at] = await this.windowPeekCmd(this.k(key), windowMs, now);
      return { allowed: false, count, oldest, newest, now: at };
    });
  }
}
