import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCompactJws, verifySignature } from '../../../src/authn/jws.js';
import type { KeySet, KeySource, VerificationKey } from '../../../src/authn/keys/key-source.js';
import { verifyJwt, type CompiledIssuer } from '../../../src/authn/verify.js';
import { forgeToken } from '../../helpers/tokens.js';

// Published vectors (RFC 7515 appendix A, RFC 8037): tokens we did not mint.
const vectors = JSON.parse(
  readFileSync(new URL('../../fixtures/jws-rfc-vectors.json', import.meta.url), 'utf8'),
) as Record<string, any>;
const AT = 1300819000; // before the vectors' exp (1300819380)

function staticSource(keys: VerificationKey[]): KeySource {
  const byKid = new Map<string, VerificationKey[]>();
  for (const k of keys) if (k.kid) byKid.set(k.kid, [...(byKid.get(k.kid) ?? []), k]);
  const set: KeySet = { keys, byKid, byX5tS256: new Map(), byX5t: new Map() };
  return {
    kind: 'local-jwks',
    generation: 1,
    start: async () => undefined,
    current: () => set,
    refreshForUnknownKid: async () => set,
    status: () => ({ state: 'ready', keys: keys.length, loaded: true }),
    close: () => undefined,
  };
}

function publicKey(jwk: Record<string, unknown>): KeyObject {
  return createPublicKey({ key: jwk as any, format: 'jwk' });
}

function issuer(
  keys: VerificationKey[],
  algorithms: string[],
  extra: Partial<CompiledIssuer> = {},
): CompiledIssuer {
  return {
    name: 'rfc',
    issuer: 'joe',
    audiences: 'any',
    algorithms: new Set(algorithms),
    keySource: staticSource(keys),
    clockSkewSeconds: 0,
    requiredClaims: ['iss', 'exp'],
    maxLifetimeSeconds: 86400 * 365 * 100,
    ...extra,
  };
}

const lookup = (iss: CompiledIssuer) => (s: string) => (s === iss.issuer ? iss : undefined);

describe('RFC 7515 / RFC 8037 vectors', () => {
  const rsa: VerificationKey = { kty: 'RSA', key: publicKey(vectors.rfc7515_A2_RS256.public_key) };
  const ec: VerificationKey = {
    kty: 'EC',
    crv: 'P-256',
    key: publicKey(vectors.rfc7515_A3_ES256.public_key),
  };

  it('A.2 RS256 verifies at a fixed clock', async () => {
    const res = await verifyJwt(vectors.rfc7515_A2_RS256.token, lookup(issuer([rsa], ['RS256'])), {
      now: AT,
    });
    expect(res.ok).toBe(true);
    if (res.ok) expect(res.claims['http://example.com/is_root']).toBe(true);
  });

  it('A.2 RS256 is expired at the real clock', async () => {
    const res = await verifyJwt(vectors.rfc7515_A2_RS256.token, lookup(issuer([rsa], ['RS256'])));
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.deny.reason).toBe('token_expired');
  });

  it('A.3 ES256 verifies; its DER-encoded signature variant is refused', async () => {
    const iss = issuer([ec], ['ES256']);
    expect((await verifyJwt(vectors.rfc7515_A3_ES256.token, lookup(iss), { now: AT })).ok).toBe(true);
    const der = await verifyJwt(vectors.rfc7515_A3_ES256.der_encoded_signature_must_fail, lookup(iss), {
      now: AT,
    });
    expect(der.ok).toBe(false);
    if (!der.ok) expect(der.deny.reason).toBe('signature_invalid');
  });

  it('A.1 HS256 verifies with its oct key (only when HS256 is allowed)', async () => {
    const secret: VerificationKey = {
      kty: 'oct',
      key: createSecretKey(Buffer.from(vectors.rfc7515_A1_HS256.key.k, 'base64url')),
    };
    expect(
      (await verifyJwt(vectors.rfc7515_A1_HS256.token, lookup(issuer([secret], ['HS256'])), { now: AT })).ok,
    ).toBe(true);
    const refused = await verifyJwt(vectors.rfc7515_A1_HS256.token, lookup(issuer([secret], ['RS256'])), {
      now: AT,
    });
    expect(refused.ok ? undefined : refused.deny.reason).toBe('alg_not_allowed');
  });

  it('A.2 signature does not verify with the A.3 key or under another alg', async () => {
    const res = await verifyJwt(vectors.rfc7515_A2_RS256.token, lookup(issuer([ec], ['RS256', 'ES256'])), {
      now: AT,
    });
    expect(res.ok ? undefined : res.deny.reason).toBe('key_not_found');
  });

  it('A.5 alg none and §E unknown crit are refused', async () => {
    const iss = issuer([rsa], ['RS256']);
    const none = await verifyJwt(vectors.rfc7515_A5_none_must_fail, lookup(iss), { now: AT });
    expect(none.ok ? undefined : none.deny.reason).toBe('token_malformed'); // empty signature segment
    const crit = await verifyJwt(vectors.rfc7515_E_unknown_crit_must_fail, lookup(iss), { now: AT });
    expect(crit.ok).toBe(false);
  });

  it('RFC 8037 A.4 EdDSA: the signature is valid but a text payload is not a JWT', async () => {
    const v = vectors.rfc8037_A4_EdDSA_text_payload;
    const parsed = parseCompactJws(v.token, 16384);
    expect('kind' in parsed ? parsed.reason : undefined).toBe('token_malformed');
    // The signature itself verifies with node:crypto: we refuse it for its payload, not by accident.
    const [h, p, s] = v.token.split('.');
    expect(verifySignature('EdDSA', publicKey(v.public_key), `${h}.${p}`, Buffer.from(s, 'base64url'))).toBe(
      true,
    );
  });
});

describe('strict compact syntax', () => {
  const cases: [string, string][] = [
    ['one segment', 'abc'],
    ['two segments', 'abc.def'],
    ['four segments', 'a.b.c.d'],
    ['five segments (JWE)', 'a.b.c.d.e'],
    ['padding', 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UifQ==.c2ln'],
    ['whitespace', 'eyJhbGciOiJSUzI1NiJ9 .eyJpc3MiOiJqb2UifQ.c2ln'],
    ['empty signature', 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UifQ.'],
  ];
  for (const [name, token] of cases) {
    it(`refuses ${name}`, () => {
      const parsed = parseCompactJws(token, 16384);
      expect('kind' in parsed ? parsed.reason : 'parsed').toBe('token_malformed');
    });
  }
  it('refuses a non-canonical base64url signature spelling', () => {
    const t = vectors.rfc7515_A3_ES256.token as string;
    // 64 bytes → 86 chars, the last char carries 2 unused bits: flip them.
    const last = t.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) ^ 1]!;
    const variant = t.slice(0, -1) + twin;
    expect(Buffer.from(variant.split('.')[2]!, 'base64url')).toEqual(
      Buffer.from(t.split('.')[2]!, 'base64url'),
    );
    const parsed = parseCompactJws(variant, 16384);
    expect('kind' in parsed ? parsed.reason : 'parsed').toBe('token_malformed');
  });
  describe('header and payload must be valid UTF-8 (jose refuses them too)', () => {
    const secret = Buffer.alloc(32, 9);
    const iss = issuer([{ kty: 'oct', key: createSecretKey(secret) }], ['HS256']);
    const json = (o: object, insert: number[] = []): Buffer => {
      const text = JSON.stringify(o);
      const at = text.indexOf('XX') + 1;
      return Buffer.concat([
        Buffer.from(text.slice(0, at)),
        Buffer.from(insert),
        Buffer.from(text.slice(at)),
      ]);
    };
    const claims = { iss: 'joe', exp: AT + 60, name: 'XX' };
    const token = (header: Buffer, payload: Buffer) =>
      forgeToken({ header: { raw: header }, payload: { raw: payload }, key: secret, signAlg: 'HS256' });
    const header = json({ alg: 'HS256', typ: 'XX' });

    it('accepts well-formed multi-byte UTF-8', async () => {
      const ok = token(header, json(claims, [0xc3, 0xab, 0xf0, 0x9f, 0x9a, 0x80]));
      const res = await verifyJwt(ok, lookup(iss), { now: AT });
      expect(res.ok ? res.claims.name : res.deny.reason).toBe('Xë🚀X');
    });

    const invalid: [string, number[]][] = [
      ['a lone 0xff byte', [0xff]],
      ['an overlong "/" (c0 af)', [0xc0, 0xaf]],
      ['an encoded surrogate (ed a0 80)', [0xed, 0xa0, 0x80]],
      ['a truncated sequence (e2 82)', [0xe2, 0x82]],
    ];
    for (const [name, bytes] of invalid) {
      it(`refuses ${name} in a signed payload string, and in the header`, async () => {
        const inPayload = await verifyJwt(token(header, json(claims, bytes)), lookup(iss), { now: AT });
        expect(inPayload.ok ? 'accepted' : inPayload.deny.reason).toBe('token_malformed');
        const inHeader = await verifyJwt(
          token(json({ alg: 'HS256', typ: 'XX' }, bytes), json(claims)),
          lookup(iss),
          {
            now: AT,
          },
        );
        expect(inHeader.ok ? 'accepted' : inHeader.deny.reason).toBe('token_malformed');
      });
    }
  });
  it('refuses tokens above max_token_bytes', () => {
    const parsed = parseCompactJws(vectors.rfc7515_A2_RS256.token, 100);
    expect('kind' in parsed ? parsed.reason : 'parsed').toBe('token_too_large');
  });
});
