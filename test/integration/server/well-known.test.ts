import Fastify, { type FastifyInstance } from 'fastify';
import { createRemoteJWKSet, jwtVerify, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { registerWellKnownRoutes, type WellKnownProvider } from '../../../src/server/well-known.js';
import { jwtHeader, signJws } from '../../../src/crypto/sign.js';
import { loadSigningKeys } from '../../../src/crypto/signing-keys.js';
import { wellKnownProvider } from '../../helpers/mint.js';
import { captureLogger } from '../../helpers/logger.js';

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function app(provider: () => WellKnownProvider): Promise<FastifyInstance> {
  const a = Fastify();
  apps.push(a);
  registerWellKnownRoutes(a, provider);
  await a.ready();
  return a;
}

const jwk = (kid: string, alg: string): JWK => ({
  kty: 'OKP',
  crv: 'Ed25519',
  x: 'AAAA',
  kid,
  alg,
  use: 'sig',
});

describe('GET /.well-known/jwks.json', () => {
  it('serves every published key with a short public cache lifetime', async () => {
    const keys = [jwk('a', 'EdDSA'), jwk('b', 'EdDSA')];
    const a = await app(() => wellKnownProvider({ publicJwks: () => keys }));
    const res = await a.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ keys });
  });

  it('asks the provider on every request (config reloads swap it)', async () => {
    let keys = [jwk('a', 'EdDSA')];
    const a = await app(() => wellKnownProvider({ publicJwks: () => keys }));
    expect((await a.inject('/.well-known/jwks.json')).json().keys.map((k: JWK) => k.kid)).toEqual(['a']);
    keys = [jwk('b', 'EdDSA'), jwk('a', 'EdDSA')];
    expect((await a.inject('/.well-known/jwks.json')).json().keys.map((k: JWK) => k.kid)).toEqual(['b', 'a']);
  });

  it('an empty key list is {keys: []}', async () => {
    const a = await app(() => wellKnownProvider({ publicJwks: () => [] }));
    expect((await a.inject('/.well-known/jwks.json')).json()).toEqual({ keys: [] });
  });

  it('jose verifies a minted token with the JWKS fetched from a real listening server', async () => {
    const { logger } = captureLogger();
    const keys = await loadSigningKeys({ alg: 'ES384', previous_key_files: [] }, 'upstream.token.signing', {
      baseDir: '.',
      logger,
    });
    const a = await app(() => wellKnownProvider({ publicJwks: () => keys.publicJwks() }));
    const address = await a.listen({ host: '127.0.0.1', port: 0 });
    const token = signJws(keys.current, jwtHeader(keys.current), {
      sub: 'alice',
      iss: 'https://authz.internal',
    });
    const remote = createRemoteJWKSet(new URL(`${address}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(token, remote, { issuer: 'https://authz.internal' });
    expect(payload.sub).toBe('alice');
  });
});

describe('GET /.well-known/openid-configuration', () => {
  it('without the token endpoint: issuer and jwks_uri derived from the request', async () => {
    const a = await app(() => wellKnownProvider({ publicJwks: () => [jwk('a', 'ES256')] }));
    const res = await a.inject({
      url: '/.well-known/openid-configuration',
      headers: { host: 'authz.local:9002' },
    });
    expect(res.statusCode).toBe(200);
    // Built from this request's Host: not to be cached and served to others.
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.vary).toBe('Host');
    expect(res.json()).toEqual({
      issuer: 'https://authz.internal',
      jwks_uri: 'http://authz.local:9002/.well-known/jwks.json',
      id_token_signing_alg_values_supported: ['ES256'],
    });
  });

  it('with the token endpoint: endpoints, grants and auth methods under public_base_url (no trailing slash)', async () => {
    const a = await app(() =>
      wellKnownProvider({
        publicJwks: () => [jwk('a', 'ES256'), jwk('b', 'RS256'), jwk('c', 'ES256')],
        issuer: () => 'https://authz.example.com',
        tokenEndpointEnabled: () => true,
        publicBaseUrl: () => 'https://authz.example.com/',
      }),
    );
    const res = await a.inject({ url: '/.well-known/openid-configuration', headers: { host: 'ignored' } });
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    expect(res.headers.vary).toBeUndefined();
    const doc = res.json();
    expect(doc).toMatchObject({
      issuer: 'https://authz.example.com',
      jwks_uri: 'https://authz.example.com/.well-known/jwks.json',
      token_endpoint: 'https://authz.example.com/oauth2/token',
      revocation_endpoint: 'https://authz.example.com/oauth2/revoke',
      introspection_endpoint: 'https://authz.example.com/oauth2/introspect',
      grant_types_supported: ['urn:ietf:params:oauth:grant-type:jwt-bearer', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'private_key_jwt'],
      id_token_signing_alg_values_supported: ['ES256', 'RS256'],
    });
    expect(doc.token_endpoint_auth_signing_alg_values_supported).toEqual(
      expect.arrayContaining(['RS256', 'ES256', 'EdDSA']),
    );
    expect(doc.token_endpoint_auth_signing_alg_values_supported).not.toContain('HS256');
  });

  it('a base URL with a path keeps the path', async () => {
    const a = await app(() =>
      wellKnownProvider({ publicJwks: () => [], publicBaseUrl: () => 'https://gw.example.com/authz//' }),
    );
    const doc = (await a.inject('/.well-known/openid-configuration')).json();
    expect(doc.jwks_uri).toBe('https://gw.example.com/authz/.well-known/jwks.json');
    expect(doc).not.toHaveProperty('token_endpoint');
    expect(doc).not.toHaveProperty('id_token_signing_alg_values_supported');
  });

  it('404 when the service issues no tokens', async () => {
    const a = await app(() => wellKnownProvider({ publicJwks: () => [], issuer: () => undefined }));
    const res = await a.inject('/.well-known/openid-configuration');
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe('not_found');
  });
});
