import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { JWS_ALGORITHMS } from '../../../src/config/schema.js';
import {
  EC_CURVES,
  ecCurveByAlg,
  ecCurveByJwk,
  ecCurveByNode,
  jweSymmetricKeyBytes,
  jwsFamily,
  jwsHashName,
} from '../../../src/crypto/algorithms.js';

describe('EC curve table', () => {
  it('each curve is found by its JWK name, node name and alg, and node:crypto knows the name', () => {
    for (const c of EC_CURVES) {
      expect(ecCurveByJwk(c.jwk)).toBe(c);
      expect(ecCurveByNode(c.node)).toBe(c);
      expect(ecCurveByAlg(c.alg)).toBe(c);
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: c.node });
      expect(privateKey.asymmetricKeyDetails?.namedCurve).toBe(c.node);
    }
  });

  it('untrusted names never reach Object.prototype', () => {
    for (const name of ['constructor', '__proto__', 'toString', 'P-192', 'secp256k1', undefined]) {
      expect(ecCurveByJwk(name)).toBeUndefined();
      expect(ecCurveByNode(name)).toBeUndefined();
    }
    expect(ecCurveByAlg('constructor')).toBeUndefined();
  });
});

describe('JWS alg facts', () => {
  it('every configurable alg has a family, and a hash unless EdDSA', () => {
    for (const alg of JWS_ALGORITHMS) {
      const fam = jwsFamily(alg);
      expect(['HS', 'RS', 'PS', 'ES', 'EdDSA']).toContain(fam);
      expect(jwsHashName(alg)).toBe(fam === 'EdDSA' ? undefined : `sha${alg.slice(2)}`);
    }
  });
});

describe('JWE key sizes', () => {
  it('dir takes the content key size; AxxxKW the wrap key size', () => {
    expect(jweSymmetricKeyBytes('dir', 'A256CBC-HS512')).toBe(64);
    expect(jweSymmetricKeyBytes('dir', 'A128GCM')).toBe(16);
    expect(jweSymmetricKeyBytes('A192KW', 'A256GCM')).toBe(24);
  });
});

describe('algorithm lists derived from the one JWS list', () => {
  it('DPoP proofs: the asymmetric algorithms, ES then PS then RS then EdDSA (the order the challenge lists)', async () => {
    const { DPOP_ALGORITHMS } = await import('../../../src/authn/dpop.js');
    expect(DPOP_ALGORITHMS).toEqual([
      'ES256',
      'ES384',
      'ES512',
      'PS256',
      'PS384',
      'PS512',
      'RS256',
      'RS384',
      'RS512',
      'EdDSA',
    ]);
  });

  it('RSA signature algorithms: RS* and PS*, nothing else', async () => {
    const { RSA_SIGNATURE_ALGS } = await import('../../../src/crypto/algorithms.js');
    expect([...RSA_SIGNATURE_ALGS].sort()).toEqual(['PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512']);
  });
});
