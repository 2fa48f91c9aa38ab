import { DEFAULT_REDIS_URL } from './constants.js';
import { int, oneOf, section, str, strings, text, Type, type Static } from './kit.js';
import { parseHostPort } from '../../core/address.js';

// store: opaque access tokens, refresh tokens, revocations, used assertion jtis, rate-limit counters.

export const RedisTopologySchema = section(
  {
    cluster: Type.Optional(strings({ description: 'seed nodes of a Redis Cluster, "host:port"' })),
    sentinels: Type.Optional(strings({ description: 'Redis Sentinels, "host:port" (with name)' })),
    name: Type.Optional(text({ description: "the monitored master's name (with sentinels)" })),
    username: Type.Optional(text({ description: 'Redis ACL user name' })),
    password_file: Type.Optional(text({ description: 'file holding the Redis password (never inline)' })),
    sentinel_password_file: Type.Optional(text({ description: 'file holding the Sentinels’ password' })),
  },
  { description: 'Redis Cluster or Sentinel, plus credentials kept in files' },
);

export const StoreSchema = section(
  {
    type: oneOf(['memory', 'redis'] as const, {
      description: 'memory (one replica) or redis (shared by every replica)',
      default: 'memory',
    }),
    purge_interval_seconds: int({ description: 'memory: purge of expired entries', default: 60, minimum: 1 }),
    // No default in the schema: exactly one of redis_url, redis.cluster, redis.sentinels may
    // be set, and redis_url falls back to DEFAULT_REDIS_URL only when none is.
    redis_url: Type.Optional(
      text({
        description:
          'a single Redis node (rediss:// for TLS); one of redis_url, redis.cluster, redis.sentinels',
        'x-default-text': DEFAULT_REDIS_URL,
      }),
    ),
    redis: Type.Optional(RedisTopologySchema),
    key_prefix: str({ description: 'redis: prefix of every key', default: 'envoy-jwt-authz:' }),
  },
  { description: 'Where token endpoint state and rate-limit counters live.', default: {} },
);

export type StoreConfig = Static<typeof StoreSchema>;
export type RedisTopologyConfig = Static<typeof RedisTopologySchema>;

// "host:port" (IPv6 as "[::1]:6379"); undefined when malformed.
export { parseHostPort };

/** One Redis topology, well-formed nodes, options that fit it; fills the default redis_url. */
export function checkStore(store: StoreConfig, problems: string[]): void {
  const redis = store.redis;
  const topologies = [
    store.redis_url !== undefined ? 'redis_url' : undefined,
    redis?.cluster !== undefined ? 'redis.cluster' : undefined,
    redis?.sentinels !== undefined ? 'redis.sentinels' : undefined,
  ].filter((t): t is string => t !== undefined);
  if (topologies.length > 1) {
    problems.push(
      `store.${topologies[1]}: only one of redis_url, redis.cluster, redis.sentinels may be set, got ${topologies.join(', ')}`,
    );
  }
  if (topologies.length === 0) store.redis_url = DEFAULT_REDIS_URL;
  if (!redis) return;
  for (const list of ['cluster', 'sentinels'] as const) {
    redis[list]?.forEach((node, i) => {
      if (!parseHostPort(node))
        problems.push(`store.redis.${list}[${i}]: must be host:port, got ${JSON.stringify(node)}`);
    });
  }
  if (redis.sentinels !== undefined && redis.name === undefined)
    problems.push('store.redis.name: required with redis.sentinels (the name of the monitored master)');
  if (redis.name !== undefined && redis.sentinels === undefined)
    problems.push('store.redis.name: only applies with redis.sentinels');
  if (redis.sentinel_password_file !== undefined && redis.sentinels === undefined)
    problems.push('store.redis.sentinel_password_file: only applies with redis.sentinels');
  if (redis.cluster !== undefined && /[{}]/.test(store.key_prefix)) {
    // The store puts its own hash tag in every key so that the keys of one operation share
    // a slot; a brace in the prefix would make Redis hash on the wrong part of the key.
    problems.push('store.key_prefix: must not contain "{" or "}" with redis.cluster');
  }
}
