// Peer identity through the real Envoy: a TLS listener that requires client
// certificates (signed by a test CA, each with a SPIFFE URI SAN), so the CheckRequest
// carries the principal and the client address Envoy itself reports. A rule's
// require.source_principals lets one workload in and refuses another; CIDR expressions
// on source.address allow the loopback client and refuse it from another block.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import type { TestService } from '../helpers/harness.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { createTestPki, httpsGet, type TestPki, mtlsTransportSocket } from '../helpers/tls.js';
import { jwtMinter } from '../helpers/tokens.js';

const envoy = await envoyOrSkip('Envoy peer identity (SPIFFE, CIDR) end to end');

const ISSUER = 'https://idp.peer-e2e.test';
const AUDIENCE = 'api://e2e';
const idpKey = generateEcKeyPair({ kid: 'e2e-peer-1' });

const token = jwtMinter(idpKey, { iss: ISSUER, aud: AUDIENCE, sub: 'alice', scope: 'read' });

describe.skipIf(!envoy)('peer identity through the real Envoy (downstream mTLS)', () => {
  let pki: TestPki;
  let stack: Stack;
  let svc: TestService;
  let proxy: RunningEnvoy;
  // The test CA issues client certificates with URI SAN spiffe://test/<name>.
  let web: { key: string; cert: string };
  let intruder: { key: string; cert: string };

  beforeAll(async () => {
    pki = createTestPki();
    const server = pki.issue('server');
    const read = (f: { cert: string; key: string }) => ({
      key: readFileSync(f.key, 'utf8'),
      cert: readFileSync(f.cert, 'utf8'),
    });
    web = read(pki.issue('shop-web', { server: false }));
    intruder = read(pki.issue('intruder', { server: false }));
    stack = await startStack(envoy!, {
      dir: pki.dir,
      config: {
        issuers: [{ name: 'idp', issuer: ISSUER, audiences: [AUDIENCE], jwks: { keys: [idpKey.publicJwk] } }],
        rules: [
          {
            name: 'shop',
            match: { path_prefix: '/shop' },
            require: { source_principals: ['spiffe://test/shop-*', 'spiffe://test/ops'] },
          },
          {
            name: 'loopback-only',
            match: { path_prefix: '/loopback' },
            require: {
              expression:
                "cidr('127.0.0.0/8').containsIP(ip(source.address)) && source.port > 0 && source.principal == 'spiffe://test/shop-web'",
            },
          },
          {
            name: 'office-only',
            match: { path_prefix: '/office' },
            require: { expression: "cidr('10.0.0.0/8').containsIP(source.address)" },
          },
        ],
        upstream: { claim_headers: { 'x-user-id': 'sub' } },
      },
      envoy: {
        mutate: (d) => {
          const chain = d.static_resources.listeners[0].filter_chains[0];
          chain.transport_socket = mtlsTransportSocket(server.cert, server.key, pki.caCert);
        },
      },
    });
    ({ service: svc, envoy: proxy } = stack);
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    pki?.cleanup();
  });

  it('source_principals lets the SPIFFE ID it names in and refuses another workload', async () => {
    const headers = { authorization: `Bearer ${token()}` };
    const ok = await httpsGet(proxy.port, '/shop/cart', web, headers);
    expect(ok.status, ok.body).toBe(200);
    expect(JSON.parse(ok.body).headers['x-user-id']).toBe('alice');
    const refused = await httpsGet(proxy.port, '/shop/cart', intruder, headers);
    expect(refused.status).toBe(403);
    // Refused before the token: even without one, the intruder gets 403, the workload 401.
    expect((await httpsGet(proxy.port, '/shop/cart', intruder)).status).toBe(403);
    expect((await httpsGet(proxy.port, '/shop/cart', web)).status).toBe(401);
    const lines = svc.logs.lines.filter((l) => l.msg === 'check denied' && l.rule === 'shop');
    expect(lines.map((l) => l.reason)).toContain('peer_not_allowed');
  });

  it('a CIDR expression on source.address: the loopback client is in 127.0.0.0/8, not in 10.0.0.0/8', async () => {
    const headers = { authorization: `Bearer ${token()}` };
    const inside = await httpsGet(proxy.port, '/loopback', web, headers);
    expect(inside.status, inside.body).toBe(200);
    // The same address, another principal: the expression reads both.
    expect((await httpsGet(proxy.port, '/loopback', intruder, headers)).status).toBe(403);
    const outside = await httpsGet(proxy.port, '/office', web, headers);
    expect(outside.status).toBe(403);
    expect(
      svc.logs.lines.some(
        (l) => l.msg === 'check denied' && l.rule === 'office-only' && l.reason === 'expression_false',
      ),
    ).toBe(true);
  });
});
