// Helpers for the mint tests: key files written to a temp dir (private keys are
// generated per run and never committed), a capturing logger, a JWKS fetched from
// the real /.well-known/jwks.json route, and principals.
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { createLocalJWKSet, type JSONWebKeySet, type JWK } from 'jose';
import type { Principal } from '../../src/core/request.js';
import type { UpstreamTokenConfig } from '../../src/config/types.js';
import { registerWellKnownRoutes, type WellKnownProvider } from '../../src/server/well-known.js';

export class TempDir {
  readonly path = mkdtempSync(join(tmpdir(), 'mint-test-'));
  write(name: string, content: string | Buffer | object): string {
    const data = typeof content === 'string' || Buffer.isBuffer(content) ? content : JSON.stringify(content);
    writeFileSync(join(this.path, name), data, { mode: 0o600 });
    return name;
  }
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** A private key for a JWS alg. */
export function privateKeyFor(alg: string, opts: { rsaBits?: number } = {}): KeyObject {
  if (alg.startsWith('RS') || alg.startsWith('PS')) {
    return generateKeyPairSync('rsa', { modulusLength: opts.rsaBits ?? 2048 }).privateKey;
  }
  if (alg === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  if (alg === 'ES384') return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  if (alg === 'ES512') return generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
  if (alg === 'EdDSA') return generateKeyPairSync('ed25519').privateKey;
  throw new Error(`no key for ${alg}`);
}

export function privateJwk(key: KeyObject, extra: Record<string, unknown> = {}): JWK {
  return { ...(key.export({ format: 'jwk' }) as JWK), ...extra };
}

export function pkcs8Pem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }) as string;
}

export function octJwk(bytes: Buffer, extra: Record<string, unknown> = {}): JWK {
  return { kty: 'oct', k: bytes.toString('base64url'), ...extra };
}

export function randomSecret(n: number): Buffer {
  return randomBytes(n);
}

export function principal(over: Partial<Principal> = {}): Principal {
  const claims = Object.assign(Object.create(null) as Record<string, unknown>, over.claims ?? {});
  return {
    issuer: 'corp-idp',
    sub: 'alice',
    scopes: new Set(['read']),
    scope: 'read',
    cacheKey: `ck-${randomBytes(6).toString('hex')}`,
    ...over,
    claims,
  };
}

export function tokenConfig(over: Partial<UpstreamTokenConfig> = {}): UpstreamTokenConfig {
  return {
    header: 'x-jwt-assertion',
    issuer: 'https://authz.internal',
    audiences: ['backend'],
    ttl_seconds: 300,
    jti: true,
    copy_claims: [],
    claims: {},
    claims_expr: {},
    cache: true,
    cache_max_entries: 100,
    signing: { alg: 'ES256', previous_key_files: [] },
    ...over,
  };
}

export function wellKnownProvider(
  over: Partial<WellKnownProvider> & Pick<WellKnownProvider, 'publicJwks'>,
): WellKnownProvider {
  return {
    issuer: () => 'https://authz.internal',
    tokenEndpointEnabled: () => false,
    publicBaseUrl: () => undefined,
    ...over,
  };
}

/** The JWKS as served by GET /.well-known/jwks.json (fastify inject), as a jose key resolver. */
export async function jwksFromRoute(publicJwks: () => JWK[]): Promise<{
  body: JSONWebKeySet;
  headers: Record<string, unknown>;
  keySet: ReturnType<typeof createLocalJWKSet>;
}> {
  const app = Fastify();
  registerWellKnownRoutes(app, () => wellKnownProvider({ publicJwks }));
  await app.ready();
  try {
    const res = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    if (res.statusCode !== 200) throw new Error(`jwks route answered ${res.statusCode}`);
    const body = res.json() as JSONWebKeySet;
    return { body, headers: res.headers, keySet: createLocalJWKSet(body) };
  } finally {
    await app.close();
  }
}
