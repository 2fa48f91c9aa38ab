// DPoP proofs for tests: signed with jose for the ordinary cases, forged with
// node:crypto (forgeToken) when the header has to lie (none, HS256, private jwk).
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, type JWK } from 'jose';
import type { TestKeyPair } from './keys.js';

export interface ProofOptions {
  htm?: string;
  htu?: string;
  /** The access token the proof is for (ath); omit to leave ath out. */
  token?: string;
  /** epoch seconds; default now. */
  iat?: number;
  jti?: string;
  /** Extra or replaced header members (undefined drops one). */
  header?: Record<string, unknown>;
  /** Extra or replaced claims (undefined drops one). */
  claims?: Record<string, unknown>;
}

/** The public JWK of a pair, without kid/alg/use (what a DPoP client embeds). */
export function proofJwk(pair: TestKeyPair): JWK {
  const { kid: _k, alg: _a, use: _u, ...jwk } = pair.publicJwk;
  return jwk as JWK;
}

export function jktOf(pair: TestKeyPair): Promise<string> {
  return calculateJwkThumbprint(proofJwk(pair), 'sha256');
}

export function athOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

function drop<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

export function proofParts(pair: TestKeyPair, opts: ProofOptions = {}) {
  const header = drop({ typ: 'dpop+jwt', alg: pair.alg, jwk: proofJwk(pair), ...opts.header });
  const claims = drop({
    htm: opts.htm ?? 'GET',
    htu: opts.htu ?? 'https://api.example.com/api/orders',
    iat: opts.iat ?? Math.floor(Date.now() / 1000),
    jti: opts.jti ?? randomUUID(),
    ath: opts.token === undefined ? undefined : athOf(opts.token),
    ...opts.claims,
  });
  return { header, claims };
}

/** A DPoP proof signed by the pair's private key (jose). */
export function dpopProof(pair: TestKeyPair, opts: ProofOptions = {}): Promise<string> {
  const { header, claims } = proofParts(pair, opts);
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(pair.privateKey);
}
