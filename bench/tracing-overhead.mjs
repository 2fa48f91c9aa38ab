#!/usr/bin/env node
// Cost of tracing on the Check pipeline, in process (no gRPC, no load generator), so it
// stays readable on a busy machine: the repeated-token path (a cached allow) and the
// distinct-token path (verify + mint every time), time per check, best and median of
// several rounds.
//
//   node bench/tracing-overhead.mjs [--endpoint URL] [--ratio R] [--compare DIR]
//
// --endpoint switches tracing on (an OTLP/HTTP receiver must listen there).
// --compare DIR also measures another build (e.g. the main branch's dist/) in the same
// process, its rounds alternating with this build's, so both see the same machine load.
import { parseArgs } from 'node:util';
import { generateKeyPair, exportJWK, SignJWT } from 'jose';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const { values: o } = parseArgs({
  options: {
    dist: { type: 'string', default: 'dist' },
    compare: { type: 'string' },
    endpoint: { type: 'string' },
    ratio: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '9' },
  },
});

const ISS = 'https://idp.bench';
const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const config = {
  issuers: [{ name: 'idp', issuer: ISS, audiences: ['api'], jwks: { keys: [jwk] } }],
  rules: [{ name: 'api', match: { path_prefix: '/' }, require: { scopes_all: ['read'] } }],
  upstream: {
    claim_headers: { 'x-user-id': 'sub' },
    token: { issuer: 'https://authz', audiences: ['backend'] },
  },
  verified_token_cache: { max_entries: 1000 },
};

async function start(dir, tracing) {
  const dist = pathToFileURL(resolve(dir)).href;
  const { App } = await import(`${dist}/server/app.js`);
  const { loadConfigObject } = await import(`${dist}/config/load.js`);
  const { createLogger } = await import(`${dist}/observability/logger.js`);
  const { Metrics } = await import(`${dist}/observability/metrics.js`);
  const service = await App.start(loadConfigObject({ ...config, ...tracing }, process.cwd(), {}), {
    logger: createLogger('silent'),
    metrics: new Metrics({ processMetrics: false }),
    grpcAddress: '127.0.0.1:0',
    httpAddress: '127.0.0.1:0',
  });
  return { name: dir, service, pipeline: service.current.pipeline, rep: [], dis: [] };
}

const tracing = o.endpoint ? { tracing: { otlp_endpoint: o.endpoint, sample_ratio: Number(o.ratio) } } : {};
const subjects = [await start(o.dist, tracing)];
if (o.compare) subjects.push(await start(o.compare, {}));

const now = Math.floor(Date.now() / 1000);
const sign = (i) =>
  new SignJWT({ sub: `user-${i}`, scope: 'read', iat: now, exp: now + 3600, iss: ISS, aud: 'api' })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .sign(privateKey);
const request = (token, i) => ({
  method: 'GET',
  rawPath: '/orders',
  host: 'api.example.com',
  headers: Object.assign(Object.create(null), { authorization: `Bearer ${token}`, 'x-request-id': `r-${i}` }),
  contextExtensions: {},
});
const repeated = [request(await sign(0), 0)];
// More distinct tokens than the verified-token cache holds: every check verifies and mints.
const distinct = await Promise.all(
  Array.from({ length: 2000 }, async (_, i) => request(await sign(i + 1), i)),
);

async function round(pipeline, reqs, n) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const d = pipeline.check(reqs[i % reqs.length]);
    if (d instanceof Promise) await d;
  }
  return Number(process.hrtime.bigint() - t0) / n;
}
for (const s of subjects) await round(s.pipeline, repeated, 50_000); // warm-up
for (let r = 0; r < Number(o.rounds); r++) {
  for (const s of subjects) s.rep.push(await round(s.pipeline, repeated, 100_000));
  for (const s of subjects) s.dis.push(await round(s.pipeline, distinct, 1_000));
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const s of subjects) {
  console.log(
    JSON.stringify({
      build: s.name,
      tracing: s === subjects[0] && o.endpoint ? `on, ratio ${o.ratio}` : 'off',
      repeated_ns_per_check: { best: Math.round(Math.min(...s.rep)), median: Math.round(median(s.rep)) },
      distinct_us_per_check: {
        best: Math.round(Math.min(...s.dis) / 100) / 10,
        median: Math.round(median(s.dis) / 100) / 10,
      },
    }),
  );
  await s.service.shutdown(0);
}
