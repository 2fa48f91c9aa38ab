import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashToken, type Store } from '../../../src/store/index.js';

// The behaviour every Store backend shares (memory, Redis single node, Redis Cluster).

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `letTimePass` moves the backend's clock: a real wait by default (Redis expires keys on
 * its own clock); a backend on a ManualClock moves that instead.
 */
export function storeBehaviour(
  name: string,
  factory: () => Promise<Store>,
  letTimePass: (ms: number) => Promise<unknown> = sleep,
): void {
  describe(`Store behaviour (${name})`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await factory();
    });
    afterEach(async () => {
      await store?.close();
    });

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
      await letTimePass(2100);
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

    it('hit: at most limit per sliding window, denied hits not counted, exact reset/retry-after', async () => {
      const t0 = 1_700_000_000_000;
      const key = `rl-${Math.random()}`;
      expect(await store.hit(key, 3, 10, t0)).toEqual({ allowed: true, remaining: 2, resetSeconds: 10 });
      expect(await store.hit(key, 3, 10, t0 + 2000)).toEqual({
        allowed: true,
        remaining: 1,
        resetSeconds: 10,
      });
      expect(await store.hit(key, 3, 10, t0 + 4000)).toEqual({
        allowed: true,
        remaining: 0,
        resetSeconds: 10,
      });
      // Full: the oldest hit (t0) leaves the window at t0 + 10 s, the newest at t0 + 14 s.
      expect(await store.hit(key, 3, 10, t0 + 5500)).toEqual({
        allowed: false,
        remaining: 0,
        resetSeconds: 9,
        retryAfterSeconds: 5,
      });
      // The window is (now - 10 s, now]: at exactly t0 + 10 s the first hit no longer counts.
      expect((await store.hit(key, 3, 10, t0 + 9999)).allowed).toBe(false);
      expect(await store.hit(key, 3, 10, t0 + 10_000)).toEqual({
        allowed: true,
        remaining: 0,
        resetSeconds: 10,
      });
      expect((await store.hit(key, 3, 10, t0 + 10_001)).allowed).toBe(false);
      // Another key has its own window.
      expect((await store.hit(`${key}-other`, 3, 10, t0 + 10_001)).allowed).toBe(true);
      // Long after: a fresh window.
      expect(await store.hit(key, 3, 10, t0 + 60_000)).toEqual({
        allowed: true,
        remaining: 2,
        resetSeconds: 10,
      });
    });

    it('peek: N hits show N counted and limit - N remaining; the same window arithmetic as hit', async () => {
      const t0 = 1_700_000_000_000;
      const key = `rl-peek-${Math.random()}`;
      expect(await store.peek(key, 5, 10, t0)).toEqual({
        count: 0,
        remaining: 5,
        wouldRefuse: false,
        resetSeconds: 0,
      });
      for (let i = 0; i < 3; i++) expect((await store.hit(key, 5, 10, t0 + i * 1000)).allowed).toBe(true);
      expect(await store.peek(key, 5, 10, t0 + 2500)).toEqual({
        count: 3,
        remaining: 2,
        wouldRefuse: false,
        resetSeconds: 10,
      });
      await store.hit(key, 5, 10, t0 + 3000);
      await store.hit(key, 5, 10, t0 + 4000);
      // Full: a hit now would be refused; the oldest (t0) leaves at t0 + 10 s.
      expect(await store.peek(key, 5, 10, t0 + 5500)).toEqual({
        count: 5,
        remaining: 0,
        wouldRefuse: true,
        resetSeconds: 9,
        retryAfterSeconds: 5,
      });
      // The window is (now - 10 s, now], as for hit: at exactly t0 + 10 s the first hit is out.
      expect(await store.peek(key, 5, 10, t0 + 10_000)).toMatchObject({
        count: 4,
        remaining: 1,
        wouldRefuse: false,
      });
      // A limit lower than the count: remaining is never negative.
      expect(await store.peek(key, 2, 10, t0 + 5500)).toMatchObject({
        count: 5,
        remaining: 0,
        wouldRefuse: true,
      });
      await expect(store.peek(key, 0, 10)).rejects.toBeInstanceOf(RangeError);
      await expect(store.peek(key, 1, 0)).rejects.toBeInstanceOf(RangeError);
    });

    it('peek records nothing: after peeking, the next hits get exactly the remaining allowance', async () => {
      const key = `rl-peek-only-${Math.random()}`;
      for (let i = 0; i < 3; i++) expect((await store.hit(key, 5, 60)).allowed).toBe(true);
      for (let i = 0; i < 10; i++)
        expect(await store.peek(key, 5, 60)).toMatchObject({ count: 3, remaining: 2, wouldRefuse: false });
      expect(await store.hit(key, 5, 60)).toMatchObject({ allowed: true, remaining: 1 });
      expect(await store.hit(key, 5, 60)).toMatchObject({ allowed: true, remaining: 0 });
      expect((await store.hit(key, 5, 60)).allowed).toBe(false);
      expect(await store.peek(key, 5, 60)).toMatchObject({ count: 5, remaining: 0, wouldRefuse: true });
      // Peeking a key never hit creates nothing either: the whole limit is there.
      const fresh = `rl-peek-fresh-${Math.random()}`;
      await store.peek(fresh, 2, 60);
      await store.peek(fresh, 2, 60);
      expect(await store.hit(fresh, 2, 60)).toMatchObject({ allowed: true, remaining: 1 });
    });

    it('hit: refuses a limit or window that cannot mean anything', async () => {
      await expect(store.hit('k', 0, 10)).rejects.toBeInstanceOf(RangeError);
      await expect(store.hit('k', 1.5, 10)).rejects.toBeInstanceOf(RangeError);
      await expect(store.hit('k', 1, 0)).rejects.toBeInstanceOf(RangeError);
      await expect(store.hit('k', 1, Number.NaN)).rejects.toBeInstanceOf(RangeError);
    });

    it('hit: concurrent hits on one key never exceed the limit', async () => {
      const key = `rl-conc-${Math.random()}`;
      const results = await Promise.all(Array.from({ length: 60 }, () => store.hit(key, 25, 60)));
      expect(results.filter((r) => r.allowed)).toHaveLength(25);
      const denied = results.filter((r) => !r.allowed);
      expect(denied).toHaveLength(35);
      for (const r of denied) {
        expect(r.remaining).toBe(0);
        expect(r.retryAfterSeconds).toBeGreaterThanOrEqual(59);
        expect(r.retryAfterSeconds).toBeLessThanOrEqual(60);
      }
    });
  });
}
