import { afterAll, describe, expect, it } from 'vitest';
import { RedisStore, StoreUnavailableError } from '../../src/store/index.js';
import { uniquePrefix } from '../helpers/redis.js';
import { redisSentinelSkipReason, startRedisSentinel } from '../helpers/redis-sentinel.js';
import { sleep } from '../helpers/wait.js';

// The store behind Redis Sentinel: one master, one replica, one sentinel.

const local = await startRedisSentinel();
if (!local) console.warn(`[redis-sentinel] SKIPPED: Redis Sentinel store tests — ${redisSentinelSkipReason}`);
afterAll(async () => {
  await local?.stop();
});

describe.skipIf(!local)('RedisStore through Redis Sentinel', () => {
  it('finds the master through the sentinel; after the master dies, fails fast, then follows the promoted replica', async () => {
    const [host, port] = local!.sentinel.split(':');
    const s = new RedisStore({
      sentinels: [{ host: host!, port: Number(port) }],
      name: local!.name,
      keyPrefix: uniquePrefix('sentinel'),
    });
    try {
      expect(await s.waitUntilReady(5000)).toBe(true);
      await s.revokeJti('victim', 300);
      expect(await s.isJtiRevoked('victim')).toBe(true);
      expect((await s.hit('tenant', 2, 60)).allowed).toBe(true);
      // A read-only peek through the sentinel-found master: the hit, nothing added.
      expect(await s.peek('tenant', 2, 60)).toMatchObject({ count: 1, remaining: 1, wouldRefuse: false });
      // Replication is asynchronous: a write the replica has not received yet is lost in
      // a failover. WAIT (on the connection that wrote) holds until the replica has it.
      expect(await s.client.call('WAIT', '1', '5000')).toBe(1);
      await local!.killMaster();

      let failures = 0;
      let slowest = 0;
      let recovered = false;
      const t0 = Date.now();
      while (Date.now() - t0 < 20_000) {
        const started = Date.now();
        try {
          expect(await s.isJtiRevoked('victim')).toBe(true);
          if (failures > 0) {
            recovered = true;
            break;
          }
        } catch (err) {
          expect(err).toBeInstanceOf(StoreUnavailableError);
          failures++;
        }
        slowest = Math.max(slowest, Date.now() - started);
        await sleep(100);
      }
      expect(failures).toBeGreaterThan(0);
      expect(slowest).toBeLessThan(1500);
      expect(recovered).toBe(true);
      expect(await local!.currentMasterPort()).toBe(local!.replicaPort);
      // The same store object writes to the new master.
      expect(await s.rememberOnce('after-failover', 60)).toBe(true);
      expect(await s.peek('tenant', 2, 60)).toMatchObject({ count: 1, remaining: 1 });
      expect((await s.hit('tenant', 2, 60)).allowed).toBe(true);
      expect(await s.peek('tenant', 2, 60)).toMatchObject({ count: 2, remaining: 0, wouldRefuse: true });
      expect((await s.hit('tenant', 2, 60)).allowed).toBe(false);
    } finally {
      await s.close();
    }
  }, 30_000);
});
