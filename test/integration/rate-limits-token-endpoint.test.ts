// token_endpoint.rate_limit over real HTTP: token requests per authenticated client.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestService, type TestService } from '../helpers/harness.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  type TestKeyPair,
} from '../helpers/keys.js';

const ISSUER = 'https://authz.example.com';
const AUD = 'https://authz.example.com/oauth2/token';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

let dir: string;
const keys: Record<string, TestKeyPair> = {};
const services: TestService[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rl-token-'));
  for (const client of ['app-a', 'app-b']) {
    keys[client] = generateRsaKeyPair({ kid: client });
    writeFileSync(
      join(dir, `${client}.crt`),
      createSelfSignedCertificate(keys[client]!, { subject: client }).pem,
    );
  }
  writeFileSync(join(dir, 'signing.jwk.json'), JSON.stringify(generateEcKeyPair({ kid: 'at-1' }).privateJwk));
});

afterAll(async () => {
  await Promise.all(services.map((s) => s.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function config(rateLimit: unknown): Record<string, unknown> {
  return {
    token_endpoint: {
      enabled: true,
      issuer: ISSUER,
      audience: AUD,
      access_token: { signing: { alg: 'ES256', key_file: 'signing.jwk.json' } },
      clients: ['app-a', 'app-b'].map((id) => ({
        client_id: id,
        certificate_file: `${id}.crt`,
        scopes: ['read'],
      })),
      rate_limit: rateLimit,
    },
  };
}

function assertion(client: string, jti = randomUUID()): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti })
    .setProtectedHeader({ alg: 'RS256' })
    .setIssuer(client)
    .setSubject(client)
    .setAudience(AUD)
    .setIssuedAt(now)
    .setExpirationTime(now + 120)
    .sign(keys[client]!.privateKey);
}

async function tokenRequest(svc: TestService, form: Record<string, string>) {
  const res = await fetch(`${svc.httpUrl}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

describe('token_endpoint.rate_limit', () => {
  it('answers 429 rate_limited with Retry-After once a client exceeds its limit; other clients are unaffected', async () => {
    const svc = await startTestService(config({ limit: 3, window_seconds: 60 }), {
      baseDir: dir,
      logLevel: 'info',
    });
    services.push(svc);
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof tokenRequest>> | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await tokenRequest(svc, { grant_type: JWT_BEARER, assertion: await assertion('app-a') });
      statuses.push(r.status);
      if (r.status === 429) refused = r;
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(refused!.json.error).toBe('rate_limited');
    expect(typeof refused!.json.error_description).toBe('string');
    const retry = Number(refused!.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    expect(refused!.headers.get('cache-control')).toBe('no-store');
    // Another client has its own quota.
    const b = await tokenRequest(svc, { grant_type: JWT_BEARER, assertion: await assertion('app-b') });
    expect(b.status).toBe(200);
    const metrics = await (await fetch(`${svc.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/authz_rate_limited_total\{limit="token_endpoint"\} 2/);
  });

  it('a refused request does not spend its assertion: the same assertion works once the window has passed', async () => {
    const svc = await startTestService(config({ limit: 1, window_seconds: 1 }), {
      baseDir: dir,
      logLevel: 'info',
    });
    services.push(svc);
    expect(
      (await tokenRequest(svc, { grant_type: JWT_BEARER, assertion: await assertion('app-a') })).status,
    ).toBe(200);
    const kept = await assertion('app-a');
    expect((await tokenRequest(svc, { grant_type: JWT_BEARER, assertion: kept })).status).toBe(429);
    // The window passes on the service's clock (the memory store's, Date): moved, not waited for.
    // Timers and sockets stay real.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 1100);
      expect((await tokenRequest(svc, { grant_type: JWT_BEARER, assertion: kept })).status).toBe(200);
      // ...and it is spent now.
      vi.setSystemTime(Date.now() + 1100);
      const replay = await tokenRequest(svc, { grant_type: JWT_BEARER, assertion: kept });
      expect(replay.status).toBe(400);
      expect(replay.json.error).toBe('invalid_grant');
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses a limit or window below 1 at startup', async () => {
    const problems = await startTestService(config({ limit: 0, window_seconds: 0 }), { baseDir: dir }).then(
      async (s) => {
        await s.close();
        return [] as string[];
      },
      (err: { problems?: string[] }) => err.problems ?? [],
    );
    expect(problems.join('\n')).toMatch(/token_endpoint\.rate_limit\.limit: must be >= 1/);
    expect(problems.join('\n')).toMatch(/token_endpoint\.rate_limit\.window_seconds: must be >= 1/);
  });
});
