import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseHostPort } from '../core/address.js';
import { ConfigError } from '../core/errors.js';
import type { StoreConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { tracer } from '../observability/tracing.js';
import { TracedStore } from './traced.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { Store } from './token-store.js';

export { MemoryStore } from './memory.js';
export { RedisStore, redactRedisUrl, type RedisNode, type RedisStoreOptions } from './redis.js';
export {
  StoreUnavailableError,
  type FamilyMember,
  type OpaqueTokenRecord,
  type RateLimitResult,
  type RefreshTokenRecord,
  type RefreshTokenState,
  type Store,
} from './token-store.js';

/** SHA-256 of a token, base64url: the only form in which tokens are stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

function readSecretFile(path: string, field: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`${field}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`]);
  }
  // A trailing newline is an artefact of how the file was written, not part of the secret.
  const secret = text.replace(/\r?\n$/, '');
  if (secret.length === 0) throw new ConfigError([`${field}: the file is empty`]);
  return secret;
}

function nodes(list: string[]): { host: string; port: number }[] {
  // Validated at load; a malformed entry cannot reach here through the config loader.
  return list.map((s) => {
    const n = parseHostPort(s);
    if (!n) throw new ConfigError([`store.redis: malformed host:port ${JSON.stringify(s)}`]);
    return n;
  });
}

/**
 * Builds the configured store. A Redis store starts connecting in the background and
 * never throws for an unreachable Redis: while it is unreachable isReady() is false
 * (readiness) and calls fail with StoreUnavailableError. An unreadable password file is a
 * ConfigError naming the field.
 */
export function createStore(cfg: StoreConfig, ctx: { logger: Logger }): Store {
  if (cfg.type === 'redis') {
    const r = cfg.redis;
    const password =
      r?.password_file !== undefined
        ? readSecretFile(r.password_file, 'store.redis.password_file')
        : undefined;
    const sentinelPassword =
      r?.sentinel_password_file !== undefined
        ? readSecretFile(r.sentinel_password_file, 'store.redis.sentinel_password_file')
        : undefined;
    const store: Store = new RedisStore({
      ...(r?.cluster
        ? { cluster: nodes(r.cluster) }
        : r?.sentinels
          ? { sentinels: nodes(r.sentinels), name: r.name }
          : { url: cfg.redis_url ?? 'redis://127.0.0.1:6379' }),
      ...(r?.username !== undefined ? { username: r.username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(sentinelPassword !== undefined ? { sentinelPassword } : {}),
      keyPrefix: cfg.key_prefix,
      logger: ctx.logger,
    });
    return traced(store);
  }
  return traced(new MemoryStore({ purgeIntervalSeconds: cfg.purge_interval_seconds }));
}

/** Decided when the store is built: tracing is set up per process, before any store. */
function traced(store: Store): Store {
  const t = tracer;
  return t ? new TracedStore(store, t) : store;
}
