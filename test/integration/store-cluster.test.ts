import { afterAll, describe, expect, it } from 'vitest';
import { RedisStore, StoreUnavailableError } from '../../src/store/index.js';
import { parseHostPort } from '../../src/config/load.js';
import { startRedisCluster, redisClusterSkipReason } from '../helpers/redis-cluster.js';
import { uniquePrefix } from '../helpers/redis.js';
import { storeBehaviour } from './store/behaviour.js';
import { sleep } from '../helpers/wait.js';

// The store on a real six-node Redis Cluster (three masters with one replica each).

const cluster = await startRedisCluster();
if (!cluster) console.warn(`[redis-cluster] SKIPPED: Redis Cluster store tests — ${redisClusterSkipReason}`);
afterAll(async () => {
  await cluster?.stop();
});

async function clusterStore(prefix = uniquePrefix('cluster')): Promise<RedisStore> {
  const s = new RedisStore({ cluster: cluster!.seeds.map((n) => parseHostPort(n)!), keyPrefix: prefix });
  expect(await s.waitUntilReady(5000)).toBe(true);
  return s;
}

if (cluster) storeBehaviour('redis cluster', () => clusterStore());
else describe.skip(`Store behaviour (redis cluster): ${redisClusterSkipReason}`, () => undefined);

describe.skipIf(!cluster)('RedisStore on a Redis Cluster', () => {
  it('spreads keys over the masters, and keeps the keys of one operation in one slot', async () => {
    const s = await clusterStore();
    try {
      const masters = new Set<number>();
      for (let i = 0; i < 12; i++) {
        await s.putRefreshToken(
          `h${i}`,
          { clientId: 'c', sub: 's', scope: '', familyId: `f${i}`, familyExp: 2_000_000_000 },
          60,
        );
        masters.add((await cluster!.masterFor(`${s.keyPrefix}rt:{h${i}}`)).port);
        // rt + rtu are read with one MGET and deleted with one DEL: one slot, or CROSSSLOT.
        const a = await s.client.cluster('KEYSLOT', `${s.keyPrefix}rt:{h${i}}`);
        const b = await s.client.cluster('KEYSLOT', `${s.keyPrefix}rtu:{h${i}}`);
        expect(a).toBe(b);
      }
      expect(masters.size).toBeGreaterThan(1);
    } finally {
      await s.close();
    }
  });

  it('4 clients (replicas) x 50 concurrent hits, limit 37: exactly 37 allowed', async () => {
    const prefix = uniquePrefix('cluster-rl');
    const replicas = await Promise.all([1, 2, 3, 4].map(() => clusterStore(prefix)));
    try {
      const results = await Promise.all(
        replicas.flatMap((s) => Array.from({ length: 50 }, () => s.hit('tenant-1', 37, 30))),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(37);
    } finally {
      await Promise.all(replicas.map((s) => s.close()));
    }
  });

  it('master of a key killed: calls reject within a bounded time, never a false "not revoked"; recover after the replica is promoted', async () => {
    const s = await clusterStore();
    try {
      await s.revokeJti('victim', 300);
      expect(await s.isJtiRevoked('victim')).toBe(true);
      // Replication is asynchronous: a write the replica has not received yet is lost in a failover.
      expect(await cluster!.waitReplicated(`${s.keyPrefix}jti:{victim}`, 5000)).toBe(true);
      const master = await cluster!.masterFor(`${s.keyPrefix}jti:{victim}`);
      await cluster!.kill(master);

      // Until a replica takes over: every answer is "revoked" or an error, never "not revoked".
      let failures = 0;
      let slowest = 0;
      let recoveredAfterMs = -1;
      const t0 = Date.now();
      while (Date.now() - t0 < 20_000) {
        const started = Date.now();
        try {
          expect(await s.isJtiRevoked('victim')).toBe(true);
          if (failures > 0) {
            recoveredAfterMs = Date.now() - t0;
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
      // One call never takes longer than the store's deadline (1 s) plus scheduling slack.
      expect(slowest).toBeLessThan(1500);
      // The same store object works again: the replica (which had the revocation) took over.
      expect(recoveredAfterMs).toBeGreaterThan(0);
      expect(await s.isJtiRevoked('victim')).toBe(true);
      expect(await s.rememberOnce('after-failover', 60)).toBe(true);
      expect(s.isReady()).toBe(true);
    } finally {
      await s.close();
    }
  }, 30_000);
});
