// Another identity provider's opaque tokens through the real Envoy: the client sends an
// opaque bearer token, the service introspects it at a local RFC 7662 endpoint, and the
// upstream receives the claim headers (never the token); inactive tokens reach the client
// as 401 with the challenge, an unusable endpoint as 503.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import { startIntrospectionServer, type IntrospectionServer } from '../helpers/introspection-server.js';
import { startStack, type Stack } from '../helpers/stack.js';

const envoy = await envoyOrSkip('Envoy introspection end to end');

const CLIENT_ID = 'envoy-authz';
const SECRET = 'introspection-secret';

describe.skipIf(!envoy)('opaque tokens introspected, through the real Envoy', () => {
  let idp: IntrospectionServer;
  let stack: Stack;
  let proxy: RunningEnvoy;

  beforeAll(async () => {
    idp = await startIntrospectionServer({ clientId: CLIENT_ID, clientSecret: SECRET });
    stack = await startStack(envoy!, {
      dirPrefix: 'envoy-introspection-',
      files: { 'idp.secret': `${SECRET}\n` },
      config: {
        issuers: [
          {
            name: 'legacy',
            issuer: 'https://legacy-idp.e2e.test',
            audiences: ['api://e2e'],
            introspection: { endpoint: idp.url, client_id: CLIENT_ID, client_secret_file: 'idp.secret' },
          },
        ],
        rules: [{ name: 'writers', match: { path_prefix: '/write' }, require: { scopes_all: ['write'] } }],
        upstream: { claim_headers: { 'x-user-id': 'sub', 'x-client-id': 'client_id' } },
      },
    });
    proxy = stack.envoy;
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    await idp?.close();
  });

  const get = (path: string, token: string) =>
    fetch(`http://127.0.0.1:${proxy.port}${path}`, { headers: { authorization: `Bearer ${token}` } });

  it('an active token reaches the upstream with claim headers and without the token', async () => {
    const now = Math.floor(Date.now() / 1000);
    idp.tokens.set('2YotnFZFEjr1zCsicMWpAA', {
      sub: 'alice',
      client_id: 'shop',
      scope: 'read',
      aud: 'api://e2e',
      exp: now + 600,
    });
    const res = await get('/api/orders', '2YotnFZFEjr1zCsicMWpAA');
    const body = await res.text();
    expect(res.status, body).toBe(200);
    const upstream = JSON.parse(body).headers;
    expect(upstream['x-user-id']).toBe('alice');
    expect(upstream['x-client-id']).toBe('shop');
    expect(upstream.authorization).toBeUndefined();
    const scope = await get('/write/orders', '2YotnFZFEjr1zCsicMWpAA');
    expect(scope.status).toBe(403);
    expect(scope.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
  });

  it('an inactive token is 401 with the challenge; an unusable endpoint is 503', async () => {
    const inactive = await get('/api/orders', 'not-a-known-token-0000');
    expect(inactive.status).toBe(401);
    expect(inactive.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    idp.mode = 'not-json';
    const down = await get('/api/orders', 'another-unknown-token-1111');
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ error: 'temporarily_unavailable' });
    idp.mode = 'normal';
  });
});
