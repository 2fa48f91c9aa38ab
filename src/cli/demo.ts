import { generateKeyPairSync } from 'node:crypto';
import type { JWK } from 'jose';
import { relative } from 'node:path';
import { signingKeyFromKeyObject } from '../crypto/key-import.js';
import { jwtHeader, signJws } from '../crypto/sign.js';
import type { Logger } from '../observability/logger.js';
import { nowSeconds, wholeSeconds } from '../core/time.js';
import { ecCurveByAlg } from '../crypto/algorithms.js';

export const DEMO_ISSUER = 'https://demo-idp.envoy-jwt-authz.local';
export const DEMO_AUDIENCE = 'demo-api';
export const DEMO_GRPC_ADDRESS = '127.0.0.1:9001';
export const DEMO_HTTP_ADDRESS = '127.0.0.1:9002';

/** Demo mode: an in-memory issuer with a fresh ES256 key, its config, and one ready token. */
export async function demoSetup(): Promise<{ config: Record<string, unknown>; token: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: ecCurveByAlg('ES256')!.node });
  const signing = await signingKeyFromKeyObject('ES256', privateKey, 'demo-key-1');
  const publicJwk: JWK = {
    ...(publicKey.export({ format: 'jwk' }) as JWK),
    kid: 'demo-key-1',
    alg: 'ES256',
    use: 'sig',
  };
  const now = wholeSeconds(nowSeconds());
  const token = signJws(signing, jwtHeader(signing), {
    iss: DEMO_ISSUER,
    sub: 'demo-user',
    aud: DEMO_AUDIENCE,
    scope: 'read write',
    email: 'demo-user@example.com',
    iat: now,
    exp: now + 3600,
  });
  const config = {
    // Loopback only: the demo trusts a key whose token it just printed for anyone to copy.
    // AUTHZ_GRPC_ADDRESS / AUTHZ_HTTP_ADDRESS still override these, on purpose.
    server: { grpc_address: DEMO_GRPC_ADDRESS, http_address: DEMO_HTTP_ADDRESS },
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

/** How this process was started, as a command the person can paste (`node dist/main.js`). */
function selfCommand(): string {
  const script = process.argv[1] ?? 'dist/main.js';
  const rel = relative(process.cwd(), script);
  return `node ${rel && !rel.startsWith('..') ? rel : script}`;
}

/**
 * The demo token is for the person at the terminal: it is printed as plain text on
 * stderr, never as a field of a log line (log pipelines must not collect tokens).
 */
export function printDemoInstructions(token: string, grpcPort: number, logger: Logger): void {
  logger.warn(
    'DEMO MODE: no --config given; an in-memory issuer with a fresh key is trusted. Do not use in production.',
  );
  const self = selfCommand();
  const address = `127.0.0.1:${grpcPort}`;
  const cmd = `${self} check --address ${address} --path /api/orders --token ${token}`;
  process.stderr.write(
    `\nDemo mode. A ready token (valid 1 hour, scope "read write"):\n\n  ${token}\n\nTry it:\n\n` +
      `  ${cmd}\n` +
      `  ${cmd.replace('/api/orders', '/admin')}   # 403 insufficient_scope\n` +
      `  ${self} check --address ${address} --path /api/orders              # 401 no token\n\n`,
  );
}
