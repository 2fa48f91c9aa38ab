import { describe, expect, it } from 'vitest';
import { SecondSighting, tailHash } from '../../../src/core/admission.js';
import { PrincipalCache, type CachedPrincipal } from '../../../src/authn/principal-cache.js';
import type { CompiledIssuer } from '../../../src/authn/verify.js';
import { ManualClock } from '../../../src/core/time.js';
import { Metrics } from '../../../src/observability/metrics.js';

const token = (i: number) =>
  `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig-${i.toString(36).padStart(8, '0')}-tail`;

describe('SecondSighting', () => {
  it('admits a key at its second sighting, not its first', () => {
    const s = new SecondSighting(4);
    expect(s.admit(token(1))).toBe(false);
    expect(s.admit(token(1))).toBe(true);
    expect(s.admit(token(1))).toBe(true);
    expect(s.admit(token(2))).toBe(false);
  });

  it('remembers a key across window to 2 × window other keys, then forgets it', () => {
    const window = 8;
    const s = new SecondSighting(window);
    s.admit(token(0));
    for (let i = 1; i <= window; i++) s.admit(token(i)); // 0..7 fill the first generation
    expect(s.admit(token(0))).toBe(true); // still in the previous generation
    const t = new SecondSighting(window);
    t.admit(token(0));
    for (let i = 1; i <= 2 * window + 1; i++) t.admit(token(i));
    expect(t.admit(token(0))).toBe(false); // two rotations later: new again
  });

  it('hashes the tail and the length to a small integer', () => {
    const h = tailHash(token(1));
    expect(Number.isInteger(h) && h >= 0 && h < 2 ** 30).toBe(true);
    expect(tailHash(token(1))).toBe(h);
    expect(tailHash(token(2))).not.toBe(h);
    // Same tail, different length: different hash.
    expect(tailHash(`x${token(1)}`)).not.toBe(h);
  });
});

describe('PrincipalCache admission', () => {
  const issuer = {
    name: 'idp',
    keySource: { generation: 1, current: () => ({}) },
  } as unknown as CompiledIssuer;
  const clock = new ManualClock(1_700_000_000_000);
  const entry = (): CachedPrincipal => ({
    principal: { issuer: 'idp', sub: 'u', scope: [], claims: {}, cacheKey: 'k' } as never,
    issuer,
    generation: 1,
    expiresAt: clock.nowSeconds() + 60,
  });

  it('second_use (the default): a token is cached at its second verification', () => {
    const metrics = new Metrics({ processMetrics: false });
    const cache = new PrincipalCache(100, clock, metrics);
    cache.set(token(1), entry());
    expect(cache.get(token(1))).toBeUndefined();
    cache.set(token(1), entry());
    expect(cache.get(token(1))).toBeDefined();
  });

  it('a stream of one-off tokens leaves the cache empty', () => {
    const cache = new PrincipalCache(100, clock, new Metrics({ processMetrics: false }));
    for (let i = 0; i < 1000; i++) cache.set(token(i), entry());
    for (let i = 0; i < 1000; i++) expect(cache.peek(token(i))).toBeUndefined();
  });

  it('first_use: cached at the first verification', () => {
    const cache = new PrincipalCache(100, clock, new Metrics({ processMetrics: false }), 'first_use');
    cache.set(token(1), entry());
    expect(cache.get(token(1))).toBeDefined();
  });
});
