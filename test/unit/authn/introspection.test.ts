import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  basicCredentials,
  IntrospectionCheck,
  NEGATIVE_CACHE_SECONDS,
  type IntrospectionOptions,
} from '../../../src/authn/introspection.js';
import { ManualClock, secondsToMs } from '../../../src/core/time.js';
import { captureLogger, type CapturedLogger } from '../../helpers/logger.js';
import { startIntrospectionServer, type IntrospectionServer } from '../../helpers/introspection-server.js';

const CLIENT_ID = 'authz gateway';
const SECRET = 's3cr:et/+&é';
const TOKEN = 'opaque-Token-Value-0123456789';

let idp: IntrospectionServer;
let logs: CapturedLogger;
let clock: ManualClock;

beforeEach(async () => {
  idp = await startIntrospectionServer({ clientId: CLIENT_ID, clientSecret: SECRET });
  logs = captureLogger('debug');
  clock = new ManualClock(1_800_000_000_000);
});
afterEach(async () => idp.close());

function check(over: Partial<IntrospectionOptions> = {}): IntrospectionCheck {
  return new IntrospectionCheck({
    issuer: 'corp',
    endpoint: idp.url,
    clientId: CLIENT_ID,
    clientSecret: SECRET,
    cacheSeconds: 60,
    timeoutMs: 500,
    claims: { audiences: 'any', clockSkewSeconds: 0, requiredClaims: [], maxLifetimeSeconds: 86400 },
    logger: logs.logger,
    clock,
    ...over,
  });
}

const nowS = () => clock.nowSeconds();

describe('basicCredentials', () => {
  it('form-encodes client id and secret before base64 (RFC 6749 2.3.1)', () => {
    const value = basicCredentials('a b', "x:y+z~!*'()é");
    const decoded = Buffer.from(value.slice('Basic '.length), 'base64').toString('utf8');
    expect(decoded).toBe('a+b:x%3Ay%2Bz%7E%21*%27%28%29%C3%A9');
  });
});

describe('IntrospectionCheck', () => {
  it('POSTs the token as a form with HTTP Basic client credentials and returns the claims', async () => {
    idp.tokens.set(TOKEN, { sub: 'alice', scope: 'read write', exp: nowS() + 300 });
    const found = await check().lookupOpaque(TOKEN);
    expect(found).toEqual({
      status: 'active',
      claims: { sub: 'alice', scope: 'read write', exp: nowS() + 300 },
    });
    expect(idp.requests).toHaveLength(1);
    const req = idp.requests[0]!;
    expect(req.contentType).toBe('application/x-www-form-urlencoded');
    expect(req.form.get('token')).toBe(TOKEN);
    expect(req.form.get('token_type_hint')).toBe('access_token');
  });

  it('a "__proto__" member of the answer is a plain claim, never the prototype', async () => {
    idp.tokens.set(
      TOKEN,
      JSON.parse('{"sub":"alice","__proto__":{"scope":"admin"}}') as Record<string, unknown>,
    );
    const found = await check().lookupOpaque(TOKEN);
    expect(found.status).toBe('active');
    const claims = found.status === 'active' ? found.claims : {};
    expect(Object.getPrototypeOf(claims)).toBe(Object.prototype);
    expect(claims.scope).toBeUndefined();
    expect(Object.keys(claims).sort()).toEqual(['__proto__', 'sub']);
  });

  it('a wrong client secret (401 from the endpoint) is unavailable, logged without the secret', async () => {
    idp.tokens.set(TOKEN, { sub: 'alice' });
    const found = await check({ clientSecret: 'wrong' }).lookupOpaque(TOKEN);
    expect(found.status).toBe('unavailable');
    expect(found.status === 'unavailable' && found.deny?.reason).toBe('introspection_unavailable');
    expect(logs.lines.some((l) => l.msg === 'token introspection failed' && l.reason === 'status 401')).toBe(
      true,
    );
    expect(logs.text()).not.toContain('wrong');
    expect(logs.text()).not.toContain(TOKEN);
  });

  it('inactive answers are inactive and reused only briefly', async () => {
    const c = check();
    expect(await c.lookupOpaque(TOKEN)).toEqual({ status: 'inactive' });
    expect(await c.lookupOpaque(TOKEN)).toEqual({ status: 'inactive' });
    expect(idp.requests).toHaveLength(1);
    clock.advanceMs(secondsToMs(NEGATIVE_CACHE_SECONDS) + 1);
    await c.lookupOpaque(TOKEN);
    expect(idp.requests).toHaveLength(2);
  });

  it('reuses an active answer for cache_seconds, then asks again', async () => {
    idp.tokens.set(TOKEN, { sub: 'alice' });
    const c = check({ cacheSeconds: 30 });
    await c.lookupOpaque(TOKEN);
    clock.advanceMs(29_000);
    await c.lookupOpaque(TOKEN);
    expect(idp.requests).toHaveLength(1);
    clock.advanceMs(2_000);
    await c.lookupOpaque(TOKEN);
    expect(idp.requests).toHaveLength(2);
  });

  it('never reuses an answer beyond the token exp', async () => {
    idp.tokens.set(TOKEN, { sub: 'alice', exp: nowS() + 5 });
    const c = check({ cacheSeconds: 60 });
    expect((await c.lookupOpaque(TOKEN)).status).toBe('active');
    clock.advanceMs(6_000);
    idp.tokens.delete(TOKEN);
    expect(await c.lookupOpaque(TOKEN)).toEqual({ status: 'inactive' });
    expect(idp.requests).toHaveLength(2);
  });

  it('cache_seconds 0 asks every time', async () => {
    idp.tokens.set(TOKEN, { sub: 'alice' });
    const c = check({ cacheSeconds: 0 });
    await c.lookupOpaque(TOKEN);
    await c.lookupOpaque(TOKEN);
    expect(idp.requests).toHaveLength(2);
  });

  it('coalesces concurrent lookups of one token into one request', async () => {
    idp.tokens.set(TOKEN, { sub: 'alice' });
    idp.delayMs = 50;
    const c = check();
    const all = await Promise.all(Array.from({ length: 20 }, () => c.lookupOpaque(TOKEN)));
    expect(all.every((f) => f.status === 'active')).toBe(true);
    expect(idp.requests).toHaveLength(1);
  });

  it('checks exp (with skew) and aud of an active answer', async () => {
    idp.tokens.set('expired-token-0000000', { sub: 'a', exp: nowS() - 10 });
    idp.tokens.set('skewed-token-00000000', { sub: 'a', exp: nowS() - 10 });
    idp.tokens.set('wrong-aud-token-00000', { sub: 'a', aud: ['other'] });
    idp.tokens.set('right-aud-token-00000', { sub: 'a', aud: 'api' });
    const c = check({
      claims: {
        audiences: new Set(['api']),
        clockSkewSeconds: 0,
        requiredClaims: [],
        maxLifetimeSeconds: 86400,
      },
    });
    const expired = await c.lookupOpaque('expired-token-0000000');
    expect(expired.status === 'refused' && expired.deny.reason).toBe('token_expired');
    const aud = await c.lookupOpaque('wrong-aud-token-00000');
    expect(aud.status === 'refused' && aud.deny.reason).toBe('audience_invalid');
    expect((await c.lookupOpaque('right-aud-token-00000')).status).toBe('active');
    const lenient = check({
      claims: { audiences: 'any', clockSkewSeconds: 60, requiredClaims: [], maxLifetimeSeconds: 86400 },
    });
    expect((await lenient.lookupOpaque('skewed-token-00000000')).status).toBe('active');
  });

  it.each([
    ['down', /network error/],
    ['status500', /status 500/],
    ['not-json', /invalid json/],
    ['json-array', /not a JSON object/],
    ['active-not-boolean', /boolean "active"/],
    ['huge', /body too large/],
  ] as const)('%s → unavailable, logged, never cached', async (mode, reason) => {
    idp.tokens.set(TOKEN, { sub: 'alice' });
    idp.mode = mode;
    const c = check();
    const found = await c.lookupOpaque(TOKEN);
    expect(found.status).toBe('unavailable');
    const line = logs.lines.find((l) => l.msg === 'token introspection failed');
    expect(line?.reason).toMatch(reason);
    expect(line?.endpoint).toBe(idp.url);
    expect(logs.text()).not.toContain(TOKEN);
    idp.mode = 'normal';
    expect((await c.lookupOpaque(TOKEN)).status).toBe('active');
  });

  it('a slow endpoint times out (timeout_ms)', async () => {
    idp.mode = 'hang';
    const started = Date.now();
    const found = await check({ timeoutMs: 100 }).lookupOpaque(TOKEN);
    expect(found.status).toBe('unavailable');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(logs.lines.some((l) => l.reason === 'timeout')).toBe(true);
  });

  it('keeps at most maxEntries answers (least recently used go first)', async () => {
    for (const t of ['token-a-000000000000', 'token-b-000000000000']) idp.tokens.set(t, { sub: t });
    const c = check({ maxEntries: 1 });
    await c.lookupOpaque('token-a-000000000000');
    await c.lookupOpaque('token-b-000000000000');
    await c.lookupOpaque('token-a-000000000000');
    expect(idp.requests).toHaveLength(3);
  });
});
