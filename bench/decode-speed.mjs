#!/usr/bin/env node
// CheckRequest decoding: proto-loader's deserializer (protobufjs decode + toObject) against
// the hand-written decoder (src/envoy/check-decode.ts), each followed by the mapping to the
// service's AuthRequest, in process, one core, sequential.
//
//   npm run build && node bench/decode-speed.mjs [--iterations 200000] [--rounds 5]
//
// The requests are the bench's Envoy-shaped CheckRequests (bench/lib/proto.mjs: eleven
// headers with the pseudo-headers, a ~1 KB bearer token, source and destination addresses),
// 100 of them cycled. Rounds alternate between the decoders, so machine load hits them alike;
// each row reports the median round in CPU ns per decode.
import { parseArgs } from 'node:util';
import { decodeCheckRequest } from '../dist/envoy/check-decode.js';
import { toAuthRequest } from '../dist/envoy/auth-request.js';
import { authorizationClientConstructor } from '../dist/envoy/protos.js';
import { checkBody } from './lib/proto.mjs';

const { values: opts } = parseArgs({
  options: { iterations: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } },
  strict: true,
});
const ITERATIONS = Number(opts.iterations);
const ROUNDS = Number(opts.rounds);
if (!(ITERATIONS >= 1) || !(ROUNDS >= 1)) {
  console.error('--iterations and --rounds must be positive numbers');
  process.exit(2);
}

const protoLoader = authorizationClientConstructor().service.Check.requestDeserialize;
const token = `eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.${'e'.repeat(700)}.${'s'.repeat(342)}`;
const bodies = Array.from({ length: 100 }, (_, i) =>
  checkBody({ token: `${token}${i}`, requestId: `bench-decode-${i}`, seq: i }).subarray(5),
);

// Both decoders must give the service the same request.
for (const body of bodies) {
  const a = toAuthRequest(decodeCheckRequest(body));
  const b = toAuthRequest(protoLoader(body));
  if (JSON.stringify({ ...a, headers: { ...a.headers } }) !== JSON.stringify({ ...b, headers: { ...b.headers } }))
    throw new Error('the decoders disagree');
}

const decoders = [
  ['check-decode.ts', decodeCheckRequest],
  ['proto-loader', protoLoader],
];
const times = new Map(decoders.map(([name]) => [name, []]));
let sink = 0;
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, decode] of round % 2 ? [...decoders].reverse() : decoders) {
    const start = process.cpuUsage();
    for (let i = 0; i < ITERATIONS; i++) sink += toAuthRequest(decode(bodies[i % bodies.length])).rawPath.length;
    const used = process.cpuUsage(start);
    times.get(name).push(((used.user + used.system) * 1000) / ITERATIONS);
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
console.log(`CheckRequest decode + AuthRequest, ${bodies[0].length}-byte requests, median of ${ROUNDS} rounds (CPU ns per decode):`);
for (const [name] of decoders) console.log(`  ${name.padEnd(16)} ${Math.round(median(times.get(name)))} ns`);
if (sink === 0) console.log('');
