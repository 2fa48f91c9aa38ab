import { afterAll, describe, expect, it } from 'vitest';
import { RedisStore, StoreUnavailableError } from '../../../src/store/index.js';
import {
  getRedisUrl,
  redisServerOnPath,
  redisSkipReason,
  RedisServerProcess,
  uniquePrefix,
} from '../../helpers/redis.js';
import { sleep } from '../../helpers/wait.js';

const redis = await getRedisUrl();
if (!redis) console.warn(`[redis] SKIPPED: RedisStore.hit and reconnect tests — ${redisSkipReason}`);
afterAll(async () => {
  await redis?.stop();
});

describe.skipIf(!redisServerOnPath())(
  'RedisStore with Redis stopped mid-test (dedicated redis-server)',
  () => {
    it('fails fast with StoreUnavailableError while down, isReady false, recovers after restart', async () => {
      const server = await RedisServerProcess.start();
      const store = new RedisStore({ url: server.url, keyPrefix: uniquePrefix('down') });
      try {
        expect(await store.waitUntilReady(5000)).toBe(true);
        await store.revokeJti('k', 60);
        await server.stop();
        const deadline = Date.now() + 5000;
        // Real waiting: a real redis-server process is stopped and the client must notice.
        while (store.isReady() && Date.now() < deadline) await sleep(20);
        expect(store.isReady()).toBe(false);
        const t0 = Date.now();
        await expect(store.isJtiRevoked('k')).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.rememberOnce('z', 10)).rejects.toBeInstanceOf(StoreUnavailableError);
        expect(Date.now() - t0).toBeLessThan(500);
        await server.start();
        expect(await store.waitUntilReady(8000)).toBe(true);
        // --save "": the restarted server is empty; the store works again.
        expect(await store.rememberOnce('z', 10)).toBe(true);
      } finally {
        await store.close();
        await server.stop();
      }
    });
  },
);

describe.skipIf(!redis)('RedisStore.hit against a real Redis', () => {
  it('4 clients (replicas) x 50 concurrent hits, limit 37: exactly 37 allowed', async () => {
    const prefix = uniquePrefix('rl');
    const replicas = await Promise.all(
      [1, 2, 3, 4].map(async () => {
        const s = new RedisStore({ url: redis!.url, keyPrefix: prefix });
        expect(await s.waitUntilReady(5000)).toBe(true);
        return s;
      }),
    );
    try {
      const results = await Promise.all(
        replicas.flatMap((s) => Array.from({ length: 50 }, () => s.hit('tenant-1', 37, 30))),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(37);
      expect(results.filter((r) => !r.allowed)).toHaveLength(163);
      // The remaining counts handed out to the allowed hits are 36, 35, ..., 0: one each.
      expect(
        results
          .filter((r) => r.allowed)
          .map((r) => r.remaining)
          .sort((a, b) => b - a),
      ).toEqual(Array.from({ length: 37 }, (_, i) => 36 - i));
      // No read-then-write: the set holds exactly the allowed hits.
      expect(await replicas[0]!.client.zcard(`${prefix}rl:tenant-1`)).toBe(37);
      const pttl = await replicas[0]!.client.pttl(`${prefix}rl:tenant-1`);
      expect(pttl).toBeGreaterThan(25_000);
      expect(pttl).toBeLessThanOrEqual(30_000);
    } finally {
      await Promise.all(replicas.map((s) => s.close()));
    }
  });

  it('rolls the window over on the Redis server clock', async () => {
    const s = new RedisStore({ url: redis!.url, keyPrefix: uniquePrefix('rl-roll') });
    try {
      expect(await s.waitUntilReady(5000)).toBe(true);
      const first = await Promise.all(Array.from({ length: 5 }, () => s.hit('k', 3, 0.6)));
      expect(first.filter((r) => r.allowed)).toHaveLength(3);
      expect((await s.hit('k', 3, 0.6)).allowed).toBe(false);
      await sleep(700);
      const second = await Promise.all(Array.from({ length: 5 }, () => s.hit('k', 3, 0.6)));
      expect(second.filter((r) => r.allowed)).toHaveLength(3);
      // The key expires with its window: nothing lingers in Redis.
      await sleep(700);
      expect(await s.client.exists(`${s.keyPrefix}rl:k`)).toBe(0);
    } finally {
      await s.close();
    }
  });
});

describe.skipIf(!redis)('RedisStore heals a client ioredis gave up on', () => {
  it('reconnects by itself after the client ended outside close()', async () => {
    const s = new RedisStore({
      url: redis!.url,
      keyPrefix: uniquePrefix('revive'),
      maxReconnectDelayMs: 200,
    });
    try {
      expect(await s.waitUntilReady(5000)).toBe(true);
      // What ioredis does when a retry strategy gives up: the connection ends for good.
      s.client.disconnect();
      await sleep(50);
      expect(s.client.status).toBe('end');
      await expect(s.isJtiRevoked('j')).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(await s.waitUntilReady(3000)).toBe(true);
      expect(await s.rememberOnce('after', 10)).toBe(true);
    } finally {
      await s.close();
    }
    // close() is final: no revival afterwards.
    await sleep(400);
    expect(s.isReady()).toBe(false);
  });
});
