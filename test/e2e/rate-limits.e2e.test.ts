// Rate limits through the real Envoy: the client sees the 429 with Retry-After,
// RateLimit-Policy and RateLimit, and an allowed response carries RateLimit.
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  envoyOrSkip,
  renderEnvoyConfig,
  shippedEnvoyYaml,
  startEnvoy,
  type RunningEnvoy,
} from '../helpers/envoy.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import { forgeToken } from '../helpers/tokens.js';
import { startEcho } from '../helpers/echo-upstream.mjs';

const envoy = await envoyOrSkip('Envoy rate limits end to end');

const ISSUER = 'https://idp.ratelimit-e2e.test';
const AUDIENCE = 'api://ratelimit-e2e';
const idpKey = generateEcKeyPair({ kid: 'rl-e2e-1' });

function token(claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  return forgeToken({
    header: { alg: 'ES256', kid: idpKey.kid, typ: 'JWT' },
    payload: { iss: ISSUER, aud: AUDIENCE, sub: 'alice', iat: now, exp: now + 300, ...claims },
    key: idpKey.privateKey,
  });
}

const serviceConfig = {
  issuers: [
    {
      name: 'corp-idp',
      issuer: ISSUER,
      audiences: [AUDIENCE],
      algorithms: ['ES256'],
      jwks: { keys: [idpKey.publicJwk] },
    },
  ],
  rules: [{ name: 'api', match: { path_separated_prefix: '/api' } }],
  rate_limits: [{ name: 'per-client', limit: 3, window_seconds: 60 }],
};

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!envoy)(`Envoy ${envoy?.version ?? ''} → rate limits`, () => {
  let svc: TestService;
  let echo: Server;
  let proxy: RunningEnvoy;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'envoy-rl-e2e-'));
    svc = await startTestService(serviceConfig);
    echo = await startEcho(0);
    const echoPort = (echo.address() as { port: number }).port;
    const doc = renderEnvoyConfig(shippedEnvoyYaml(), {
      clusters: { ext_authz: svc.grpcAddress, backend: `127.0.0.1:${echoPort}` },
    });
    proxy = await startEnvoy(envoy!, doc, { dir });
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await svc?.close();
    await new Promise((r) => echo?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

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
