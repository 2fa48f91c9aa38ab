// What reaches the logs and the cache metrics, seen from outside the real service:
// x-request-id through gRPC Check, client ids at the token endpoint over HTTP, and
// authz_cache_{hits,misses}_total on GET /metrics.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyCheckRequest } from '../../src/cli/check.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  makeJwks,
  type TestKeyPair,
} from '../helpers/keys.js';
import { clientAssertion } from '../helpers/tokens.js';

const ISSUER = 'https://authz.example.com';
const AUD = 'https://authz.example.com/oauth2/token';
const CORP_ISS = 'https://idp.example.com';
const CLIENT = 'SampleConfidentialApp';
const PORTAL = 'portal';
const PORTAL_SECRET = 'portal-secret';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

let dir: string;
let clientKey: TestKeyPair;
let corp: TestKeyPair;
let svc: TestService;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'logs-it-'));
  clientKey = generateRsaKeyPair({ kid: 'client-1' });
  writeFileSync(join(dir, 'client.crt'), createSelfSignedCertificate(clientKey, { subject: CLIENT }).pem);
  writeFileSync(join(dir, 'signing.jwk.json'), JSON.stringify(generateEcKeyPair({ kid: 'at-1' }).privateJwk));
  writeFileSync(join(dir, 'portal.secret'), `${PORTAL_SECRET}\n`);
  corp = generateEcKeyPair({ kid: 'corp-1' });
  svc = await startTestService(
    {
      issuers: [{ name: 'corp', issuer: CORP_ISS, audiences: ['api://orders'], jwks: makeJwks(corp) }],
      default_action: 'authenticate',
      upstream: {
        claim_headers: { 'x-user-id': 'sub' },
        token: { issuer: 'https://authz.internal', audiences: ['backend'], signing: { alg: 'ES256' } },
      },
      token_endpoint: {
        enabled: true,
        issuer: ISSUER,
        audience: AUD,
        access_token: { format: 'jwt', signing: { alg: 'ES256', key_file: 'signing.jwk.json' } },
        clients: [
          { client_id: CLIENT, certificate_file: 'client.crt', scopes: ['read'] },
          { client_id: PORTAL, client_secret_file: 'portal.secret', scopes: ['read'] },
        ],
      },
    },
    { baseDir: dir, logLevel: 'debug' },
  );
});

afterAll(async () => {
  await svc?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function corpToken(sub = 'alice'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', kid: 'corp-1' })
    .setIssuer(CORP_ISS)
    .setSubject(sub)
    .setAudience('api://orders')
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(corp.privateKey);
}

/** A Check whose x-request-id is exactly `requestId` (the CLI builder would prepend its own). */
async function checkWithRequestId(requestId: string, token?: string): Promise<void> {
  const req = envoyCheckRequest({
    method: 'GET',
    path: '/api/orders',
    host: 'api.example.com',
    headers: [],
    context: [],
  });
  req.attributes.request.http.headers['x-request-id'] = requestId;
  if (token) req.attributes.request.http.headers.authorization = `Bearer ${token}`;
  await svc.checkRaw(req);
}

describe('x-request-id in the decision log', () => {
  const decisionLines = (from: number) =>
    svc.logs.lines.slice(from).filter((l) => l.msg === 'check denied' || l.msg === 'check allowed');

  it('a short id of plain characters is logged as sent', async () => {
    for (const id of ['b7ad6b7169203331', 'req_1.2:3-x', 'r'.repeat(128)]) {
      const from = svc.logs.lines.length;
      await checkWithRequestId(id);
      const lines = decisionLines(from);
      expect(lines).toHaveLength(1);
      expect(lines[0]!.request_id).toBe(id);
    }
  });

  it.each([
    ['longer than 128 characters', 'q'.repeat(200)],
    ['129 characters', 'q'.repeat(129)],
    ['a forged log line after a newline', 'abc\n{"level":60,"msg":"forged-by-client"}'],
    ['a space', 'has space'],
    ['a comma (repeated headers)', 'one,two'],
  ])('%s is replaced by "invalid" and appears nowhere in the logs', async (_what, id) => {
    const from = svc.logs.lines.length;
    await checkWithRequestId(id);
    const lines = decisionLines(from);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.request_id).toBe('invalid');
    const text = svc.logs.text();
    expect(text).not.toContain(id);
    expect(text).not.toContain(JSON.stringify(id).slice(1, -1));
    expect(text).not.toContain('forged-by-client');
  });

  it('an allowed check (claim-header warnings included) carries the same note', async () => {
    const from = svc.logs.lines.length;
    await checkWithRequestId('x'.repeat(300), await corpToken());
    const lines = svc.logs.lines.slice(from).filter((l) => 'request_id' in l);
    expect(lines.some((l) => l.msg === 'check allowed')).toBe(true);
    for (const l of lines) expect(l.request_id).toBe('invalid');
    expect(svc.logs.text()).not.toContain('x'.repeat(300));
  });
});

async function post(
  path: string,
  form: Record<string, string>,
  auth?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${svc.httpUrl}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth ? { authorization: auth } : {}),
    },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** A compact JWS from an issuer nobody registered (rejected after client authentication). */
function strangerAssertion(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer('https://stranger.example.com')
    .setSubject('x')
    .setAudience(AUD)
    .setExpirationTime(now + 60)
    .sign(corp.privateKey);
}

describe('client ids at the token endpoint', () => {
  const endpointLines = (from: number) => svc.logs.lines.slice(from).filter((l) => 'endpoint' in l);

  it('an unregistered Basic username is logged as "unknown", never verbatim', async () => {
    const typed = 's3cr3t-typed-here';
    for (const path of ['/oauth2/token', '/oauth2/introspect', '/oauth2/revoke']) {
      const from = svc.logs.lines.length;
      const form: Record<string, string> =
        path === '/oauth2/token'
          ? { grant_type: JWT_BEARER, assertion: await strangerAssertion() }
          : { token: 'abc' };
      const res = await post(path, form, basic(typed, 'anything'));
      expect(res.status).toBe(401);
      expect(res.json.error).toBe('invalid_client');
      const lines = endpointLines(from);
      expect(lines).toHaveLength(1);
      expect(lines[0]!.client_id).toBe('unknown');
    }
    expect(svc.logs.text()).not.toContain(typed);
  });

  it('an unregistered form client_id is logged as "unknown", never verbatim', async () => {
    const typed = 's3cr3t-in-the-client-id-field';
    let from = svc.logs.lines.length;
    const anonymous = await post('/oauth2/token', {
      grant_type: JWT_BEARER,
      assertion: await strangerAssertion(),
      client_id: typed,
    });
    expect(anonymous.status).toBe(400);
    expect(endpointLines(from)[0]!.client_id).toBe('unknown');

    from = svc.logs.lines.length;
    const revoke = await post('/oauth2/revoke', { token: 'abc', client_id: typed });
    expect(revoke.status).toBe(401);
    expect(endpointLines(from)[0]!.client_id).toBe('unknown');

    // Next to a registered client's Basic credentials: the registered one is logged.
    from = svc.logs.lines.length;
    const mismatch = await post(
      '/oauth2/introspect',
      { token: 'abc', client_id: typed },
      basic(PORTAL, PORTAL_SECRET),
    );
    expect(mismatch.status).toBe(400);
    expect(endpointLines(from)[0]!.client_id).toBe(PORTAL);

    expect(svc.logs.text()).not.toContain(typed);
  });

  it('a registered client with a wrong secret is logged by its id', async () => {
    const from = svc.logs.lines.length;
    const res = await post('/oauth2/introspect', { token: 'abc' }, basic(PORTAL, 'wrong-secret-value'));
    expect(res.status).toBe(401);
    expect(endpointLines(from)[0]!.client_id).toBe(PORTAL);
    expect(svc.logs.text()).not.toContain('wrong-secret-value');
  });
});

async function cacheCounts(): Promise<Record<string, number>> {
  const text = await (await fetch(`${svc.httpUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^authz_cache_(hits|misses)_total\{cache="([a-z_]+)"\} (\d+)$/gm))
    out[`${m[1]}:${m[2]}`] = Number(m[3]);
  return out;
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  // A series that was never incremented may be absent: it counts as 0.
  const out: Record<string, number> = {};
  for (const r of ['hits', 'misses'])
    for (const c of ['verified_token', 'minted_token', 'store'])
      out[`${r}:${c}`] = (after[`${r}:${c}`] ?? 0) - (before[`${r}:${c}`] ?? 0);
  return out;
}

describe('authz_cache_misses_total beside authz_cache_hits_total', () => {
  it('a token enters the verified-token and minted-token caches at its second use (admission): the third hits both', async () => {
    const token = await corpToken('metrics-user');
    const t0 = await cacheCounts();
    await checkWithRequestId('m-1', token);
    const t1 = await cacheCounts();
    const miss = {
      'misses:verified_token': 1,
      'hits:verified_token': 0,
      'misses:minted_token': 1,
      'hits:minted_token': 0,
    };
    // First sighting: verified and minted, neither cached.
    expect(delta(t1, t0)).toMatchObject(miss);
    // Second sighting: verified and minted again, now cached.
    await checkWithRequestId('m-2', token);
    const t2 = await cacheCounts();
    expect(delta(t2, t1)).toMatchObject(miss);
    await checkWithRequestId('m-3', token);
    expect(delta(await cacheCounts(), t2)).toMatchObject({
      'misses:verified_token': 0,
      'hits:verified_token': 1,
      'misses:minted_token': 0,
      'hits:minted_token': 1,
    });
  });

  it("the store-answer cache (revocation of the service's own tokens) counts a miss, then a hit", async () => {
    const assertion = clientAssertion(clientKey, CLIENT, AUD);
    const issued = await post('/oauth2/token', { grant_type: JWT_BEARER, assertion });
    expect(issued.status, JSON.stringify(issued.json)).toBe(200);
    const token = issued.json.access_token as string;
    const t0 = await cacheCounts();
    await checkWithRequestId('s-1', token);
    const t1 = await cacheCounts();
    expect(delta(t1, t0)).toMatchObject({ 'misses:store': 1, 'hits:store': 0 });
    // Store answers are cached for at most a second: the repeat comes right after.
    await checkWithRequestId('s-2', token);
    expect(delta(await cacheCounts(), t1)).toMatchObject({ 'misses:store': 0, 'hits:store': 1 });
  });
});
