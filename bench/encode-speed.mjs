#!/usr/bin/env node
// CheckResponse encoding: proto-loader's serializer (protobufjs fromObject + encode) against
// the hand-written encoder (src/envoy/check-encode.ts), in process, one core, sequential.
//
//   npm run build && node bench/encode-speed.mjs [--iterations 200000] [--rounds 5]
//
// Rows: a typical allow (two claim headers, a 400-byte x-jwt-assertion, three headers
// removed, dynamic metadata {issuer, sub, scope, claims: {~10 claims}}) and a 401 denial,
// each as response.ts builds it. Rounds alternate between the encoders, so machine load
// hits them alike; each row reports the median round in CPU ns per encode.
import { deny } from '../dist/core/decision.js';
import { encodeCheckResponse } from '../dist/envoy/check-encode.js';
import { authorizationClientConstructor } from '../dist/envoy/protos.js';
import { toCheckResponse } from '../dist/envoy/response.js';
import { iterationsAndRounds, median } from './lib/speed.mjs';

const { iterations: ITERATIONS, rounds: ROUNDS } = iterationsAndRounds();

const protoLoader = authorizationClientConstructor().service.Check.responseSerialize;

const claims = {
  iss: 'https://idp.example.com/realms/main',
  sub: '6f1c2a9e-3b7d-4e55-9a0b-1c2d3e4f5a6b',
  aud: ['api', 'billing'],
  exp: 1_900_000_000,
  iat: 1_899_996_400,
  scope: 'openid profile orders:read',
  email: 'alice@example.com',
  email_verified: true,
  roles: ['user', 'admin'],
  tenant: { id: 't-42', plan: 'pro' },
};
const allow = {
  kind: 'allow',
  reason: 'authenticated',
  headers: [
    { key: 'x-user-id', value: claims.sub },
    { key: 'x-user-email', value: claims.email },
    { key: 'x-jwt-assertion', value: `eyJ${'a'.repeat(397)}` },
  ],
  headersToRemove: ['authorization', 'cookie', 'x-forwarded-user'],
  queryParametersToRemove: [],
  metadata: { issuer: claims.iss, sub: claims.sub, scope: claims.scope, claims },
};
const rows = [
  ['allow', toCheckResponse(allow, 'api')],
  ['deny 401', toCheckResponse(deny('token_expired', 'the token has expired'), 'api')],
];

for (const [name, response] of rows)
  if (!encodeCheckResponse(response).equals(protoLoader(response)))
    throw new Error(`${name}: the encoders disagree`);

/** CPU time (user + system, GC threads included) per encode in ns: less skewed than wall time on a busy machine. */
function time(encode, response) {
  let sink = 0;
  const start = process.cpuUsage();
  for (let i = 0; i < ITERATIONS; i++) sink += encode(response).length;
  const used = process.cpuUsage(start);
  if (sink === 0) console.log('');
  return ((used.user + used.system) * 1000) / ITERATIONS;
}

console.log(`CheckResponse encode, ${ITERATIONS} per round, median of ${ROUNDS} rounds`);
console.log('row        bytes   proto-loader ns/op   hand-written ns/op   speed-up');
for (const [name, response] of rows) {
  // Warm-up.
  time(protoLoader, response);
  time(encodeCheckResponse, response);
  const theirs = [];
  const ours = [];
  for (let r = 0; r < ROUNDS; r++) {
    theirs.push(time(protoLoader, response));
    ours.push(time(encodeCheckResponse, response));
  }
  const a = median(theirs);
  const b = median(ours);
  console.log(
    `${name.padEnd(10)} ${String(encodeCheckResponse(response).length).padStart(5)}   ${a.toFixed(0).padStart(18)}   ${b.toFixed(0).padStart(18)}   ${(a / b).toFixed(2).padStart(7)}x`,
  );
}
