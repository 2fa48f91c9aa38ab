// Adversarial tokens against the real service (gRPC Check, as Envoy sends it).
// Every case asserts the exact README "Decisions (what Envoy receives)" outcome (status, HTTP code, challenge, body)
// and the specific deny reason, and that the service still allows a valid token.
import { sign } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type Decision, type EnvoyCall, type TestService } from '../helpers/harness.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import {
  createSelfSignedCertificate,
  generateEcKeyPair,
  generateRsaKeyPair,
  makeJwks,
} from '../helpers/keys.js';
import {
  b64url,
  forgeToken,
  joseSign,
  nonCanonicalSignature,
  rawToken,
  standardClaims,
  type SigningKey,
} from '../helpers/tokens.js';

const ISS = 'https://idp.example.test';
const ISS_ANY = 'https://idp2.example.test';
const AUD = 'api://orders';
const REALM = 'orders-api';
const CACHE = { max_age_seconds: 60, cooldown_seconds: 1, timeout_ms: 300, max_stale_seconds: 3600 };
const MAX_CHECK_MS = 1500;

// Published vectors (RFC 7515 A.5 and E), copied as literals: the project never reads ../shared.
const RFC7515_A5_NONE =
  'eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.';
const RFC7515_E_UNKNOWN_CRIT =
  'eyJhbGciOiJub25lIiwNCiAiY3JpdCI6WyJodHRwOi8vZXhhbXBsZS5jb20vVU5ERUZJTkVEIl0sDQogImh0dHA6Ly9leGFtcGxlLmNvbS9VTkRFRklORUQiOnRydWUNCn0.RkFJTA.';
// RFC 8037 A.4: a valid EdDSA signature over a text payload (not a JSON object).
const RFC8037_A4_TEXT_PAYLOAD =
  'eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg';

const rsa = generateRsaKeyPair({ kid: 'rsa-main' });
const ec = generateEcKeyPair({ kid: 'ec-main' });
const attacker = generateRsaKeyPair({ kid: 'attacker-kid' });
const attackerCert = createSelfSignedCertificate(attacker, { subject: 'attacker' });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => Math.floor(Date.now() / 1000);

function clean(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/** A token for corp-idp signed by the trusted RSA key; override claims and header members (undefined drops). */
function good(
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

let jwks: JwksServer;
let canary: JwksServer;
let svc: TestService;
const sent: string[] = [];

function expectInvalid(d: Decision, reason: string, opts: { token?: string; kid?: unknown } = {}): void {
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

function expectMissing(d: Decision): void {
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

function expectAllow(d: Decision, issuer = 'corp-idp'): void {
  expect({ decision: d.decision, grpc_status: d.grpc_status }).toEqual({ decision: 'allow', grpc_status: 0 });
  expect(d.dynamic_metadata?.issuer).toBe(issuer);
}

async function send(token: string, call: EnvoyCall = {}, service: TestService = svc): Promise<Decision> {
  sent.push(token);
  const started = performance.now();
  const d = await service.check({ token, ...call });
  expect(performance.now() - started).toBeLessThan(MAX_CHECK_MS);
  return d;
}

/** A token for `iss` signed by the trusted RSA key with a pad claim, exactly `length` characters long. */
function tokenOfLength(length: number, iss = ISS): string {
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
  await svc?.close();
  await jwks?.close();
  await canary?.close();
});

describe('adversarial tokens (default max_token_bytes)', () => {
  afterEach(async () => {
    // After every case the process still answers a fresh valid token.
    expectAllow(await send(good()));
  });

  it('baseline: a valid RS256 token is allowed, with metadata', async () => {
    const d = await send(good());
    expectAllow(d);
    expect(d.dynamic_metadata).toMatchObject({ issuer: 'corp-idp', sub: 'user-1' });
  });

  // ------------------------------------------------------------------ alg none
  it.each([
    ['none', ''],
    ['None', ''],
    ['NONE', ''],
  ])('alg %s with an empty signature is malformed (3 non-empty segments required)', async (alg, sig) => {
    const t = forgeToken({ header: { alg, typ: 'JWT' }, payload: standardClaims(ISS, AUD), signature: sig });
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it.each([
    ['none', 'AAAA'],
    ['None', 'AAAA'],
    ['none', 'c2lnbmF0dXJl'],
  ])('alg %s with a non-empty signature is not allowed', async (alg, sig) => {
    const t = forgeToken({
      header: { alg, typ: 'JWT', kid: 'rsa-main' },
      payload: standardClaims(ISS, AUD),
      signature: sig,
    });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
  });

  it('alg none is refused for an issuer with default algorithms too', async () => {
    const t = forgeToken({
      header: { alg: 'none' },
      payload: standardClaims(ISS_ANY, AUD),
      signature: 'AAAA',
    });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
  });

  it('a header without alg is not allowed', async () => {
    const t = forgeToken({
      header: { typ: 'JWT', kid: 'rsa-main' },
      payload: standardClaims(ISS, AUD),
      key: rsa.privateKey,
      signAlg: 'RS256',
    });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
  });

  // ------------------------------------------------------------------ allow-list
  it('ES256 by a key that is in the JWKS is refused when the issuer allows only RS256', async () => {
    const claims = standardClaims(ISS, AUD);
    const t = forgeToken({ header: { alg: 'ES256', kid: 'ec-main' }, payload: claims, key: ec.privateKey });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
    // Control: the same key and alg are accepted by an issuer whose allow-list has ES256.
    const control = forgeToken({
      header: { alg: 'ES256', kid: 'ec-main' },
      payload: { ...claims, iss: ISS_ANY },
      key: ec.privateKey,
    });
    expectAllow(await send(control), 'any-alg');
  });

  it('a jose-signed PS256 token by the trusted RSA key is refused (RS256 only)', async () => {
    const t = await joseSign(standardClaims(ISS, AUD) as never, rsa.privateKey, {
      alg: 'PS256',
      kid: 'rsa-main',
    });
    expectInvalid(await send(t), 'alg_not_allowed', { token: t });
  });

  it('a header that says RS256 over a PS256 signature is a bad signature', async () => {
    const t = forgeToken({
      header: { alg: 'RS256', kid: 'rsa-main' },
      payload: standardClaims(ISS, AUD),
      key: rsa.privateKey,
      signAlg: 'PS256',
    });
    expectInvalid(await send(t), 'signature_invalid', { token: t });
  });

  it('a tampered payload (sub changed after signing) is a bad signature', async () => {
    const t = good({ sub: 'user-1' });
    const [h, , s] = t.split('.');
    const forged = rawToken(h!, b64url(standardClaims(ISS, AUD, { sub: 'admin' })), s!);
    expectInvalid(await send(forged), 'signature_invalid', { token: forged });
  });

  it.each(['rs256', 'RS256 ', ' RS256', 'RS256\u0000', 'HS256', 'ES256K'])(
    'alg %j is not allowed',
    async (alg) => {
      const t = forgeToken({
        header: { alg, kid: 'rsa-main' },
        payload: standardClaims(ISS, AUD),
        key: rsa.privateKey,
        signAlg: 'RS256',
      });
      expectInvalid(await send(t), 'alg_not_allowed', { token: t });
    },
  );

  it('an ES256 signature in DER (not JWS r||s) encoding is a bad signature', async () => {
    const claims = standardClaims(ISS_ANY, AUD);
    const h = b64url({ alg: 'ES256', kid: 'ec-main' });
    const p = b64url(claims);
    const der = sign('sha256', Buffer.from(`${h}.${p}`), { key: ec.privateKey, dsaEncoding: 'der' });
    const t = rawToken(h, p, b64url(der));
    expectInvalid(await send(t), 'signature_invalid', { token: t });
  });

  it('an all-zero ES256 signature (r = s = 0, CVE-2022-21449 shape) is a bad signature', async () => {
    const t = forgeToken({
      header: { alg: 'ES256', kid: 'ec-main' },
      payload: standardClaims(ISS_ANY, AUD),
      signature: b64url(Buffer.alloc(64)),
    });
    expectInvalid(await send(t), 'signature_invalid', { token: t });
  });

  // ------------------------------------------------------------------ key confusion
  const confusionSecrets: [string, () => SigningKey][] = [
    ['SPKI PEM', () => rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string],
    ['PKCS#1 PEM', () => rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string],
    ['SPKI DER', () => rsa.publicKey.export({ type: 'spki', format: 'der' })],
    ['PKCS#1 DER', () => rsa.publicKey.export({ type: 'pkcs1', format: 'der' })],
    ['JWK JSON', () => JSON.stringify(rsa.publicJwk)],
  ];
  it.each(confusionSecrets)(
    'HS256 keyed with the issuer RSA public key (%s) is refused',
    async (_label, secret) => {
      for (const [iss, kid] of [
        [ISS, 'rsa-main'],
        [ISS_ANY, 'rsa-main'],
        [ISS, undefined],
      ] as const) {
        const t = forgeToken({
          header: clean({ alg: 'HS256', typ: 'JWT', kid }),
          payload: standardClaims(iss, AUD),
          key: secret(),
        });
        expectInvalid(await send(t), 'alg_not_allowed', { token: t });
      }
    },
  );

  // ------------------------------------------------------------------ header-borne keys
  it('an embedded jwk header carrying the attacker key is never used', async () => {
    const claims = standardClaims(ISS, AUD);
    const jwk = { ...attacker.publicJwk };
    delete jwk.kid;
    // No kid: every trusted key is tried, none verifies.
    const noKid = forgeToken({ header: { alg: 'RS256', jwk }, payload: claims, key: attacker.privateKey });
    expectInvalid(await send(noKid), 'signature_invalid', { token: noKid });
    // The trusted kid: that key does not verify the attacker's signature.
    const trustedKid = forgeToken({
      header: { alg: 'RS256', kid: 'rsa-main', jwk },
      payload: claims,
      key: attacker.privateKey,
    });
    expectInvalid(await send(trustedKid), 'signature_invalid', { token: trustedKid });
    // The attacker's own kid, with its key embedded: unknown kid.
    const ownKid = forgeToken({
      header: { alg: 'RS256', kid: 'attacker-kid', jwk: attacker.publicJwk },
      payload: claims,
      key: attacker.privateKey,
    });
    expectInvalid(await send(ownKid), 'key_not_found', { token: ownKid, kid: 'attacker-kid' });
  });

  it('jku and x5u pointing at a canary server are never fetched', async () => {
    canary.resetCounts();
    const claims = standardClaims(ISS, AUD);
    const headers = [
      { alg: 'RS256', kid: 'attacker-kid', jku: canary.url },
      { alg: 'RS256', jku: canary.url },
      { alg: 'RS256', kid: 'attacker-kid', x5u: `${canary.baseUrl}/x5u.pem` },
      { alg: 'RS256', x5u: `${canary.baseUrl}/x5u.pem` },
      { alg: 'RS256', kid: 'attacker-kid', jku: canary.url, x5u: `${canary.baseUrl}/x5u.pem` },
    ];
    for (const header of headers) {
      const t = forgeToken({ header, payload: claims, key: attacker.privateKey });
      const d = await send(t);
      expectInvalid(d, 'kid' in header ? 'key_not_found' : 'signature_invalid', { token: t });
    }
    await sleep(200); // nothing fetched in the background either
    expect(canary.log).toHaveLength(0);
    expect(canary.requests).toBe(0);
  });

  it('an x5c header with the attacker certificate is never used', async () => {
    const x5c = [attackerCert.der.toString('base64')];
    const t = forgeToken({
      header: { alg: 'RS256', x5c },
      payload: standardClaims(ISS, AUD),
      key: attacker.privateKey,
    });
    expectInvalid(await send(t), 'signature_invalid', { token: t });
    const withThumb = forgeToken({
      header: { alg: 'RS256', x5c, 'x5t#S256': attackerCert.x5tS256 },
      payload: standardClaims(ISS, AUD),
      key: attacker.privateKey,
    });
    expectInvalid(await send(withThumb), 'key_not_found', { token: withThumb });
  });

  // ------------------------------------------------------------------ kid
  it('a path-traversal kid is just an unknown kid', async () => {
    const kid = '../../etc/passwd';
    const t = good({}, { kid });
    expectInvalid(await send(t), 'key_not_found', { token: t, kid });
  });

  it('a kid of 257 characters is an invalid header', async () => {
    const kid = 'k'.repeat(257);
    const t = good({}, { kid });
    expectInvalid(await send(t), 'header_invalid', { token: t, kid });
  });

  it('a kid of 100k characters exceeds max_token_bytes', async () => {
    const kid = 'K'.repeat(100_000);
    const t = good({}, { kid });
    expectInvalid(await send(t), 'token_too_large', { token: t, kid });
  });

  it.each(['__proto__', 'constructor', 'hasOwnProperty', 'toString'])(
    'kid %s (an Object.prototype name) is just an unknown kid',
    async (kid) => {
      const t = good({}, { kid });
      expectInvalid(await send(t), 'key_not_found', { token: t, kid });
    },
  );

  it.each([
    ['a number', 12345],
    ['an object', { path: '../../etc/passwd' }],
    ['an array', ['rsa-main']],
    ['null', null],
    ['a boolean', true],
  ])('a kid that is %s is an invalid header', async (_label, kid) => {
    const t = good({}, { kid });
    expectInvalid(await send(t), 'header_invalid', { token: t, kid });
  });

  // ------------------------------------------------------------------ crit
  it.each([
    ['an unknown extension', ['http://example.com/UNDEFINED'], { 'http://example.com/UNDEFINED': true }],
    ['a registered name', ['exp'], { exp: 1 }],
    ['b64 (RFC 7797)', ['b64'], { b64: true }],
    ['an empty list', [], {}],
  ])('crit with %s is rejected', async (_label, crit, extra) => {
    const t = good({}, { crit, ...extra });
    expectInvalid(await send(t), 'crit_unsupported', { token: t });
  });

  // ------------------------------------------------------------------ syntax
  it.each([
    ['1 segment', (t: string) => t.split('.')[0]!],
    ['2 segments', (t: string) => t.split('.').slice(0, 2).join('.')],
    ['2 segments and a trailing dot', (t: string) => t.split('.').slice(0, 2).join('.') + '.'],
    ['4 segments', (t: string) => `${t}.${t.split('.')[2]}`],
    ['5 segments (JWE shape)', (t: string) => `${b64url({ alg: 'RSA-OAEP-256', enc: 'A256GCM' })}.${t}.AAAA`],
    ['5 segments made of the token', (t: string) => `${t}.${t.split('.')[0]}.${t.split('.')[1]}`],
    ['an empty payload segment', (t: string) => `${t.split('.')[0]}..${t.split('.')[2]}`],
    ['a leading dot', (t: string) => `.${t}`],
  ])('%s is malformed', async (_label, mutate) => {
    const t = mutate(good());
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it.each([
    [
      '= padding on the payload',
      (h: string, p: string, s: string) => `${h}.${p}${'='.repeat((4 - (p.length % 4)) % 4 || 1)}.${s}`,
    ],
    ['= padding on the signature', (h: string, p: string, s: string) => `${h}.${p}.${s}==`],
    ['= padding on the header', (h: string, p: string, s: string) => `${h}=.${p}.${s}`],
    [
      'a space inside the payload',
      (h: string, p: string, s: string) => `${h}.${p.slice(0, 10)} ${p.slice(10)}.${s}`,
    ],
    [
      'a newline inside the payload',
      (h: string, p: string, s: string) => `${h}.${p.slice(0, 10)}\n${p.slice(10)}.${s}`,
    ],
    [
      'a tab inside the signature',
      (h: string, p: string, s: string) => `${h}.${p}.${s.slice(0, 10)}\t${s.slice(10)}`,
    ],
    [
      'a CRLF inside the header',
      (h: string, p: string, s: string) => `${h.slice(0, 5)}\r\n${h.slice(5)}.${p}.${s}`,
    ],
    [
      'standard base64 characters (+ /)',
      (h: string, p: string, s: string) => `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}+/`,
    ],
  ])('%s is malformed', async (_label, mutate) => {
    const [h, p, s] = good().split('.') as [string, string, string];
    const t = mutate(h, p, s);
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it('a non-canonical base64url signature (same bytes, different last char) is malformed', async () => {
    const original = good();
    const t = nonCanonicalSignature(original);
    expect(t).not.toBe(original);
    expectAllow(await send(original));
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  // ------------------------------------------------------------------ size
  it('a 1 MB token is too large, and answered quickly', async () => {
    const t = good({ pad: 'x'.repeat(1024 * 1024) });
    expect(t.length).toBeGreaterThan(1024 * 1024);
    expectInvalid(await send(t), 'token_too_large', { token: t });
  });

  it('a valid token of exactly max_token_bytes (16384) is allowed; one byte more is too large', async () => {
    const exact = tokenOfLength(16384);
    expectAllow(await send(exact));
    const over = tokenOfLength(16385);
    expectInvalid(await send(over), 'token_too_large', { token: over });
  });

  it('max_token_bytes counts bytes: 8200 two-byte characters (16400 bytes) are too large', async () => {
    const t = 'é'.repeat(8200);
    expect(Buffer.byteLength(t, 'utf8')).toBeGreaterThan(16384);
    expectInvalid(await send(t), 'token_too_large');
  });

  // ------------------------------------------------------------------ JSON
  it('a non-JSON header is malformed', async () => {
    const t = forgeToken({
      header: { raw: '{"alg":"RS256",' },
      payload: standardClaims(ISS, AUD),
      signature: 'AAAA',
    });
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it.each([
    ['a JSON array', { raw: '["RS256"]' }],
    ['a JSON string', { raw: '"RS256"' }],
    ['null', { raw: 'null' }],
  ])('a header that is %s is malformed', async (_label, header) => {
    const t = forgeToken({ header, payload: standardClaims(ISS, AUD), signature: 'AAAA' });
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it.each([
    ['non-JSON text', { raw: 'hello world' }],
    ['truncated JSON', { raw: `{"iss":"${ISS}","aud":"${AUD}"` }],
    ['invalid UTF-8 bytes', { raw: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }],
    ['a JSON array', { raw: JSON.stringify([standardClaims(ISS, AUD)]) }],
    ['a JSON string', { raw: JSON.stringify(ISS) }],
    ['a JSON number', { raw: '42' }],
    ['JSON null', { raw: 'null' }],
    ['JSON true', { raw: 'true' }],
  ])('a payload that is %s (validly signed by the trusted key) is malformed', async (_label, payload) => {
    const t = forgeToken({ header: { alg: 'RS256', kid: 'rsa-main' }, payload, key: rsa.privateKey });
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });

  it('the RFC 8037 A.4 EdDSA token (text payload) is malformed', async () => {
    expectInvalid(await send(RFC8037_A4_TEXT_PAYLOAD), 'token_malformed', { token: RFC8037_A4_TEXT_PAYLOAD });
  });

  // ------------------------------------------------------------------ time claims
  it('an expired token (beyond the 60 s skew) is refused', async () => {
    const t = good({ iat: now() - 600, exp: now() - 120 });
    expectInvalid(await send(t), 'token_expired', { token: t });
  });

  it('a token expired within the clock skew is still accepted', async () => {
    expectAllow(await send(good({ iat: now() - 600, exp: now() - 30 })));
  });

  it('a not-yet-valid token (nbf beyond skew) is refused', async () => {
    const t = good({ nbf: now() + 600, exp: now() + 900 });
    expectInvalid(await send(t), 'token_not_yet_valid', { token: t });
  });

  it('a token issued in the future (iat beyond skew) is refused', async () => {
    const t = good({ iat: now() + 600, exp: now() + 900 });
    expectInvalid(await send(t), 'iat_in_future', { token: t });
  });

  it('a token without exp is refused (required claim)', async () => {
    const t = good({ exp: undefined });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  it.each([
    ['exp as a numeric string', { exp: String(now() + 300) }],
    ['exp as a boolean', { exp: true }],
    ['exp as an object', { exp: { $gt: 0 } }],
    ['nbf as a string', { nbf: 'yesterday' }],
    ['iat as a string', { iat: String(now()) }],
    ['iat as null', { iat: null }],
  ])('%s is an invalid claim', async (_label, claims) => {
    const t = good(claims);
    expectInvalid(await send(t), 'claim_invalid', { token: t });
  });

  it('exp = 1e308 (finite, absurd lifetime) is refused', async () => {
    const t = good({ exp: 1e308 });
    expectInvalid(await send(t), 'lifetime_exceeded', { token: t });
  });

  it.each([
    ['exp', '1e999'],
    ['exp', '-1e999'],
    ['nbf', '1e400'],
    ['iat', '-1e400'],
  ])('%s = %s (overflows to ±Infinity) is an invalid claim', async (name, literal) => {
    // A placeholder number, then the raw literal (JSON.stringify cannot write it).
    const json = JSON.stringify(standardClaims(ISS, AUD, { [name]: 0 }));
    const withClaim = json.replace(`"${name}":0`, `"${name}":${literal}`);
    expect(withClaim).toContain(`"${name}":${literal}`);
    const t = forgeToken({
      header: { alg: 'RS256', kid: 'rsa-main' },
      payload: { raw: withClaim },
      key: rsa.privateKey,
    });
    expectInvalid(await send(t), 'claim_invalid', { token: t });
  });

  it('a lifetime longer than max_lifetime_seconds (86400) is refused; exactly 86400 is fine', async () => {
    const iat = now();
    const t = good({ iat, exp: iat + 86401 });
    expectInvalid(await send(t), 'lifetime_exceeded', { token: t });
    expectAllow(await send(good({ iat, exp: iat + 86400 })));
  });

  // ------------------------------------------------------------------ iss / aud / sub
  it.each([
    ['host case changed', 'https://IDP.example.test'],
    ['scheme case changed', 'HTTPS://idp.example.test'],
    ['trailing slash', `${ISS}/`],
    ['trailing space', `${ISS} `],
    ['a look-alike host', 'https://idp.example.test.evil.test'],
  ])('iss with %s is an unknown issuer', async (_label, iss) => {
    const t = good({ iss });
    expectInvalid(await send(t), 'issuer_unknown', { token: t });
  });

  it.each(['__proto__', 'constructor', 'toString'])('iss %s is an unknown issuer', async (iss) => {
    const t = good({ iss });
    expectInvalid(await send(t), 'issuer_unknown', { token: t });
  });

  it('a sub hidden behind a "__proto__" member does not satisfy required sub', async () => {
    const json = JSON.stringify(standardClaims(ISS, AUD, { sub: undefined })).replace(
      /}$/,
      ',"__proto__":{"sub":"admin","exp":9999999999}}',
    );
    const t = forgeToken({
      header: { alg: 'RS256', kid: 'rsa-main' },
      payload: { raw: json },
      key: rsa.privateKey,
    });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  it('a token without iss is refused', async () => {
    const t = good({ iss: undefined });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  it.each([
    ['another audience', 'api://other'],
    ['a case-changed audience', 'API://orders'],
    ['an empty string', ''],
    ['an empty array', []],
    ['an array of other audiences', ['api://other', 'api://orders/']],
    ['no aud at all', undefined],
  ])('aud as %s is an invalid audience', async (_label, aud) => {
    const t = good({ aud });
    expectInvalid(await send(t), 'audience_invalid', { token: t });
  });

  it.each([
    ['a number', 42],
    ['an array with a number', [AUD, 42]],
    ['an object', { aud: AUD }],
  ])('aud as %s is an invalid claim', async (_label, aud) => {
    const t = good({ aud });
    expectInvalid(await send(t), 'claim_invalid', { token: t });
  });

  it('aud as an array that contains the audience is accepted', async () => {
    expectAllow(await send(good({ aud: ['api://other', AUD] })));
  });

  it('a token without sub is refused (required by default)', async () => {
    const t = good({ sub: undefined });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  it('a token without iat is refused (required by default)', async () => {
    const t = good({ iat: undefined });
    expectInvalid(await send(t), 'claim_missing', { token: t });
  });

  // ------------------------------------------------------------------ extraction
  it.each(['bearer', 'BEARER', 'bEaReR'])('the %s scheme (any case) is accepted', async (scheme) => {
    const t = good();
    sent.push(t);
    expectAllow(await svc.check({ headers: { authorization: `${scheme} ${t}` } }));
  });

  it('a Basic authorization header is no token (401 without error attribute)', async () => {
    const basic = Buffer.from('alice:secret').toString('base64');
    expectMissing(await svc.check({ headers: { authorization: `Basic ${basic}` } }));
  });

  it('no authorization header, an empty one, or a bare scheme is no token', async () => {
    expectMissing(await svc.check({}));
    expectMissing(await svc.check({ headers: { authorization: '' } }));
    expectMissing(await svc.check({ headers: { authorization: 'Bearer' } }));
    expectMissing(await svc.check({ headers: { authorization: 'Bearer ' } }));
  });

  it('two Authorization headers (joined with ",") are refused', async () => {
    const a = good();
    const b = good({ sub: 'user-2' });
    sent.push(a, b);
    const d = await svc.check({ token: a, headers: { authorization: `Bearer ${b}` } });
    expectInvalid(d, 'token_malformed', { token: a });
    expectInvalid(d, 'token_malformed', { token: b });
    // The same valid token twice is refused too.
    expectInvalid(
      await svc.check({ token: a, headers: { authorization: `Bearer ${a}` } }),
      'token_malformed',
      {
        token: a,
      },
    );
  });

  // ------------------------------------------------------------------ published vectors
  it('the RFC 7515 A.5 unsecured JWS (alg none, empty signature) is refused', async () => {
    expectInvalid(await send(RFC7515_A5_NONE), 'token_malformed', { token: RFC7515_A5_NONE });
  });

  it('the RFC 7515 E unknown-crit vector is refused', async () => {
    expectInvalid(await send(RFC7515_E_UNKNOWN_CRIT), 'token_malformed', { token: RFC7515_E_UNKNOWN_CRIT });
  });

  it('the RFC 7515 E crit header with a non-empty signature is refused (alg none first)', async () => {
    const [h, p] = RFC7515_E_UNKNOWN_CRIT.split('.');
    const t = rawToken(h!, p!, 'AAAA');
    expectInvalid(await send(t), 'token_malformed', { token: t });
  });
});

describe('adversarial tokens: logs', () => {
  it('no log line contains a token that was sent, nor a signature segment', async () => {
    const text = svc.logs.text();
    expect(svc.logs.lines.some((l) => l.msg === 'check denied')).toBe(true);
    const distinct = [...new Set(sent)].filter((t) => t.length >= 16);
    expect(distinct.length).toBeGreaterThan(50);
    for (const t of distinct) {
      expect(text.includes(t)).toBe(false);
      const sig = t.split('.')[2];
      if (sig && sig.length >= 16) expect(text.includes(sig)).toBe(false);
    }
  });
});

describe('adversarial tokens with max_token_bytes 262144', () => {
  let big: TestService;
  beforeAll(async () => {
    big = await startTestService({
      realm: REALM,
      max_token_bytes: 262144,
      issuers: [
        {
          name: 'corp-idp',
          issuer: ISS,
          jwks_uri: jwks.url,
          audiences: [AUD],
          algorithms: ['RS256'],
          jwks_cache: CACHE,
        },
      ],
      rules: [],
      default_action: 'authenticate',
    });
  });
  afterAll(async () => {
    await big?.close();
  });

  it('a kid of 100k characters is an invalid header (not a lookup)', async () => {
    const kid = 'K'.repeat(100_000);
    const before = jwks.requests;
    const t = good({}, { kid });
    expectInvalid(await send(t, {}, big), 'header_invalid', { token: t, kid });
    expect(jwks.requests).toBe(before);
  });

  it('a 1 MB token is still too large', async () => {
    const t = good({ pad: 'x'.repeat(1024 * 1024) });
    expectInvalid(await send(t, {}, big), 'token_too_large', { token: t });
  });

  it('a valid 200 kB token is allowed under the raised limit', async () => {
    expectAllow(await send(good({ pad: 'x'.repeat(150_000) }), {}, big));
  });

  it('logs never contain the large tokens', () => {
    const text = big.logs.text();
    expect(text).not.toContain('K'.repeat(1000));
    expect(text).not.toContain('x'.repeat(1000));
  });
});
