// API keys through the real Envoy (the shipped envoy/envoy.yaml on loopback ports, as in
// envoy.e2e.test.ts): a request with a valid `x-api-key` (or `?api_key=`) reaches the
// upstream with the claim headers and a minted token and without the key; a bad key is
// 401 invalid_token and never reaches the upstream; a key beside a bearer token is 400;
// the per-route `issuers` context extension treats the key source like an issuer.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/authn/api-keys.js';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import { startStack, type Echo, type Stack } from '../helpers/stack.js';
import { jwtMinter } from '../helpers/tokens.js';

const envoy = await envoyOrSkip('Envoy API keys end to end');

const ISSUER = 'https://idp.apikeys.test';
const AUDIENCE = 'api://apikeys';
const idpKey = generateEcKeyPair({ kid: 'apikeys-1' });
const partner = generateApiKey();
const revoked = generateApiKey();

const token = jwtMinter(idpKey, { iss: ISSUER, aud: AUDIENCE, sub: 'alice', scope: 'read' });

describe.skipIf(!envoy)(`Envoy ${envoy?.version ?? ''}: API keys`, () => {
  let stack: Stack;
  let proxy: RunningEnvoy;
  let echoed = 0;

  beforeAll(async () => {
    stack = await startStack(envoy!, {
      dirPrefix: 'envoy-apikeys-',
      files: {
        'partners.json': JSON.stringify({
          keys: [
            {
              id: 'p1',
              hash: partner.hash,
              sub: 'partner-1',
              scopes: ['orders:read'],
              claims: { tenant: 'acme' },
            },
            { id: 'gone', hash: revoked.hash, sub: 'partner-2', disabled: true },
          ],
        }),
      },
      config: {
        issuers: [
          { name: 'corp-idp', issuer: ISSUER, audiences: [AUDIENCE], jwks: { keys: [idpKey.publicJwk] } },
        ],
        api_keys: [
          { name: 'partners', header: 'x-api-key', keys_file: 'partners.json' },
          { name: 'partners-q', query: 'api_key', keys_file: 'partners.json' },
        ],
        rules: [{ name: 'api', match: { path_prefix: '/api' } }],
        upstream: {
          claim_headers: { 'x-user-id': 'sub', 'x-tenant': 'tenant' },
          token: {
            issuer: 'https://authz.internal',
            audiences: ['backend'],
            allowed_audiences: ['orders-service'],
          },
        },
      },
      envoy: {
        mutate: (d) => {
          delete d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log;
        },
      },
    });
    stack.upstream.on('request', () => echoed++);
    proxy = stack.envoy;
  }, 60_000);

  afterAll(() => stack?.stop());

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${proxy.port}${path}`, { headers });

  const noKeyUpstream = (seen: Echo) => {
    expect(seen.headers['x-api-key']).toBeUndefined();
    expect(seen.rawHeaders.map((h) => h.toLowerCase())).not.toContain('x-api-key');
    expect(JSON.stringify(seen)).not.toContain(partner.key);
  };

  it('a valid x-api-key is allowed: claim headers and a minted token upstream, the key is not', async () => {
    const res = await get('/api/orders', { 'x-api-key': partner.key });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Echo;
    expect(seen.headers['x-user-id']).toBe('partner-1');
    expect(seen.headers['x-tenant']).toBe('acme');
    expect(decodeJwt(seen.headers['x-jwt-assertion']!)).toMatchObject({ sub: 'partner-1', aud: 'backend' });
    noKeyUpstream(seen);
  });

  it('a valid key in the query is allowed and the parameter is gone from the upstream URL', async () => {
    const res = await get(`/api/orders?a=1&api_key=${partner.key}&b=2`);
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Echo;
    expect(seen.path).toBe('/api/orders?a=1&b=2');
    expect(seen.headers['x-user-id']).toBe('partner-1');
    noKeyUpstream(seen);
  });

  it('the per-route context extensions apply: a scope the key has, an issuer list without it', async () => {
    // /orders needs orders:read or orders:write (the key has orders:read).
    expect((await get('/orders/1', { 'x-api-key': partner.key })).status).toBe(200);
    // /reports accepts only the issuer named corp-idp.
    const reports = await get('/reports/1', { 'x-api-key': partner.key });
    expect(reports.status).toBe(403);
    expect((await get('/reports/1', { authorization: `Bearer ${token()}` })).status).toBe(200);
  });

  it('unknown and disabled keys → 401 invalid_token; nothing reaches the upstream', async () => {
    const before = echoed;
    for (const key of [generateApiKey().key, revoked.key, partner.hash]) {
      const res = await get('/api/orders', { 'x-api-key': key });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+", error="invalid_token"/);
    }
    expect(echoed).toBe(before);
  });

  it('a key beside a bearer token → 400 invalid_request; nothing reaches the upstream', async () => {
    const before = echoed;
    const res = await get('/api/orders', { 'x-api-key': partner.key, authorization: `Bearer ${token()}` });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_request' });
    expect(echoed).toBe(before);
  });

  it('a public route allows without reading the key, and still strips it', async () => {
    const res = await get('/public/x', { 'x-api-key': 'forged' });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Echo;
    expect(seen.headers['x-api-key']).toBeUndefined();
  });
});
