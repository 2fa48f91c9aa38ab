// What the minted downstream token says (claims, header handling) and when it is reused
// (docs/upstream.md "Downstream tokens").
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import { MintError } from '../../src/upstream/token-minter.js';
import { privateJwk, privateKeyFor } from '../helpers/mint.js';
import type { TestService } from '../helpers/harness.js';
import {
  DOWN_ISS,
  UUID_V4,
  dir,
  nowSec,
  incoming,
  config,
  start,
  jwksUrl,
  mintedVia,
  cacheHits,
  useDownstreamTokenSetup,
} from '../helpers/downstream-token.js';

useDownstreamTokenSetup();

// ---------------------------------------------------------------------------

describe('minted claims, header handling and reuse', () => {
  let svc: TestService; // cache: true, copy_claims, static claims
  let noCache: TestService; // cache: false, two audiences
  let bearer: TestService; // header: authorization
  let verify: (jwt: string, audience?: string | string[]) => Promise<JWTPayload>;

  beforeAll(async () => {
    const signing = {
      alg: 'ES256',
      key_file: dir.write('claims.jwk.json', privateJwk(privateKeyFor('ES256'), { kid: 'sig-claims' })),
    };
    [svc, noCache, bearer] = await Promise.all([
      start(
        config({
          signing,
          ttl_seconds: 300,
          copy_claims: ['scope', 'email', 'realm_access.roles', 'department', 'teams', 'not_present'],
          claims: { department: 'static-dept', env: 'prod', tier: { level: 2 } },
          allowed_audiences: ['backend', 'orders-svc', 'reports'],
        }),
      ),
      start(
        config({
          signing,
          cache: false,
          audiences: ['backend', 'audit'],
          allowed_audiences: ['backend', 'audit', 'svc-a', 'svc-b'],
        }),
      ),
      start(config({ signing, header: 'Authorization' })),
    ]);
    const keySet = createRemoteJWKSet(jwksUrl(svc));
    verify = async (jwt, audience = 'backend') =>
      (await jwtVerify(jwt, keySet, { issuer: DOWN_ISS, audience, algorithms: ['ES256'] })).payload;
  });

  it('sets iss, sub, aud (string), iat, exp, jti; copies and overrides claims', async () => {
    const before = nowSec();
    const payload = await verify(await mintedVia(svc));
    const after = nowSec();
    expect(payload.iss).toBe(DOWN_ISS);
    expect(payload.sub).toBe('alice');
    expect(payload.aud).toBe('backend');
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(after);
    expect(payload.exp).toBe(payload.iat! + 300);
    expect(payload.jti).toMatch(UUID_V4);
    expect(payload.scope).toBe('read write');
    expect(payload.email).toBe('alice@example.com');
    // Dotted copy_claims entry: copied under its last segment, the parent is not copied.
    expect(payload.roles).toEqual(['eng', 'ops']);
    expect(payload).not.toHaveProperty('realm_access');
    // copy_claims names local claims (after claim_mappings: groups → teams).
    expect(payload.teams).toEqual(['g1', 'g2']);
    expect(payload).not.toHaveProperty('groups');
    expect(payload).not.toHaveProperty('not_present');
    // Static claims override copied ones.
    expect(payload.department).toBe('static-dept');
    expect(payload.env).toBe('prod');
    expect(payload.tier).toEqual({ level: 2 });
    expect(Object.keys(payload).sort()).toEqual(
      [
        'aud',
        'department',
        'email',
        'env',
        'exp',
        'iat',
        'iss',
        'jti',
        'roles',
        'scope',
        'sub',
        'teams',
        'tier',
      ].sort(),
    );
  });

  it('never copies iss/sub/aud/iat/exp/jti from the incoming token', async () => {
    const payload = await verify(await mintedVia(svc, { token: await incoming({ sub: 'bob' }) }));
    expect(payload.sub).toBe('bob');
    expect(payload.iss).toBe(DOWN_ISS);
    expect(payload.aud).toBe('backend');
  });

  it('exp never exceeds the incoming token exp', async () => {
    const incomingExp = nowSec() + 60;
    const payload = await verify(await mintedVia(svc, { token: await incoming({}, { exp: incomingExp }) }));
    expect(payload.exp).toBeLessThanOrEqual(incomingExp);
    expect(payload.exp).toBe(incomingExp);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);

    // With a longer-lived incoming token, ttl_seconds bounds it.
    const long = await verify(await mintedVia(svc, { token: await incoming({}, { exp: nowSec() + 3000 }) }));
    expect(long.exp).toBe(long.iat! + 300);
  });

  it('jti is a UUID v4, distinct for two different incoming tokens', async () => {
    const a = decodeJwt(await mintedVia(svc));
    const b = decodeJwt(await mintedVia(svc));
    expect(a.jti).toMatch(UUID_V4);
    expect(b.jti).toMatch(UUID_V4);
    expect(a.jti).not.toBe(b.jti);
  });

  it('aud: array for several configured audiences; context_extensions audience overrides', async () => {
    const both = await verify(await mintedVia(noCache), 'audit');
    expect(both.aud).toEqual(['backend', 'audit']);

    const one = await verify(await mintedVia(svc, { context: { audience: 'orders-svc' } }), 'orders-svc');
    expect(one.aud).toBe('orders-svc');
    const several = await verify(await mintedVia(noCache, { context: { audience: 'svc-a svc-b' } }), 'svc-b');
    expect(several.aud).toEqual(['svc-a', 'svc-b']);
  });

  // docs/upstream.md "What upstream services receive": `aud` is a string for one audience. The minter checks the list length before
  // de-duplicating it (src/upstream/token-minter.ts, mintFresh), so "svc-a svc-a" yields ["svc-a"].
  it('aud: a context_extensions audience naming one audience twice is still one audience (a string)', async () => {
    const spaced = decodeJwt(await mintedVia(noCache, { context: { audience: '  svc-a \t svc-b  ' } }));
    expect(spaced.aud).toEqual(['svc-a', 'svc-b']);
    const twice = decodeJwt(await mintedVia(noCache, { context: { audience: 'svc-a svc-a' } }));
    expect(twice.aud).toBe('svc-a');
  });

  it('a client-sent x-jwt-assertion is overwritten (append unset: replace) and removed on a public route', async () => {
    const spoof = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.';
    const raw = await svc.checkRaw({ token: await incoming(), headers: { 'x-jwt-assertion': spoof } });
    expect(raw.status.code).toBe(0);
    const set = (raw.ok_response.headers as any[]).filter((h) => h.header.key === 'x-jwt-assertion');
    expect(set).toHaveLength(1);
    expect(set[0].append).toBeUndefined();
    expect(set[0].header.value).not.toBe(spoof);
    await verify(set[0].header.value);
    expect(raw.ok_response.headers_to_remove ?? []).not.toContain('x-jwt-assertion');

    const pub = await svc.check({ path: '/public/info', headers: { 'x-jwt-assertion': spoof } });
    expect(pub.decision).toBe('allow');
    expect(pub.headers['x-jwt-assertion']).toBeUndefined();
    expect(pub.headers_to_remove).toContain('x-jwt-assertion');
    // Even with a valid token, an allow rule mints nothing.
    const pub2 = await svc.check({ path: '/public/info', token: await incoming() });
    expect(pub2.headers['x-jwt-assertion']).toBeUndefined();
    expect(pub2.headers_to_remove).toContain('x-jwt-assertion');
  });

  it('header: authorization → "Bearer <jwt>", and authorization is not in headers_to_remove', async () => {
    const callerToken = await incoming();
    const raw = await bearer.checkRaw({ token: callerToken });
    expect(raw.status.code).toBe(0);
    const set = (raw.ok_response.headers as any[]).filter((h) => h.header.key === 'authorization');
    expect(set).toHaveLength(1);
    expect(set[0].append).toBeUndefined();
    const value: string = set[0].header.value;
    expect(value).toMatch(/^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(value).not.toBe(`Bearer ${callerToken}`);
    expect(raw.ok_response.headers_to_remove ?? []).not.toContain('authorization');
    expect(raw.ok_response.headers.some((h: any) => h.header.key === 'x-jwt-assertion')).toBe(false);
    const payload = await verify(value.slice('Bearer '.length));
    expect(payload.sub).toBe('alice');
  });

  it('reuses the minted token for the same incoming token and audience (cache hit metric)', async () => {
    const callerToken = await incoming();
    // A token's first use is not remembered (verified_token_cache.admission: second_use).
    await mintedVia(svc, { token: callerToken });
    const hits0 = await cacheHits(svc, 'minted_token');
    const first = await mintedVia(svc, { token: callerToken });
    const second = await mintedVia(svc, { token: callerToken });
    expect(second).toBe(first);
    expect(await cacheHits(svc, 'minted_token')).toBe(hits0 + 1);

    // A different audience for the same incoming token: a different token, itself reused.
    const other = await mintedVia(svc, { token: callerToken, context: { audience: 'reports' } });
    expect(other).not.toBe(first);
    expect(decodeJwt(other).aud).toBe('reports');
    expect(await mintedVia(svc, { token: callerToken, context: { audience: 'reports' } })).toBe(other);
    expect(await cacheHits(svc, 'minted_token')).toBe(hits0 + 2);
  });

  it('cache: false mints a fresh token (distinct jti) every time', async () => {
    const callerToken = await incoming();
    const hits0 = await cacheHits(noCache, 'minted_token');
    const a = await mintedVia(noCache, { token: callerToken });
    const b = await mintedVia(noCache, { token: callerToken });
    expect(a).not.toBe(b);
    expect(decodeJwt(a).jti).not.toBe(decodeJwt(b).jti);
    expect(await cacheHits(noCache, 'minted_token')).toBe(hits0);
  });

  it('mint failure → 500 {"error":"server_error"}, the detail only in the log', async () => {
    // A valid config cannot make signing fail (claims come from JSON, keys are proven at
    // load), so the failure is injected into the running minter.
    const minter = svc.service.current.minter as any;
    const original = minter.mintEntry;
    const detail = `hsm unreachable ${randomUUID()}`;
    minter.mintEntry = () => Promise.reject(new MintError(`signing the downstream token failed: ${detail}`));
    try {
      const raw = await svc.checkRaw({ token: await incoming() });
      const d = await svc.check({ token: await incoming() });
      expect(raw.status.code).toBe(14);
      expect(d).toMatchObject({ decision: 'deny', http_status: 500, body: { error: 'server_error' } });
      expect(JSON.stringify(raw)).not.toContain(detail);
      const line = svc.logs.lines.find((l) => l.reason === 'mint_failed');
      expect(line).toBeDefined();
      expect(String(line!.detail)).toContain(detail);
    } finally {
      minter.mintEntry = original;
    }
    expect((await svc.check({ token: await incoming() })).decision).toBe('allow');
  });
});

// ---------------------------------------------------------------------------

describe('reuse window (80% of the lifetime)', () => {
  let svc: TestService;
  // The whole service runs in this process: with Date faked before it starts, the minter,
  // the verifier and the tokens made here share one clock that only the tests move.
  beforeAll(async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    svc = await start(
      config({
        ttl_seconds: 2,
        signing: {
          alg: 'ES256',
          key_file: dir.write('short.jwk.json', privateJwk(privateKeyFor('ES256'), { kid: 'sig-short' })),
        },
      }),
    );
  });
  afterAll(() => {
    vi.useRealTimers();
  });

  it('mints a fresh token once 80% of the lifetime has passed', async () => {
    const callerToken = await incoming();
    await mintedVia(svc, { token: callerToken }); // its first use is not remembered (admission)
    const a = await mintedVia(svc, { token: callerToken });
    expect(await mintedVia(svc, { token: callerToken })).toBe(a);
    vi.advanceTimersByTime(1800);
    const b = await mintedVia(svc, { token: callerToken });
    expect(b).not.toBe(a);
    expect(decodeJwt(b).jti).not.toBe(decodeJwt(a).jti);
  });

  // docs/upstream.md "What upstream services receive": reuse "until 80% of their lifetime". The minter sets refreshAt = mint time (ms)
  // + 80% of (exp - iat) where iat is floored to the second (src/upstream/token-minter.ts, mint), so
  // a token minted late in a second is reused up to 1 s too long, past its exp with short ttls
  // or an incoming token near its exp.
  it('never hands out a reused token past its exp (window measured from the token iat)', async () => {
    // Mint at ~x.700 s: iat = x, exp = x + 2. The reuse window must end by x + 1.6 s and in
    // no case after exp; ask again at x + 2.05 s, when the first token has expired.
    const callerToken = await incoming();
    await mintedVia(svc); // warm up this service's path
    // and this token's: its first use is not remembered (admission), the next one is.
    await mintedVia(svc, { token: callerToken });
    const ms = Date.now() % 1000;
    vi.advanceTimersByTime((1700 - ms) % 1000);
    const a = await mintedVia(svc, { token: callerToken });
    const { exp } = decodeJwt(a);
    const wait = exp! * 1000 + 50 - Date.now();
    expect(wait).toBeGreaterThan(0);
    vi.advanceTimersByTime(wait);
    const b = await mintedVia(svc, { token: callerToken });
    const served = decodeJwt(b);
    expect(served.exp! * 1000, 'the token handed to the upstream has already expired').toBeGreaterThan(
      Date.now(),
    );
    expect(b).not.toBe(a);
  });
});
