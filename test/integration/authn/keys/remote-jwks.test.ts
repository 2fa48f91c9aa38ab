import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RemoteJwksKeySource, type RemoteJwksOptions } from '../../../../src/authn/keys/remote-jwks.js';
import type { JwksCacheConfig } from '../../../../src/config/types.js';
import { Metrics } from '../../../../src/observability/metrics.js';
import { startJwksServer, type JwksServer } from '../../../helpers/jwks-server.js';
import { generateEcKeyPair, generateRsaKeyPair, makeJwks } from '../../../helpers/keys.js';
import { captureLogger } from '../../../helpers/logger.js';
import { advance, useFakeClock } from '../../../helpers/fake-time.js';

const k1 = generateRsaKeyPair({ kid: 'k1' });
const k2 = generateEcKeyPair({ kid: 'k2' });

let server: JwksServer;
const sources: RemoteJwksKeySource[] = [];

beforeEach(async () => {
  server = await startJwksServer({ jwks: makeJwks(k1) });
});
afterEach(async () => {
  vi.useRealTimers();
  for (const s of sources.splice(0)) s.close();
  await server.close();
});

function source(cache: Partial<JwksCacheConfig> = {}, extra: Partial<RemoteJwksOptions> = {}) {
  const log = captureLogger();
  const metrics = new Metrics({ processMetrics: false });
  const src = new RemoteJwksKeySource({
    issuer: 'corp-idp',
    jwksUri: server.url,
    cache: { max_age_seconds: 60, cooldown_seconds: 0.3, timeout_ms: 500, max_stale_seconds: 60, ...cache },
    logger: log.logger,
    metrics,
    initialBackoffMs: 50,
    ...extra,
  });
  sources.push(src);
  return { src, log, metrics };
}

async function fetchCount(metrics: Metrics, result: string): Promise<number> {
  const m = await metrics.jwksFetchTotal.get();
  return m.values.find((v) => v.labels.result === result && v.labels.issuer === 'corp-idp')?.value ?? 0;
}

describe('RemoteJwksKeySource: start', () => {
  it('is loading until the first fetch finished, then ready with the keys', async () => {
    const { src, metrics } = source();
    expect(src.kind).toBe('remote-jwks');
    expect(src.status()).toMatchObject({ state: 'loading', loaded: false, keys: 0 });
    expect(src.current()).toBeUndefined();
    const before = Date.now();
    await src.start();
    const st = src.status();
    expect(st).toMatchObject({ state: 'ready', loaded: true, keys: 1 });
    expect(st.lastError).toBeUndefined();
    expect(st.lastSuccessAt).toBeGreaterThanOrEqual(before);
    expect(src.current()!.byKid.get('k1')).toHaveLength(1);
    expect(src.generation).toBe(1);
    expect(server.requests).toBe(1);
    expect(await fetchCount(metrics, 'success')).toBe(1);
    expect((await metrics.jwksKeys.get()).values[0]!.value).toBe(1);
    // start() twice does not fetch twice
    await src.start();
    expect(server.requests).toBe(1);
  });

  it('never rejects: a failing first fetch is recorded as an error', async () => {
    server.setMode('status500');
    const { src, metrics } = source();
    await expect(src.start()).resolves.toBeUndefined();
    expect(src.status()).toMatchObject({ state: 'error', loaded: true, keys: 0, lastError: 'status 500' });
    expect(src.status().lastSuccessAt).toBeUndefined();
    expect(src.current()).toBeUndefined();
    expect(src.generation).toBe(0);
    expect(await fetchCount(metrics, 'error')).toBe(1);
  });

  it('a first JWKS without usable keys is an answer: no_keys with an empty set, not an error', async () => {
    server.setJwks(makeJwks(generateRsaKeyPair({ kid: 'weak', bits: 1024 })));
    const { src, log } = source();
    await src.start();
    expect(src.status()).toMatchObject({ state: 'no_keys', loaded: true, keys: 0 });
    expect(src.status().lastError).toBeUndefined();
    expect(src.current()!.keys).toHaveLength(0);
    expect(log.lines.some((l) => l.level === 'warn' && /no usable key/.test(String(l.msg)))).toBe(true);
  });

  it('a JWKS that is not a JWKS is an error with a short reason', async () => {
    server.setJwks({ hello: 'world' });
    const { src } = source();
    await src.start();
    expect(src.status().lastError).toBe('JWKS has no "keys" list');
  });

  it('the timeout bounds start()', async () => {
    // Real time on purpose: the timeout against a socket that never answers is the point.
    server.setMode('hang');
    const { src } = source({ timeout_ms: 200 });
    const started = Date.now();
    await src.start();
    expect(Date.now() - started).toBeLessThan(700);
    expect(src.status()).toMatchObject({ state: 'error', lastError: 'timeout' });
  });
});

describe('RemoteJwksKeySource: background refresh and failures', () => {
  it('refreshes every max_age', async () => {
    useFakeClock();
    const { src } = source({ max_age_seconds: 0.15 });
    await src.start();
    server.setJwks(makeJwks(k1, k2));
    await advance(src, 400);
    expect(server.requests).toBeGreaterThanOrEqual(2);
    expect(src.current()!.byKid.has('k2')).toBe(true);
    expect(src.generation).toBe(2);
  });

  it('keeps serving the last good keys while the endpoint fails (server down)', async () => {
    useFakeClock();
    const { src, log } = source({ max_age_seconds: 0.1, max_stale_seconds: 60 });
    await src.start();
    const first = src.current();
    await server.close();
    await advance(src, 300);
    expect(src.current()).toBe(first);
    const st = src.status();
    expect(st.state).toBe('stale');
    expect(st.keys).toBe(1);
    expect(st.lastError).toMatch(/network error/);
    expect(log.lines.some((l) => l.msg === 'JWKS fetch failed' && l.serving === 'last good keys')).toBe(true);
    server = await startJwksServer(); // afterEach closes it
  });

  it('stops serving keys max_stale after the last success', async () => {
    useFakeClock();
    const { src } = source({ max_age_seconds: 0.1, max_stale_seconds: 0.4 });
    await src.start();
    server.setMode('status500');
    await advance(src, 250);
    expect(src.current()).toBeDefined();
    expect(src.status().state).toBe('stale');
    await advance(src, 450);
    expect(src.current()).toBeUndefined();
    expect(src.status()).toMatchObject({ state: 'error', keys: 0, lastError: 'status 500' });
    // recovery
    server.setMode('ok');
    await advance(src, 1000);
    expect(src.current()).toBeDefined();
    expect(src.status().state).toBe('ready');
  });

  it('retries sooner than max_age after a failure, with doubling backoff', async () => {
    useFakeClock();
    server.setMode('status500');
    const { src } = source({ max_age_seconds: 30 }, { initialBackoffMs: 100 });
    await src.start();
    await advance(src, 850);
    // attempts at ~0, 100, 300, 700 ms: 4 (not 9 as with a fixed 100 ms, not 1 as with max_age)
    expect(server.requests).toBeGreaterThanOrEqual(3);
    expect(server.requests).toBeLessThanOrEqual(5);
    server.setMode('ok');
    await advance(src, 900);
    expect(src.status().state).toBe('ready');
  });

  it('close() stops the timers', async () => {
    useFakeClock();
    const { src } = source({ max_age_seconds: 0.1 });
    await src.start();
    src.close();
    const n = server.requests;
    await advance(src, 350);
    expect(server.requests).toBe(n);
  });
});

describe('RemoteJwksKeySource: unknown kid', () => {
  it('coalesces concurrent refetches into one request and respects the cooldown', async () => {
    vi.useFakeTimers({ toFake: ['Date'] }); // the JWKS server's slow answer keeps its real delay
    const { src } = source({ cooldown_seconds: 0.3 });
    await src.start();
    server.setJwks(makeJwks(k1, k2));
    server.setMode('slow', { delayMs: 100 });
    vi.advanceTimersByTime(350); // past the cooldown (measured from the start() fetch)
    server.resetCounts();
    const results = await Promise.all(Array.from({ length: 10 }, () => src.refreshForUnknownKid()));
    expect(server.requests).toBe(1);
    for (const r of results) expect(r!.byKid.has('k2')).toBe(true);
    expect(src.generation).toBe(2);
    // a second call inside the cooldown: no request
    const again = await src.refreshForUnknownKid();
    expect(server.requests).toBe(1);
    expect(again).toBe(results[0]);
    // after the cooldown: one more request
    vi.advanceTimersByTime(350);
    await src.refreshForUnknownKid();
    expect(server.requests).toBe(2);
  });

  it('the cooldown counts from the last attempt, including the start() fetch', async () => {
    const { src } = source({ cooldown_seconds: 0.5 });
    await src.start();
    await src.refreshForUnknownKid();
    expect(server.requests).toBe(1);
  });

  it('failed attempts count for the cooldown too', async () => {
    server.setMode('status500');
    const { src } = source({ cooldown_seconds: 0.5 }, { initialBackoffMs: 10_000 });
    await src.start();
    for (let i = 0; i < 5; i++) expect(await src.refreshForUnknownKid()).toBeUndefined();
    expect(server.requests).toBe(1);
  });

  it('picks up a rotated key after the cooldown; generation changes only when keys change', async () => {
    useFakeClock();
    const { src } = source({ cooldown_seconds: 0.2 });
    await src.start();
    expect(src.generation).toBe(1);
    await advance(src, 250);
    await src.refreshForUnknownKid(); // same keys
    expect(server.requests).toBe(2);
    expect(src.generation).toBe(1);

    server.setJwks(makeJwks(k2)); // rotation: k1 removed, k2 added
    // Within the cooldown no fetch starts: the answer is the current set itself, not a
    // promise, so an unknown-kid flood costs the Check path no await or timer.
    const inCooldown = src.refreshForUnknownKid();
    expect(inCooldown).not.toBeInstanceOf(Promise);
    const withinCooldown = await inCooldown;
    expect(withinCooldown!.byKid.has('k2')).toBe(false);
    await advance(src, 250);
    const rotated = await src.refreshForUnknownKid();
    expect(rotated!.byKid.has('k2')).toBe(true);
    expect(rotated!.byKid.has('k1')).toBe(false);
    expect(src.generation).toBe(2);

    // same kid, new key material: also a change
    server.setJwks(makeJwks(generateEcKeyPair({ kid: 'k2' })));
    await advance(src, 250);
    await src.refreshForUnknownKid();
    expect(src.generation).toBe(3);
  });

  it('shares an in-flight background fetch', async () => {
    server.setMode('slow', { delayMs: 200 });
    const { src } = source({ cooldown_seconds: 0 });
    const starting = src.start();
    const [set] = await Promise.all([src.refreshForUnknownKid(), starting]);
    expect(set!.byKid.has('k1')).toBe(true);
    expect(server.requests).toBe(1);
  });
});

describe('RemoteJwksKeySource: safety', () => {
  it('refuses http:// for a non-loopback host even if config validation was bypassed', async () => {
    const { src } = source({}, { jwksUri: 'http://idp.example.com/jwks.json' });
    await src.start();
    expect(src.status()).toMatchObject({
      state: 'error',
      lastError: 'http:// refused for non-loopback host',
    });
  });

  it('does not follow redirects', async () => {
    server.setMode('redirect');
    const { src } = source();
    await src.start();
    expect(src.status().lastError).toBe('redirect refused');
    expect(server.redirectTargetRequests).toBe(0);
  });

  it('never logs key material', async () => {
    server.setJwks({
      keys: [k1.privateJwk, { kty: 'oct', kid: 'sym', k: 'c3VwZXItc2VjcmV0LXZhbHVlLXRoYXQtaXMtbG9uZw' }],
    });
    const { src, log } = source();
    await src.start();
    expect(src.current()!.keys).toHaveLength(1);
    const text = log.text();
    expect(text).not.toContain(String(k1.privateJwk.d));
    expect(text).not.toContain(String(k1.privateJwk.n));
    expect(text).not.toContain('c3VwZXItc2VjcmV0');
  });
});

describe('RemoteJwksKeySource: a well-formed JWKS is authoritative, an outage is not', () => {
  const weak = generateRsaKeyPair({ kid: 'weak', bits: 1024 });
  const enc = { ...k2.publicJwk, kid: 'enc', use: 'enc' };

  async function loadedWithK1() {
    const made = source({ cooldown_seconds: 0 });
    await made.src.start();
    expect(made.src.current()!.byKid.has('k1')).toBe(true);
    expect(made.src.generation).toBe(1);
    return made;
  }

  it.each([
    ['{"keys":[]}', { keys: [] }],
    ['only unusable keys (RSA-1024, use: enc)', { keys: [weak.publicJwk, enc] }],
  ])('a 200 answer with %s removes the old keys at once, with a warning', async (_name, jwks) => {
    const { src, log } = await loadedWithK1();
    const before = src.status().lastSuccessAt!;
    server.setJwks(jwks);
    const set = await src.refreshForUnknownKid();
    expect(set).toBeDefined();
    expect(set!.keys).toHaveLength(0);
    expect(src.current()!.byKid.has('k1')).toBe(false);
    // Caches of verified tokens key on the generation: it must move on removal.
    expect(src.generation).toBe(2);
    const st = src.status();
    expect(st).toMatchObject({ state: 'no_keys', keys: 0, loaded: true });
    expect(st.lastError).toBeUndefined();
    expect(st.lastSuccessAt).toBeGreaterThanOrEqual(before);
    const warn = log.lines.find((l) => l.level === 'warn' && /no usable key/.test(String(l.msg)));
    expect(warn).toMatchObject({ issuer: 'corp-idp' });
    // Publishing a key again restores trust, under a new generation.
    server.setJwks(makeJwks(k1));
    await src.refreshForUnknownKid();
    expect(src.current()!.byKid.has('k1')).toBe(true);
    expect(src.status().state).toBe('ready');
    expect(src.generation).toBe(3);
  });

  it.each([
    ['status500', 'status 500'],
    ['invalidJson', 'invalid json'],
  ] as const)('a fetch answered %s keeps the old keys (stale)', async (mode, reason) => {
    const { src } = await loadedWithK1();
    const before = src.current();
    server.setMode(mode);
    await src.refreshForUnknownKid();
    expect(src.current()).toBe(before);
    expect(src.generation).toBe(1);
    expect(src.status()).toMatchObject({ state: 'stale', keys: 1, lastError: reason });
  });

  it.each([
    ['no "keys" list', { hello: 'world' }, 'JWKS has no "keys" list'],
    ['"keys" not a list', { keys: { kid: 'k1' } }, 'JWKS has no "keys" list'],
    [
      'more than 100 keys',
      { keys: Array.from({ length: 101 }, () => k1.publicJwk) },
      'JWKS has 101 keys (more than 100)',
    ],
  ])('a 200 body that is not a JWKS (%s) keeps the old keys (stale)', async (_name, body, reason) => {
    const { src } = await loadedWithK1();
    const before = src.current();
    server.setJwks(body);
    await src.refreshForUnknownKid();
    expect(src.current()).toBe(before);
    expect(src.generation).toBe(1);
    expect(src.status()).toMatchObject({ state: 'stale', keys: 1, lastError: reason });
  });
});
