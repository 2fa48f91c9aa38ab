import { createHash } from 'node:crypto';
import type { StoreConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { tracer } from '../observability/tracing.js';
import { TracedStore } from './traced.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { Store } from './types.js';

export { MemoryStore } from './memory.js';
export { RedisStore, redactRedisUrl } from './redis.js';
export {
  StoreUnavailableError,
  type FamilyMember,
  type OpaqueTokenRecord,
  type RefreshTokenRecord,
  type RefreshTokenState,
  type Store,
} from './types.js';

/** SHA-256 of a token, base64url: the only form in which tokens are stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

/**
 * Builds the configured store. A Redis store starts connecting in the background and
 * never throws here: while Redis is unreachable isReady() is false (readiness) and calls
 * fail with StoreUnavailableError.
 */
export function createStore(cfg: StoreConfig, ctx: { logger: Logger }): Store {
  const store =
    cfg.type === 'redis'
      ? new RedisStore({ url: cfg.redis_url, keyPrefix: cfg.key_prefix, logger: ctx.logger })
      : new MemoryStore({ purgeIntervalSeconds: cfg.purge_interval_seconds });
  // Decided when the store is built: tracing is set up per process, before any store.
  const t = tracer;
  return t ? new TracedStore(store, t) : store;
}
