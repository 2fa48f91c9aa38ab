#!/usr/bin/env node
// Reference point for the bench: raw node:http2 with gRPC framing by hand, answering
// every Check with the same allow bytes (no decode, no authorization work): the
// ceiling for any gRPC server written on node:http2. Usage: PORT arg.
import http2 from 'node:http2';

const port = Number(process.argv[2]);
// CheckResponse { status: { code: 0 }, ok_response: {} } = 0a 00 1a 00, framed.
const body = Buffer.from([0x0a, 0x00, 0x1a, 0x00]);
const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, body.length]), body]);
const headers = { ':status': 200, 'content-type': 'application/grpc' };
const trailers = { 'grpc-status': '0' };
const server = http2.createServer();
server.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.on('data', () => {});
  stream.on('end', () => {
    stream.respond(headers, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    stream.end(frame);
  });
});
server.listen(port, '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
