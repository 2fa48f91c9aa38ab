// Correctness probe with node:http2 (a real HTTP/2 stack, unlike the raw driver):
// sends a body, reads grpc-status from the trailers and decodes the CheckResponse.
import http2 from 'node:http2';
import { CHECK_PATH, decodeCheckResponse } from './proto.mjs';

export function probe(port, body) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.once('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': CHECK_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': '5S',
    });
    const chunks = [];
    let status;
    let grpcStatus;
    req.on('response', (h) => {
      status = h[':status'];
      if (h['grpc-status'] !== undefined) grpcStatus = h['grpc-status'];
    });
    req.on('trailers', (t) => (grpcStatus = t['grpc-status']));
    req.on('data', (c) => chunks.push(c));
    req.on('error', reject);
    req.on('end', () => {
      session.close();
      const buf = Buffer.concat(chunks);
      const raw = buf.length >= 5 ? buf.subarray(5, 5 + buf.readUInt32BE(1)) : undefined;
      const message = raw ? decodeCheckResponse(raw) : undefined;
      resolve({ httpStatus: status, grpcStatus: Number(grpcStatus), response: message, raw });
    });
    req.end(body);
  });
}

/** Summary of a CheckResponse: decision, header names/values, minted token header. */
export function describe(res) {
  const code = res?.status?.code ?? 0;
  if (code === 0) {
    const headers = Object.fromEntries((res.ok_response?.headers ?? []).map((h) => [h.header.key, h.header.value]));
    return { decision: 'allow', headers, headersToRemove: res.ok_response?.headers_to_remove ?? [] };
  }
  return { decision: 'deny', code, reason: res.status?.message, httpStatus: res.denied_response?.status?.code };
}
