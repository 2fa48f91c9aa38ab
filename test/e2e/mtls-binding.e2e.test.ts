// Sender-constrained tokens through the real Envoy: TLS with client certificates on
// Envoy's listener (DownstreamTlsContext, require_client_certificate) and the ext_authz
// filter with include_peer_certificate, so the CheckRequest carries the certificate the
// client really presented; and DPoP proofs signed for the URL as Envoy received it.
// Certificates are made in the test (test/helpers/keys.ts).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import { createSelfSignedCertificate, generateEcKeyPair, type TestKeyPair } from '../helpers/keys.js';
import { dpopProof, jktOf } from '../helpers/dpop.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { httpsGet, mtlsTransportSocket } from '../helpers/tls.js';
import { jwtMinter } from '../helpers/tokens.js';

const envoy = await envoyOrSkip('Envoy mTLS / DPoP binding end to end');

const MTLS_ISSUER = 'https://mtls-idp.e2e.test';
const DPOP_ISSUER = 'https://dpop-idp.e2e.test';
const AUDIENCE = 'api://e2e';
const idpKey = generateEcKeyPair({ kid: 'e2e-bind-1' });
const serverKey = generateEcKeyPair();
const serverCert = createSelfSignedCertificate(serverKey, { subject: 'localhost' });
const clientA = generateEcKeyPair();
const certA = createSelfSignedCertificate(clientA, { subject: 'client-a' });
const clientB = generateEcKeyPair();
const certB = createSelfSignedCertificate(clientB, { subject: 'client-b' });
const dpopKey = generateEcKeyPair();

const mint = jwtMinter(idpKey, { sub: 'alice', scope: 'read', aud: AUDIENCE });
const token = (iss: string, cnf: Record<string, unknown>): string => mint({ iss, cnf });

describe.skipIf(!envoy)('sender-constrained tokens through the real Envoy (downstream TLS)', () => {
  let stack: Stack;
  let proxy: RunningEnvoy;

  beforeAll(async () => {
    stack = await startStack(envoy!, {
      dirPrefix: 'envoy-mtls-',
      files: {
        'server.crt': serverCert.pem,
        'server.key': serverKey.privateKey.export({ type: 'pkcs8', format: 'pem' }),
        // Both clients are trusted by the TLS layer: which certificate a token accepts is the check's business.
        'clients.pem': certA.pem + certB.pem,
      },
      config: {
        issuers: [
          {
            name: 'mtls-idp',
            issuer: MTLS_ISSUER,
            audiences: [AUDIENCE],
            jwks: { keys: [idpKey.publicJwk] },
            sender_constraint: { mtls: 'required' },
          },
          {
            name: 'dpop-idp',
            issuer: DPOP_ISSUER,
            audiences: [AUDIENCE],
            jwks: { keys: [idpKey.publicJwk] },
            sender_constraint: { dpop: 'required' },
          },
        ],
        upstream: { claim_headers: { 'x-user-id': 'sub' } },
      },
      envoy: {
        mutate: (d, dir) => {
          const chain = d.static_resources.listeners[0].filter_chains[0];
          chain.transport_socket = mtlsTransportSocket(
            join(dir, 'server.crt'),
            join(dir, 'server.key'),
            join(dir, 'clients.pem'),
          );
          const hcm = chain.filters[0].typed_config;
          const extAuthz = hcm.http_filters.find((f: any) => f.name === 'envoy.filters.http.ext_authz');
          extAuthz.typed_config.include_peer_certificate = true;
        },
      },
    });
    proxy = stack.envoy;
  }, 60_000);

  afterAll(() => stack?.stop());

  const pkcs8 = (k: TestKeyPair) => k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const a = { key: pkcs8(clientA), cert: certA.pem };
  const b = { key: pkcs8(clientB), cert: certB.pem };

  it('a certificate-bound token passes with its certificate and is refused with another', async () => {
    const tok = token(MTLS_ISSUER, { 'x5t#S256': certA.x5tS256 });
    for (let i = 0; i < 2; i++) {
      const ok = await httpsGet(proxy.port, '/api/orders', a, { authorization: `Bearer ${tok}` });
      expect(ok.status, ok.body).toBe(200);
      expect(JSON.parse(ok.body).headers['x-user-id']).toBe('alice');
    }
    const other = await httpsGet(proxy.port, '/api/orders', b, { authorization: `Bearer ${tok}` });
    expect(other.status).toBe(401);
    expect(other.headers['www-authenticate']).toMatch(
      /error="invalid_token", error_description="the client certificate does not match the token \(cnf x5t#S256\)"/,
    );
    expect(other.body).not.toContain('CERTIFICATE');
  });

  it('a DPoP proof signed for the URL the client used passes once; a replay is refused', async () => {
    const tok = token(DPOP_ISSUER, { jkt: await jktOf(dpopKey) });
    const proof = await dpopProof(dpopKey, {
      token: tok,
      htm: 'GET',
      htu: `https://127.0.0.1:${proxy.port}/api/orders`,
    });
    const headers = { authorization: `DPoP ${tok}`, dpop: proof };
    const ok = await httpsGet(proxy.port, '/api/orders?page=1', a, headers);
    expect(ok.status, ok.body).toBe(200);
    const upstream = JSON.parse(ok.body).headers;
    expect(upstream.authorization).toBeUndefined();
    expect(upstream.dpop).toBeUndefined();
    const replay = await httpsGet(proxy.port, '/api/orders?page=1', a, headers);
    expect(replay.status).toBe(401);
    expect(replay.headers['www-authenticate']).toMatch(
      /^DPoP realm="[^"]*", algs="[^"]+", error="invalid_dpop_proof"/,
    );
    const wrongUrl = await dpopProof(dpopKey, {
      token: tok,
      htu: `http://127.0.0.1:${proxy.port}/api/orders`,
    });
    const refused = await httpsGet(proxy.port, '/api/orders', a, {
      authorization: `DPoP ${tok}`,
      dpop: wrongUrl,
    });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).error_description).toMatch(/htu does not match/);
  });
});
