import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { compactDecrypt, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import type { EncryptionConfig } from '../../../src/config/types.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { createUpstreamTokenMinter } from '../../../src/upstream/token-minter.js';
import {
  TempDir,
  jwksFromRoute,
  octJwk,
  principal,
  privateJwk,
  privateKeyFor,
  randomSecret,
  tokenConfig,
} from '../../helpers/mint.js';
import { captureLogger } from '../../helpers/logger.js';
import { createSelfSignedCertificate, generateRsaKeyPair } from '../../helpers/keys.js';

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
];
const CONTENT = ['A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512', 'A128GCM', 'A192GCM', 'A256GCM'];
const ENC_BYTES: Record<string, number> = {
  'A128CBC-HS256': 32,
  'A192CBC-HS384': 48,
  'A256CBC-HS512': 64,
  A128GCM: 16,
  A192GCM: 24,
  A256GCM: 32,
};
const KW_BYTES: Record<string, number> = { A128KW: 16, A192KW: 24, A256KW: 32 };

let dir: TempDir;
let rsa: { privateKey: KeyObject; publicKey: KeyObject };
let p256: { privateKey: KeyObject; publicKey: KeyObject };
const metrics = new Metrics({ processMetrics: false });

beforeAll(() => {
  dir = new TempDir();
  dir.write('signing.json', privateJwk(privateKeyFor('ES256'), { kid: 'sig-1' }));
  rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
});
afterAll(() => dir.remove());

function publicJwk(key: KeyObject, extra: Record<string, unknown> = {}): JWK {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  return { ...(pub.export({ format: 'jwk' }) as JWK), ...extra };
}

/** Writes the recipient key for alg/enc and returns the config plus the decryption key. */
function recipient(alg: string, enc: string): { cfg: EncryptionConfig; decryptKey: KeyObject | Uint8Array } {
  const name = `${alg}-${enc}.json`;
  if (alg.startsWith('RSA-OAEP')) {
    return {
      cfg: { alg, enc, key_file: dir.write(name, publicJwk(rsa.publicKey, { kid: 'rsa-enc' })) },
      decryptKey: rsa.privateKey,
    };
  }
  if (alg.startsWith('ECDH-ES')) {
    return {
      cfg: { alg, enc, key_file: dir.write(name, publicJwk(p256.publicKey)) },
      decryptKey: p256.privateKey,
    };
  }
  const secret = randomSecret(alg === 'dir' ? ENC_BYTES[enc]! : KW_BYTES[alg]!);
  return { cfg: { alg, enc, key_file: dir.write(name, octJwk(secret)) }, decryptKey: new Uint8Array(secret) };
}

async function minterWith(encryption: EncryptionConfig) {
  const { logger, lines } = captureLogger();
  const minter = await createUpstreamTokenMinter(
    tokenConfig({ signing: { alg: 'ES256', key_file: 'signing.json', previous_key_files: [] }, encryption }),
    { baseDir: dir.path, logger, metrics },
  );
  return { minter, lines };
}

async function problems(encryption: EncryptionConfig): Promise<string[]> {
  try {
    await minterWith(encryption);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

/** Decrypts a minted nested JWT and verifies the inner JWS against the published JWKS. */
async function openNested(jwe: string, decryptKey: KeyObject | Uint8Array, publicJwks: () => JWK[]) {
  expect(jwe.split('.')).toHaveLength(5);
  const { plaintext, protectedHeader } = await compactDecrypt(jwe, decryptKey);
  expect(protectedHeader.cty).toBe('JWT');
  const inner = new TextDecoder().decode(plaintext);
  expect(decodeProtectedHeader(inner)).toMatchObject({ alg: 'ES256', kid: 'sig-1', typ: 'JWT' });
  const { keySet } = await jwksFromRoute(publicJwks);
  const { payload } = await jwtVerify(inner, keySet, {
    issuer: 'https://authz.internal',
    audience: 'backend',
  });
  return { protectedHeader, payload };
}

describe('nested JWT: every key management × content encryption pair', () => {
  for (const alg of KEY_MANAGEMENT) {
    for (const enc of CONTENT) {
      it(`${alg} + ${enc}`, async () => {
        const { cfg, decryptKey } = recipient(alg, enc);
        const { minter } = await minterWith(cfg);
        const jwe = await minter.mint(principal({ sub: 'bob' }), undefined);
        const { protectedHeader, payload } = await openNested(jwe, decryptKey, () => minter.publicJwks());
        expect(protectedHeader).toMatchObject({ alg, enc, cty: 'JWT' });
        if (alg.startsWith('RSA-OAEP')) expect(protectedHeader.kid).toBe('rsa-enc');
        expect(payload.sub).toBe('bob');
        minter.close();
      });
    }
  }
});

describe('recipient key formats', () => {
  it('SPKI PEM public key; kid is the key thumbprint', async () => {
    const file = dir.write('rsa.pub.pem', rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string);
    const { minter } = await minterWith({ alg: 'RSA-OAEP-256', enc: 'A256GCM', key_file: file });
    const jwe = await minter.mint(principal(), undefined);
    const { protectedHeader } = await openNested(jwe, rsa.privateKey, () => minter.publicJwks());
    expect(protectedHeader.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('X.509 certificate PEM', async () => {
    const pair = generateRsaKeyPair();
    dir.write('cert.pem', createSelfSignedCertificate(pair, { subject: 'backend' }).pem);
    const { minter } = await minterWith({ alg: 'RSA-OAEP', enc: 'A128CBC-HS256', key_file: 'cert.pem' });
    const jwe = await minter.mint(principal(), undefined);
    await openNested(jwe, pair.privateKey, () => minter.publicJwks());
  });

  for (const [label, make] of [
    ['P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ['P-521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' })],
    ['X25519', () => generateKeyPairSync('x25519')],
  ] as const) {
    it(`ECDH-ES with an ${label} public key`, async () => {
      const pair = make();
      const file = dir.write(`${label}.json`, publicJwk(pair.publicKey));
      const { minter } = await minterWith({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', key_file: file });
      await openNested(await minter.mint(principal(), undefined), pair.privateKey, () => minter.publicJwks());
    });
  }

  it('AxxxKW from secret_file (one trailing newline removed)', async () => {
    const secret = randomSecret(16);
    const file = dir.write('kw.secret', Buffer.concat([secret, Buffer.from('\n')]));
    const { minter } = await minterWith({ alg: 'A128KW', enc: 'A128GCM', secret_file: file });
    await openNested(await minter.mint(principal(), undefined), new Uint8Array(secret), () =>
      minter.publicJwks(),
    );
  });

  it('the Authorization header form carries "Bearer <jwe>"', async () => {
    const secret = randomSecret(32);
    const { logger } = captureLogger();
    const minter = await createUpstreamTokenMinter(
      tokenConfig({
        header: 'Authorization',
        signing: { alg: 'ES256', key_file: 'signing.json', previous_key_files: [] },
        encryption: { alg: 'dir', enc: 'A256GCM', key_file: dir.write('dir.json', octJwk(secret)) },
      }),
      { baseDir: dir.path, logger, metrics },
    );
    expect(minter.header).toBe('authorization');
    const value = await minter.mint(principal(), undefined);
    expect(value.startsWith('Bearer ')).toBe(true);
    await openNested(value.slice('Bearer '.length), new Uint8Array(secret), () => minter.publicJwks());
  });

  it('never publishes the encryption key in the JWKS', async () => {
    const { cfg } = recipient('RSA-OAEP-256', 'A256GCM');
    const { minter } = await minterWith(cfg);
    expect(minter.publicJwks().map((k) => k.kid)).toEqual(['sig-1']);
  });
});

describe('algorithm and key checks at config load', () => {
  it('RSA1_5 is refused with the reason and the alternative', async () => {
    const file = dir.write('rsa15.json', publicJwk(rsa.publicKey));
    const p = await problems({ alg: 'RSA1_5', enc: 'A128CBC-HS256', key_file: file });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^upstream\.token\.encryption\.alg: RSA1_5 is refused/);
    expect(p[0]).toMatch(/padding-oracle/);
    expect(p[0]).toMatch(/RFC 8725/);
    expect(p[0]).toMatch(/RSA-OAEP-256/);
  });

  it('an unknown alg lists the allowed ones', async () => {
    const p = await problems({
      alg: 'A128GCMKW',
      enc: 'A128GCM',
      key_file: dir.write('x.json', octJwk(randomSecret(16))),
    });
    expect(p[0]).toMatch(/^upstream\.token\.encryption\.alg: /);
    for (const alg of KEY_MANAGEMENT) expect(p[0]).toContain(alg);
  });

  it('an unknown enc is refused', async () => {
    const p = await problems({
      alg: 'A128KW',
      enc: 'A128CTR',
      key_file: dir.write('y.json', octJwk(randomSecret(16))),
    });
    expect(p[0]).toMatch(/^upstream\.token\.encryption\.enc: /);
  });

  const keyFileError = /^upstream\.token\.encryption\.key_file: /;
  const cases: [string, () => EncryptionConfig, RegExp][] = [
    [
      'a 32-byte oct key for A128KW',
      () => ({ alg: 'A128KW', enc: 'A128GCM', key_file: dir.write('a.json', octJwk(randomSecret(32))) }),
      /exactly 16 bytes, got 32/,
    ],
    [
      'a 16-byte oct key for A256KW',
      () => ({ alg: 'A256KW', enc: 'A128GCM', key_file: dir.write('b.json', octJwk(randomSecret(16))) }),
      /exactly 32 bytes, got 16/,
    ],
    [
      'a dir key that does not match enc (32 bytes for A256CBC-HS512)',
      () => ({ alg: 'dir', enc: 'A256CBC-HS512', key_file: dir.write('c.json', octJwk(randomSecret(32))) }),
      /dir with A256CBC-HS512 needs a key of exactly 64 bytes, got 32/,
    ],
    [
      'a dir key that does not match enc (16 bytes for A256GCM)',
      () => ({ alg: 'dir', enc: 'A256GCM', key_file: dir.write('d.json', octJwk(randomSecret(16))) }),
      /exactly 32 bytes, got 16/,
    ],
    [
      'RSA-1024 for RSA-OAEP',
      () => ({
        alg: 'RSA-OAEP',
        enc: 'A128GCM',
        key_file: dir.write(
          'e.json',
          publicJwk(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey),
        ),
      }),
      /at least 2048 bits, got 1024/,
    ],
    [
      'an EC key for RSA-OAEP-256',
      () => ({
        alg: 'RSA-OAEP-256',
        enc: 'A128GCM',
        key_file: dir.write('f.json', publicJwk(p256.publicKey)),
      }),
      /needs an RSA public key/,
    ],
    [
      'an RSA key for ECDH-ES',
      () => ({ alg: 'ECDH-ES', enc: 'A128GCM', key_file: dir.write('g.json', publicJwk(rsa.publicKey)) }),
      /P-256, P-384 or P-521 or an X25519/,
    ],
    [
      'an Ed25519 key for ECDH-ES',
      () => ({
        alg: 'ECDH-ES',
        enc: 'A128GCM',
        key_file: dir.write('h.json', publicJwk(generateKeyPairSync('ed25519').publicKey)),
      }),
      /X25519/,
    ],
    [
      'an oct key for RSA-OAEP',
      () => ({ alg: 'RSA-OAEP', enc: 'A128GCM', key_file: dir.write('i.json', octJwk(randomSecret(32))) }),
      /needs a public key, got an "oct" JWK/,
    ],
    [
      'an RSA JWK for A128KW',
      () => ({ alg: 'A128KW', enc: 'A128GCM', key_file: dir.write('j.json', publicJwk(rsa.publicKey)) }),
      /needs an "oct" JWK or secret_file/,
    ],
    [
      'a private key PEM for RSA-OAEP',
      () => ({
        alg: 'RSA-OAEP',
        enc: 'A128GCM',
        key_file: dir.write('k.pem', rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string),
      }),
      /public key .* or certificate, got a private key/,
    ],
    [
      'a JWK whose alg differs',
      () => ({
        alg: 'RSA-OAEP-256',
        enc: 'A128GCM',
        key_file: dir.write('l.json', publicJwk(rsa.publicKey, { alg: 'RSA-OAEP' })),
      }),
      /declares alg RSA-OAEP/,
    ],
    [
      'a JWK with use sig',
      () => ({
        alg: 'RSA-OAEP-256',
        enc: 'A128GCM',
        key_file: dir.write('m.json', publicJwk(rsa.publicKey, { use: 'sig' })),
      }),
      /use "sig"/,
    ],
    ['no key at all', () => ({ alg: 'RSA-OAEP-256', enc: 'A128GCM' }), /required/],
  ];
  for (const [name, make, detail] of cases) {
    it(`refuses ${name}`, async () => {
      const p = await problems(make());
      expect(p).toHaveLength(1);
      expect(p[0]).toMatch(keyFileError);
      expect(p[0]).toMatch(detail);
    });
  }

  it('secret_file: wrong size for dir, and refused for RSA-OAEP', async () => {
    const dirProblems = await problems({
      alg: 'dir',
      enc: 'A128CBC-HS256',
      secret_file: dir.write('s1', randomSecret(16)),
    });
    expect(dirProblems[0]).toMatch(
      /^upstream\.token\.encryption\.secret_file: dir with A128CBC-HS256 needs a key of exactly 32 bytes/,
    );
    const rsaProblems = await problems({
      alg: 'RSA-OAEP',
      enc: 'A128GCM',
      secret_file: dir.write('s2', randomSecret(32)),
    });
    expect(rsaProblems[0]).toMatch(/^upstream\.token\.encryption\.secret_file: /);
  });

  it('reports signing and encryption problems together', async () => {
    const { logger } = captureLogger();
    const err = await createUpstreamTokenMinter(
      tokenConfig({
        claims: { sub: 'x' },
        signing: { alg: 'ES384', key_file: 'signing.json', previous_key_files: [] },
        encryption: { alg: 'RSA1_5', enc: 'A128GCM', key_file: 'whatever.json' },
      }),
      { baseDir: dir.path, logger, metrics },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const p = (err as ConfigError).problems;
    expect(p.some((m) => m.startsWith('upstream.token.claims.sub: reserved'))).toBe(true);
    expect(p.some((m) => m.startsWith('upstream.token.signing.key_file: '))).toBe(true);
    expect(p.some((m) => m.startsWith('upstream.token.encryption.alg: RSA1_5'))).toBe(true);
  });
});
