// Shared setup of the downstream-token integration tests (test/integration/downstream-token-*.test.ts):
// the IdP key and incoming tokens, service start/reload with key files in a temp dir,
// the JWKS and cache-metric readers, and key encoders.
import { afterAll, beforeAll, expect } from 'vitest';
import { createPublicKey, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT, type JSONWebKeySet, type JWK } from 'jose';
import { loadConfigObject } from '../../src/config/load.js';
import { TempDir } from './mint.js';
import { startTestService, type TestService } from './harness.js';
import { generateEcKeyPair, makeJwks } from './keys.js';

export const IDP_ISS = 'https://idp.example.com';
export const IDP_AUD = 'api://orders';
export const DOWN_ISS = 'https://authz.internal';
export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export const idp = generateEcKeyPair({ kid: 'idp-1' });
export let dir: TempDir;
export const open: TestService[] = [];

export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** An incoming (IdP) access token; distinct on every call (its own jti). */
export async function incoming(
  claims: Record<string, unknown> = {},
  opts: { exp?: number } = {},
): Promise<string> {
  const now = nowSec();
  return new SignJWT({
    sub: 'alice',
    scope: 'read write',
    email: 'alice@example.com',
    department: 'eng',
    realm_access: { roles: ['eng', 'ops'] },
    groups: ['g1', 'g2'],
    jti: randomUUID(),
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', kid: idp.kid, typ: 'JWT' })
    .setIssuer(IDP_ISS)
    .setAudience(IDP_AUD)
    .setIssuedAt(now)
    .setExpirationTime(opts.exp ?? now + 600)
    .sign(idp.privateKey);
}

/** A full service config whose `upstream.token` is `token`. */
export function config(
  token: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    log: { level: 'debug' },
    issuers: [
      {
        name: 'corp',
        issuer: IDP_ISS,
        audiences: [IDP_AUD],
        algorithms: ['ES256'],
        jwks: makeJwks(idp),
        claim_mappings: [{ from: 'groups', to: 'teams' }],
      },
    ],
    rules: [{ name: 'public', match: { path_prefix: '/public' }, action: 'allow' }],
    upstream: { token: { issuer: DOWN_ISS, audiences: ['backend'], ...token } },
    ...extra,
  };
}

export async function start(cfg: Record<string, unknown>): Promise<TestService> {
  const svc = await startTestService(cfg, { baseDir: dir.path, logLevel: 'debug' });
  open.push(svc);
  return svc;
}

export async function reload(svc: TestService, cfg: Record<string, unknown>): Promise<void> {
  await svc.service.reload(loadConfigObject(cfg, dir.path, {}));
}

export const jwksUrl = (svc: TestService): URL => new URL(`${svc.httpUrl}/.well-known/jwks.json`);

export async function fetchJwks(svc: TestService): Promise<JSONWebKeySet> {
  const res = await fetch(jwksUrl(svc));
  expect(res.status).toBe(200);
  return (await res.json()) as JSONWebKeySet;
}

/** Allowed Check → the downstream token header value. */
export async function mintedVia(
  svc: TestService,
  call: { token?: string; context?: Record<string, string>; headers?: Record<string, string> } = {},
  header = 'x-jwt-assertion',
): Promise<string> {
  const d = await svc.check({ token: call.token ?? (await incoming()), ...call });
  expect(d.decision, JSON.stringify(d)).toBe('allow');
  const value = d.headers[header];
  expect(value).toBeTypeOf('string');
  return value!;
}

export async function cacheHits(svc: TestService, cache: string): Promise<number> {
  const text = await (await fetch(`${svc.httpUrl}/metrics`)).text();
  const m = new RegExp(`^authz_cache_hits_total\\{cache="${cache}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Secret bytes for a secret_file: never ending in CR or LF, so the one-newline rule is unambiguous. */
export function secretBytes(n: number): Buffer {
  const b = randomBytes(n);
  b[n - 1] = b[n - 1]! | 0x80;
  return b;
}

export function publicJwkOf(key: KeyObject, extra: Record<string, unknown> = {}): JWK {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  return { ...(pub.export({ format: 'jwk' }) as JWK), ...extra };
}

export const spkiPem = (key: KeyObject): string =>
  (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'pem', type: 'spki' }) as string;

/** A temp dir for key files (`dir`) and closing of the services started in a file (`open`). */
export function useDownstreamTokenSetup(): void {
  beforeAll(() => {
    dir = new TempDir();
  });
  afterAll(async () => {
    await Promise.all(open.map((s) => s.close()));
    dir?.remove();
  });
}
