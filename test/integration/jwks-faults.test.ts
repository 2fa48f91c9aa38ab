// JWKS faults against the real service: unknown kids, cooldown, rotation, coalescing,
// broken identity providers at startup (500, invalid JSON, redirect, 5 MB, slow,
// hang), a provider that goes away after a good fetch, and unfit keys in a JWKS.
// Outcomes per docs/upstream.md "Decisions (what Envoy receives)" and docs/verification.md "Verification rules" (503 temporarily_unavailable with gRPC 14 when no keys).
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestService, type Decision, type EnvoyCall, type TestService } from '../helpers/harness.js';
import { startJwksServer, type JwksServer, type JwksServerMode } from '../helpers/jwks-server.js';
import { generateRsaKeyPair, makeJwks, type Jwk, type TestKeyPair } from '../helpers/keys.js';
import { forgeToken, mintJwt, standardClaims } from '../helpers/tokens.js';
import { sleep } from '../helpers/wait.js';

const AUD = 'api://orders';
const REALM = 'envoy-jwt-authz';
const TIMEOUT_MS = 300;
const COOLDOWN_MS = 1000;
const CACHE = { max_age_seconds: 60, cooldown_seconds: 1, timeout_ms: TIMEOUT_MS, max_stale_seconds: 3600 };
/** Scheduling / gRPC round trip margin on top of the fetch timeout. */
const MARGIN_MS = 400;

// Cooldowns and staleness are measured on the key sources' clock (Date): faked for the
// whole file, so a test passes a cooldown by moving it instead of sleeping. Timers stay
// real: fetch timeouts, hanging providers, backoff retries and gRPC deadlines are real.
beforeAll(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
});
afterAll(() => {
  vi.useRealTimers();
});

const main = generateRsaKeyPair({ kid: 'main' });
/** Signs tokens for kids nobody publishes (one key, many kids: key generation is slow). */
const stranger = generateRsaKeyPair({ kid: 'stranger' });
const unknownKid = (iss: string, kid: string) => token(iss, stranger, kid);

function issuerConfig(name: string, iss: string, url: string): Record<string, unknown> {
  return { name, issuer: iss, jwks_uri: url, audiences: [AUD], jwks_cache: CACHE };
}

function serviceConfig(issuers: Record<string, unknown>[]): Record<string, unknown> {
  return { issuers, rules: [], default_action: 'authenticate' };
}

const token = (iss: string, key: TestKeyPair, kid: string | undefined = key.kid, alg = 'RS256'): string =>
  mintJwt({ privateKey: key.privateKey, kid, alg }, standardClaims(iss, AUD));

async function timedCheck(svc: TestService, call: EnvoyCall): Promise<{ d: Decision; ms: number }> {
  const started = performance.now();
  const d = await svc.check(call);
  return { d, ms: performance.now() - started };
}

function expectInvalid(d: Decision, reason: string): void {
  expect({
    decision: d.decision,
    grpc_status: d.grpc_status,
    http_status: d.http_status,
    reason: d.reason,
  }).toEqual({
    decision: 'deny',
    grpc_status: 16,
    http_status: 401,
    reason,
  });
  expect(d.headers['content-type']).toBe('application/json');
  expect(d.body).toEqual({ error: 'invalid_token', error_description: expect.any(String) });
  expect(d.headers['www-authenticate']).toMatch(
    new RegExp(`^Bearer realm="${REALM}", error="invalid_token", error_description="[^"]+"$`),
  );
}

function expectUnavailable(d: Decision): void {
  expect({
    decision: d.decision,
    grpc_status: d.grpc_status,
    http_status: d.http_status,
    reason: d.reason,
  }).toEqual({
    decision: 'deny',
    grpc_status: 14,
    http_status: 503,
    reason: 'keys_unavailable',
  });
  expect(d.headers['content-type']).toBe('application/json');
  expect(d.headers['www-authenticate']).toBeUndefined();
  expect(d.body).toEqual({ error: 'temporarily_unavailable' });
}

function expectAllow(d: Decision, issuer: string): void {
  expect({ decision: d.decision, grpc_status: d.grpc_status }).toEqual({ decision: 'allow', grpc_status: 0 });
  expect(d.dynamic_metadata?.issuer).toBe(issuer);
}

async function readyz(svc: TestService): Promise<{ status: number; body: any }> {
  const res = await fetch(`${svc.httpUrl}/readyz`);
  return { status: res.status, body: await res.json() };
}

/**
 * After a failed fetch the key source retries in the background (1 s backoff). Waits for
 * that retry to reach the server (mode must be ok again), so later cooldown math is exact.
 */
async function awaitRetry(jwks: JwksServer, before: number, maxMs = 3000): Promise<void> {
  const until = performance.now() + maxMs;
  // Real waiting: the retry is a real backoff timer fetching over a real socket.
  while (jwks.requests <= before && performance.now() < until) await sleep(20);
  expect(jwks.requests).toBeGreaterThan(before);
  await sleep(50); // let the retry finish
}

/** Lets `ms` pass on the key sources' clock (Date is frozen otherwise, so that is `ms` since the last fetch). */
function passTime(ms: number): void {
  vi.advanceTimersByTime(ms);
}

// ---------------------------------------------------------------------------------------

describe('unknown kid: refetch, cooldown, rotation, coalescing', () => {
  const ISS = 'https://rotating.example.test';
  let jwks: JwksServer;
  let svc: TestService;

  beforeAll(async () => {
    jwks = await startJwksServer({ jwks: makeJwks(main) });
    svc = await startTestService(serviceConfig([issuerConfig('rotating', ISS, jwks.url)]));
    expect(jwks.requests).toBe(1);
  });
  afterAll(async () => {
    await svc?.close();
    await jwks?.close();
  });

  it('an unknown kid triggers exactly one refetch, then key_not_found', async () => {
    passTime(COOLDOWN_MS + 150);
    jwks.resetCounts();
    const { d, ms } = await timedCheck(svc, { token: unknownKid(ISS, 'unknown-1') });
    expectInvalid(d, 'key_not_found');
    expect(jwks.requests).toBe(1);
    expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    await sleep(100); // real time: no second request reaches the real server in the background
    expect(jwks.requests).toBe(1);
    expectAllow(await svc.check({ token: token(ISS, main) }), 'rotating');
  });

  it('a second unknown kid inside the cooldown causes no further request', async () => {
    passTime(COOLDOWN_MS + 150);
    jwks.resetCounts();
    const a = unknownKid(ISS, 'unknown-a');
    const b = unknownKid(ISS, 'unknown-b');
    expectInvalid(await svc.check({ token: a }), 'key_not_found');
    expect(jwks.requests).toBe(1);
    expectInvalid(await svc.check({ token: b }), 'key_not_found');
    expectInvalid(await svc.check({ token: a }), 'key_not_found');
    expect(jwks.requests).toBe(1);
    expectAllow(await svc.check({ token: token(ISS, main) }), 'rotating');
  });

  it('key rotation: a kid added to the JWKS is accepted once the cooldown has elapsed', async () => {
    passTime(COOLDOWN_MS + 150);
    jwks.resetCounts();
    // Use up the cooldown with an unknown kid, then publish the new key.
    expectInvalid(await svc.check({ token: unknownKid(ISS, 'nobody') }), 'key_not_found');
    expect(jwks.requests).toBe(1);
    const next = generateRsaKeyPair({ kid: 'rotated-2' });
    jwks.setJwks(makeJwks(main, next));
    // Inside the cooldown: not fetched yet.
    expectInvalid(await svc.check({ token: token(ISS, next) }), 'key_not_found');
    expect(jwks.requests).toBe(1);
    // After the cooldown: one refetch, the new kid verifies, the old one still does.
    passTime(COOLDOWN_MS + 150);
    expectAllow(await svc.check({ token: token(ISS, next) }), 'rotating');
    expect(jwks.requests).toBe(2);
    const cachedOld = token(ISS, main);
    expectAllow(await svc.check({ token: cachedOld }), 'rotating');
    expectAllow(await svc.check({ token: cachedOld }), 'rotating'); // now in the verified-token cache
    // Retire the old key: after the next refetch its tokens stop verifying.
    jwks.setJwks(makeJwks(next));
    passTime(COOLDOWN_MS + 150);
    expectInvalid(await svc.check({ token: unknownKid(ISS, 'x') }), 'key_not_found');
    expect(jwks.requests).toBe(3);
    expectInvalid(await svc.check({ token: token(ISS, main) }), 'key_not_found');
    // A token verified (and cached) before the key was retired is refused too.
    expectInvalid(await svc.check({ token: cachedOld }), 'key_not_found');
    expectAllow(await svc.check({ token: token(ISS, next) }), 'rotating');
    jwks.setJwks(makeJwks(main, next));
  });

  it('a burst of 20 concurrent unknown-kid checks causes at most one fetch', async () => {
    passTime(COOLDOWN_MS + 150);
    // Make sure `main` is published again (the previous case retired it).
    jwks.setJwks(makeJwks(main));
    jwks.setMode('slow', { delayMs: 150 }); // keep the one fetch in flight while the burst arrives
    jwks.resetCounts();
    const tokens = Array.from({ length: 20 }, (_, i) => unknownKid(ISS, `burst-${i}`));
    const started = performance.now();
    const results = await Promise.all(tokens.map((t) => svc.check({ token: t })));
    const ms = performance.now() - started;
    jwks.setMode('ok');
    for (const d of results) expectInvalid(d, 'key_not_found');
    expect(jwks.requests).toBeLessThanOrEqual(1);
    expect(jwks.requests).toBe(1);
    expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    expectAllow(await svc.check({ token: token(ISS, main) }), 'rotating');
  });

  it('while the JWKS hangs, an unknown-kid check is bounded by timeout_ms and known kids are unaffected', async () => {
    passTime(COOLDOWN_MS + 150);
    jwks.setMode('hang');
    jwks.resetCounts();
    try {
      const { d, ms } = await timedCheck(svc, { token: unknownKid(ISS, 'while-hanging') });
      expectInvalid(d, 'key_not_found'); // last good keys still cached: the kid is simply unknown
      expect(jwks.requests).toBe(1);
      expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
      const known = await timedCheck(svc, { token: token(ISS, main) });
      expectAllow(known.d, 'rotating');
      expect(known.ms).toBeLessThan(200);
    } finally {
      jwks.setMode('ok');
      await awaitRetry(jwks, jwks.requests);
    }
  });

  it('with a 200 ms gRPC deadline while the JWKS hangs, the answer is a 503 before the deadline', async () => {
    passTime(COOLDOWN_MS + 150);
    jwks.setMode('hang');
    jwks.resetCounts();
    try {
      const started = performance.now();
      const d = await svc.check({ token: unknownKid(ISS, 'deadline'), timeoutMs: 200 });
      const ms = performance.now() - started;
      // Not a gRPC DEADLINE_EXCEEDED (check() would have thrown): a CheckResponse in time.
      expectUnavailable(d);
      expect(ms).toBeLessThan(200);
      expect(jwks.requests).toBe(1);
    } finally {
      jwks.setMode('ok');
      await awaitRetry(jwks, jwks.requests);
    }
    expectAllow(await svc.check({ token: token(ISS, main) }), 'rotating');
  });
});

// ---------------------------------------------------------------------------------------

interface Broken {
  readonly name: string;
  readonly iss: string;
  readonly mode: JwksServerMode;
  readonly lastError: RegExp;
  server?: JwksServer;
}

describe('identity providers broken at startup', () => {
  const HEALTHY = 'https://healthy.example.test';
  const broken: Broken[] = [
    { name: 'idp-500', iss: 'https://idp-500.example.test', mode: 'status500', lastError: /^status 500$/ },
    {
      name: 'idp-json',
      iss: 'https://idp-json.example.test',
      mode: 'invalidJson',
      lastError: /^invalid json$/,
    },
    {
      name: 'idp-redirect',
      iss: 'https://idp-redirect.example.test',
      mode: 'redirect',
      lastError: /redirect/,
    },
    { name: 'idp-huge', iss: 'https://idp-huge.example.test', mode: 'huge', lastError: /^body too large$/ },
    { name: 'idp-slow', iss: 'https://idp-slow.example.test', mode: 'slow', lastError: /^timeout$/ },
    { name: 'idp-hang', iss: 'https://idp-hang.example.test', mode: 'hang', lastError: /^timeout$/ },
  ];
  const byName = (n: string) => broken.find((b) => b.name === n)!;
  const DRIP = 'https://idp-drip.example.test';
  let healthy: JwksServer;
  let drip: JwksServer;
  let svc: TestService;
  let startMs = 0;

  beforeAll(async () => {
    healthy = await startJwksServer({ jwks: makeJwks(main) });
    // Headers at once, then the (valid) body one byte every 50 ms: the timeout covers the whole exchange.
    drip = await startJwksServer();
    drip.route('/drip.json', (_req, res) => {
      const body = JSON.stringify(makeJwks(main));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed || i >= body.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(body[i++]!);
      }, 50);
      res.on('close', () => clearInterval(timer));
    });
    for (const b of broken) {
      b.server = await startJwksServer({ jwks: makeJwks(main), mode: b.mode });
      if (b.mode === 'slow') b.server.setMode('slow', { delayMs: TIMEOUT_MS + 700 });
    }
    const started = performance.now();
    svc = await startTestService(
      serviceConfig([
        issuerConfig('healthy', HEALTHY, healthy.url),
        issuerConfig('idp-drip', DRIP, `${drip.baseUrl}/drip.json`),
        ...broken.map((b) => issuerConfig(b.name, b.iss, b.server!.url)),
      ]),
    );
    startMs = performance.now() - started;
  });
  afterAll(async () => {
    await svc?.close();
    await healthy?.close();
    await drip?.close();
    for (const b of broken) await b.server?.close();
  });

  it('starts within the fetch timeout, and /readyz is 200 with each error recorded', async () => {
    expect(startMs).toBeLessThan(TIMEOUT_MS + 2000);
    const { status, body } = await readyz(svc);
    expect(status).toBe(200);
    expect(body.issuers.healthy).toMatchObject({ state: 'ready', loaded: true, keys: 1 });
    for (const b of broken) {
      expect(body.issuers[b.name], b.name).toMatchObject({ state: 'error', loaded: true, keys: 0 });
      expect(body.issuers[b.name].lastError, b.name).toMatch(b.lastError);
    }
    // The status never carries key material or the JWKS body.
    expect(JSON.stringify(body)).not.toContain(String(main.publicJwk.n).slice(0, 40));
    expect(JSON.stringify(body)).not.toContain('this is not json');
  });

  it('idp-drip: a body trickled slower than timeout_ms is a timeout, and checks get 503', async () => {
    const { body } = await readyz(svc);
    expect(body.issuers['idp-drip']).toMatchObject({
      state: 'error',
      loaded: true,
      keys: 0,
      lastError: 'timeout',
    });
    const { d, ms } = await timedCheck(svc, { token: token(DRIP, main) });
    expectUnavailable(d);
    expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  });

  it('the healthy issuer keeps working next to the broken ones', async () => {
    expectAllow(await svc.check({ token: token(HEALTHY, main) }), 'healthy');
  });

  it.each([['idp-500'], ['idp-json'], ['idp-huge']])(
    '%s: a valid token gets 503 keys_unavailable quickly',
    async (name) => {
      const b = byName(name);
      const { d, ms } = await timedCheck(svc, { token: token(b.iss, main) });
      expectUnavailable(d);
      expect(d.dynamic_metadata).toBeUndefined();
      expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    },
  );

  it('idp-redirect: 503, and the redirect target never receives a request', async () => {
    const b = byName('idp-redirect');
    const { d, ms } = await timedCheck(svc, { token: token(b.iss, main) });
    expectUnavailable(d);
    expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    expect(b.server!.requests).toBeGreaterThanOrEqual(1);
    expect(b.server!.redirectTargetRequests).toBe(0);
  });

  it.each([['idp-slow'], ['idp-hang']])(
    '%s: 503 within timeout_ms plus margin (answer after the timeout is ignored)',
    async (name) => {
      const b = byName(name);
      for (let i = 0; i < 2; i++) {
        const { d, ms } = await timedCheck(svc, { token: token(b.iss, main) });
        expectUnavailable(d);
        expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
        if (i === 0) passTime(COOLDOWN_MS + 100); // the second one may trigger a fresh fetch
      }
    },
  );

  it('idp-hang: with a 200 ms gRPC deadline the answer is a 503 before the deadline', async () => {
    const b = byName('idp-hang');
    passTime(COOLDOWN_MS + 100);
    const started = performance.now();
    const d = await svc.check({ token: token(b.iss, main), timeoutMs: 200 });
    // A CheckResponse at all proves the server answered inside the client's deadline (else
    // the call fails with DEADLINE_EXCEEDED); the clock only guards against waiting for the
    // key fetch's own 2 s timeout, with room for a loaded machine's event-loop delay.
    expectUnavailable(d);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('idp-500 recovers once the endpoint answers again', async () => {
    const b = byName('idp-500');
    b.server!.setMode('ok');
    passTime(COOLDOWN_MS + 150);
    expectAllow(await svc.check({ token: token(b.iss, main) }), 'idp-500');
    const { body } = await readyz(svc);
    expect(body.issuers['idp-500']).toMatchObject({ state: 'ready', keys: 1 });
    expect(body.issuers['idp-500'].lastError).toBeUndefined();
  });

  it('logs name the failing issuers and never contain a JWKS body', () => {
    const failures = svc.logs.lines.filter((l) => l.msg === 'JWKS fetch failed');
    for (const b of broken)
      expect(
        failures.some((l) => l.issuer === b.name),
        b.name,
      ).toBe(true);
    expect(svc.logs.text()).not.toContain('this is not json');
    expect(svc.logs.text()).not.toContain('"pad"');
  });
});

// ---------------------------------------------------------------------------------------

describe('JWKS server goes away after a first good fetch', () => {
  const ISS = 'https://vanishing.example.test';
  let jwks: JwksServer;
  let svc: TestService;

  beforeAll(async () => {
    jwks = await startJwksServer({ jwks: makeJwks(main) });
    svc = await startTestService(serviceConfig([issuerConfig('vanishing', ISS, jwks.url)]));
    expectAllow(await svc.check({ token: token(ISS, main) }), 'vanishing');
    await jwks.close();
  });
  afterAll(async () => {
    await svc?.close();
  });

  it('cached keys keep working, and an unknown kid is still key_not_found (not 503)', async () => {
    passTime(COOLDOWN_MS + 150);
    // Unknown kid: one refetch to a closed port fails fast; the last good keys stay.
    const { d, ms } = await timedCheck(svc, { token: unknownKid(ISS, 'gone') });
    expectInvalid(d, 'key_not_found');
    expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    // A fresh token (not in the verified-token cache) by the cached key verifies.
    expectAllow(await svc.check({ token: token(ISS, main) }), 'vanishing');
    const { status, body } = await readyz(svc);
    expect(status).toBe(200);
    expect(body.issuers.vanishing).toMatchObject({ state: 'stale', loaded: true, keys: 1 });
    expect(body.issuers.vanishing.lastError).toMatch(/network error/);
  });
});

// ---------------------------------------------------------------------------------------

describe('max_stale_seconds elapsed while the JWKS is down', () => {
  const ISS = 'https://short-stale.example.test';
  let jwks: JwksServer;
  let svc: TestService;
  let verified: string;

  beforeAll(async () => {
    jwks = await startJwksServer({ jwks: makeJwks(main) });
    svc = await startTestService(
      serviceConfig([
        { ...issuerConfig('short-stale', ISS, jwks.url), jwks_cache: { ...CACHE, max_stale_seconds: 1 } },
      ]),
    );
    verified = token(ISS, main);
    expectAllow(await svc.check({ token: verified }), 'short-stale');
    await jwks.close();
  });
  afterAll(async () => {
    await svc?.close();
  });

  it('once the last good keys are older than max_stale and a fetch failed, checks get 503', async () => {
    passTime(1000 + COOLDOWN_MS + 200);
    // This check's refetch fails (connection refused); the keys are now beyond max_stale.
    const first = await timedCheck(svc, { token: unknownKid(ISS, 'after-stale') });
    expect(first.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    expectUnavailable(first.d);
    expectUnavailable(await svc.check({ token: token(ISS, main) }));
    const { status, body } = await readyz(svc);
    expect(status).toBe(200);
    expect(body.issuers['short-stale']).toMatchObject({ state: 'error', keys: 0 });
  });

  it('a token verified before the keys went stale is not allowed from the verified-token cache', async () => {
    expectUnavailable(await svc.check({ token: verified }));
  });
});

// ---------------------------------------------------------------------------------------

describe('unfit keys in a JWKS', () => {
  const ISS = 'https://mixed.example.test';
  const weak = generateRsaKeyPair({ kid: 'rsa-1024', bits: 1024 });
  const enc = generateRsaKeyPair({ kid: 'enc-key' });
  const opsEncrypt = generateRsaKeyPair({ kid: 'ops-encrypt' });
  const rs512Only = generateRsaKeyPair({ kid: 'rs512-only', alg: 'RS512' });
  const dup1 = generateRsaKeyPair({ kid: 'dup' });
  const dup2 = generateRsaKeyPair({ kid: 'dup' });
  const octSecret = Buffer.alloc(32, 7);
  const octJwk: Jwk = {
    kty: 'oct',
    kid: 'sym',
    k: octSecret.toString('base64url'),
    alg: 'HS256',
    use: 'sig',
  };
  let jwks: JwksServer;
  let svc: TestService;

  beforeAll(async () => {
    jwks = await startJwksServer({
      jwks: makeJwks(
        main,
        weak,
        { ...enc.publicJwk, use: 'enc' },
        { ...opsEncrypt.publicJwk, use: undefined, key_ops: ['encrypt'] },
        octJwk,
        rs512Only,
        dup1,
        dup2,
      ),
    });
    svc = await startTestService(serviceConfig([issuerConfig('mixed', ISS, jwks.url)]));
  });
  afterAll(async () => {
    await svc?.close();
    await jwks?.close();
  });

  it('only the fit keys are loaded (main, rs512-only, both dups), each refusal logged by kid', async () => {
    const { body } = await readyz(svc);
    expect(body.issuers.mixed).toMatchObject({ state: 'ready', keys: 4 });
    const skipped = svc.logs.lines.filter((l) => l.msg === 'JWKS key skipped').map((l) => l.kid);
    expect(skipped).toEqual(expect.arrayContaining(['rsa-1024', 'enc-key', 'ops-encrypt', 'sym']));
    expect(svc.logs.text()).not.toContain(octSecret.toString('base64url'));
  });

  it('two keys with the same kid: a token signed by the second one verifies (and by the first)', async () => {
    expectAllow(await svc.check({ token: token(ISS, dup2) }), 'mixed');
    expectAllow(await svc.check({ token: token(ISS, dup1) }), 'mixed');
  });

  it('a token by the RSA-1024 key is key_not_found', async () => {
    expectInvalid(await svc.check({ token: token(ISS, weak) }), 'key_not_found');
  });

  it('a token by the use: enc key is key_not_found', async () => {
    expectInvalid(await svc.check({ token: token(ISS, enc) }), 'key_not_found');
  });

  it('a token by the key_ops [encrypt] key is key_not_found', async () => {
    expectInvalid(await svc.check({ token: token(ISS, opsEncrypt) }), 'key_not_found');
  });

  it('an RS256 token by a key whose JWK says alg RS512 is key_not_found', async () => {
    expectInvalid(await svc.check({ token: token(ISS, rs512Only) }), 'key_not_found');
    expectAllow(await svc.check({ token: token(ISS, rs512Only, 'rs512-only', 'RS512') }), 'mixed');
  });

  it('the oct key is never a candidate: HS256 by it is refused, an RS256 token naming it is key_not_found', async () => {
    const hs = forgeToken({
      header: { alg: 'HS256', kid: 'sym' },
      payload: standardClaims(ISS, AUD),
      key: octSecret,
    });
    // HS* is not in an issuer's algorithms without secret_file (docs/configuration-guide.md "Configuration"), so the alg check fires first.
    expectInvalid(await svc.check({ token: hs }), 'alg_not_allowed');
    expectInvalid(await svc.check({ token: token(ISS, main, 'sym') }), 'key_not_found');
  });

  it('the service still answers a valid token by the main key', async () => {
    expectAllow(await svc.check({ token: token(ISS, main) }), 'mixed');
  });
});
