import { describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../../src/store/index.js';

describe('MemoryStore purge', () => {
  it('purges expired entries on its timer', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      let now = 1_000_000;
      const s = new MemoryStore({ purgeIntervalSeconds: 1, clock: () => now });
      await s.putAccessToken('x', { claims: {} }, 5);
      await s.revokeJti('y', 100);
      expect(s.raw.size).toBe(2);
      now += 6000;
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
