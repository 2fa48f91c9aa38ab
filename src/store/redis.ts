import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { HASH_TAGGED_KEYS, KvStore, type Kv } from './kv-store.js';
import { RedisKv, type RedisClient } from './redis-kv.js';

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

export interface RedisStoreOptions {
  /** A single node (redis:// or rediss://). Exactly one of url, cluster, sentinels. */
  readonly url?: string;
  /** Seed nodes of a Redis Cluster. */
  readonly cluster?: readonly RedisNode[];
  /** Sentinels watching the master called `name`. */
  readonly sentinels?: readonly RedisNode[];
  readonly name?: string;
  readonly username?: string;
  readonly password?: string;
  readonly sentinelPassword?: string;
  readonly keyPrefix: string;
  readonly logger?: Logger;
  /** Deadline of one store call, retries included (default 1000 ms). */
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

/** Where the store connects, for log lines: never a password. */
function describeTarget(opts: RedisStoreOptions): string {
  if (opts.cluster) return `cluster ${opts.cluster.map((n) => `${n.host}:${n.port}`).join(',')}`;
  if (opts.sentinels)
    return `sentinel ${opts.name ?? ''}@${opts.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  return redactRedisUrl(opts.url ?? '');
}

function createClient(opts: RedisStoreOptions): RedisClient {
  const maxDelay = opts.maxReconnectDelayMs ?? 1000;
  const backoff = (times: number) => Math.min(50 * 2 ** Math.min(times, 10), maxDelay);
  const node: RedisOptions = {
    // Never queue a request while a connection is down: the caller gets an error at
    // once (503), not an answer seconds later or never.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: opts.connectTimeoutMs ?? 2000,
    commandTimeout: opts.commandTimeoutMs ?? 1000,
    autoResubscribe: false,
    ...(opts.username !== undefined ? { username: opts.username } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
  };
  if (opts.cluster) {
    const clusterOpts: ClusterOptions = {
      redisOptions: node,
      enableOfflineQueue: false,
      enableReadyCheck: true,
      // A command to a master that just died is retried on the refreshed slot map
      // (the promoted replica) within the call's deadline.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      // A slot move needs two redirections (MOVED, ASK); more means a dead master: fail
      // the call (503) rather than spend the request's whole deadline retrying.
      maxRedirections: 6,
      slotsRefreshTimeout: 1000,
      // Learns about a promoted replica even while no command fails.
      slotsRefreshInterval: 1000,
      clusterRetryStrategy: backoff,
    };
    return new Cluster(
      opts.cluster.map((n) => ({ host: n.host, port: n.port })),
      clusterOpts,
    );
  }
  if (opts.sentinels) {
    return new Redis({
      ...node,
      sentinels: opts.sentinels.map((n) => ({ host: n.host, port: n.port })),
      name: opts.name ?? 'mymaster',
      ...(opts.sentinelPassword !== undefined ? { sentinelPassword: opts.sentinelPassword } : {}),
      sentinelRetryStrategy: backoff,
      // ioredis's failover detector races its own reconnect after a switch (the client
      // can give up for good); a dead master is noticed by the broken connection anyway,
      // and a demoted one (network partition) by its READONLY answer below.
      failoverDetector: false,
      reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 1 : false),
      retryStrategy: backoff,
    });
  }
  return new Redis(opts.url ?? 'redis://127.0.0.1:6379', { ...node, retryStrategy: backoff });
}

/**
 * store.type: redis — a single node, a Redis Cluster or a Sentinel-managed master. Shared
 * by every replica. ioredis reconnects (and follows failovers) by itself; while it cannot
 * answer, isReady() is false and every call rejects quickly with StoreUnavailableError.
 */
export class RedisStore extends KvStore {
  readonly type = 'redis' as const;
  protected readonly kv: Kv;
  readonly client: RedisClient;
  private connectedOnce = false;
  private downLogged = false;
  private closing = false;
  private revive: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RedisStoreOptions) {
    super();
    const modes = [opts.url, opts.cluster, opts.sentinels].filter((m) => m !== undefined).length;
    if (modes !== 1) throw new Error('RedisStore: exactly one of url, cluster, sentinels is required');
    if (opts.cluster) this.keys = HASH_TAGGED_KEYS;
    this.client = createClient(opts);
    this.kv = new RedisKv(this.client, opts.keyPrefix, opts.commandTimeoutMs ?? 1000);
    const where = describeTarget(opts);
    const log = opts.logger;
    this.client.on('ready', () => {
      log?.info({ store: 'redis', target: where, reconnected: this.connectedOnce }, 'token store connected');
      this.connectedOnce = true;
      this.downLogged = false;
    });
    const onError = (err: Error) => {
      // ioredis emits an error per failed attempt; one line per outage is enough.
      if (!this.downLogged) {
        this.downLogged = true;
        log?.warn(
          { store: 'redis', target: where, err: err.message },
          'token store unavailable; reconnecting',
        );
      }
    };
    this.client.on('error', onError);
    // A cluster node going down does not end the cluster connection; it is still an outage
    // for the keys it served.
    this.client.on('node error', onError);
    // ioredis can give a connection up for good ("end") outside our close(): a Sentinel
    // failover notice racing a reconnect does it. The store must heal without a restart,
    // so it starts over after the longest reconnect pause.
    this.client.on('end', () => {
      if (this.closing || this.revive) return;
      this.revive = setTimeout(() => {
        this.revive = undefined;
        if (!this.closing && this.client.status === 'end') this.client.connect().catch(() => undefined);
      }, opts.maxReconnectDelayMs ?? 1000);
      this.revive.unref();
    });
    this.client.on('close', () => {
      if (this.connectedOnce && !this.downLogged) {
        this.downLogged = true;
        log?.warn({ store: 'redis', target: where }, 'token store connection closed; reconnecting');
      }
    });
  }

  get keyPrefix(): string {
    return this.opts.keyPrefix;
  }

  /** single, cluster or sentinel. */
  get topology(): 'single' | 'cluster' | 'sentinel' {
    return this.opts.cluster ? 'cluster' : this.opts.sentinels ? 'sentinel' : 'single';
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
    this.closing = true;
    if (this.revive) clearTimeout(this.revive);
    this.revive = undefined;
    try {
      if (this.client.status === 'ready') await this.client.quit();
      else this.client.disconnect();
    } catch {
      this.client.disconnect();
    }
  }
}
