// A DPoP-bound access token from our own token endpoint, used through the real Envoy:
// the proof is signed for the URL the client sends to Envoy, Envoy hands the DPoP header
// to the ext_authz check, and the check (issuer "self", no sender_constraint configured)
// enforces the token's cnf.jkt.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import type { TestService } from '../helpers/harness.js';
import { createSelfSignedCertificate, generateEcKeyPair, generateRsaKeyPair } from '../helpers/keys.js';
import { dpopProof } from '../helpers/dpop.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { clientAssertion } from '../helpers/tokens.js';

const envoy = await envoyOrSkip('DPoP-bound tokens of the token endpoint through Envoy');

const ISSUER = 'https://authz.e2e.test';
const AUD = 'https://authz.e2e.test/oauth2/token';
const CLIENT = 'e2e-client';
const clientKey = generateRsaKeyPair({ kid: 'e2e-client-1' });
const signing = generateEcKeyPair({ kid: 'e2e-at-1' });
const dpopKey = generateEcKeyPair();
const otherKey = generateEcKeyPair();

const assertion = (): string => clientAssertion(clientKey, CLIENT, AUD);

describe.skipIf(!envoy)('DPoP-bound tokens of the token endpoint through the real Envoy', () => {
  let stack: Stack;
  let svc: TestService;
  let proxy: RunningEnvoy;

  beforeAll(async () => {
    stack = await startStack(envoy!, {
      dirPrefix: 'envoy-dpop-',
      files: {
        'client.crt': createSelfSignedCertificate(clientKey, { subject: CLIENT }).pem,
        'signing.jwk.json': JSON.stringify(signing.privateJwk),
      },
      config: {
        upstream: { claim_headers: { 'x-user-id': 'sub' } },
        token_endpoint: {
          enabled: true,
          issuer: ISSUER,
          audience: AUD,
          access_token: { signing: { alg: 'ES256', key_file: 'signing.jwk.json' } },
          clients: [{ client_id: CLIENT, certificate_file: 'client.crt', scopes: ['read'] }],
        },
      },
      service: { logLevel: 'info' },
    });
    ({ service: svc, envoy: proxy } = stack);
  }, 60_000);

  afterAll(() => stack?.stop());

  it('the bound token passes Envoy with a proof by its key, and is refused as Bearer or with another key', async () => {
    const tokenProof = await dpopProof(dpopKey, { htm: 'POST', htu: `${svc.httpUrl}/oauth2/token` });
    const res = await fetch(`${svc.httpUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: tokenProof },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: await assertion(),
      }).toString(),
    });
    const issued = (await res.json()) as Record<string, string>;
    expect(res.status, JSON.stringify(issued)).toBe(200);
    expect(issued.token_type).toBe('DPoP');
    const tok = issued.access_token!;

    const url = `http://127.0.0.1:${proxy.port}/api/orders`;
    const proof = (key = dpopKey) => dpopProof(key, { htm: 'GET', htu: url, token: tok });
    const ok = await fetch(`${url}?page=1`, {
      headers: { authorization: `DPoP ${tok}`, dpop: await proof() },
    });
    const body = await ok.text();
    expect(ok.status, body).toBe(200);
    const upstream = JSON.parse(body).headers;
    expect(upstream['x-user-id']).toBe(CLIENT);
    expect(upstream.authorization).toBeUndefined();
    expect(upstream.dpop).toBeUndefined();

    const bearer = await fetch(url, { headers: { authorization: `Bearer ${tok}` } });
    expect(bearer.status).toBe(401);
    expect(bearer.headers.get('www-authenticate')).toMatch(/^DPoP /);
    const other = await fetch(url, {
      headers: { authorization: `DPoP ${tok}`, dpop: await proof(otherKey) },
    });
    expect(other.status).toBe(401);
    expect(JSON.parse(await other.text()).error_description).toMatch(/does not match the token/);
  });
});
