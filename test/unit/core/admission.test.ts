import { describe, expect, it } from 'vitest';
import { KEY_TAIL, SecondSighting, tailHash } from '../../../src/core/admission.js';
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

const issuer = {
  name: 'idp',
  keySource: { generation: 1, current: () => ({}) },
} as unknown as CompiledIssuer;
const clock = new ManualClock(1_700_000_000_000);
const entry = (sub = 'u'): CachedPrincipal => ({
  principal: { issuer: 'idp', sub, scope: [], claims: {}, cacheKey: sub } as never,
  issuer,
  generation: 1,
  expiresAt: clock.nowSeconds() + 60,
});

describe('PrincipalCache admission', () => {
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

describe('PrincipalCache keys', () => {
  // Same last KEY_TAIL characters (the signature), different payloads.
  const tail = 'S'.repeat(KEY_TAIL);
  const cachedToken = `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.${tail}`;
  const forged = `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.${tail}`;

  it('is a hit only for exactly the cached token, not for another with the same tail', () => {
    const cache = new PrincipalCache(100, clock, new Metrics({ processMetrics: false }), 'first_use');
    cache.set(cachedToken, entry('alice'));
    expect(cache.get(forged)).toBeUndefined();
    expect(cache.peek(forged)).toBeUndefined();
    // A string built anew (as every request's is) still hits, and the forged lookup did not evict it.
    const again = [...cachedToken].join('');
    expect(cache.get(again)?.principal.sub).toBe('alice');
    expect(cache.peek(again)?.principal.sub).toBe('alice');
  });

  it('a second verified token with the same tail takes the slot; each then reads only its own', () => {
    const cache = new PrincipalCache(100, clock, new Metrics({ processMetrics: false }), 'first_use');
    cache.set(cachedToken, entry('alice'));
    cache.set(forged, entry('mallory'));
    expect(cache.get(forged)?.principal.sub).toBe('mallory');
    expect(cache.get(cachedToken)).toBeUndefined();
  });

  it('short tokens are their own key', () => {
    const cache = new PrincipalCache(100, clock, new Metrics({ processMetrics: false }), 'first_use');
    cache.set('opaque-1', entry('a'));
    expect(cache.get('opaque-1')?.principal.sub).toBe('a');
    expect(cache.get('opaque-2')).toBeUndefined();
  });
});
