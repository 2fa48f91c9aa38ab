// The nested (signed, then encrypted) downstream token end to end through the real service,
// for every key management × content encryption pair (docs/upstream.md "Downstream tokens").
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { compactDecrypt, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { ConfigError } from '../../src/core/errors.js';
import { octJwk, privateJwk, privateKeyFor } from '../helpers/mint.js';
import { startTestService, type TestService } from '../helpers/harness.js';
import { createSelfSignedCertificate } from '../helpers/keys.js';
import {
  DOWN_ISS,
  dir,
  config,
  start,
  reload,
  jwksUrl,
  mintedVia,
  secretBytes,
  publicJwkOf,
  spkiPem,
  useDownstreamTokenSetup,
} from '../helpers/downstream-token.js';

useDownstreamTokenSetup();

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
