import { afterEach, describe, expect, it, vi } from 'vitest';
import { msToSeconds, nowSeconds, secondsToMs, wholeSeconds } from '../../../src/core/time.js';

afterEach(() => vi.useRealTimers());

describe('time units', () => {
  it('nowSeconds keeps the fraction; wholeSeconds floors it as JWT iat is written', () => {
    vi.useFakeTimers();
    vi.setSystemTime(1_700_000_000_750);
    expect(nowSeconds()).toBe(1_700_000_000.75);
    expect(wholeSeconds(nowSeconds())).toBe(1_700_000_000);
  });

  it('converts between seconds and milliseconds both ways', () => {
    expect(secondsToMs(30)).toBe(30_000);
    expect(secondsToMs(1.5)).toBe(1500);
    expect(msToSeconds(2500)).toBe(2.5);
    expect(msToSeconds(secondsToMs(42))).toBe(42);
  });
});
