import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildKeySet, KeySetError, keySetFingerprint, makeKeySet } from '../../../../src/authn/keys/jwk.js';
import {
  generateEcKeyPair,
  generateEd25519KeyPair,
  generateRsaKeyPair,
  makeJwks,
  type Jwk,
} from '../../../helpers/keys.js';
import { captureLogger } from '../../../helpers/logger.js';

const rsa = generateRsaKeyPair({ kid: 'rsa-good' });
const ec = generateEcKeyPair({ kid: 'ec-good' });
const ed = generateEd25519KeyPair({ kid: 'ed-good' });

function build(jwks: unknown) {
  const log = captureLogger();
  const set = buildKeySet(jwks, { issuer: 'corp-idp', logger: log.logger });
  return { set, log };
}

function skippedOne(jwk: Jwk, reason: RegExp) {
  const { set, log } = build(makeJwks(rsa, jwk));
  expect(set.keys.map((k) => k.kid)).toEqual(['rsa-good']);
  const warn = log.lines.find((l) => l.msg === 'JWKS key skipped');
  expect(warn).toBeDefined();
  expect(warn!.level).toBe('warn');
  expect(warn!.issuer).toBe('corp-idp');
  expect(String(warn!.reason)).toMatch(reason);
  return { warn: warn!, log };
}

describe('buildKeySet: document shape', () => {
  it.each([
    ['null', null],
    ['an array', [rsa.publicJwk]],
    ['a string', 'keys'],
    ['an object without keys', { foo: [] }],
    ['keys not a list', { keys: { a: 1 } }],
  ])('refuses %s', (_label, doc) => {
    expect(() => buildKeySet(doc, { issuer: 'x' })).toThrow(KeySetError);
  });

  it('refuses more than 100 keys', () => {
    const doc = { keys: Array.from({ length: 101 }, () => rsa.publicJwk) };
    expect(() => buildKeySet(doc, { issuer: 'x' })).toThrow(/101 keys/);
    expect(buildKeySet({ keys: doc.keys.slice(0, 100) }, { issuer: 'x' }).keys).toHaveLength(100);
  });

  it('imports RSA, EC and Ed25519 keys with kid, alg and crv', () => {
    const { set } = build(makeJwks(rsa, ec, ed));
    expect(set.keys.map((k) => [k.kid, k.kty, k.alg, k.crv])).toEqual([
      ['rsa-good', 'RSA', 'RS256', undefined],
      ['ec-good', 'EC', 'ES256', 'P-256'],
      ['ed-good', 'OKP', 'EdDSA', 'Ed25519'],
    ]);
    expect(set.keys.every((k) => k.key.type === 'public')).toBe(true);
    expect(set.byKid.get('ec-good')![0]!.key.asymmetricKeyType).toBe('ec');
  });

  it('keeps keys without kid or alg', () => {
    const { kid: _kid, alg: _alg, ...bare } = rsa.publicJwk;
    const { set } = build({ keys: [bare] });
    expect(set.keys).toHaveLength(1);
    expect(set.keys[0]!.kid).toBeUndefined();
    expect(set.keys[0]!.alg).toBeUndefined();
    expect(set.byKid.size).toBe(0);
  });
});

describe('buildKeySet: candidate filtering', () => {
  it('skips use: enc', () => {
    skippedOne({ ...ec.publicJwk, kid: 'enc-key', use: 'enc' }, /use/);
  });

  it('skips key_ops without verify, keeps key_ops with verify', () => {
    skippedOne({ ...ec.publicJwk, kid: 'ops', key_ops: ['encrypt'] }, /key_ops/);
    const { set } = build(makeJwks({ ...ec.publicJwk, key_ops: ['verify'] }));
    expect(set.keys).toHaveLength(1);
  });

  it('never takes kty oct from a JWKS', () => {
    const { warn, log } = skippedOne(
      { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA' },
      /symmetric/,
    );
    expect(warn.kid).toBe('hmac');
    expect(log.text()).not.toContain('c2VjcmV0');
  });

  it('skips RSA keys below 2048 bits', () => {
    const small = generateRsaKeyPair({ kid: 'rsa-1024', bits: 1024 });
    const { warn } = skippedOne(small.publicJwk, /1024 bits/);
    expect(warn.kid).toBe('rsa-1024');
  });

  it('skips EC curves other than P-256/384/521', () => {
    const k = generateEcKeyPair({ kid: 'k1', crv: 'secp256k1' });
    skippedOne({ ...k.publicJwk, alg: undefined }, /curve/);
    const p384 = generateEcKeyPair({ kid: 'p384', crv: 'P-384' });
    const p521 = generateEcKeyPair({ kid: 'p521', crv: 'P-521' });
    expect(build(makeJwks(p384, p521)).set.keys.map((x) => x.crv)).toEqual(['P-384', 'P-521']);
  });

  it('skips OKP other than Ed25519', () => {
    const { publicKey } = generateKeyPairSync('ed448');
    skippedOne({ ...(publicKey.export({ format: 'jwk' }) as Jwk), kid: 'ed448' }, /Ed25519/);
    const { publicKey: x } = generateKeyPairSync('x25519');
    skippedOne({ ...(x.export({ format: 'jwk' }) as Jwk), kid: 'x25519' }, /Ed25519/);
  });

  it('skips a non-string kid and a kid over 256 characters', () => {
    const { warn } = skippedOne({ ...ec.publicJwk, kid: 42 } as unknown as Jwk, /kid/);
    expect(warn.kid).toBe('(number)');
    const long = 'k'.repeat(257);
    const { warn: w2 } = skippedOne({ ...ec.publicJwk, kid: long }, /kid longer/);
    expect(String(w2.kid).length).toBeLessThan(100);
    expect(build(makeJwks({ ...ec.publicJwk, kid: 'k'.repeat(256) })).set.keys).toHaveLength(1);
  });

  it('skips keys that fail to import', () => {
    skippedOne({ kty: 'EC', kid: 'bad', crv: 'P-256', x: 'AAAA', y: 'AAAA' }, /import/);
    skippedOne({ kty: 'RSA', kid: 'bad-rsa', n: 12, e: 'AQAB' }, /n\/e/);
  });

  it('skips unknown kty and non-object entries', () => {
    skippedOne({ kty: 'XYZ', kid: 'u' }, /kty/);
    skippedOne('not a key' as unknown as Jwk, /object/);
  });

  it('skips keys whose alg does not fit their type', () => {
    skippedOne({ ...rsa.publicJwk, kid: 'r2', alg: 'RSA-OAEP' }, /alg/);
    skippedOne({ ...ec.publicJwk, kid: 'e2', alg: 'ES384' }, /alg/);
    skippedOne({ ...rsa.publicJwk, kid: 'r3', alg: 'HS256' }, /alg/);
  });

  it('strips private members: a private JWK yields only a public key, with a warning, never logging d', () => {
    const { set, log } = build({ keys: [rsa.privateJwk] });
    expect(set.keys).toHaveLength(1);
    expect(set.keys[0]!.key.type).toBe('public');
    expect(log.lines.some((l) => /private members/.test(l.msg))).toBe(true);
    expect(log.text()).not.toContain(String(rsa.privateJwk.d));
  });
});

describe('buildKeySet: indexes', () => {
  it('keeps duplicate kids and thumbprints', () => {
    const other = generateRsaKeyPair({ kid: 'rsa-good' });
    const s256 = 'a'.repeat(43);
    const sha1 = 'b'.repeat(27);
    const { set } = build(makeJwks(rsa, { ...other.publicJwk, 'x5t#S256': s256, x5t: sha1 }));
    expect(set.byKid.get('rsa-good')).toHaveLength(2);
    expect(set.byX5tS256.get(s256)).toBe(set.keys[1]);
    expect(set.byX5t.get(sha1)).toBe(set.keys[1]);
    expect(set.keys[1]!.x5tS256).toBe(s256);
  });

  it('ignores malformed thumbprints but keeps the key', () => {
    const { set } = build(makeJwks({ ...ec.publicJwk, 'x5t#S256': 'short', x5t: 7 }));
    expect(set.keys).toHaveLength(1);
    expect(set.byX5tS256.size).toBe(0);
    expect(set.byX5t.size).toBe(0);
  });
});

describe('keySetFingerprint', () => {
  it('is equal for the same keys in another order and differs when material or kid changes', () => {
    const a = buildKeySet(makeJwks(rsa, ec), { issuer: 'x' });
    const b = buildKeySet(makeJwks(ec, rsa), { issuer: 'x' });
    expect(keySetFingerprint(a)).toBe(keySetFingerprint(b));
    const sameKidNewKey = generateEcKeyPair({ kid: 'ec-good' });
    const c = buildKeySet(makeJwks(rsa, sameKidNewKey), { issuer: 'x' });
    expect(keySetFingerprint(c)).not.toBe(keySetFingerprint(a));
    const renamed = buildKeySet(makeJwks(rsa, { ...ec.publicJwk, kid: 'ec-renamed' }), { issuer: 'x' });
    expect(keySetFingerprint(renamed)).not.toBe(keySetFingerprint(a));
    expect(keySetFingerprint(makeKeySet(a.keys, a.keys[0]))).not.toBe(keySetFingerprint(a));
  });
});
