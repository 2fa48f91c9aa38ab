// Signs a range of tokens (worker_threads); RSA signing is ~1 ms per token, so
// bulk generation is spread over the machine's cores before any server starts.
import { parentPort, workerData } from 'node:worker_threads';
import { createPrivateKey, sign } from 'node:crypto';
import { makeClaims, encodeSegment } from './claims.mjs';

const { alg, privateJwk, kid, claimsBase, start, count, prefix } = workerData;
const key = createPrivateKey({ key: privateJwk, format: 'jwk' });
const header = encodeSegment({ alg, typ: 'JWT', kid });
const out = new Array(count);
for (let i = 0; i < count; i++) {
  const input = `${header}.${encodeSegment(makeClaims(claimsBase, prefix, start + i))}`;
  const sig =
    alg === 'RS256'
      ? sign('sha256', Buffer.from(input), key)
      : sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  out[i] = `${input}.${sig.toString('base64url')}`;
}
parentPort.postMessage(out);
