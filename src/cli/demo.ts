import { generateKeyPairSync } from 'node:crypto';
import type { JWK } from 'jose';
import { signingKeyFromKeyObject, signJws, jwtHeader } from '../crypto/signing-keys.js';

export const DEMO_ISSUER = 'https://demo-idp.envoy-jwt-authz.local';
export const DEMO_AUDIENCE = 'demo-api';

/** Demo mode: an in-memory issuer with a fresh ES256 key, its config, and one ready token. */
export async function demoSetup(): Promise<{ config: Record<string, unknown>; token: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const signing = await signingKeyFromKeyObject('ES256', privateKey, 'demo-key-1');
  const publicJwk: JWK = {
    ...(publicKey.export({ format: 'jwk' }) as JWK),
    kid: 'demo-key-1',
    alg: 'ES256',
    use: 'sig',
  };
  const now = Math.floor(Date.now() / 1000);
  const token = signJws(signing, jwtHeader(signing) as Record<string, unknown>, {
    iss: DEMO_ISSUER,
    sub: 'demo-user',
    aud: DEMO_AUDIENCE,
    scope: 'read write',
    email: 'demo-user@example.com',
    iat: now,
    exp: now + 3600,
  });
  const config = {
    issuers: [
      {
        name: 'demo',
        issuer: DEMO_ISSUER,
        audiences: [DEMO_AUDIENCE],
        algorithms: ['ES256'],
        jwks: { keys: [publicJwk] },
      },
    ],
    rules: [
      { name: 'public', match: { path_prefix: '/public' }, action: 'allow' },
      { name: 'admin', match: { path_prefix: '/admin' }, require: { scopes_all: ['admin'] } },
      { name: 'api', match: { path_prefix: '/api' }, require: { scopes_any: ['read', 'write'] } },
    ],
    upstream: {
      claim_headers: { 'x-user-id': 'sub', 'x-user-scope': 'scope', 'x-user-email': 'email' },
      token: { issuer: 'https://authz.demo.local', audiences: ['backend'], copy_claims: ['scope', 'email'] },
    },
  };
  return { config, token };
}
