#!/usr/bin/env node
// CheckRequest decoding, then the mapping to the service's AuthRequest: the hand-written
// decoder (src/envoy/check-decode.ts) against proto-loader's deserializer (protobufjs decode
// + toObject), in process, one core, sequential.
//
//   npm run build && node bench/decode-speed.mjs [--iterations 200000] [--rounds 5]
//
// Requests: 100 of the bench's Envoy-shaped CheckRequests (bench/lib/proto.mjs: eleven
// headers with the pseudo-headers, a ~1 KB bearer token, source and destination), cycled.
// Rounds alternate which decoder goes first; each reports its median round, CPU ns per request.
import { toAuthRequest } from '../dist/envoy/auth-request.js';
import { decodeCheckRequest } from '../dist/envoy/check-decode.js';
import { authorizationClientConstructor } from '../dist/envoy/protos.js';
import { checkBody } from './lib/proto.mjs';
import { iterationsAndRounds, median } from './lib/speed.mjs';

const { iterations, rounds } = iterationsAndRounds();
const decoders = {
  'check-decode.ts': decodeCheckRequest,
  'proto-loader': authorizationClientConstructor().service.Check.requestDeserialize,
};
const token = `eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.${'e'.repeat(700)}.${'s'.repeat(342)}`;
const bodies = Array.from({ length: 100 }, (_, i) =>
  checkBody({ token: `${token}${i}`, requestId: `bench-decode-${i}`, seq: i }).subarray(5),
);

// Both must hand the service the same request.
const plain = (r) => JSON.stringify({ ...r, headers: { ...r.headers } });
for (const body of bodies)
  if (plain(toAuthRequest(decoders['check-decode.ts'](body))) !== plain(toAuthRequest(decoders['proto-loader'](body))))
    throw new Error('the decoders disagree');

const perRequest = Object.fromEntries(Object.keys(decoders).map((name) => [name, []]));
let sink = 0;
for (let round = 0; round < rounds; round++) {
  const order = round % 2 ? Object.keys(decoders).reverse() : Object.keys(decoders);
  for (const name of order) {
    const decode = decoders[name];
    const before = process.cpuUsage();
    for (let i = 0; i < iterations; i++) sink += toAuthRequest(decode(bodies[i % bodies.length])).rawPath.length;
    const used = process.cpuUsage(before);
    perRequest[name].push(((used.user + used.system) * 1000) / iterations);
  }
}
console.log(`CheckRequest decode + AuthRequest, ${bodies[0].length}-byte requests, median of ${rounds} rounds:`);
for (const [name, ns] of Object.entries(perRequest)) console.log(`  ${name.padEnd(16)} ${Math.round(median(ns))} ns`);
if (sink === 0) console.log('');
