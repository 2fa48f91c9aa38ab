#!/usr/bin/env node
// Reference point for the bench: raw node:http2 with gRPC framing by hand, answering
// every Check with the same allow bytes (no decode, no authorization work): the
// ceiling for any gRPC server written on node:http2. Usage: PORT arg.
// It also answers grpc.health.v1.Health/Check with SERVING, so Envoy's gRPC health
// check marks it healthy and it can stand behind Envoy's ext_authz filter (the
// `floor` row of bench/envoy.mjs). Watch is not answered: the shipped envoy.yaml
// health-checks with Check.
// Usage: PORT [RESPONSE_FILE]: with a file, every Check is answered with the serialized
// CheckResponse in it instead (the `floor-shaped` row: the service's own answer, no work).
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';

const port = Number(process.argv[2]);
const framed = (bytes) => {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  Buffer.from(bytes).copy(out, 5);
  return out;
};
// CheckResponse { status: { code: 0 }, ok_response: {} } = 0a 00 1a 00, framed.
const frame = framed(process.argv[3] ? readFileSync(process.argv[3]) : [0x0a, 0x00, 0x1a, 0x00]);
// HealthCheckResponse { status: SERVING (1) } = 08 01, framed.
const healthFrame = framed([0x08, 0x01]);
const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
const headers = { ':status': 200, 'content-type': 'application/grpc' };
const trailers = { 'grpc-status': '0' };
const server = http2.createServer();
server.on('stream', (stream, requestHeaders) => {
  const body = requestHeaders[':path'] === HEALTH_CHECK ? healthFrame : frame;
  stream.on('error', () => {});
  stream.on('data', () => {});
  stream.on('end', () => {
    stream.respond(headers, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    stream.end(body);
  });
});
server.listen(port, '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
