import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createDiscoveryKeySource, type DiscoveryOptions } from '../../../../src/authn/keys/discovery.js';
import type { RemoteJwksKeySource } from '../../../../src/authn/keys/remote-jwks.js';
import { Metrics } from '../../../../src/observability/metrics.js';
import { startJwksServer, type JwksServer } from '../../../helpers/jwks-server.js';
import { generateEcKeyPair, generateRsaKeyPair, makeJwks } from '../../../helpers/keys.js';
import { captureLogger } from '../../../helpers/logger.js';
import { advance, useFakeClock } from '../../../helpers/fake-time.js';

const k1 = generateRsaKeyPair({ kid: 'k1' });
const k2 = generateEcKeyPair({ kid: 'k2' });

let server: JwksServer;
let other: JwksServer | undefined;
const sources: RemoteJwksKeySource[] = [];

beforeEach(async () => {
  server = await startJwksServer({ jwks: makeJwks(k1) });
});
afterEach(async () => {
  vi.useRealTimers();
  for (const s of sources.splice(0)) s.close();
  await server.close();
  await other?.close();
  other = undefined;
});

function source(extra: Partial<DiscoveryOptions> = {}) {
  const log = captureLogger();
  const metrics = new Metrics({ processMetrics: false });
  const src = createDiscoveryKeySource({
    issuer: 'corp-idp',
    expectedIssuer: server.baseUrl,
    discoveryUri: server.discoveryUrl,
    cache: { max_age_seconds: 60, cooldown_seconds: 0.2, timeout_ms: 500, max_stale_seconds: 60 },
    logger: log.logger,
    metrics,
    initialBackoffMs: 50,
    ...extra,
  });
  sources.push(src);
  return { src, log, metrics };
}

describe('discovery key source', () => {
  it('resolves jwks_uri from the discovery document and loads the keys', async () => {
    const { src, metrics } = source();
    expect(src.kind).toBe('discovery');
    await src.start();
    expect(src.status()).toMatchObject({ state: 'ready', keys: 1 });
    expect(src.current()!.byKid.has('k1')).toBe(true);
    expect(server.discoveryRequests).toBe(1);
    expect(server.requests).toBe(1);
    const values = (await metrics.jwksFetchTotal.get()).values.map((v) => [v.labels.result, v.value]);
    expect(values).toEqual(
      expect.arrayContaining([
        ['discovery_success', 1],
        ['success', 1],
      ]),
    );
  });

  it('follows a jwks_uri on another host', async () => {
    other = await startJwksServer({ jwks: makeJwks(k2) });
    server.setDiscovery({ issuer: server.baseUrl, jwks_uri: other.url });
    const { src } = source();
    await src.start();
    expect(src.current()!.byKid.has('k2')).toBe(true);
    expect(server.requests).toBe(0);
    expect(other.requests).toBe(1);
  });

  it('refuses a document whose issuer differs from the configured issuer (even by a trailing slash)', async () => {
    server.setDiscovery({ issuer: `${server.baseUrl}/`, jwks_uri: server.url });
    const { src, log } = source();
    await src.start();
    expect(src.status()).toMatchObject({ state: 'error', lastError: 'discovery issuer mismatch' });
    expect(src.current()).toBeUndefined();
    expect(server.requests).toBe(0);
    expect(log.lines.some((l) => l.level === 'warn' && l.issuer === 'corp-idp')).toBe(true);
  });

  it('refuses a document without jwks_uri, or with an http:// jwks_uri to a non-loopback host', async () => {
    server.setDiscovery({ issuer: server.baseUrl });
    const a = source();
    await a.src.start();
    expect(a.src.status().lastError).toBe('discovery document has no jwks_uri');

    server.setDiscovery({ issuer: server.baseUrl, jwks_uri: 'http://idp.example.com/jwks' });
    const b = source();
    await b.src.start();
    expect(b.src.status().lastError).toMatch(/discovery jwks_uri refused/);
  });

  it('reports discovery fetch failures with a discovery prefix', async () => {
    server.setDiscovery(undefined);
    const { src } = source();
    await src.start();
    expect(src.status().lastError).toBe('discovery: status 404');
  });

  it('re-resolves discovery after a JWKS failure and picks up a moved jwks_uri', async () => {
    useFakeClock();
    const { src } = source();
    await src.start();
    other = await startJwksServer({ jwks: makeJwks(k2) });
    server.setMode('status500'); // old JWKS location fails
    server.setDiscovery({ issuer: server.baseUrl, jwks_uri: other.url });
    await advance(src, 250); // past the cooldown
    await src.refreshForUnknownKid(); // uses the cached jwks_uri: fails
    expect(src.status().state).toBe('stale');
    expect(server.discoveryRequests).toBe(1);
    await advance(src, 300); // the backoff retry (50 ms) re-resolves discovery
    expect(server.discoveryRequests).toBeGreaterThanOrEqual(2);
    expect(other.requests).toBeGreaterThanOrEqual(1);
    expect(src.status().state).toBe('ready');
    expect(src.current()!.byKid.has('k2')).toBe(true);
  });

  it('re-resolves discovery on each max_age refresh', async () => {
    useFakeClock();
    const { src } = source({
      cache: { max_age_seconds: 0.15, cooldown_seconds: 0.2, timeout_ms: 500, max_stale_seconds: 60 },
    });
    await src.start();
    await advance(src, 400);
    expect(server.discoveryRequests).toBeGreaterThanOrEqual(2);
  });

  it('an unknown-kid refetch reuses the resolved jwks_uri without refetching discovery', async () => {
    useFakeClock();
    const { src } = source();
    await src.start();
    server.setJwks(makeJwks(k1, k2));
    await advance(src, 250);
    const set = await src.refreshForUnknownKid();
    expect(set!.byKid.has('k2')).toBe(true);
    expect(server.discoveryRequests).toBe(1);
    expect(server.requests).toBe(2);
  });

  it('keeps using the last resolved jwks_uri when discovery becomes unavailable', async () => {
    useFakeClock();
    const { src } = source({
      cache: { max_age_seconds: 0.1, cooldown_seconds: 0.2, timeout_ms: 500, max_stale_seconds: 60 },
    });
    await src.start();
    server.setDiscovery(undefined);
    server.setJwks(makeJwks(k1, k2));
    await advance(src, 350);
    expect(src.status().state).toBe('ready');
    expect(src.current()!.byKid.has('k2')).toBe(true);
  });
});

describe('discovery key source: removing keys', () => {
  it('a discovered JWKS answering 200 {"keys":[]} withdraws the old keys (no_keys, new generation)', async () => {
    const { src } = source({
      cache: { max_age_seconds: 60, cooldown_seconds: 0, timeout_ms: 500, max_stale_seconds: 60 },
    });
    await src.start();
    expect(src.generation).toBe(1);
    server.setJwks({ keys: [] });
    await src.refreshForUnknownKid();
    expect(src.current()!.keys).toHaveLength(0);
    expect(src.generation).toBe(2);
    expect(src.status()).toMatchObject({ state: 'no_keys', keys: 0 });
  });
});
