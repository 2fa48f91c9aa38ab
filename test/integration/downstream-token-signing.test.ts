// The signed downstream token end to end through the real service: every JWS alg verified
// against the running service's /.well-known/jwks.json, key rotation through reload, and
// the published openid-configuration (docs/upstream.md "Downstream tokens").
import { beforeAll, describe, expect, it } from 'vitest';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import { JWS_ALGORITHMS } from '../../src/config/schema.js';
import { pkcs8Pem, privateJwk, privateKeyFor } from '../helpers/mint.js';
import type { TestService } from '../helpers/harness.js';
import {
  DOWN_ISS,
  dir,
  incoming,
  config,
  start,
  reload,
  jwksUrl,
  fetchJwks,
  mintedVia,
  secretBytes,
  publicJwkOf,
  useDownstreamTokenSetup,
} from '../helpers/downstream-token.js';

useDownstreamTokenSetup();

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
