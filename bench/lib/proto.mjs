// CheckRequest bodies exactly as Envoy sends them, serialized with the same
// proto-loader/protobufjs definitions the server uses, framed for gRPC.
import { fileURLToPath } from 'node:url';
import protoLoader from '@grpc/proto-loader';

export const PROTOS_DIR = fileURLToPath(new URL('../../protos', import.meta.url));
export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

let method;
function checkMethod() {
  if (!method) {
    const def = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', {
      keepCase: true,
      longs: String,
      enums: Number,
      defaults: false,
      oneofs: true,
      includeDirs: [PROTOS_DIR],
    });
    method = def['envoy.service.auth.v3.Authorization'].Check;
  }
  return method;
}

/** 1 byte compression flag (0) + 4-byte big-endian length + message. */
export function grpcFrame(message) {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Splits a concatenation of gRPC frames (the bodies file format) into subarrays. */
export function splitFrames(buf) {
  const out = [];
  let off = 0;
  while (off + 5 <= buf.length) {
    const len = buf.readUInt32BE(off + 1);
    out.push(buf.subarray(off, off + 5 + len));
    off += 5 + len;
  }
  return out;
}

/**
 * A CheckRequest the way Envoy's ext_authz HTTP filter builds it: lower-case
 * headers including the pseudo-headers, joined repeated headers, source and
 * destination addresses, request time, and the http attributes.
 */
export function envoyCheckRequest({ token, path = '/api/orders/42?expand=items', method = 'GET', host = 'orders.bench.local', requestId, seq = 0 }) {
  const headers = {
    ':authority': host,
    ':path': path,
    ':method': method,
    ':scheme': 'https',
    'user-agent': 'Mozilla/5.0 (bench) envoy-jwt-authz-bench/1.0',
    accept: 'application/json',
    'accept-encoding': 'gzip, deflate, br',
    'x-forwarded-proto': 'https',
    'x-forwarded-for': '10.1.2.3',
    'x-request-id': requestId,
    'x-envoy-expected-rq-timeout-ms': '15000',
  };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const q = path.indexOf('?');
  const nowMs = Date.now();
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.1.2.3', port_value: 40000 + (seq % 20000) } } },
      destination: { address: { socket_address: { address: '10.0.0.10', port_value: 8080 } } },
      request: {
        time: { seconds: String(Math.floor(nowMs / 1000)), nanos: (nowMs % 1000) * 1e6 },
        http: {
          id: String(1e15 + seq),
          method,
          headers,
          path,
          host,
          scheme: 'https',
          query: q >= 0 ? path.slice(q + 1) : '',
          protocol: 'HTTP/1.1',
        },
      },
      metadata_context: {},
    },
  };
}

/** Serialized + gRPC-framed CheckRequest body. */
export function checkBody(opts) {
  return grpcFrame(checkMethod().requestSerialize(envoyCheckRequest(opts)));
}

/** Decodes a CheckResponse message (without the 5-byte gRPC prefix). */
export function decodeCheckResponse(message) {
  return checkMethod().responseDeserialize(message);
}
