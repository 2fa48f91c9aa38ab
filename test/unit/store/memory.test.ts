import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../../src/store/index.js';
import { ManualClock } from '../../../src/core/time.js';

describe('MemoryStore purge', () => {
  it('purges expired entries on its timer', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const clock = new ManualClock(1_000_000);
      const s = new MemoryStore({ purgeIntervalSeconds: 1, clock });
      await s.putAccessToken('x', { claims: {} }, 5);
      await s.revokeJti('y', 100);
      expect(s.raw.size).toBe(2);
      clock.advanceMs(6000);
      await vi.advanceTimersByTimeAsync(999);
      expect(s.raw.size).toBe(2);
      await vi.advanceTimersByTimeAsync(1);
      expect(s.raw.size).toBe(1);
      await s.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('MemoryStore.hit (fake time)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('slides the window with the clock and forgets idle keys on purge', async () => {
    vi.useFakeTimers();
    vi.setSystemTime(1_700_000_000_000);
    const s = new MemoryStore({ purgeIntervalSeconds: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        expect((await s.hit('client-a', 5, 2)).allowed).toBe(true);
        vi.advanceTimersByTime(100);
      }
      // Hits at +0 .. +400 ms; now +500 ms.
      expect(await s.hit('client-a', 5, 2)).toEqual({
        allowed: false,
        remaining: 0,
        resetSeconds: 2,
        retryAfterSeconds: 2,
      });
      vi.advanceTimersByTime(1499); // +1999: the hit at +0 is still in (now - 2 s, now]
      expect((await s.hit('client-a', 5, 2)).allowed).toBe(false);
      vi.advanceTimersByTime(1); // +2000: it has left
      expect(await s.hit('client-a', 5, 2)).toEqual({ allowed: true, remaining: 0, resetSeconds: 2 });
      expect((await s.hit('client-a', 5, 2)).allowed).toBe(false);
      vi.advanceTimersByTime(100); // +2100: the hit at +100 has left
      expect((await s.hit('client-a', 5, 2)).allowed).toBe(true);
      expect(s.raw.windowCount).toBe(1);
      // Idle for longer than the window: the purge timer drops the key.
      vi.advanceTimersByTime(3000);
      expect(s.raw.windowCount).toBe(0);
      expect(await s.hit('client-a', 5, 2)).toEqual({ allowed: true, remaining: 4, resetSeconds: 2 });
    } finally {
      await s.close();
    }
  });
});
