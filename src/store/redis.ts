import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { KvStore, type Kv } from './kv-store.js';
import { StoreUnavailableError } from './types.js';

export interface RedisStoreOptions {
  readonly url: string;
  readonly keyPrefix: string;
  readonly logger?: Logger;
  /** Per-command deadline (default 1000 ms). */
  readonly commandTimeoutMs?: number;
  /** TCP connect deadline (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** Longest pause between reconnect attempts (default 1000 ms). */
  readonly maxReconnectDelayMs?: number;
}

/** A redis URL as it may appear in a log line: no password. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable redis_url)';
  }
}

class RedisKv implements Kv {
  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
  ) {}

  // Every command fails fast while disconnected (no offline queue) and is bounded by
  // commandTimeout; any failure becomes StoreUnavailableError.
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.client.status !== 'ready')
      throw new StoreUnavailableError('the token store (redis) is not connected');
    try {
      return await fn();
    } catch (err) {
      throw new StoreUnavailableError(`the token store (redis) failed: ${(err as Error).message}`, {
        cause: err,
      });
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
}

/**
 * store.type: redis. Shared by every replica. ioredis reconnects by itself; while it is
 * disconnected isReady() is false and every call rejects at once with StoreUnavailableError.
 */
export class RedisStore extends KvStore {
  readonly type = 'redis' as const;
  protected readonly kv: Kv;
  readonly client: Redis;
  private connectedOnce = false;
  private downLogged = false;

  constructor(private readonly opts: RedisStoreOptions) {
    super();
    const maxDelay = opts.maxReconnectDelayMs ?? 1000;
    this.client = new Redis(opts.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: opts.connectTimeoutMs ?? 2000,
      commandTimeout: opts.commandTimeoutMs ?? 1000,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), maxDelay),
      // Never hold requests hostage to a reconnect.
      autoResubscribe: false,
    });
    this.kv = new RedisKv(this.client, opts.keyPrefix);
    const where = redactRedisUrl(opts.url);
    const log = opts.logger;
    this.client.on('ready', () => {
      log?.info({ store: 'redis', url: where, reconnected: this.connectedOnce }, 'token store connected');
      this.connectedOnce = true;
      this.downLogged = false;
    });
    this.client.on('error', (err: Error) => {
      // ioredis emits an error per failed attempt; one line per outage is enough.
      if (!this.downLogged) {
        this.downLogged = true;
        log?.warn({ store: 'redis', url: where, err: err.message }, 'token store unavailable; reconnecting');
      }
    });
    this.client.on('close', () => {
      if (this.connectedOnce && !this.downLogged) {
        this.downLogged = true;
        log?.warn({ store: 'redis', url: where }, 'token store connection closed; reconnecting');
      }
    });
  }

  get keyPrefix(): string {
    return this.opts.keyPrefix;
  }

  isReady(): boolean {
    return this.client.status === 'ready';
  }

  /** Resolves once connected, or false after timeoutMs (start-up and tests). */
  async waitUntilReady(timeoutMs: number): Promise<boolean> {
    if (this.isReady()) return true;
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        resolve(v);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(this.isReady()), timeoutMs);
      this.client.on('ready', onReady);
    });
  }

  async close(): Promise<void> {
    try {
      if (this.client.status === 'ready') await this.client.quit();
      else this.client.disconnect();
    } catch {
      this.client.disconnect();
    }
  }
}
