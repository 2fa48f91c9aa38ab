// The Store behaviour (KvStore on top of each backend), run against the memory and Redis stores.
import { afterAll, describe, expect } from 'vitest';
import { storeBehaviour } from './behaviour.js';
import { MemoryStore, RedisStore, type Store } from '../../../src/store/index.js';
import { ManualClock } from '../../../src/core/time.js';
import { getRedisUrl, redisSkipReason, uniquePrefix } from '../../helpers/redis.js';

const redis = await getRedisUrl();
if (!redis) console.warn(`[redis] SKIPPED: Redis store tests — ${redisSkipReason}`);
afterAll(async () => {
  await redis?.stop();
});

type Factory = () => Promise<Store>;
// The memory store's TTLs run on a clock the tests move; Redis keeps its own clock.
const memoryClock = new ManualClock();
const backends: [string, Factory | undefined, ((ms: number) => Promise<void>)?][] = [
  [
    'memory',
    async () => new MemoryStore({ purgeIntervalSeconds: 1, clock: memoryClock }),
    async (ms) => memoryClock.advanceMs(ms),
  ],
  [
    'redis',
    redis
      ? async () => {
          const s = new RedisStore({ url: redis.url, keyPrefix: uniquePrefix('store') });
          expect(await s.waitUntilReady(5000)).toBe(true);
          return s;
        }
      : undefined,
  ],
];

for (const [name, factory, letTimePass] of backends) {
  if (factory) storeBehaviour(name, factory, letTimePass);
  else describe.skip(`Store behaviour (${name}): ${redisSkipReason}`, () => undefined);
}
