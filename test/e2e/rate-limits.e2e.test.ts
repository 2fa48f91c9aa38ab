// Rate limits through the real Envoy: the client sees the 429 with Retry-After,
// RateLimit-Policy and RateLimit, and an allowed response carries RateLimit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import { httpGet as get, inlineIssuer, startStack, type Reply, type Stack } from '../helpers/stack.js';
import { jwtMinter } from '../helpers/tokens.js';

const envoy = await envoyOrSkip('Envoy rate limits end to end');

const ISSUER = 'https://idp.ratelimit-e2e.test';
const AUDIENCE = 'api://ratelimit-e2e';
const idpKey = generateEcKeyPair({ kid: 'rl-e2e-1' });

const token = jwtMinter(idpKey, { iss: ISSUER, aud: AUDIENCE, sub: 'alice' });

const serviceConfig = {
  issuers: [inlineIssuer(ISSUER, AUDIENCE, idpKey)],
  rules: [{ name: 'api', match: { path_separated_prefix: '/api' } }],
  rate_limits: [{ name: 'per-client', limit: 3, window_seconds: 60 }],
};

describe.skipIf(!envoy)(`Envoy ${envoy?.version ?? ''} → rate limits`, () => {
  let stack: Stack;
  let proxy: RunningEnvoy;

  beforeAll(async () => {
    stack = await startStack(envoy!, { config: serviceConfig, dirPrefix: 'envoy-rl-e2e-' });
    proxy = stack.envoy;
  }, 60_000);

  afterAll(() => stack?.stop());

  it('allowed responses carry RateLimit to the client; over the limit the client gets 429 with Retry-After', async () => {
    const auth = { authorization: `Bearer ${token({})}` };
    const allowed: Reply[] = [];
    for (let i = 0; i < 3; i++) allowed.push(await get(proxy.port, '/api/orders', auth));
    for (const [i, r] of allowed.entries()) {
      expect(r.status, r.body).toBe(200);
      expect(r.headers['ratelimit-policy']).toBe('"per-client";q=3;w=60');
      expect(r.headers.ratelimit).toMatch(new RegExp(`^"per-client";r=${2 - i};t=\\d+$`));
      // Response headers go to the client, not to the upstream.
      expect(JSON.parse(r.body).headers.ratelimit).toBeUndefined();
    }
    const refused = await get(proxy.port, '/api/orders', auth);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body)).toEqual({ error: 'rate_limited' });
    const retry = Number(refused.headers['retry-after']);
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    expect(refused.headers['ratelimit-policy']).toBe('"per-client";q=3;w=60');
    expect(refused.headers.ratelimit).toBe(`"per-client";r=0;t=${retry}`);
    // Another subject has its own quota.
    const bob = await get(proxy.port, '/api/orders', { authorization: `Bearer ${token({ sub: 'bob' })}` });
    expect(bob.status).toBe(200);
    expect(bob.headers.ratelimit).toMatch(/^"per-client";r=2;t=\d+$/);
  });
});
