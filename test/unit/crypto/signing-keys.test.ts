import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import type { SigningConfig } from '../../../src/config/types.js';
import { jwtHeader, signJws } from '../../../src/crypto/sign.js';
import { loadSigningKeys } from '../../../src/crypto/signing-keys.js';
import {
  TempDir,
  jwksFromRoute,
  octJwk,
  pkcs8Pem,
  privateJwk,
  privateKeyFor,
  randomSecret,
} from '../../helpers/mint.js';
import { captureLogger } from '../../helpers/logger.js';

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const HMAC: [string, number][] = [
  ['HS256', 32],
  ['HS384', 48],
  ['HS512', 64],
];
const PATH = 'upstream.token.signing';

let dir: TempDir;
beforeEach(() => {
  dir = new TempDir();
});
afterEach(() => dir.remove());

function signing(over: Partial<SigningConfig>): SigningConfig {
  return { alg: 'ES256', previous_key_files: [], ...over };
}

async function load(cfg: SigningConfig) {
  const { logger, lines } = captureLogger();
  const keys = await loadSigningKeys(cfg, PATH, { baseDir: dir.path, logger });
  return { keys, lines };
}

async function configProblems(cfg: SigningConfig): Promise<string[]> {
  try {
    await load(cfg);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

const claims = () => ({ iss: 'https://authz.internal', sub: 'alice', iat: Math.floor(Date.now() / 1000) });

describe('loadSigningKeys + signJws: every asymmetric alg verifies with jose against the published JWKS', () => {
  for (const alg of ASYMMETRIC) {
    for (const format of ['jwk', 'pem'] as const) {
      it(`${alg} from a ${format === 'jwk' ? 'private JWK' : 'PKCS#8 PEM'} file`, async () => {
        const priv = privateKeyFor(alg);
        const file =
          format === 'jwk'
            ? dir.write('k.json', privateJwk(priv, { kid: 'k1' }))
            : dir.write('k.pem', pkcs8Pem(priv));
        const { keys } = await load(signing({ alg, key_file: file }));
        const token = signJws(keys.current, jwtHeader(keys.current), claims());

        const header = decodeProtectedHeader(token);
        expect(header).toEqual({ alg, kid: keys.current.kid, typ: 'JWT' });
        if (format === 'jwk') expect(keys.current.kid).toBe('k1');

        const { body, keySet } = await jwksFromRoute(() => keys.publicJwks());
        expect(body.keys).toHaveLength(1);
        const published = body.keys[0]!;
        expect(published).toMatchObject({ kid: keys.current.kid, alg, use: 'sig' });
        for (const privateMember of ['d', 'p', 'q', 'dp', 'dq', 'qi'])
          expect(published).not.toHaveProperty(privateMember);

        const { payload, protectedHeader } = await jwtVerify(token, keySet, {
          algorithms: [alg],
          issuer: 'https://authz.internal',
        });
        expect(payload.sub).toBe('alice');
        expect(protectedHeader.typ).toBe('JWT');
      });
    }
  }

  it('a tampered token does not verify', async () => {
    const { keys } = await load(
      signing({ alg: 'ES256', key_file: dir.write('k.json', privateJwk(privateKeyFor('ES256'))) }),
    );
    const token = signJws(keys.current, jwtHeader(keys.current), claims());
    const [h, , s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'mallory' })).toString('base64url')}.${s}`;
    const { keySet } = await jwksFromRoute(() => keys.publicJwks());
    await expect(jwtVerify(forged, keySet)).rejects.toThrow();
  });
});

describe('HS algs', () => {
  for (const [alg, size] of HMAC) {
    it(`${alg} from secret_file (one trailing newline removed) verifies with the secret`, async () => {
      const secret = randomSecret(size);
      const file = dir.write('s.secret', Buffer.concat([secret, Buffer.from('\n')]));
      const { keys } = await load(signing({ alg, secret_file: file }));
      const token = signJws(keys.current, jwtHeader(keys.current), claims());
      await expect(jwtVerify(token, new Uint8Array(secret), { algorithms: [alg] })).resolves.toBeTruthy();
      expect(keys.current.publicJwk).toBeUndefined();
      expect(keys.publicJwks()).toEqual([]);
    });

    it(`${alg} from an oct JWK key_file verifies with the secret`, async () => {
      const secret = randomSecret(size);
      const { keys } = await load(signing({ alg, key_file: dir.write('k.json', octJwk(secret)) }));
      const token = signJws(keys.current, jwtHeader(keys.current), claims());
      await expect(jwtVerify(token, new Uint8Array(secret), { algorithms: [alg] })).resolves.toBeTruthy();
      expect(keys.current.kid).toBe(await calculateJwkThumbprint(octJwk(secret)));
    });

    it(`${alg} refuses a secret shorter than ${size} bytes`, async () => {
      const file = dir.write('s.secret', randomSecret(size - 1));
      const problems = await configProblems(signing({ alg, secret_file: file }));
      expect(problems).toEqual([
        expect.stringMatching(new RegExp(`^${PATH}\\.secret_file: .*at least ${size} bytes`)),
      ]);
    });
  }

  it('only one trailing newline is removed from a secret_file', async () => {
    const secret = Buffer.concat([randomSecret(32), Buffer.from('\n')]);
    const file = dir.write('s.secret', Buffer.concat([secret, Buffer.from('\n')]));
    const { keys } = await load(signing({ alg: 'HS256', secret_file: file }));
    const token = signJws(keys.current, jwtHeader(keys.current), claims());
    await expect(jwtVerify(token, new Uint8Array(secret))).resolves.toBeTruthy();
  });
});

describe('kid', () => {
  it('is the RFC 7638 thumbprint of the public key when the key file has none', async () => {
    const priv = privateKeyFor('ES256');
    const { keys } = await load(signing({ alg: 'ES256', key_file: dir.write('k.pem', pkcs8Pem(priv)) }));
    const expected = await calculateJwkThumbprint(
      createPublicKey(priv).export({ format: 'jwk' }) as JWK,
      'sha256',
    );
    expect(keys.current.kid).toBe(expected);
    expect(keys.publicJwks()[0]!.kid).toBe(expected);
  });

  it('is the same for the JWK and the PEM form of one key', async () => {
    const priv = privateKeyFor('RS256');
    const a = await load(signing({ alg: 'RS256', key_file: dir.write('a.json', privateJwk(priv)) }));
    const b = await load(signing({ alg: 'RS256', key_file: dir.write('b.pem', pkcs8Pem(priv)) }));
    expect(a.keys.current.kid).toBe(b.keys.current.kid);
  });
});

describe('keys that do not fit the alg are config errors naming the key_file', () => {
  const cases: [string, string, () => string | object][] = [
    ['RS256 with RSA-1024', 'RS256', () => privateJwk(privateKeyFor('RS256', { rsaBits: 1024 }))],
    ['PS256 with RSA-1024 PEM', 'PS256', () => pkcs8Pem(privateKeyFor('PS256', { rsaBits: 1024 }))],
    ['ES384 with a P-256 key', 'ES384', () => privateJwk(privateKeyFor('ES256'))],
    ['ES256 with a P-521 key', 'ES256', () => pkcs8Pem(privateKeyFor('ES512'))],
    ['ES256 with an RSA key', 'ES256', () => privateJwk(privateKeyFor('RS256'))],
    ['EdDSA with an Ed448 key', 'EdDSA', () => pkcs8Pem(generateKeyPairSync('ed448').privateKey)],
    ['EdDSA with an X25519 key', 'EdDSA', () => privateJwk(generateKeyPairSync('x25519').privateKey)],
    ['RS256 with an EC key', 'RS256', () => pkcs8Pem(privateKeyFor('ES256'))],
    [
      'RS256 with a public JWK',
      'RS256',
      () => createPublicKey(privateKeyFor('RS256')).export({ format: 'jwk' }),
    ],
    ['RS256 with an oct JWK', 'RS256', () => octJwk(randomSecret(32))],
    ['HS256 with a private EC JWK', 'HS256', () => privateJwk(privateKeyFor('ES256'))],
    ['HS256 with a PEM file', 'HS256', () => pkcs8Pem(privateKeyFor('ES256'))],
    ['HS512 with a 32-byte oct JWK', 'HS512', () => octJwk(randomSecret(32))],
    [
      'ES256 with a JWK declaring alg ES384',
      'ES256',
      () => privateJwk(privateKeyFor('ES256'), { alg: 'ES384' }),
    ],
    ['ES256 with a JWK for use enc', 'ES256', () => privateJwk(privateKeyFor('ES256'), { use: 'enc' })],
    ['ES256 with a JWK Set', 'ES256', () => ({ keys: [privateJwk(privateKeyFor('ES256'))] })],
    ['ES256 with garbage', 'ES256', () => 'not a key'],
  ];
  for (const [name, alg, make] of cases) {
    it(name, async () => {
      const content = make();
      const file = dir.write(
        typeof content === 'string' && content.includes('BEGIN') ? 'k.pem' : 'k.json',
        content as string,
      );
      const problems = await configProblems(signing({ alg, key_file: file }));
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(new RegExp(`^${PATH.replace(/\./g, '\\.')}\\.key_file: `));
    });
  }

  it('names the exact problem (RSA size, curve)', async () => {
    const rsa = await configProblems(
      signing({
        alg: 'RS256',
        key_file: dir.write('a.json', privateJwk(privateKeyFor('RS256', { rsaBits: 1024 }))),
      }),
    );
    expect(rsa[0]).toContain('at least 2048 bits, got 1024');
    const ec = await configProblems(
      signing({ alg: 'ES384', key_file: dir.write('b.json', privateJwk(privateKeyFor('ES256'))) }),
    );
    expect(ec[0]).toContain('needs an EC P-384 key, got an EC key on P-256');
  });

  it('secret_file for an asymmetric alg, a missing file, and both key_file and secret_file', async () => {
    const secretFile = dir.write('s.secret', randomSecret(32));
    expect((await configProblems(signing({ alg: 'RS256', secret_file: secretFile })))[0]).toMatch(
      /^upstream\.token\.signing\.secret_file: /,
    );
    expect((await configProblems(signing({ alg: 'ES256', key_file: 'missing.json' })))[0]).toMatch(
      /^upstream\.token\.signing\.key_file: cannot read .*missing\.json/,
    );
    expect(
      (
        await configProblems(
          signing({
            alg: 'HS256',
            key_file: dir.write('k.json', octJwk(randomSecret(32))),
            secret_file: secretFile,
          }),
        )
      )[0],
    ).toMatch(/either key_file or secret_file/);
  });

  it('never puts key material in the message', async () => {
    const secret = Buffer.from('short-secret-value');
    const problems = await configProblems(signing({ alg: 'HS256', secret_file: dir.write('s', secret) }));
    expect(problems.join('\n')).not.toContain('short-secret-value');
  });
});

describe('previous_key_files (rotation)', () => {
  it('publishes current and previous keys; a token signed by the previous key verifies after the switch', async () => {
    const oldKey = privateKeyFor('ES256');
    const newKey = privateKeyFor('ES256');
    dir.write('old.json', privateJwk(oldKey, { kid: 'old' }));
    dir.write('new.pem', pkcs8Pem(newKey));

    const before = await load(signing({ alg: 'ES256', key_file: 'old.json' }));
    const oldToken = signJws(before.keys.current, jwtHeader(before.keys.current), claims());

    const after = await load(
      signing({ alg: 'ES256', key_file: 'new.pem', previous_key_files: ['old.json'] }),
    );
    expect(after.keys.previous.map((k) => k.kid)).toEqual(['old']);
    const newToken = signJws(after.keys.current, jwtHeader(after.keys.current), claims());
    expect(decodeProtectedHeader(newToken).kid).toBe(after.keys.current.kid);

    const { body, keySet } = await jwksFromRoute(() => after.keys.publicJwks());
    expect(body.keys.map((k) => k.kid)).toEqual([after.keys.current.kid, 'old']);
    await expect(jwtVerify(oldToken, keySet)).resolves.toBeTruthy();
    await expect(jwtVerify(newToken, keySet)).resolves.toBeTruthy();
  });

  it('applies the same alg rules to previous keys and names them', async () => {
    dir.write('cur.json', privateJwk(privateKeyFor('ES256')));
    dir.write('prev.json', privateJwk(privateKeyFor('ES384')));
    const problems = await configProblems(
      signing({ alg: 'ES256', key_file: 'cur.json', previous_key_files: ['prev.json'] }),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^upstream\.token\.signing\.previous_key_files\[0\]: .*P-256/),
    ]);
  });

  it('refuses a previous key with the same kid as the current one', async () => {
    const k = privateKeyFor('EdDSA');
    dir.write('a.json', privateJwk(k));
    dir.write('b.pem', pkcs8Pem(k));
    const problems = await configProblems(
      signing({ alg: 'EdDSA', key_file: 'a.json', previous_key_files: ['b.pem'] }),
    );
    expect(problems[0]).toMatch(/previous_key_files\[0\]: kid .* already used/);
  });
});

describe('ephemeral keys', () => {
  for (const alg of ['ES256', 'RS256', 'PS384', 'EdDSA', 'ES512', 'HS384']) {
    it(`${alg}: generated when no key file is configured, with a warning`, async () => {
      const { keys, lines } = await load(signing({ alg }));
      const warn = lines.find((l) => l.level === 'warn');
      expect(warn?.msg).toMatch(/ephemeral/);
      expect(warn?.msg).toMatch(/will not verify across restarts or replicas/);
      const token = signJws(keys.current, jwtHeader(keys.current), claims());
      if (alg.startsWith('HS')) {
        expect(keys.publicJwks()).toEqual([]);
        await expect(jwtVerify(token, keys.current.key)).resolves.toBeTruthy();
      } else {
        const { keySet } = await jwksFromRoute(() => keys.publicJwks());
        await expect(jwtVerify(token, keySet, { algorithms: [alg] })).resolves.toBeTruthy();
      }
    });
  }

  it('no warning when a key file is configured', async () => {
    const { lines } = await load(
      signing({ alg: 'ES256', key_file: dir.write('k.json', privateJwk(privateKeyFor('ES256'))) }),
    );
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
  });
});
