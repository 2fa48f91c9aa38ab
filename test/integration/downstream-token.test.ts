// The downstream token (README "Configuration" `upstream.token`, "Downstream tokens") end to end through the REAL
// service: gRPC Check → the header in ok_response → verified or decrypted with jose
// against the running service's own /.well-known/jwks.json. Key files are written to
// a temp dir (the config's baseDir); private keys are generated per run.
import { createPublicKey, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import {
  calculateJwkThumbprint,
  compactDecrypt,
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  SignJWT,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigObject } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { JWS_ALGORITHMS } from '../../src/config/schema.js';
import { MintError } from '../../src/upstream/downstream-token.js';
import { TempDir, octJwk, pkcs8Pem, privateJwk, privateKeyFor } from '../helpers/mint.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { createSelfSignedCertificate, generateEcKeyPair, makeJwks } from '../helpers/keys.js';

const IDP_ISS = 'https://idp.example.com';
const IDP_AUD = 'api://orders';
const DOWN_ISS = 'https://authz.internal';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const idp = generateEcKeyPair({ kid: 'idp-1' });
let dir: TempDir;
const open: TestService[] = [];

beforeAll(() => {
  dir = new TempDir();
});
afterAll(async () => {
  await Promise.all(open.map((s) => s.close()));
  dir?.remove();
});

const nowSec = (): number => Math.floor(Date.now() / 1000);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An incoming (IdP) access token; distinct on every call (its own jti). */
async function incoming(claims: Record<string, unknown> = {}, opts: { exp?: number } = {}): Promise<string> {
  const now = nowSec();
  return new SignJWT({
    sub: 'alice',
    scope: 'read write',
    email: 'alice@example.com',
    department: 'eng',
    realm_access: { roles: ['eng', 'ops'] },
    groups: ['g1', 'g2'],
    jti: randomUUID(),
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', kid: idp.kid, typ: 'JWT' })
    .setIssuer(IDP_ISS)
    .setAudience(IDP_AUD)
    .setIssuedAt(now)
    .setExpirationTime(opts.exp ?? now + 600)
    .sign(idp.privateKey);
}

/** A full service config whose `upstream.token` is `token`. */
function config(
  token: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    log: { level: 'debug' },
    issuers: [
      {
        name: 'corp',
        issuer: IDP_ISS,
        audiences: [IDP_AUD],
        algorithms: ['ES256'],
        jwks: makeJwks(idp),
        claim_mappings: [{ from: 'groups', to: 'teams' }],
      },
    ],
    rules: [{ name: 'public', match: { path_prefix: '/public' }, action: 'allow' }],
    upstream: { token: { issuer: DOWN_ISS, audiences: ['backend'], ...token } },
    ...extra,
  };
}

async function start(cfg: Record<string, unknown>): Promise<TestService> {
  const svc = await startTestService(cfg, { baseDir: dir.path, logLevel: 'debug' });
  open.push(svc);
  return svc;
}

async function reload(svc: TestService, cfg: Record<string, unknown>): Promise<void> {
  await svc.service.reload(loadConfigObject(cfg, dir.path, {}));
}

const jwksUrl = (svc: TestService): URL => new URL(`${svc.httpUrl}/.well-known/jwks.json`);

async function fetchJwks(svc: TestService): Promise<JSONWebKeySet> {
  const res = await fetch(jwksUrl(svc));
  expect(res.status).toBe(200);
  return (await res.json()) as JSONWebKeySet;
}

/** Allowed Check → the downstream token header value. */
async function mintedVia(
  svc: TestService,
  call: { token?: string; context?: Record<string, string>; headers?: Record<string, string> } = {},
  header = 'x-jwt-assertion',
): Promise<string> {
  const d = await svc.check({ token: call.token ?? (await incoming()), ...call });
  expect(d.decision, JSON.stringify(d)).toBe('allow');
  const value = d.headers[header];
  expect(value).toBeTypeOf('string');
  return value!;
}

async function cacheHits(svc: TestService, cache: string): Promise<number> {
  const text = await (await fetch(`${svc.httpUrl}/metrics`)).text();
  const m = new RegExp(`^authz_cache_hits_total\\{cache="${cache}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Secret bytes for a secret_file: never ending in CR or LF, so the one-newline rule is unambiguous. */
function secretBytes(n: number): Buffer {
  const b = randomBytes(n);
  b[n - 1] = b[n - 1]! | 0x80;
  return b;
}

function publicJwkOf(key: KeyObject, extra: Record<string, unknown> = {}): JWK {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  return { ...(pub.export({ format: 'jwk' }) as JWK), ...extra };
}

const spkiPem = (key: KeyObject): string =>
  (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'pem', type: 'spki' }) as string;

// ---------------------------------------------------------------------------

// Every JWS alg the service signs with (the config schema's list).
const JWS_ALGS = JWS_ALGORITHMS;

describe('signed downstream token, every JWS alg, verified against the running service', () => {
  interface Setup {
    svc: TestService;
    /** HS secret */
    secret?: Uint8Array;
    /** the kid the header must carry */
    kid: string;
  }
  const setups = new Map<string, Setup>();

  beforeAll(async () => {
    // One service per alg, started in parallel. Keys alternate between JWK files (with
    // an explicit kid) and PKCS#8 PEM files (kid = RFC 7638 thumbprint).
    await Promise.all(
      JWS_ALGS.map(async (alg, i) => {
        let signing: Record<string, unknown>;
        let kid: string;
        let secret: Uint8Array | undefined;
        if (alg.startsWith('HS')) {
          const bytes = secretBytes(Number(alg.slice(2)) / 8 + 8);
          secret = new Uint8Array(bytes);
          // One trailing newline is removed from a secret_file.
          signing = {
            alg,
            secret_file: dir.write(`${alg}.secret`, Buffer.concat([bytes, Buffer.from('\n')])),
          };
          kid = await calculateJwkThumbprint({ kty: 'oct', k: bytes.toString('base64url') });
        } else {
          const key = privateKeyFor(alg);
          if (i % 2 === 0) {
            kid = `sig-${alg.toLowerCase()}`;
            signing = { alg, key_file: dir.write(`${alg}.jwk.json`, privateJwk(key, { kid })) };
          } else {
            kid = await calculateJwkThumbprint(publicJwkOf(key));
            signing = { alg, key_file: dir.write(`${alg}.pem`, pkcs8Pem(key)) };
          }
        }
        const svc = await start(config({ signing }));
        setups.set(alg, { svc, kid, ...(secret ? { secret } : {}) });
      }),
    );
  });

  it.each(JWS_ALGS)('%s', async (alg) => {
    const { svc, kid, secret } = setups.get(alg)!;
    const jwt = await mintedVia(svc);
    expect(jwt.split('.')).toHaveLength(3);
    expect(decodeProtectedHeader(jwt)).toEqual({ alg, kid, typ: 'JWT' });
    const jwks = await fetchJwks(svc);
    const opts = { issuer: DOWN_ISS, audience: 'backend', algorithms: [alg] };
    let payload: JWTPayload;
    if (secret) {
      // Symmetric keys are never published.
      expect(jwks.keys).toEqual([]);
      ({ payload } = await jwtVerify(jwt, secret, opts));
      // ... and the JWKS cannot verify it.
      await expect(jwtVerify(jwt, createLocalJWKSet(jwks), opts)).rejects.toThrow();
    } else {
      expect(jwks.keys).toHaveLength(1);
      const [pub] = jwks.keys;
      expect(pub).toMatchObject({ kid, alg, use: 'sig' });
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(pub).not.toHaveProperty(member);
      ({ payload } = await jwtVerify(jwt, createRemoteJWKSet(jwksUrl(svc)), opts));
    }
    expect(payload).toMatchObject({ iss: DOWN_ISS, sub: 'alice', aud: 'backend' });
  });
});

// ---------------------------------------------------------------------------

const KEY_MANAGEMENT = [
  'RSA-OAEP',
  'RSA-OAEP-256',
  'ECDH-ES',
  'ECDH-ES+A128KW',
  'ECDH-ES+A192KW',
  'ECDH-ES+A256KW',
  'A128KW',
  'A192KW',
  'A256KW',
  'dir',
] as const;
const CONTENT = ['A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512', 'A128GCM', 'A192GCM', 'A256GCM'] as const;
const ENC_BYTES: Record<string, number> = {
  'A128CBC-HS256': 32,
  'A192CBC-HS384': 48,
  'A256CBC-HS512': 64,
  A128GCM: 16,
  A192GCM: 24,
  A256GCM: 32,
};
const KW_BYTES: Record<string, number> = { A128KW: 16, A192KW: 24, A256KW: 32 };
const PAIRS = KEY_MANAGEMENT.flatMap((alg) => CONTENT.map((enc) => [alg, enc] as const));

describe('nested JWT (sign, then encrypt), every key management × content encryption pair', () => {
  let svc: TestService;
  let rsa: { privateKey: KeyObject; publicKey: KeyObject };
  const ecdh: Record<string, { privateKey: KeyObject; publicKey: KeyObject }> = {};
  let signingFile: string;

  beforeAll(async () => {
    signingFile = dir.write(
      'jwe-signing.jwk.json',
      privateJwk(privateKeyFor('ES256'), { kid: 'sig-nested' }),
    );
    rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    ecdh['ECDH-ES'] = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    ecdh['ECDH-ES+A128KW'] = generateKeyPairSync('x25519');
    ecdh['ECDH-ES+A192KW'] = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    ecdh['ECDH-ES+A256KW'] = generateKeyPairSync('ec', { namedCurve: 'P-521' });
    svc = await start(config({ signing: { alg: 'ES256', key_file: signingFile } }));
  });

  /** Writes the recipient key for alg/enc in varying forms; returns the encryption config and the decryption key. */
  function recipient(
    alg: string,
    enc: string,
  ): { encryption: Record<string, unknown>; decryptKey: KeyObject | Uint8Array; kid?: string } {
    const base = `${alg}-${enc}`;
    if (alg === 'RSA-OAEP') {
      // The backend's certificate.
      const cert = createSelfSignedCertificate(rsa, { subject: 'backend' });
      return {
        encryption: { alg, enc, key_file: dir.write(`${base}.crt`, cert.pem) },
        decryptKey: rsa.privateKey,
      };
    }
    if (alg === 'RSA-OAEP-256') {
      return {
        encryption: { alg, enc, key_file: dir.write(`${base}.pub.pem`, spkiPem(rsa.publicKey)) },
        decryptKey: rsa.privateKey,
      };
    }
    if (alg.startsWith('ECDH-ES')) {
      const pair = ecdh[alg]!;
      if (alg === 'ECDH-ES' || alg === 'ECDH-ES+A256KW') {
        const kid = `enc-${alg.toLowerCase()}`;
        return {
          encryption: {
            alg,
            enc,
            key_file: dir.write(`${base}.jwk.json`, publicJwkOf(pair.publicKey, { kid })),
          },
          decryptKey: pair.privateKey,
          kid,
        };
      }
      return {
        encryption: { alg, enc, key_file: dir.write(`${base}.pub.pem`, spkiPem(pair.publicKey)) },
        decryptKey: pair.privateKey,
      };
    }
    const bytes = secretBytes(alg === 'dir' ? ENC_BYTES[enc]! : KW_BYTES[alg]!);
    const asSecretFile = alg === 'A128KW' || alg === 'A256KW' || enc.endsWith('GCM');
    const encryption = asSecretFile
      ? { alg, enc, secret_file: dir.write(`${base}.bin`, bytes) }
      : { alg, enc, key_file: dir.write(`${base}.jwk.json`, octJwk(bytes)) };
    return { encryption, decryptKey: new Uint8Array(bytes) };
  }

  it.each(PAIRS)('%s / %s', async (alg, enc) => {
    const { encryption, decryptKey, kid } = recipient(alg, enc);
    await reload(svc, config({ signing: { alg: 'ES256', key_file: signingFile }, encryption }));
    const jwe = await mintedVia(svc);
    expect(jwe.split('.')).toHaveLength(5);
    const { plaintext, protectedHeader } = await compactDecrypt(jwe, decryptKey, {
      keyManagementAlgorithms: [alg],
      contentEncryptionAlgorithms: [enc],
    });
    expect(protectedHeader).toMatchObject({ alg, enc, cty: 'JWT' });
    if (kid) expect(protectedHeader.kid).toBe(kid);
    const inner = new TextDecoder().decode(plaintext);
    expect(inner.split('.')).toHaveLength(3);
    expect(decodeProtectedHeader(inner)).toEqual({ alg: 'ES256', kid: 'sig-nested', typ: 'JWT' });
    const { payload } = await jwtVerify(inner, createRemoteJWKSet(jwksUrl(svc)), {
      issuer: DOWN_ISS,
      audience: 'backend',
      algorithms: ['ES256'],
    });
    expect(payload.sub).toBe('alice');
  });

  it('RSA1_5 is refused at startup, naming RFC 8725 and RSA-OAEP-256', async () => {
    const key_file = dir.write('rsa1_5.pub.pem', spkiPem(rsa.publicKey));
    const cfg = config({
      signing: { alg: 'ES256', key_file: signingFile },
      encryption: { alg: 'RSA1_5', enc: 'A256GCM', key_file },
    });
    const err = await startTestService(cfg, { baseDir: dir.path }).then(
      async (s) => {
        await s.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('upstream.token.encryption.alg');
    expect(problems).toContain('RFC 8725');
    expect(problems).toContain('RSA-OAEP-256');
    expect(problems).toMatch(/padding.oracle/i);

    // A reload to RSA1_5 is refused the same way and the old config keeps serving.
    await reload(svc, config({ signing: { alg: 'ES256', key_file: signingFile } }));
    await expect(reload(svc, cfg)).rejects.toBeInstanceOf(ConfigError);
    const still = await mintedVia(svc);
    expect(still.split('.')).toHaveLength(3);
  });
});

// ---------------------------------------------------------------------------

describe('signing key rotation through reload', () => {
  it('previous keys stay published; old tokens verify; new tokens use the new key', async () => {
    const k1 = dir.write('rot-k1.jwk.json', privateJwk(privateKeyFor('ES256'), { kid: 'k1' }));
    const k2 = dir.write('rot-k2.jwk.json', privateJwk(privateKeyFor('ES256'), { kid: 'k2' }));
    const svc = await start(config({ signing: { alg: 'ES256', key_file: k1 } }));
    const opts = { issuer: DOWN_ISS, audience: 'backend' };

    const callerToken = await incoming();
    const t1 = await mintedVia(svc, { token: callerToken });
    expect(decodeProtectedHeader(t1).kid).toBe('k1');
    expect((await fetchJwks(svc)).keys.map((k) => k.kid)).toEqual(['k1']);

    await reload(svc, config({ signing: { alg: 'ES256', key_file: k2, previous_key_files: [k1] } }));
    const jwks = await fetchJwks(svc);
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual(['k1', 'k2']);
    // A fresh key set (a verifier that refetches) still accepts T1.
    await expect(jwtVerify(t1, createRemoteJWKSet(jwksUrl(svc)), opts)).resolves.toBeTruthy();

    // New tokens, even for the same incoming token, are signed by K2.
    const t2 = await mintedVia(svc, { token: callerToken });
    expect(t2).not.toBe(t1);
    expect(decodeProtectedHeader(t2).kid).toBe('k2');
    await expect(jwtVerify(t2, createRemoteJWKSet(jwksUrl(svc)), opts)).resolves.toBeTruthy();
    const t3 = await mintedVia(svc);
    expect(decodeProtectedHeader(t3).kid).toBe('k2');

    // Once K1 is retired, T1 no longer verifies.
    await reload(svc, config({ signing: { alg: 'ES256', key_file: k2 } }));
    expect((await fetchJwks(svc)).keys.map((k) => k.kid)).toEqual(['k2']);
    await expect(jwtVerify(t1, createRemoteJWKSet(jwksUrl(svc)), opts)).rejects.toThrow();
  });
});

// ---------------------------------------------------------------------------

describe('minted claims, header handling and reuse', () => {
  let svc: TestService; // cache: true, copy_claims, static claims
  let noCache: TestService; // cache: false, two audiences
  let bearer: TestService; // header: authorization
  let verify: (jwt: string, audience?: string | string[]) => Promise<JWTPayload>;

  beforeAll(async () => {
    const signing = {
      alg: 'ES256',
      key_file: dir.write('claims.jwk.json', privateJwk(privateKeyFor('ES256'), { kid: 'sig-claims' })),
    };
    [svc, noCache, bearer] = await Promise.all([
      start(
        config({
          signing,
          ttl_seconds: 300,
          copy_claims: ['scope', 'email', 'realm_access.roles', 'department', 'teams', 'not_present'],
          claims: { department: 'static-dept', env: 'prod', tier: { level: 2 } },
        }),
      ),
      start(config({ signing, cache: false, audiences: ['backend', 'audit'] })),
      start(config({ signing, header: 'Authorization' })),
    ]);
    const keySet = createRemoteJWKSet(jwksUrl(svc));
    verify = async (jwt, audience = 'backend') =>
      (await jwtVerify(jwt, keySet, { issuer: DOWN_ISS, audience, algorithms: ['ES256'] })).payload;
  });

  it('sets iss, sub, aud (string), iat, exp, jti; copies and overrides claims', async () => {
    const before = nowSec();
    const payload = await verify(await mintedVia(svc));
    const after = nowSec();
    expect(payload.iss).toBe(DOWN_ISS);
    expect(payload.sub).toBe('alice');
    expect(payload.aud).toBe('backend');
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(after);
    expect(payload.exp).toBe(payload.iat! + 300);
    expect(payload.jti).toMatch(UUID_V4);
    expect(payload.scope).toBe('read write');
    expect(payload.email).toBe('alice@example.com');
    // Dotted copy_claims entry: copied under its last segment, the parent is not copied.
    expect(payload.roles).toEqual(['eng', 'ops']);
    expect(payload).not.toHaveProperty('realm_access');
    // copy_claims names local claims (after claim_mappings: groups → teams).
    expect(payload.teams).toEqual(['g1', 'g2']);
    expect(payload).not.toHaveProperty('groups');
    expect(payload).not.toHaveProperty('not_present');
    // Static claims override copied ones.
    expect(payload.department).toBe('static-dept');
    expect(payload.env).toBe('prod');
    expect(payload.tier).toEqual({ level: 2 });
    expect(Object.keys(payload).sort()).toEqual(
      [
        'aud',
        'department',
        'email',
        'env',
        'exp',
        'iat',
        'iss',
        'jti',
        'roles',
        'scope',
        'sub',
        'teams',
        'tier',
      ].sort(),
    );
  });

  it('never copies iss/sub/aud/iat/exp/jti from the incoming token', async () => {
    const payload = await verify(await mintedVia(svc, { token: await incoming({ sub: 'bob' }) }));
    expect(payload.sub).toBe('bob');
    expect(payload.iss).toBe(DOWN_ISS);
    expect(payload.aud).toBe('backend');
  });

  it('exp never exceeds the incoming token exp', async () => {
    const incomingExp = nowSec() + 60;
    const payload = await verify(await mintedVia(svc, { token: await incoming({}, { exp: incomingExp }) }));
    expect(payload.exp).toBeLessThanOrEqual(incomingExp);
    expect(payload.exp).toBe(incomingExp);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);

    // With a longer-lived incoming token, ttl_seconds bounds it.
    const long = await verify(await mintedVia(svc, { token: await incoming({}, { exp: nowSec() + 3000 }) }));
    expect(long.exp).toBe(long.iat! + 300);
  });

  it('jti is a UUID v4, distinct for two different incoming tokens', async () => {
    const a = decodeJwt(await mintedVia(svc));
    const b = decodeJwt(await mintedVia(svc));
    expect(a.jti).toMatch(UUID_V4);
    expect(b.jti).toMatch(UUID_V4);
    expect(a.jti).not.toBe(b.jti);
  });

  it('aud: array for several configured audiences; context_extensions audience overrides', async () => {
    const both = await verify(await mintedVia(noCache), 'audit');
    expect(both.aud).toEqual(['backend', 'audit']);

    const one = await verify(await mintedVia(svc, { context: { audience: 'orders-svc' } }), 'orders-svc');
    expect(one.aud).toBe('orders-svc');
    const several = await verify(await mintedVia(noCache, { context: { audience: 'svc-a svc-b' } }), 'svc-b');
    expect(several.aud).toEqual(['svc-a', 'svc-b']);
  });

  // README "What upstream services receive": `aud` is a string for one audience. The minter checks the list length before
  // de-duplicating it (src/upstream/downstream-token.ts, mintFresh), so "svc-a svc-a" yields ["svc-a"].
  it('aud: a context_extensions audience naming one audience twice is still one audience (a string)', async () => {
    const spaced = decodeJwt(await mintedVia(noCache, { context: { audience: '  svc-a \t svc-b  ' } }));
    expect(spaced.aud).toEqual(['svc-a', 'svc-b']);
    const twice = decodeJwt(await mintedVia(noCache, { context: { audience: 'svc-a svc-a' } }));
    expect(twice.aud).toBe('svc-a');
  });

  it('a client-sent x-jwt-assertion is overwritten (append false) and removed on a public route', async () => {
    const spoof = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.';
    const raw = await svc.checkRaw({ token: await incoming(), headers: { 'x-jwt-assertion': spoof } });
    expect(raw.status.code).toBe(0);
    const set = (raw.ok_response.headers as any[]).filter((h) => h.header.key === 'x-jwt-assertion');
    expect(set).toHaveLength(1);
    expect(set[0].append).toEqual({ value: false });
    expect(set[0].header.value).not.toBe(spoof);
    await verify(set[0].header.value);
    expect(raw.ok_response.headers_to_remove ?? []).not.toContain('x-jwt-assertion');

    const pub = await svc.check({ path: '/public/info', headers: { 'x-jwt-assertion': spoof } });
    expect(pub.decision).toBe('allow');
    expect(pub.headers['x-jwt-assertion']).toBeUndefined();
    expect(pub.headers_to_remove).toContain('x-jwt-assertion');
    // Even with a valid token, an allow rule mints nothing.
    const pub2 = await svc.check({ path: '/public/info', token: await incoming() });
    expect(pub2.headers['x-jwt-assertion']).toBeUndefined();
    expect(pub2.headers_to_remove).toContain('x-jwt-assertion');
  });

  it('header: authorization → "Bearer <jwt>", and authorization is not in headers_to_remove', async () => {
    const callerToken = await incoming();
    const raw = await bearer.checkRaw({ token: callerToken });
    expect(raw.status.code).toBe(0);
    const set = (raw.ok_response.headers as any[]).filter((h) => h.header.key === 'authorization');
    expect(set).toHaveLength(1);
    expect(set[0].append).toEqual({ value: false });
    const value: string = set[0].header.value;
    expect(value).toMatch(/^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(value).not.toBe(`Bearer ${callerToken}`);
    expect(raw.ok_response.headers_to_remove ?? []).not.toContain('authorization');
    expect(raw.ok_response.headers.some((h: any) => h.header.key === 'x-jwt-assertion')).toBe(false);
    const payload = await verify(value.slice('Bearer '.length));
    expect(payload.sub).toBe('alice');
  });

  it('reuses the minted token for the same incoming token and audience (cache hit metric)', async () => {
    const callerToken = await incoming();
    const hits0 = await cacheHits(svc, 'minted_token');
    const first = await mintedVia(svc, { token: callerToken });
    const second = await mintedVia(svc, { token: callerToken });
    expect(second).toBe(first);
    expect(await cacheHits(svc, 'minted_token')).toBe(hits0 + 1);

    // A different audience for the same incoming token: a different token, itself reused.
    const other = await mintedVia(svc, { token: callerToken, context: { audience: 'reports' } });
    expect(other).not.toBe(first);
    expect(decodeJwt(other).aud).toBe('reports');
    expect(await mintedVia(svc, { token: callerToken, context: { audience: 'reports' } })).toBe(other);
    expect(await cacheHits(svc, 'minted_token')).toBe(hits0 + 2);
  });

  it('cache: false mints a fresh token (distinct jti) every time', async () => {
    const callerToken = await incoming();
    const hits0 = await cacheHits(noCache, 'minted_token');
    const a = await mintedVia(noCache, { token: callerToken });
    const b = await mintedVia(noCache, { token: callerToken });
    expect(a).not.toBe(b);
    expect(decodeJwt(a).jti).not.toBe(decodeJwt(b).jti);
    expect(await cacheHits(noCache, 'minted_token')).toBe(hits0);
  });

  it('mint failure → 500 {"error":"server_error"}, the detail only in the log', async () => {
    // A valid config cannot make signing fail (claims come from JSON, keys are proven at
    // load), so the failure is injected into the running minter.
    const minter = svc.service.current.minter as any;
    const original = minter.mintEntry;
    const detail = `hsm unreachable ${randomUUID()}`;
    minter.mintEntry = () => Promise.reject(new MintError(`signing the downstream token failed: ${detail}`));
    try {
      const raw = await svc.checkRaw({ token: await incoming() });
      const d = await svc.check({ token: await incoming() });
      expect(raw.status.code).toBe(14);
      expect(d).toMatchObject({ decision: 'deny', http_status: 500, body: { error: 'server_error' } });
      expect(JSON.stringify(raw)).not.toContain(detail);
      const line = svc.logs.lines.find((l) => l.reason === 'mint_failed');
      expect(line).toBeDefined();
      expect(String(line!.detail)).toContain(detail);
    } finally {
      minter.mintEntry = original;
    }
    expect((await svc.check({ token: await incoming() })).decision).toBe('allow');
  });
});

// ---------------------------------------------------------------------------

describe('reuse window (80% of the lifetime)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await start(
      config({
        ttl_seconds: 2,
        signing: {
          alg: 'ES256',
          key_file: dir.write('short.jwk.json', privateJwk(privateKeyFor('ES256'), { kid: 'sig-short' })),
        },
      }),
    );
  });

  it('mints a fresh token once 80% of the lifetime has passed', async () => {
    const callerToken = await incoming();
    const a = await mintedVia(svc, { token: callerToken });
    expect(await mintedVia(svc, { token: callerToken })).toBe(a);
    await sleep(1800);
    const b = await mintedVia(svc, { token: callerToken });
    expect(b).not.toBe(a);
    expect(decodeJwt(b).jti).not.toBe(decodeJwt(a).jti);
  });

  // README "What upstream services receive": reuse "until 80% of their lifetime". The minter sets refreshAt = mint time (ms)
  // + 80% of (exp - iat) where iat is floored to the second (src/upstream/downstream-token.ts, mint), so
  // a token minted late in a second is reused up to 1 s too long, past its exp with short ttls
  // or an incoming token near its exp.
  it('never hands out a reused token past its exp (window measured from the token iat)', async () => {
    // Mint at ~x.700 s: iat = x, exp = x + 2. The reuse window must end by x + 1.6 s and in
    // no case after exp; ask again at x + 2.05 s, when the first token has expired.
    const callerToken = await incoming();
    await mintedVia(svc); // warm up this service's path
    const ms = Date.now() % 1000;
    await sleep((1700 - ms) % 1000);
    const a = await mintedVia(svc, { token: callerToken });
    const { exp } = decodeJwt(a);
    const wait = exp! * 1000 + 50 - Date.now();
    expect(wait).toBeGreaterThan(0);
    await sleep(wait);
    const b = await mintedVia(svc, { token: callerToken });
    const served = decodeJwt(b);
    expect(served.exp! * 1000, 'the token handed to the upstream has already expired').toBeGreaterThan(
      Date.now(),
    );
    expect(b).not.toBe(a);
  });
});

// ---------------------------------------------------------------------------

describe('/.well-known/openid-configuration of the running service', () => {
  it('issuer = upstream.token.issuer; jwks_uri from the Host, or exactly public_base_url', async () => {
    const signing = {
      alg: 'ES256',
      key_file: dir.write('oidc.jwk.json', privateJwk(privateKeyFor('ES256'), { kid: 'sig-oidc' })),
    };
    const svc = await start(config({ signing }));
    let res = await fetch(`${svc.httpUrl}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    let doc = (await res.json()) as Record<string, unknown>;
    expect(doc.issuer).toBe(DOWN_ISS);
    expect(doc.jwks_uri).toMatch(/\/\.well-known\/jwks\.json$/);
    expect(doc.jwks_uri).toBe(`${svc.httpUrl}/.well-known/jwks.json`);
    // The advertised jwks_uri serves the key the tokens are signed with.
    const jwt = await mintedVia(svc);
    await jwtVerify(jwt, createRemoteJWKSet(new URL(doc.jwks_uri as string)), {
      issuer: doc.issuer as string,
    });

    await reload(svc, config({ signing }, { public_base_url: 'https://authz.example.com' }));
    res = await fetch(`${svc.httpUrl}/.well-known/openid-configuration`);
    doc = (await res.json()) as Record<string, unknown>;
    expect(doc.issuer).toBe(DOWN_ISS);
    expect(doc.jwks_uri).toBe('https://authz.example.com/.well-known/jwks.json');
  });
});
