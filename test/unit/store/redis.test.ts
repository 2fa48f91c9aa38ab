import { describe, expect, it } from 'vitest';
import { RedisStore, StoreUnavailableError } from '../../../src/store/index.js';
import { redisServerOnPath, RedisServerProcess, uniquePrefix } from '../../helpers/redis.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
