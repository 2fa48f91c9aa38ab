import { generateKeyPairSync, sign } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkSignature } from '../../../src/authn/jws.js';
import { cryptoOffload, setCryptoOffload, signsInline, verifiesInline } from '../../../src/crypto/offload.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ed = generateKeyPairSync('ed25519');

describe('crypto offload default', () => {
  it('the default is the thread pool for every asymmetric operation', () => {
    expect(cryptoOffload()).toBe('always');
    expect(verifiesInline(rsa.publicKey)).toBe(false);
    expect(signsInline(p256.privateKey)).toBe(false);
  });
});

describe('crypto offload policy', () => {
  beforeEach(() => setCryptoOffload('auto'));
  afterEach(() => setCryptoOffload('always'));

  it('auto: cheap operations inline, costly ones on the pool', () => {
    expect(verifiesInline(rsa.publicKey)).toBe(true);
    expect(verifiesInline(p256.publicKey)).toBe(true);
    expect(verifiesInline(ed.publicKey)).toBe(true);
    expect(verifiesInline(p384.publicKey)).toBe(false);
    expect(signsInline(p256.privateKey)).toBe(true);
    expect(signsInline(ed.privateKey)).toBe(true);
    expect(signsInline(rsa.privateKey)).toBe(false);
    expect(signsInline(p384.privateKey)).toBe(false);
  });

  it('always and never override the table', () => {
    setCryptoOffload('always');
    expect(verifiesInline(rsa.publicKey)).toBe(false);
    expect(signsInline(p256.privateKey)).toBe(false);
    setCryptoOffload('never');
    expect(verifiesInline(p384.publicKey)).toBe(true);
    expect(signsInline(rsa.privateKey)).toBe(true);
  });

  it('an RS256 check answers synchronously under auto, through the pool under always; same verdicts', async () => {
    const input = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0';
    const sig = sign('sha256', Buffer.from(input), rsa.privateKey);
    const bad = Buffer.from(sig);
    bad[0]! ^= 1;
    // Inline: a plain boolean, no promise and no thread-pool round trip.
    expect(checkSignature('RS256', rsa.publicKey, input, sig)).toBe(true);
    expect(checkSignature('RS256', rsa.publicKey, input, bad)).toBe(false);
    setCryptoOffload('always');
    const pooled = checkSignature('RS256', rsa.publicKey, input, sig);
    expect(pooled).toBeInstanceOf(Promise);
    expect(await pooled).toBe(true);
    expect(await checkSignature('RS256', rsa.publicKey, input, bad)).toBe(false);
    // P-384 goes to the pool under auto.
    setCryptoOffload('auto');
    const ecSig = sign('sha384', Buffer.from(input), { key: p384.privateKey, dsaEncoding: 'ieee-p1363' });
    const ec = checkSignature('ES384', p384.publicKey, input, ecSig);
    expect(ec).toBeInstanceOf(Promise);
    expect(await ec).toBe(true);
  });
});
