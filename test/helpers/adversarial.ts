// Shared setup of the adversarial integration tests (test/integration/adversarial-*.test.ts):
// trusted and attacker keys, published vectors, token builders, the exact-outcome
// assertions, and the running service with its JWKS servers (live bindings).
import { afterAll, beforeAll, expect } from 'vitest';
import { startTestService, type Decision, type EnvoyCall, type TestService } from './harness.js';
import { startJwksServer, type JwksServer } from './jwks-server.js';
import { createSelfSignedCertificate, generateEcKeyPair, generateRsaKeyPair, makeJwks } from './keys.js';
import { b64url, forgeToken, standardClaims, type SigningKey } from './tokens.js';

export const ISS = 'https://idp.example.test';
export const ISS_ANY = 'https://idp2.example.test';
export const AUD = 'api://orders';
export const REALM = 'orders-api';
export const CACHE = { max_age_seconds: 60, cooldown_seconds: 1, timeout_ms: 300, max_stale_seconds: 3600 };
export const MAX_CHECK_MS = 1500;

// Published vectors (RFC 7515 A.5 and E), copied as literals: the project never reads ../shared.
export const RFC7515_A5_NONE =
  'eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.';
export const RFC7515_E_UNKNOWN_CRIT =
  'eyJhbGciOiJub25lIiwNCiAiY3JpdCI6WyJodHRwOi8vZXhhbXBsZS5jb20vVU5ERUZJTkVEIl0sDQogImh0dHA6Ly9leGFtcGxlLmNvbS9VTkRFRklORUQiOnRydWUNCn0.RkFJTA.';
// RFC 8037 A.4: a valid EdDSA signature over a text payload (not a JSON object).
export const RFC8037_A4_TEXT_PAYLOAD =
  'eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg';

export const rsa = generateRsaKeyPair({ kid: 'rsa-main' });
export const ec = generateEcKeyPair({ kid: 'ec-main' });
export const attacker = generateRsaKeyPair({ kid: 'attacker-kid' });
export const attackerCert = createSelfSignedCertificate(attacker, { subject: 'attacker' });

export const now = () => Math.floor(Date.now() / 1000);

export function clean(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/** A token for corp-idp signed by the trusted RSA key; override claims and header members (undefined drops). */
export function good(
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  key: SigningKey = rsa.privateKey,
) {
  return forgeToken({
    header: clean({ alg: 'RS256', typ: 'JWT', kid: 'rsa-main', ...header }),
    payload: standardClaims(ISS, AUD, claims),
    key,
  });
}

export let jwks: JwksServer;
export let canary: JwksServer;
export let svc: TestService;
export const sent: string[] = [];

export function expectInvalid(
  d: Decision,
  reason: string,
  opts: { token?: string; kid?: unknown } = {},
): void {
  expect({
    decision: d.decision,
    grpc_status: d.grpc_status,
    http_status: d.http_status,
    reason: d.reason,
  }).toEqual({
    decision: 'deny',
    grpc_status: 16,
    http_status: 401,
    reason,
  });
  expect(d.headers['content-type']).toBe('application/json');
  expect(d.body).toEqual({ error: 'invalid_token', error_description: expect.any(String) });
  const description: string = d.body.error_description;
  expect(description.length).toBeGreaterThan(0);
  const escaped = description.replace(/[\\"]/g, '\\$&');
  expect(d.headers['www-authenticate']).toBe(
    `Bearer realm="${REALM}", error="invalid_token", error_description="${escaped}"`,
  );
  // error_description never echoes the token (or a sizeable piece of it) or the kid.
  const secrets: string[] = [];
  if (opts.token !== undefined) {
    secrets.push(opts.token);
    for (const seg of opts.token.split('.')) if (seg.length >= 8) secrets.push(seg);
  }
  if (opts.kid !== undefined) {
    const kid = typeof opts.kid === 'string' ? opts.kid : JSON.stringify(opts.kid);
    if (kid.length >= 3) secrets.push(kid, kid.slice(0, 32));
  }
  for (const s of secrets) {
    expect(description).not.toContain(s);
    expect(d.headers['www-authenticate']).not.toContain(s);
  }
}

export function expectMissing(d: Decision): void {
  expect({
    decision: d.decision,
    grpc_status: d.grpc_status,
    http_status: d.http_status,
    reason: d.reason,
  }).toEqual({
    decision: 'deny',
    grpc_status: 16,
    http_status: 401,
    reason: 'token_missing',
  });
  expect(d.headers['www-authenticate']).toBe(`Bearer realm="${REALM}"`);
  expect(d.headers['content-type']).toBe('application/json');
  expect(d.body).toEqual({ error: 'unauthorized' });
}

export function expectAllow(d: Decision, issuer = 'corp-idp'): void {
  expect({ decision: d.decision, grpc_status: d.grpc_status }).toEqual({ decision: 'allow', grpc_status: 0 });
  expect(d.dynamic_metadata?.issuer).toBe(issuer);
}

export async function send(
  token: string,
  call: EnvoyCall = {},
  service: TestService = svc,
): Promise<Decision> {
  sent.push(token);
  const started = performance.now();
  const d = await service.check({ token, ...call });
  expect(performance.now() - started).toBeLessThan(MAX_CHECK_MS);
  return d;
}

/** A token for `iss` signed by the trusted RSA key with a pad claim, exactly `length` characters long. */
export function tokenOfLength(length: number, iss = ISS): string {
  const sigLen = 342; // RS256 with a 2048-bit key
  const base = standardClaims(iss, AUD, { pad: '' });
  for (const extra of ['', 'a', 'ab', 'abc']) {
    const header = clean({ alg: 'RS256', typ: 'JWT', kid: 'rsa-main', x: extra || undefined });
    const h = b64url(header).length;
    const p0 = b64url(base).length;
    const need = length - h - sigLen - 2;
    // pad grows the payload by ~4/3 chars per byte: search around the estimate.
    const estimate = Math.max(0, Math.floor(((need - p0) * 3) / 4) - 4);
    for (let n = estimate; n < estimate + 12; n++) {
      const payload = { ...base, pad: 'p'.repeat(n) };
      if (h + b64url(payload).length + sigLen + 2 === length) {
        const t = forgeToken({ header, payload, key: rsa.privateKey });
        if (t.length !== length) throw new Error('tokenOfLength: miscalculated');
        return t;
      }
    }
  }
  throw new Error(`tokenOfLength: cannot build ${length}`);
}

/** Starts the JWKS servers and the service (the module-level lets above) for one adversarial test file. */
export function useAdversarialService(): void {
  beforeAll(async () => {
    jwks = await startJwksServer({ jwks: makeJwks(rsa, ec) });
    canary = await startJwksServer({ jwks: makeJwks(attacker) });
    canary.route('/x5u.pem', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/pem-certificate-chain' });
      res.end(attackerCert.pem);
    });
    svc = await startTestService({
      realm: REALM,
      issuers: [
        {
          name: 'corp-idp',
          issuer: ISS,
          jwks_uri: jwks.url,
          audiences: [AUD],
          algorithms: ['RS256'],
          jwks_cache: CACHE,
        },
        // Same JWKS, default (asymmetric) algorithms: a control that the EC key itself is usable.
        { name: 'any-alg', issuer: ISS_ANY, jwks_uri: jwks.url, audiences: [AUD], jwks_cache: CACHE },
      ],
      rules: [],
      default_action: 'authenticate',
    });
  });
  afterAll(async () => {
    // Each file has its own service: whatever it sent must not have reached its logs.
    if (svc) {
      const text = svc.logs.text();
      for (const t of new Set(sent)) if (t.length >= 16) expect(text.includes(t)).toBe(false);
    }
    await svc?.close();
    await jwks?.close();
    await canary?.close();
  });
}
