// Differential test of the access-token verifier against jose. Thousands of tokens are
// generated and mutated from a seeded PRNG (algorithms, headers, encodings, claims,
// signatures); each goes through our verifier exactly as the Check path runs it
// (issuers compiled by Runtime.build from a config, then verifyJwt) and through jose's
// jwtVerify configured with the same keys, algorithms, issuer, audiences, clock
// tolerance, required claims and maximum age. The verdicts (accept / reject) must be
// equal, except where we are stricter by design: each such case is named by a
// predicate below, and counted. Any other disagreement fails with the token's recipe.
import { constants, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JWTVerifyOptions, type JWTVerifyGetKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyJwt, type CompiledIssuer, type VerifyResult } from '../../src/authn/verify.js';
import { loadConfigObject } from '../../src/config/load.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Runtime } from '../../src/server/runtime.js';
import {
  generateEcKeyPair,
  generateEd25519KeyPair,
  generateRsaKeyPair,
  makeJwks,
  type Jwk,
  type TestKeyPair,
} from '../helpers/keys.js';
import { captureLogger } from '../helpers/logger.js';
import { mulberry32 } from '../helpers/prng.js';
import { signRaw, type SigningKey } from '../helpers/tokens.js';

const SEED = Number(process.env.JWS_DIFF_SEED || 0x5eed_2026);
const TOKENS = Number(process.env.JWS_DIFF_TOKENS || 11_000);
const NOW = 1_900_000_000; // pinned clock (both verifiers)
const MAX_TOKEN_BYTES = 16_384; // the config default, as the pipeline passes it

// ------------------------------------------------------------------ seeded PRNG
let rand = mulberry32(SEED);
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const chance = (p: number): boolean => rand() < p;
function pick<T>(items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}
function weighted<T>(items: readonly (readonly [T, number])[]): T {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let r = rand() * total;
  for (const [v, w] of items) if ((r -= w) < 0) return v;
  return items[items.length - 1]![0];
}

// ------------------------------------------------------------------ issuers and keys
interface Signer {
  readonly kid?: string;
  readonly key: SigningKey;
}

interface Profile {
  readonly name: string;
  readonly iss: string;
  readonly audiences: readonly string[] | 'any';
  readonly skew: number;
  readonly maxLifetime: number;
  readonly requiredClaims: readonly string[];
  /** Whether jose checks iat (maxTokenAge = max_lifetime_seconds): only when iat is required. */
  readonly joseMaxAge: boolean;
  readonly algs: readonly (readonly [string, number])[];
  readonly signers: Readonly<Record<string, readonly Signer[]>>;
  joseKey?: JWTVerifyGetKey | Uint8Array;
}

const rsa1 = generateRsaKeyPair({ kid: 'rsa-1' });
const rsa2 = generateRsaKeyPair({ kid: 'rsa-2', alg: 'RS256' });
const ec256 = generateEcKeyPair({ kid: 'ec-256', crv: 'P-256' });
const ec384 = generateEcKeyPair({ kid: 'ec-384', crv: 'P-384' });
const ec521 = generateEcKeyPair({ kid: 'ec-521', crv: 'P-521' });
const ed = generateEd25519KeyPair({ kid: 'ed-1' });
const attacker = {
  rsa: generateRsaKeyPair({ kid: 'rsa-1' }),
  ES256: generateEcKeyPair({ kid: 'ec-256', crv: 'P-256' }),
  ES384: generateEcKeyPair({ kid: 'ec-384', crv: 'P-384' }),
  ES512: generateEcKeyPair({ kid: 'ec-521', crv: 'P-521' }),
  ed: generateEd25519KeyPair({ kid: 'ed-1' }),
};
const hmacSecret = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 97 + 13) & 0xff));
const attackerSecret = Buffer.alloc(64, 7);

/** rsa-1 serves RS* and PS*: its JWK carries no alg. */
const noAlg = (k: TestKeyPair): Jwk => {
  const { alg: _alg, ...jwk } = k.publicJwk;
  return jwk;
};
const s = (k: TestKeyPair): Signer => ({ kid: k.kid, key: k.privateKey });

const MAIN: Profile = {
  name: 'main',
  iss: 'https://idp.diff.test',
  audiences: ['api://orders', 'api://billing'],
  skew: 60,
  maxLifetime: 86_400,
  requiredClaims: ['iss', 'sub', 'iat', 'exp'],
  joseMaxAge: true,
  algs: [
    ['RS256', 3],
    ['RS384', 1],
    ['RS512', 1],
    ['PS256', 2],
    ['PS384', 1],
    ['PS512', 1],
    ['ES256', 4],
    ['ES384', 1],
    ['ES512', 0.5],
    ['EdDSA', 4],
  ],
  signers: {
    RS256: [s(rsa1), s(rsa2)],
    RS384: [s(rsa1)],
    RS512: [s(rsa1)],
    PS256: [s(rsa1)],
    PS384: [s(rsa1)],
    PS512: [s(rsa1)],
    ES256: [s(ec256)],
    ES384: [s(ec384)],
    ES512: [s(ec521)],
    EdDSA: [s(ed)],
  },
};
const ANY: Profile = {
  name: 'any',
  iss: 'https://any.diff.test',
  audiences: 'any',
  skew: 30,
  maxLifetime: 3_600,
  requiredClaims: ['iss', 'exp'],
  joseMaxAge: false,
  algs: [
    ['RS256', 2],
    ['PS384', 1],
    ['ES256', 3],
  ],
  signers: { RS256: [s(rsa1)], PS384: [s(rsa1)], ES256: [s(ec256)] },
};
const HMAC: Profile = {
  name: 'hmac',
  iss: 'https://hmac.diff.test',
  audiences: ['api://orders'],
  skew: 0,
  maxLifetime: 7_200,
  requiredClaims: ['iss', 'sub', 'iat', 'exp'],
  joseMaxAge: true,
  algs: [
    ['HS256', 3],
    ['HS384', 1],
    ['HS512', 1],
  ],
  signers: { HS256: [{ key: hmacSecret }], HS384: [{ key: hmacSecret }], HS512: [{ key: hmacSecret }] },
};
const PROFILES = [MAIN, ANY, HMAC];
const byIss = new Map(PROFILES.map((p) => [p.iss, p]));
const mainJwks = makeJwks(noAlg(rsa1), rsa2, ec256, ec384, ec521, ed);
const anyJwks = makeJwks(noAlg(rsa1), ec256);

// ------------------------------------------------------------------ the two verifiers
let runtime: Runtime;
let dir: string;
let lookup: (iss: string) => CompiledIssuer | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jws-diff-'));
  writeFileSync(join(dir, 'hs.secret'), hmacSecret);
  const config = {
    issuers: [
      {
        name: MAIN.name,
        issuer: MAIN.iss,
        audiences: MAIN.audiences,
        algorithms: MAIN.algs.map(([a]) => a),
        clock_skew_seconds: MAIN.skew,
        max_lifetime_seconds: MAIN.maxLifetime,
        jwks: mainJwks,
      },
      {
        name: ANY.name,
        issuer: ANY.iss,
        audiences: ['*'],
        algorithms: ANY.algs.map(([a]) => a),
        clock_skew_seconds: ANY.skew,
        max_lifetime_seconds: ANY.maxLifetime,
        required_claims: ANY.requiredClaims,
        jwks: anyJwks,
      },
      {
        name: HMAC.name,
        issuer: HMAC.iss,
        audiences: HMAC.audiences,
        algorithms: HMAC.algs.map(([a]) => a),
        clock_skew_seconds: HMAC.skew,
        max_lifetime_seconds: HMAC.maxLifetime,
        secret_file: 'hs.secret',
      },
    ],
  };
  const loaded = loadConfigObject(config, dir, {});
  expect(loaded.config.max_token_bytes).toBe(MAX_TOKEN_BYTES);
  const ctx = { logger: captureLogger('warn').logger, metrics: new Metrics({ processMetrics: false }) };
  runtime = await Runtime.build(loaded, ctx);
  await runtime.start();
  const issuers = new Map(runtime.issuers.map((i) => [i.issuer, i]));
  lookup = (iss) => issuers.get(iss);
  MAIN.joseKey = createLocalJWKSet(mainJwks as never);
  ANY.joseKey = createLocalJWKSet(anyJwks as never);
  HMAC.joseKey = new Uint8Array(hmacSecret);
});

afterAll(async () => {
  await runtime?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function joseOptions(p: Profile): JWTVerifyOptions {
  return {
    algorithms: p.algs.map(([a]) => a),
    issuer: p.iss,
    ...(p.audiences === 'any' ? {} : { audience: [...p.audiences] }),
    clockTolerance: p.skew,
    requiredClaims: [...p.requiredClaims],
    ...(p.joseMaxAge ? { maxTokenAge: p.maxLifetime } : {}),
    currentDate: new Date(NOW * 1000),
  };
}
const joseOpts = new Map<Profile, JWTVerifyOptions>();

/**
 * jose's verdict. The configuration is chosen by the token's unverified iss, as ours is
 * (decodeJwt fails exactly where jwtVerify's own payload parsing would). Several
 * matching JWKS keys (no kid) are tried in turn, as jose documents for
 * ERR_JWKS_MULTIPLE_MATCHING_KEYS.
 */
async function joseVerdict(token: string): Promise<{ ok: boolean; error?: string }> {
  let profile: Profile | undefined;
  try {
    const iss = decodeJwt(token).iss;
    profile = typeof iss === 'string' ? byIss.get(iss) : undefined;
  } catch (err) {
    return { ok: false, error: (err as { code?: string }).code ?? String(err) };
  }
  if (!profile) return { ok: false, error: 'unknown iss' };
  let opts = joseOpts.get(profile);
  if (!opts) joseOpts.set(profile, (opts = joseOptions(profile)));
  try {
    await jwtVerify(token, profile.joseKey as JWTVerifyGetKey, opts);
    return { ok: true };
  } catch (err) {
    const e = err as { code?: string; [Symbol.asyncIterator]?: () => AsyncIterator<KeyObject> };
    if (e.code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' && e[Symbol.asyncIterator]) {
      for await (const key of e as AsyncIterable<KeyObject>) {
        try {
          await jwtVerify(token, key, opts);
          return { ok: true };
        } catch (inner) {
          if ((inner as { code?: string }).code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') continue;
          return { ok: false, error: (inner as { code?: string }).code ?? String(inner) };
        }
      }
      return { ok: false, error: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' };
    }
    return { ok: false, error: e.code ?? String(err) };
  }
}

// ------------------------------------------------------------------ token recipes
interface Built {
  readonly token: string;
  readonly recipe: string[];
}

const b64u = (b: Buffer): string => b.toString('base64url');
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');

/** Raw r||s → DER SEQUENCE { INTEGER r, INTEGER s }. */
function rawToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(raw.subarray(0, half)), int(raw.subarray(half))]);
  const len = body.length < 0x80 ? Buffer.from([body.length]) : Buffer.from([0x81, body.length]);
  return Buffer.concat([Buffer.from([0x30]), len, body]);
}

const ORDER: Record<string, bigint> = {
  ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  ES384: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  ES512:
    0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
};
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;
const toBig = (b: Buffer): bigint => BigInt(`0x${b.toString('hex') || '0'}`);
const fromBig = (v: bigint, len: number): Buffer => Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');

/** ECDSA (r, n − s): the other valid signature of the same message ("high S"). */
function flipS(alg: string, raw: Buffer): Buffer {
  const half = raw.length / 2;
  const n = ORDER[alg]!;
  return Buffer.concat([raw.subarray(0, half), fromBig(n - toBig(raw.subarray(half)), half)]);
}

/** Ed25519 with S + L: the same value mod L, a non-canonical encoding RFC 8032 refuses. */
function edSPlusL(sig: Buffer): Buffer {
  const sLe = Buffer.from(sig.subarray(32)).reverse();
  const v = toBig(sLe) + ED25519_L;
  return Buffer.concat([sig.subarray(0, 32), fromBig(v, 32).reverse()]);
}

const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Flips the unused low bits of the last character (same bytes, another spelling). */
function nonCanonical(seg: string): string | undefined {
  const rem = seg.length % 4;
  if (rem !== 2 && rem !== 3) return undefined;
  const last = B64URL_ALPHABET.indexOf(seg[seg.length - 1]!);
  return seg.slice(0, -1) + B64URL_ALPHABET[last ^ 1]!;
}

function insertAt(seg: string, what: string): string {
  const i = int(0, seg.length);
  return seg.slice(0, i) + what + seg.slice(i);
}

/** Claims for a fresh, valid token of the profile. */
function baseClaims(p: Profile, n: number): Record<string, unknown> {
  const iat = NOW - int(0, 600);
  return {
    iss: p.iss,
    sub: `user-${n}`,
    ...(p.audiences === 'any' ? (chance(0.5) ? { aud: 'api://anything' } : {}) : { aud: pick(p.audiences) }),
    iat,
    exp: iat + int(120, Math.min(3_000, p.maxLifetime)),
    jti: `j-${n}`,
    ...(chance(0.2) ? { scope: 'read write', roles: ['a', 'b'], name: 'Zoë 🚀' } : {}),
  };
}

type Mutation = (m: Mutable) => string;

interface Mutable {
  p: Profile;
  alg: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** Raw bytes replacing the JSON of the header / payload. */
  headerBytes?: Buffer;
  payloadBytes?: Buffer;
  /** Sign with this alg / key instead of the header's. */
  signAlg?: string;
  signKey?: SigningKey;
  /** Segment edits before signing (the signature covers them). */
  preSign: ((segs: string[]) => string)[];
  /** Edits of the finished token or its signature. */
  /** Edits of the finished token's segments (they compose; the signature is segs[2]). */
  postSign: ((t: Finished) => void)[];
}

/** Replaces raw JSON text: `{"alg":...}` → with a member duplicated etc. */
const rawJson = (text: string): Buffer => Buffer.from(text, 'utf8');
const withoutBrace = (o: Record<string, unknown>): string => JSON.stringify(o).slice(1, -1);

const HEADER_MUTATIONS: Mutation[] = [
  (m) => (delete m.header.kid, 'header: no kid'),
  (m) => ((m.header.kid = 'unknown-kid'), 'header: unknown kid'),
  (m) => ((m.header.kid = 42), 'header: kid a number'),
  (m) => ((m.header.kid = 'k'.repeat(300)), 'header: kid 300 chars'),
  (m) => {
    const other = pick(['rsa-1', 'rsa-2', 'ec-256', 'ec-384', 'ec-521', 'ed-1']);
    m.header.kid = other;
    return `header: kid ${other} (maybe another key's)`;
  },
  (m) => (delete m.header.typ, 'header: no typ'),
  (m) => ((m.header.typ = pick(['at+jwt', 'application/at+jwt', 'JOSE', 7, null])), 'header: odd typ'),
  (m) => ((m.header.crit = ['b64']), (m.header.b64 = true), 'header: crit [b64], b64 true'),
  (m) => ((m.header.crit = ['exp']), (m.header.exp = NOW), 'header: crit [exp] (unknown extension)'),
  (m) => ((m.header.crit = pick([[], 'b64', [''], [1], ['b64', 'b64']])), 'header: malformed crit'),
  (m) => ((m.header.crit = ['b64']), (m.header.b64 = false), 'header: crit [b64], b64 false'),
  (m) => ((m.header.b64 = pick([false, 'false', 0])), 'header: b64 not true, not in crit'),
  (m) => ((m.header.b64 = true), 'header: b64 true, not in crit'),
  (m) => ((m.header.jku = 'https://evil.test/jwks.json'), 'header: jku'),
  (m) => ((m.header.x5u = 'https://evil.test/cert.pem'), 'header: x5u'),
  (m) => ((m.header.jwk = attacker.rsa.publicJwk), 'header: embedded attacker jwk'),
  (m) => ((m.header.x5c = ['MIIBIjANBgkq']), 'header: x5c'),
  (m) => ((m.header.zip = 'DEF'), 'header: zip DEF'),
  (m) => ((m.header.x5t = pick(['abc', 12])), 'header: x5t'),
  (m) => ((m.header['x5t#S256'] = pick(['abc', ['x']])), 'header: x5t#S256'),
  (m) => (delete m.header.kid, (m.header[pick(['x5t', 'x5t#S256'])] = 'abc'), 'header: thumbprint, no kid'),
  (m) => ((m.header.alg = pick([1, null, ['RS256'], ''])), 'header: alg wrong type'),
  (m) => (
    (m.signAlg ??= m.alg),
    (m.header.alg = pick(['none', 'None', 'NONE'])),
    'header: alg none (signed)'
  ),
  (m) => {
    m.signAlg ??= m.alg;
    m.header.alg = m.alg.toLowerCase();
    return 'header: alg lower case';
  },
  (m) => {
    const other = pick(['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA', 'HS256', 'HS512', 'RS512']);
    m.signAlg ??= m.alg;
    m.header.alg = other;
    return `header: alg ${other}, signed as ${m.alg}`;
  },
  (m) => {
    const first = pick(['none', 'HS256', 'RS512']);
    m.headerBytes = rawJson(`{"alg":"${first}",${withoutBrace(m.header)}}`);
    return `header: duplicate alg (${first} first, real last)`;
  },
  (m) => {
    const last = pick(['none', 'HS256', 'RS512']);
    m.signAlg ??= m.alg;
    m.headerBytes = rawJson(`{${withoutBrace(m.header)},"alg":"${last}"}`);
    return `header: duplicate alg (real first, ${last} last)`;
  },
  (m) => {
    m.headerBytes = rawJson(`{"kid":"nope",${withoutBrace(m.header)}}`);
    return 'header: duplicate kid (unknown first)';
  },
  (m) => (
    (m.headerBytes = rawJson(JSON.stringify(m.header, null, pick([1, 2, '\t'])))),
    'header: pretty JSON'
  ),
  (m) => ((m.headerBytes = rawJson(` \n${JSON.stringify(m.header)}\r\n `)), 'header: surrounding whitespace'),
  (m) => ((m.headerBytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(m.header)])), 'header: BOM'),
  (m) => ((m.headerBytes = json(pick([[m.header], 'RS256', 1, null]))), 'header: not an object'),
  (m) => (
    (m.headerBytes = rawJson(`{"__proto__":{"alg":"none"},${withoutBrace(m.header)}}`)),
    'header: __proto__ member'
  ),
  (m) => {
    m.headerBytes = rawJson(JSON.stringify(m.header).replace(/"typ":"JWT"/, '"typ":"J\\u0057T"'));
    return 'header: escaped typ';
  },
];

const t = (m: Mutable, name: 'exp' | 'nbf' | 'iat', v: unknown, why: string): string => {
  if (v === undefined) delete m.claims[name];
  else m.claims[name] = v;
  return `claims: ${name} ${why}`;
};

const CLAIM_MUTATIONS: Mutation[] = [
  (m) => t(m, 'exp', undefined, 'missing'),
  (m) => t(m, 'iat', undefined, 'missing'),
  (m) => (delete m.claims.sub, 'claims: sub missing'),
  (m) => (delete m.claims.iss, 'claims: iss missing'),
  (m) => t(m, 'exp', pick([`${NOW + 100}`, null, true, [NOW + 100], { v: 1 }]), 'wrong type'),
  (m) => t(m, 'nbf', pick([`${NOW}`, null, false]), 'wrong type'),
  (m) => t(m, 'iat', pick([`${NOW}`, null, {}]), 'wrong type'),
  (m) => t(m, 'exp', NOW - m.p.skew - pick([0, 1, 1000]), 'in the past (skew edge or beyond)'),
  (m) => t(m, 'exp', NOW - m.p.skew + pick([1, 2]), 'just inside the skew'),
  (m) => t(m, 'exp', NOW + 0.5, 'fractional'),
  (m) => t(m, 'nbf', NOW + m.p.skew + pick([0, 1, 500]), 'in the future (skew edge or beyond)'),
  (m) => t(m, 'nbf', NOW - pick([0, 10, 100000]), 'in the past'),
  (m) => t(m, 'iat', NOW + m.p.skew + pick([0, 1, 1000]), 'in the future (skew edge or beyond)'),
  (m) => {
    const iat = NOW - pick([10, 1000]);
    m.claims.iat = iat;
    m.claims.exp = iat + m.p.maxLifetime + pick([-1, 0, 1, 86_400]);
    return 'claims: lifetime around max_lifetime_seconds';
  },
  (m) => {
    m.claims.iat = NOW - m.p.maxLifetime - m.p.skew + pick([-2, -1, 0, 1]);
    m.claims.exp = NOW + 100;
    return 'claims: iat around max age';
  },
  (m) => {
    delete m.claims.iat;
    m.claims.exp = NOW + m.p.maxLifetime + pick([-1, 0, 1, 10]);
    return 'claims: no iat, exp around now + max_lifetime_seconds';
  },
  (m) => ((m.claims.exp = 1e308), 'claims: exp 1e308'),
  (m) => {
    const name = pick(['exp', 'nbf', 'iat']);
    const v = pick(['1e400', '-1e400']);
    m.payloadBytes = rawJson(`{${withoutBrace(m.claims)},"${name}":${v}}`);
    return `claims: ${name} ${v} (not finite)`;
  },
  (m) => ((m.claims.aud = 'api://other'), 'claims: aud mismatch'),
  (m) => ((m.claims.aud = ['api://other', 'api://orders']), 'claims: aud array with a match'),
  (m) => ((m.claims.aud = ['api://x', 'api://y']), 'claims: aud array without a match'),
  (m) => ((m.claims.aud = []), 'claims: aud empty array'),
  (m) => (delete m.claims.aud, 'claims: aud missing'),
  (m) => ((m.claims.aud = pick([7, { a: 1 }, null, true])), 'claims: aud wrong type'),
  (m) => ((m.claims.aud = ['api://orders', pick([7, null, ['x']])]), 'claims: aud array with a non-string'),
  (m) => ((m.claims.iss = 'https://unknown.diff.test'), 'claims: iss unknown'),
  (m) => {
    const other = pick(PROFILES.filter((p) => p !== m.p)).iss;
    m.claims.iss = other;
    return `claims: iss of another issuer (${other})`;
  },
  (m) => ((m.claims.iss = pick([7, null, ['https://idp.diff.test']])), 'claims: iss wrong type'),
  (m) => ((m.claims.iss = m.p.iss.toUpperCase()), 'claims: iss in upper case'),
  (m) => ((m.claims.sub = pick([7, null, { id: 1 }])), 'claims: sub wrong type'),
  (m) => (
    (m.payloadBytes = json(pick([[m.claims], 'a string', 42, null, true]))),
    'claims: payload not an object'
  ),
  (m) => {
    m.payloadBytes = rawJson(`{"exp":${NOW - 100000},${withoutBrace(m.claims)}}`);
    return 'claims: duplicate exp (expired first, valid last)';
  },
  (m) => {
    m.payloadBytes = rawJson(`{${withoutBrace(m.claims)},"exp":${NOW - 100000}}`);
    return 'claims: duplicate exp (valid first, expired last)';
  },
  (m) => {
    m.payloadBytes = rawJson(`{${withoutBrace(m.claims)},"iss":"https://unknown.diff.test"}`);
    return 'claims: duplicate iss (unknown last)';
  },
  (m) => ((m.payloadBytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(m.claims)])), 'claims: BOM'),
  (m) => {
    const bad = pick([
      [0xff],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xe2, 0x82],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    ]);
    const text = JSON.stringify({ ...m.claims, name: 'XX' });
    const at = text.indexOf('XX');
    m.payloadBytes = Buffer.concat([
      Buffer.from(text.slice(0, at + 1)),
      Buffer.from(bad),
      Buffer.from(text.slice(at + 1)),
    ]);
    return `claims: invalid UTF-8 (${Buffer.from(bad).toString('hex')}) in a string`;
  },
  (m) => ((m.claims.name = '\ud800 lone surrogate escape'), 'claims: lone surrogate (JSON escape)'),
  (m) => ((m.payloadBytes = rawJson(JSON.stringify(m.claims, null, 2))), 'claims: pretty JSON'),
  (m) => ((m.payloadBytes = rawJson(`\t${JSON.stringify(m.claims)}\n`)), 'claims: surrounding whitespace'),
  (m) => (
    (m.payloadBytes = rawJson(`{"__proto__":{"exp":1},${withoutBrace(m.claims)}}`)),
    'claims: __proto__ member'
  ),
  (m) => ((m.payloadBytes = rawJson(`${JSON.stringify(m.claims)} x`)), 'claims: trailing garbage'),
  (m) => ((m.claims.pad = 'x'.repeat(pick([8_000, 11_000]))), 'claims: large (under max_token_bytes)'),
  (m) => ((m.claims.pad = 'x'.repeat(pick([12_500, 20_000]))), 'claims: huge (over max_token_bytes)'),
];

/** The finished token: its segments and any whitespace around it. */
interface Finished {
  segs: string[];
  before: string;
  after: string;
}

/** Edits the signature segment as text (nothing when an earlier edit removed it). */
function editSig(t: Finished, f: (seg: string) => string): void {
  if (t.segs.length >= 3) t.segs[2] = f(t.segs[2]!);
}

/** Edits the signature bytes (decoded leniently from the current segment). */
function editSigBytes(t: Finished, f: (sig: Buffer) => Buffer): void {
  editSig(t, (seg) => b64u(f(Buffer.from(seg, 'base64url'))));
}

const ecSigLen: Record<string, number> = { ES256: 64, ES384: 96, ES512: 132 };

const SEGMENT_NAMES = ['header', 'payload'];
const ENCODING_MUTATIONS: Mutation[] = [
  (m) => {
    const i = int(0, 1);
    m.preSign.push((segs) => {
      const pad = (4 - (segs[i]!.length % 4)) % 4;
      segs[i] = segs[i]! + '='.repeat(pad || pick([1, 2]));
      return pad ? 'correct padding' : 'padding where none is due';
    });
    return `encoding: ${SEGMENT_NAMES[i]} padded with = (signed over)`;
  },
  (m) => {
    m.postSign.push((t) => editSig(t, (seg) => `${seg}${'='.repeat((4 - (seg.length % 4)) % 4 || 2)}`));
    return 'encoding: signature padded with =';
  },
  (m) => {
    const i = int(0, 1);
    m.preSign.push((segs) => {
      segs[i] = segs[i]!.replace(/-/g, '+').replace(/_/g, '/');
      return '';
    });
    return `encoding: ${SEGMENT_NAMES[i]} in standard base64 (+/) (signed over)`;
  },
  (m) => {
    m.postSign.push((t) => editSig(t, (seg) => seg.replace(/-/g, '+').replace(/_/g, '/')));
    return 'encoding: signature in standard base64 (+/)';
  },
  (m) => {
    const i = int(0, 1);
    m.preSign.push((segs) => {
      segs[i] = nonCanonical(segs[i]!) ?? segs[i]!;
      return '';
    });
    return `encoding: ${SEGMENT_NAMES[i]} with non-canonical trailing bits (signed over)`;
  },
  (m) => {
    m.postSign.push((t) => editSig(t, (seg) => nonCanonical(seg) ?? seg));
    return 'encoding: signature with non-canonical trailing bits';
  },
  (m) => {
    const i = int(0, 2);
    const ch = pick(['!', '*', '~', '%', '$', 'é', '\u0000', '\u00ff']);
    const resign = i < 2;
    if (resign) m.preSign.push((segs) => ((segs[i] = insertAt(segs[i]!, ch)), ''));
    else m.postSign.push((t) => editSig(t, (seg) => insertAt(seg, ch)));
    return `encoding: invalid character ${JSON.stringify(ch)} in segment ${i}${resign ? ' (signed over)' : ''}`;
  },
  (m) => {
    const i = int(0, 2);
    const ws = pick([' ', '\n', '\t', '\r\n', '\f']);
    const resign = i < 2;
    if (resign) m.preSign.push((segs) => ((segs[i] = insertAt(segs[i]!, ws)), ''));
    else m.postSign.push((t) => editSig(t, (seg) => insertAt(seg, ws)));
    return `encoding: whitespace ${JSON.stringify(ws)} in segment ${i}${resign ? ' (signed over)' : ''}`;
  },
  (m) => {
    const edge = pick(['leading', 'trailing']);
    m.postSign.push((t) => {
      if (edge === 'leading') t.before = ' ';
      else t.after = '\n';
    });
    return `encoding: ${edge} whitespace around the token`;
  },
  (m) => {
    const i = int(0, 2);
    m.postSign.push((t) => {
      if (i < t.segs.length) t.segs[i] = '';
    });
    return `encoding: empty segment ${i}`;
  },
  (m) => {
    const extra = pick(['.', '.AAAA', '.AAAA.BBBB', '..']);
    m.postSign.push((t) => t.segs.push(...extra.slice(1).split('.')));
    return `encoding: extra segments (${extra})`;
  },
  (m) => {
    m.postSign.push((t) => void (t.segs.length = 2));
    return 'encoding: two segments';
  },
  (m) => {
    const i = int(0, 1);
    m.preSign.push(
      (segs) => ((segs[i] = nonCanonical(segs[i]!) === undefined ? `${segs[i]}A` : `${segs[i]}AA`), ''),
    );
    return `encoding: ${SEGMENT_NAMES[i]} of impossible length (signed over)`;
  },
  (m) => {
    m.postSign.push((t) => editSig(t, (seg) => `${seg}A`));
    return 'encoding: signature with a character more';
  },
];

const SIGNATURE_MUTATIONS: Mutation[] = [
  (m) => {
    const n = pick([1, 2, 0.5]);
    m.postSign.push((t) =>
      editSigBytes(t, (sig) => sig.subarray(0, n < 1 ? Math.floor(sig.length * n) : sig.length - n)),
    );
    return `signature: truncated (${n < 1 ? 'half' : `${n} byte(s)`})`;
  },
  (m) => {
    const where = rand();
    const bit = int(0, 7);
    m.postSign.push((t) =>
      editSigBytes(t, (sig) => {
        const b = Buffer.from(sig);
        const i = Math.floor(where * b.length);
        if (b.length > 0) b[i] = b[i]! ^ (1 << bit);
        return b;
      }),
    );
    return `signature: one bit flipped (at ${where.toFixed(3)}, bit ${bit})`;
  },
  (m) => {
    m.postSign.push((t) => editSigBytes(t, (sig) => Buffer.concat([sig, Buffer.from([0])])));
    return 'signature: a byte appended';
  },
  (m) => {
    m.postSign.push((t) => editSigBytes(t, (sig) => Buffer.alloc(sig.length)));
    return 'signature: all zero bytes';
  },
  (m) => {
    const signAlg = m.signAlg ?? m.alg;
    const fam = signAlg.startsWith('max-salt') ? 'PS' : signAlg.slice(0, 2);
    m.signKey =
      fam === 'HS'
        ? attackerSecret
        : fam === 'ES'
          ? attacker[signAlg as 'ES256' | 'ES384' | 'ES512'].privateKey
          : fam === 'Ed'
            ? attacker.ed.privateKey
            : attacker.rsa.privateKey;
    return 'signature: by an untrusted key (same kid)';
  },
  (m) => {
    const other = pick(['RS256', 'PS256', 'RS384', 'ES256', 'EdDSA', 'HS256']);
    m.signAlg = other;
    m.signKey =
      other === 'HS256'
        ? pick([rsa1.publicKey.export({ type: 'spki', format: 'pem' }) as string, hmacSecret])
        : other === 'ES256'
          ? ec256.privateKey
          : other === 'EdDSA'
            ? ed.privateKey
            : rsa1.privateKey;
    return `signature: made as ${other} (key confusion or wrong alg for key)`;
  },
  (m) => {
    if (!m.alg.startsWith('ES')) return 'signature: DER (not ECDSA: unchanged)';
    m.postSign.push((t) =>
      editSigBytes(t, (sig) => (sig.length % 2 === 0 && sig.length > 0 ? rawToDer(sig) : sig)),
    );
    return 'signature: ECDSA in DER instead of raw r||s';
  },
  (m) => {
    if (!m.alg.startsWith('ES')) return 'signature: high S (not ECDSA: unchanged)';
    m.postSign.push((t) =>
      editSigBytes(t, (sig) => (sig.length === ecSigLen[m.alg] ? flipS(m.alg, sig) : sig)),
    );
    return 'signature: ECDSA high S (n - s)';
  },
  (m) => {
    if (m.alg !== 'EdDSA') return 'signature: S + L (not EdDSA: unchanged)';
    m.postSign.push((t) => editSigBytes(t, (sig) => (sig.length === 64 ? edSPlusL(sig) : sig)));
    return 'signature: Ed25519 S + L';
  },
  (m) => {
    if (!m.alg.startsWith('PS')) return 'signature: PSS max salt (not PSS: unchanged)';
    m.signAlg = `max-salt ${m.alg}`;
    const k = m.signKey;
    if (!(typeof k === 'object' && 'asymmetricKeyType' in k && k.type === 'private'))
      m.signKey = rsa1.privateKey;
    return 'signature: RSA-PSS with maximum salt length';
  },
  (m) => {
    m.postSign.push((t) => editSig(t, () => t.segs[0]!));
    return 'signature: replaced by the header segment';
  },
];

function signWith(alg: string, key: SigningKey, input: string): Buffer {
  if (alg.startsWith('max-salt ')) {
    return cryptoSign(`sha${alg.slice(-3)}`, Buffer.from(input, 'latin1'), {
      key: key as KeyObject,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
    });
  }
  return signRaw(alg, key, input);
}

function buildToken(n: number): Built {
  const p = weighted<Profile>([
    [MAIN, 6],
    [ANY, 2],
    [HMAC, 2],
  ]);
  const alg = weighted(p.algs);
  const signer = pick(p.signers[alg]!);
  const recipe = [`#${n} ${p.name} ${alg}${signer.kid ? ` kid ${signer.kid}` : ''}`];
  const header: Record<string, unknown> = { alg, typ: 'JWT' };
  if (signer.kid !== undefined) header.kid = signer.kid;
  else if (chance(0.1)) header.kid = 'hs-1';
  if (signer.kid !== undefined && alg === 'RS256' && chance(0.2)) delete header.kid;
  const m: Mutable = {
    p,
    alg,
    header,
    claims: baseClaims(p, n),
    signKey: signer.key,
    preSign: [],
    postSign: [],
  };
  if (header.kid !== undefined && signer.kid === undefined) recipe.push('header: kid on an HMAC token');
  if (header.kid === undefined && signer.kid !== undefined)
    recipe.push('header: no kid (several RS256 keys)');
  const classes: [Mutation[], number][] = [
    [HEADER_MUTATIONS, 2],
    [CLAIM_MUTATIONS, 3],
    [ENCODING_MUTATIONS, 2],
    [SIGNATURE_MUTATIONS, 2],
  ];
  const r = rand();
  const count = r < 0.22 ? 0 : r < 0.85 ? 1 : 2;
  for (let i = 0; i < count; i++) recipe.push(pick(weighted(classes))(m));

  const headerBytes = m.headerBytes ?? json(m.header);
  const payloadBytes = m.payloadBytes ?? json(m.claims);
  const segs = [b64u(headerBytes), b64u(payloadBytes)];
  for (const edit of m.preSign) {
    const note = edit(segs);
    if (note) recipe.push(`  (${note})`);
  }
  const signingInput = `${segs[0]}.${segs[1]}`;
  let sig: Buffer;
  try {
    sig = signWith(m.signAlg ?? alg, m.signKey ?? signer.key, signingInput);
  } catch (err) {
    throw new Error(`the generator cannot sign this recipe (${String(err)}):\n${recipe.join('\n')}`, {
      cause: err,
    });
  }
  const finished: Finished = { segs: [segs[0]!, segs[1]!, b64u(sig)], before: '', after: '' };
  for (const edit of m.postSign) edit(finished);
  return { token: `${finished.before}${finished.segs.join('.')}${finished.after}`, recipe };
}

// ------------------------------------------------------------------ stricter by design
interface Inspected {
  readonly token: string;
  readonly segs: string[];
  readonly header?: Record<string, unknown>;
  readonly headerBytes?: Buffer;
  readonly payload?: Record<string, unknown>;
  readonly payloadBytes?: Buffer;
}

function inspect(token: string): Inspected {
  const segs = token.split('.');
  const lenient = (seg: string | undefined): [Buffer | undefined, Record<string, unknown> | undefined] => {
    if (seg === undefined) return [undefined, undefined];
    const bytes = Buffer.from(seg.replace(/\s/g, '').replace(/=+$/, ''), 'base64url');
    try {
      let text = bytes.toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      const v: unknown = JSON.parse(text);
      return [
        bytes,
        typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined,
      ];
    } catch {
      return [bytes, undefined];
    }
  };
  const [headerBytes, header] = lenient(segs[0]);
  const [payloadBytes, payload] = lenient(segs[1]);
  return { token, segs, header, headerBytes, payload, payloadBytes };
}

const num = (v: unknown): v is number => typeof v === 'number';

/**
 * Where we refuse what jose accepts, on purpose. Each predicate names the cause from the
 * token itself, and the deny reasons it may explain; the first that holds is counted.
 */
const STRICTER: readonly {
  readonly name: string;
  readonly why: string;
  readonly reasons: readonly string[];
  readonly holds: (t: Inspected, p: Profile | undefined) => boolean;
}[] = [
  {
    name: 'over max_token_bytes',
    why: 'tokens larger than max_token_bytes (16 KiB) are refused before parsing',
    reasons: ['token_too_large'],
    holds: (t) => Buffer.byteLength(t.token) > MAX_TOKEN_BYTES,
  },
  {
    name: 'padding or whitespace in a segment',
    why: 'strict base64url: no "=" padding, no whitespace (jose decodes with atob, which allows both)',
    reasons: ['token_malformed'],
    holds: (t) => /[=\s]/.test(t.token),
  },
  {
    name: 'non-canonical signature encoding',
    why: 'one signature has one spelling: the token string is a cache key',
    reasons: ['token_malformed'],
    holds: (t) =>
      t.segs.length === 3 &&
      /^[A-Za-z0-9_-]+$/.test(t.segs[2]!) &&
      Buffer.from(t.segs[2]!, 'base64url').toString('base64url') !== t.segs[2],
  },
  {
    name: 'byte order mark',
    why: 'header and payload must be JSON text; jose strips a leading UTF-8 BOM',
    reasons: ['token_malformed'],
    holds: (t) =>
      [t.headerBytes, t.payloadBytes].some(
        (b) => b !== undefined && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf,
      ),
  },
  {
    name: 'crit present',
    why: 'we implement no JWS extension, so any crit is refused (jose knows b64)',
    reasons: ['crit_unsupported'],
    holds: (t) => t.header?.crit !== undefined,
  },
  {
    name: 'b64 present and not true',
    why: 'an unencoded payload is refused even when b64 is not marked critical (jose ignores it then)',
    reasons: ['header_invalid'],
    holds: (t) => t.header?.b64 !== undefined && t.header.b64 !== true,
  },
  {
    name: 'kid not a string of at most 256 characters',
    why: 'a malformed kid is refused (jose with a single key does not read kid)',
    reasons: ['header_invalid'],
    holds: (t) =>
      t.header !== undefined &&
      t.header.kid !== undefined &&
      (typeof t.header.kid !== 'string' || t.header.kid.length > 256),
  },
  {
    name: 'x5t / x5t#S256 not a string',
    why: 'a certificate thumbprint header must be a string (jose ignores both)',
    reasons: ['header_invalid'],
    holds: (t) =>
      t.header !== undefined &&
      ((t.header.x5t !== undefined && typeof t.header.x5t !== 'string') ||
        (t.header['x5t#S256'] !== undefined && typeof t.header['x5t#S256'] !== 'string')),
  },
  {
    name: 'x5t / x5t#S256 naming no trusted key, without a kid',
    why: 'without a kid, a thumbprint selects the key and must name a trusted one (jose ignores it); no key here declares one',
    reasons: ['key_not_found'],
    holds: (t) =>
      t.header !== undefined &&
      t.header.kid === undefined &&
      (typeof t.header.x5t === 'string' || typeof t.header['x5t#S256'] === 'string'),
  },
  {
    name: 'time claim not finite',
    why: 'exp, nbf and iat must be finite numbers (1e400 parses to Infinity, which jose compares)',
    reasons: ['claim_invalid'],
    holds: (t) => ['exp', 'nbf', 'iat'].some((c) => num(t.payload?.[c]) && !Number.isFinite(t.payload[c])),
  },
  {
    name: 'sub not a string',
    why: 'sub, when present, must be a string',
    reasons: ['claim_invalid'],
    holds: (t) => t.payload?.sub !== undefined && typeof t.payload.sub !== 'string',
  },
  {
    name: 'aud not a string or list of strings',
    why: 'aud must be a string or a list of strings, whatever the audiences (jose only looks for a match)',
    reasons: ['claim_invalid'],
    holds: (t) => {
      const aud = t.payload?.aud;
      return (
        aud !== undefined &&
        typeof aud !== 'string' &&
        !(Array.isArray(aud) && aud.every((a) => typeof a === 'string'))
      );
    },
  },
  {
    name: 'iat in the future',
    why: 'iat beyond now + clock skew is refused even where iat is not required',
    reasons: ['iat_in_future'],
    holds: (t, p) => p !== undefined && num(t.payload?.iat) && t.payload.iat > NOW + p.skew,
  },
  {
    name: 'lifetime over max_lifetime_seconds',
    why: 'exp - iat (or exp - now without iat) must not exceed max_lifetime_seconds',
    reasons: ['lifetime_exceeded'],
    holds: (t, p) => {
      const exp = t.payload?.exp;
      const iat = t.payload?.iat;
      return p !== undefined && num(exp) && exp - (num(iat) ? iat : NOW) > p.maxLifetime;
    },
  },
];

// ------------------------------------------------------------------ the run
const reasonOf = (r: VerifyResult): string => (r.ok ? 'accepted' : r.deny.reason);

describe('the JWS engine agrees with jose', () => {
  it(`on ${TOKENS} generated and mutated tokens (seed ${SEED}), except where stricter by design`, async () => {
    rand = mulberry32(SEED);
    const started = performance.now();
    const counts = { tokens: 0, bothAccept: 0, bothReject: 0, stricter: 0, disagreements: 0 };
    const byCategory = new Map<string, number>(STRICTER.map((c) => [c.name, 0]));
    const failures: string[] = [];
    // Tokens are built in order (the PRNG sequence) and verified a batch at a time: both
    // verifiers check signatures on the thread pool, so a batch keeps it busy.
    const verdicts = (built: Built) =>
      Promise.all([
        verifyJwt(built.token, lookup, { now: NOW, maxTokenBytes: MAX_TOKEN_BYTES }),
        joseVerdict(built.token),
      ]).then(([ours, theirs]) => ({ built, ours, theirs }));
    const results: Awaited<ReturnType<typeof verdicts>>[] = [];
    for (let start = 0; start < TOKENS; start += 64) {
      const batch: ReturnType<typeof verdicts>[] = [];
      for (let n = start; n < Math.min(TOKENS, start + 64); n++) batch.push(verdicts(buildToken(n)));
      results.push(...(await Promise.all(batch)));
    }
    for (const { built, ours, theirs } of results) {
      counts.tokens++;
      if (ours.ok === theirs.ok) {
        if (ours.ok) counts.bothAccept++;
        else counts.bothReject++;
        continue;
      }
      if (!ours.ok && theirs.ok) {
        const t = inspect(built.token);
        const iss = t.payload?.iss;
        const p = typeof iss === 'string' ? byIss.get(iss) : undefined;
        const cat = STRICTER.find((c) => c.reasons.includes(ours.deny.reason) && c.holds(t, p));
        if (cat) {
          counts.stricter++;
          byCategory.set(cat.name, byCategory.get(cat.name)! + 1);
          continue;
        }
      }
      counts.disagreements++;
      if (failures.length < Number(process.env.JWS_DIFF_SHOW ?? 20)) {
        failures.push(
          [
            `ours: ${reasonOf(ours)}, jose: ${theirs.ok ? 'accepted' : theirs.error}`,
            ...built.recipe.map((l) => `  ${l}`),
            `  token: ${built.token.length > 300 ? `${built.token.slice(0, 300)}…` : built.token}`,
          ].join('\n'),
        );
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const lines = [
      `[jws-differential] seed ${SEED}: ${counts.tokens} tokens in ${seconds.toFixed(1)} s`,
      `  agreements: ${counts.bothAccept + counts.bothReject} (both accept ${counts.bothAccept}, both reject ${counts.bothReject})`,
      `  stricter by design: ${counts.stricter}`,
      ...[...byCategory].map(([name, c]) => `    ${String(c).padStart(5)}  ${name}`),
      `  disagreements: ${counts.disagreements}`,
    ];
    console.log(lines.join('\n'));
    expect(failures, `disagreements with jose:\n${failures.join('\n\n')}`).toEqual([]);
    expect(counts.tokens).toBeGreaterThanOrEqual(10_000);
    // Both verdicts must be well represented, and every stricter case must have occurred,
    // or the generator is not testing what this file claims.
    expect(counts.bothAccept).toBeGreaterThan(counts.tokens * 0.15);
    expect(counts.bothReject).toBeGreaterThan(counts.tokens * 0.3);
    for (const [name, c] of byCategory)
      expect(c, `stricter case "${name}" never occurred`).toBeGreaterThan(0);
  }, 120_000);
});
