// What one RS256 verification and one ES256 signature cost on this machine, now: the
// floor a distinct-token check cannot go under (it verifies the token and mints a new
// one). One-shot node:crypto calls with KeyObjects, CPU time of this process.
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { encodeSegment, makeClaims } from './claims.mjs';

const cpuUs = (since) => {
  const d = process.cpuUsage(since);
  return d.user + d.system;
};

/** { rs256_verify_us, es256_sign_us, ops }: CPU µs per operation over `ops` operations each. */
export function cryptoCost({ rsKey, tokens, esKey, ops = 2000 }) {
  const pub = createPublicKey({ key: rsKey.publicJwk, format: 'jwk' });
  const signed = tokens.slice(0, ops).map((t) => {
    const dot = t.lastIndexOf('.');
    return [Buffer.from(t.slice(0, dot)), Buffer.from(t.slice(dot + 1), 'base64url')];
  });
  const priv = createPrivateKey({ key: esKey.privateJwk, format: 'jwk' });
  const iat = Math.floor(Date.now() / 1000);
  const header = encodeSegment({ alg: 'ES256', typ: 'JWT', kid: esKey.kid });
  const base = {
    iss: 'https://authz.bench.internal',
    aud: 'backend',
    iat,
    exp: iat + 300,
    scope: 'read write',
  };
  const inputs = Array.from({ length: ops }, (_, i) =>
    Buffer.from(`${header}.${encodeSegment(makeClaims(base, 'user', i))}`),
  );
  // Warm-up (lazy initialisation, JIT) outside the measurement.
  for (let i = 0; i < 50; i++) {
    verify('sha256', signed[i % signed.length][0], pub, signed[i % signed.length][1]);
    sign('sha256', inputs[i], { key: priv, dsaEncoding: 'ieee-p1363' });
  }
  let t = process.cpuUsage();
  let valid = 0;
  for (let i = 0; i < ops; i++) {
    const [data, sig] = signed[i % signed.length];
    if (verify('sha256', data, pub, sig)) valid++;
  }
  const verifyUs = cpuUs(t) / ops;
  if (valid !== ops) throw new Error(`crypto cost: ${ops - valid} of ${ops} RS256 verifications failed`);
  t = process.cpuUsage();
  for (let i = 0; i < ops; i++) sign('sha256', inputs[i], { key: priv, dsaEncoding: 'ieee-p1363' });
  const signUs = cpuUs(t) / ops;
  const r = (x) => Math.round(x * 10) / 10;
  return { rs256_verify_us: r(verifyUs), es256_sign_us: r(signUs), ops };
}
