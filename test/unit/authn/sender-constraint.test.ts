import { describe, expect, it } from 'vitest';
import { MemoryReplayCache } from '../../../src/authn/dpop.js';
import { compileTokenSources } from '../../../src/authn/extract.js';
import { certificateThumbprint, checkCertificateBinding } from '../../../src/authn/mtls.js';
import {
  checkSenderConstraint,
  compileSenderConstraint,
  confirmationOf,
  withDpopTokenSource,
  type CompiledSenderConstraint,
} from '../../../src/authn/sender-constraint.js';
import type { Deny } from '../../../src/core/decision.js';
import type { AuthRequest } from '../../../src/core/request.js';
import { createSelfSignedCertificate, generateEcKeyPair } from '../../helpers/keys.js';
import { dpopProof, jktOf } from '../../helpers/dpop.js';

const [BEARER, DPOP] = withDpopTokenSource(
  compileTokenSources([{ header: 'authorization', prefix: 'Bearer ' }]),
  [{ sender_constraint: { mtls: 'off', dpop: 'optional' } }],
);
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
const clientKey = generateEcKeyPair();
const cert = createSelfSignedCertificate(clientKey);
const otherCert = createSelfSignedCertificate(generateEcKeyPair());
const dpopKey = generateEcKeyPair();

function request(over: Partial<AuthRequest> = {}): AuthRequest {
  return {
    method: 'GET',
    rawPath: '/api/orders',
    host: 'api.example.com',
    headers: {},
    contextExtensions: {},
    scheme: 'https',
    ...over,
  };
}

const mode = (mtls: string, dpop: string): CompiledSenderConstraint =>
  compileSenderConstraint({ sender_constraint: { mtls, dpop } as any, clock_skew_seconds: 10 })!;

describe('certificate binding', () => {
  const encoded = encodeURIComponent(cert.pem);
  it('computes the thumbprint of the URL-encoded PEM Envoy sends', () => {
    expect(certificateThumbprint(encoded)).toBe(cert.x5tS256);
    expect(certificateThumbprint('not%20a%20certificate')).toBeUndefined();
    expect(certificateThumbprint('%E0%A4%A')).toBeUndefined();
  });

  it('allows the matching certificate and refuses another, none, or an unbound token when required', () => {
    expect(checkCertificateBinding('required', cert.x5tS256, encoded)).toBeUndefined();
    expect(checkCertificateBinding('optional', cert.x5tS256, encoded)).toBeUndefined();
    const wrong = checkCertificateBinding('optional', cert.x5tS256, encodeURIComponent(otherCert.pem))!;
    expect(wrong.reason).toBe('cnf_mismatch');
    expect(wrong.description).toBe('the client certificate does not match the token (cnf x5t#S256)');
    expect(wrong.description).not.toContain(otherCert.x5tS256);
    expect(checkCertificateBinding('optional', cert.x5tS256, undefined)!.description).toMatch(
      /presented none/,
    );
    expect(checkCertificateBinding('required', undefined, encoded)!.reason).toBe('cnf_missing');
    expect(checkCertificateBinding('optional', undefined, undefined)).toBeUndefined();
    expect(checkCertificateBinding('optional', 42, encoded)!.reason).toBe('cnf_mismatch');
    expect(checkCertificateBinding('optional', cert.x5tS256, 'garbage')!.description).toMatch(
      /could not be read/,
    );
    expect(checkCertificateBinding('off', cert.x5tS256, undefined)).toBeUndefined();
  });
});

describe('checkSenderConstraint', () => {
  const replay = new MemoryReplayCache();
  const ctx = () => ({ replay, now: Math.floor(Date.now() / 1000) });
  const run = (
    c: CompiledSenderConstraint | undefined,
    cnf: Record<string, unknown> | undefined,
    req: AuthRequest,
    source = DPOP!,
  ) => checkSenderConstraint(c, confirmationOf(cnf ? { cnf } : {}), req, TOKEN, source, ctx);

  it('adds the DPoP scheme once, only when an issuer accepts DPoP', () => {
    expect(DPOP).toMatchObject({ kind: 'header', name: 'authorization', prefixLower: 'dpop ' });
    const none = withDpopTokenSource([BEARER!], [{ sender_constraint: { mtls: 'required', dpop: 'off' } }]);
    expect(none).toHaveLength(1);
    expect(
      withDpopTokenSource([BEARER!, DPOP!], [{ sender_constraint: { mtls: 'off', dpop: 'required' } }]),
    ).toHaveLength(2);
    expect(
      compileSenderConstraint({ sender_constraint: { mtls: 'off', dpop: 'off' }, clock_skew_seconds: 1 }),
    ).toBeUndefined();
  });

  it('allows a DPoP-bound token with a fresh proof of its key, and refuses the same proof again', async () => {
    const jkt = await jktOf(dpopKey);
    const proof = await dpopProof(dpopKey, { token: TOKEN });
    const req = request({ headers: { dpop: proof } });
    expect(await run(mode('off', 'required'), { jkt }, req)).toBeUndefined();
    const again = (await run(mode('off', 'required'), { jkt }, req)) as Deny;
    expect(again.reason).toBe('dpop_replayed');
    expect(again.scheme).toBe('DPoP');
  });

  it('refuses a proof by another key than the token is bound to', async () => {
    const proof = await dpopProof(generateEcKeyPair(), { token: TOKEN });
    const d = (await run(
      mode('off', 'optional'),
      { jkt: await jktOf(dpopKey) },
      request({ headers: { dpop: proof } }),
    )) as Deny;
    expect(d.reason).toBe('cnf_mismatch');
    expect(d.description).toMatch(/does not match the token \(cnf.jkt\)/);
  });

  it('refuses a DPoP-bound token sent as Bearer, even with a valid proof', async () => {
    const proof = await dpopProof(dpopKey, { token: TOKEN });
    const d = run(
      mode('off', 'optional'),
      { jkt: await jktOf(dpopKey) },
      request({ headers: { dpop: proof } }),
      BEARER,
    ) as Deny;
    expect(d.reason).toBe('cnf_mismatch');
    expect(d.scheme).toBe('DPoP');
  });

  it('required refuses an unbound token; optional lets it through as Bearer but not as DPoP', () => {
    expect((run(mode('off', 'required'), undefined, request(), BEARER) as Deny).reason).toBe('cnf_missing');
    expect(run(mode('off', 'optional'), undefined, request(), BEARER)).toBeUndefined();
    expect((run(mode('off', 'optional'), undefined, request(), DPOP) as Deny).reason).toBe('cnf_missing');
  });

  it('refuses the DPoP scheme for an issuer that does not accept DPoP', () => {
    expect((run(undefined, undefined, request(), DPOP) as Deny).reason).toBe('cnf_mismatch');
    expect(
      (
        run(
          mode('required', 'off'),
          { 'x5t#S256': cert.x5tS256 },
          request({ clientCertificate: encodeURIComponent(cert.pem) }),
          DPOP,
        ) as Deny
      ).reason,
    ).toBe('cnf_mismatch');
    expect(run(undefined, { jkt: 'x' }, request(), BEARER)).toBeUndefined();
  });

  it('a bound token without a proof, or without a known request URL, is refused', async () => {
    const jkt = await jktOf(dpopKey);
    const noProof = (await run(mode('off', 'optional'), { jkt }, request())) as Deny;
    expect(noProof.reason).toBe('dpop_invalid');
    const proof = await dpopProof(dpopKey, { token: TOKEN });
    const noScheme = (await run(
      mode('off', 'optional'),
      { jkt },
      request({ scheme: undefined, headers: { dpop: proof } }),
    )) as Deny;
    expect(noScheme.reason).toBe('dpop_invalid');
  });

  it('checks the certificate binding as well when both are on', async () => {
    const jkt = await jktOf(dpopKey);
    const proof = await dpopProof(dpopKey, { token: TOKEN });
    const d = run(
      mode('required', 'required'),
      { jkt, 'x5t#S256': cert.x5tS256 },
      request({ headers: { dpop: proof }, clientCertificate: encodeURIComponent(otherCert.pem) }),
    ) as Deny;
    expect(d.reason).toBe('cnf_mismatch');
    expect(
      await run(
        mode('required', 'required'),
        { jkt, 'x5t#S256': cert.x5tS256 },
        request({ headers: { dpop: proof }, clientCertificate: encodeURIComponent(cert.pem) }),
      ),
    ).toBeUndefined();
  });

  it('fails closed when the replay store cannot answer', async () => {
    const broken = { rememberOnce: () => Promise.reject(new Error('down')) };
    const proof = await dpopProof(dpopKey, { token: TOKEN });
    const d = (await checkSenderConstraint(
      mode('off', 'required'),
      { jkt: await jktOf(dpopKey) },
      request({ headers: { dpop: proof } }),
      TOKEN,
      DPOP!,
      () => ({ replay: broken, now: Math.floor(Date.now() / 1000) }),
    )) as Deny;
    expect(d.reason).toBe('store_unavailable');
  });
});
