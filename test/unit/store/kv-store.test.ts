// The Store behaviour (KvStore on top of each backend), run against the memory and Redis stores.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashToken, MemoryStore, RedisStore, type Store } from '../../../src/store/index.js';
import { getRedisUrl, redisSkipReason, uniquePrefix } from '../../helpers/redis.js';

const redis = await getRedisUrl();
if (!redis) console.warn(`[redis] SKIPPED: Redis store tests — ${redisSkipReason}`);
afterAll(async () => {
  await redis?.stop();
});

type Factory = () => Promise<Store>;
let memoryNow = Date.now();
const backends: [string, Factory | undefined][] = [
  ['memory', async () => new MemoryStore({ purgeIntervalSeconds: 1, clock: () => memoryNow })],
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Lets `ms` pass for a backend's expiry: the memory store's clock is moved; Redis expires keys by its own clock, so real time passes. */
const passTime: Record<string, (ms: number) => Promise<void>> = {
  memory: async (ms) => {
    memoryNow += ms;
  },
  redis: (ms) => sleep(ms),
};

describe.each(backends)('Store behaviour (%s)', (name, factory) => {
  let store: Store;
  beforeEach(async () => {
    if (factory) store = await factory();
  });
  afterEach(async () => {
    await store?.close();
  });

  describe.skipIf(!factory)('', () => {
    it('is ready', () => {
      expect(store.isReady()).toBe(true);
    });

    it('stores opaque access tokens by hash and deletes them', async () => {
      const h = hashToken('some-opaque-token');
      expect(await store.getAccessToken(h)).toBeUndefined();
      await store.putAccessToken(h, { claims: { sub: 'alice', scope: 'read' }, familyId: 'f1' }, 60);
      expect(await store.getAccessToken(h)).toEqual({
        claims: { sub: 'alice', scope: 'read' },
        familyId: 'f1',
      });
      await store.deleteAccessToken(h);
      expect(await store.getAccessToken(h)).toBeUndefined();
    });

    it('forgets entries after their TTL', async () => {
      await store.putAccessToken('h-ttl', { claims: { sub: 'x' } }, 1);
      await store.revokeJti('jti-ttl', 1);
      expect(await store.rememberOnce('once-ttl', 1)).toBe(true);
      expect(await store.getAccessToken('h-ttl')).toBeDefined();
      await passTime[name]!(2100);
      expect(await store.getAccessToken('h-ttl')).toBeUndefined();
      expect(await store.isJtiRevoked('jti-ttl')).toBe(false);
      expect(await store.rememberOnce('once-ttl', 1)).toBe(true);
    });

    it('rememberOnce is set-if-absent, also under concurrency', async () => {
      expect(await store.rememberOnce('a', 60)).toBe(true);
      expect(await store.rememberOnce('a', 60)).toBe(false);
      const results = await Promise.all(Array.from({ length: 20 }, () => store.rememberOnce('b', 60)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('refresh tokens: stored, marked used exactly once', async () => {
      const rec = { clientId: 'c', sub: 's', scope: 'read', familyId: 'fam', familyExp: 2_000_000_000 };
      await store.putRefreshToken('r1', rec, 60);
      expect(await store.getRefreshToken('r1')).toEqual({ record: rec, used: false });
      const marks = await Promise.all([1, 2, 3, 4, 5].map(() => store.markRefreshTokenUsed('r1', 60)));
      expect(marks.filter(Boolean)).toHaveLength(1);
      expect(await store.getRefreshToken('r1')).toEqual({ record: rec, used: true });
      await store.deleteRefreshToken('r1');
      expect(await store.getRefreshToken('r1')).toBeUndefined();
    });

    it('JWT revocations by jti', async () => {
      expect(await store.isJtiRevoked('j1')).toBe(false);
      await store.revokeJti('j1', 60);
      expect(await store.isJtiRevoked('j1')).toBe(true);
      expect(await store.isJtiRevoked('j2')).toBe(false);
    });

    it('families: members listed on revocation, family marked revoked', async () => {
      await store.addFamilyMember('fam1', { kind: 'jwt', jti: 'j-a', exp: 123 }, 60);
      await store.addFamilyMember('fam1', { kind: 'opaque', hash: 'h-b' }, 60);
      expect(await store.isFamilyRevoked('fam1')).toBe(false);
      const members = await store.revokeFamily('fam1', 60);
      expect(members).toEqual([
        { kind: 'jwt', jti: 'j-a', exp: 123 },
        { kind: 'opaque', hash: 'h-b' },
      ]);
      expect(await store.isFamilyRevoked('fam1')).toBe(true);
      expect(await store.revokeFamily('fam-empty', 60)).toEqual([]);
    });

    it('hashToken is SHA-256 base64url', () => {
      expect(hashToken('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
    });
  });
});
