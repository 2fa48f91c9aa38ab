#!/usr/bin/env node
// Cost of one rate limit (counters in Redis) on the Check path, in one process:
//   plain:   rule api, no rate limit
//   limited: the same rule with one rate limit (store.type redis; limit high enough that
//            every check is allowed, so both variants do the same work besides counting)
// Each check is decided and its CheckResponse serialized as the gRPC service does
// (allowed responses with a rate limit carry per-request RateLimit headers).
// Distinct tokens (every check verifies an ES256 signature) and repeated tokens (100
// tokens: the memoised allow). Checks run 64 at a time so Redis round trips overlap;
// the figure is checks per CPU-second of THIS process (Redis's own CPU is not counted,
// and other load on the machine does not stretch it). Rounds alternate the variants.
//
//   npm run build && REDIS_URL=redis://127.0.0.1:6379 node bench/rate-limit.mjs [--rounds 5]
import { parseArgs } from 'node:util';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { SignJWT, exportJWK } from 'jose';
import { loadConfigObject } from '../dist/config/load.js';
import { Runtime } from '../dist/server/runtime.js';
import { createLogger } from '../dist/observability/logger.js';
import { Metrics } from '../dist/observability/metrics.js';
import { toCheckResponse, WIRE } from '../dist/envoy/response.js';
import { checkResponseSerializer } from '../dist/envoy/protos.js';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    distinct: { type: 'string', default: '4000' },
    repeated: { type: 'string', default: '40000' },
  },
});
const ROUNDS = Number(opts.rounds);
const DISTINCT = Number(opts.distinct);
const REPEATED_CHECKS = Number(opts.repeated);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ISS = 'https://bench.example.com';
const CONCURRENCY = 64;

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const now = Math.floor(Date.now() / 1000);
const sign = (i) =>
  new SignJWT({ sub: `u${i}`, scope: 'read' })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISS)
    .setAudience('api')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);
const tokens = [];
for (let i = 0; i < DISTINCT; i++) tokens.push(await sign(i));

const runtimes = [];
async function pipelineFor(limited) {
  const loaded = loadConfigObject(
    {
      issuers: [
        { name: 'bench', issuer: ISS, audiences: ['api'], algorithms: ['ES256'], jwks: { keys: [jwk] } },
      ],
      rules: [{ name: 'api', match: { path_prefix: '/api' }, require: { scopes_all: ['read'] } }],
      upstream: { claim_headers: { 'x-user-id': 'sub' } },
      verified_token_cache: { max_entries: Math.min(1000, Math.floor(DISTINCT / 4)) },
      ...(limited
        ? {
            store: {
              type: process.env.BENCH_STORE ?? 'redis',
              redis_url: REDIS_URL,
              key_prefix: `bench-rl:${randomBytes(4).toString('hex')}:`,
            },
            rate_limits: [{ name: 'per-client', limit: 1_000_000_000, window_seconds: 1 }],
          }
        : {}),
    },
    process.cwd(),
    {},
  );
  const runtime = await Runtime.build(loaded, {
    logger: createLogger('silent'),
    metrics: new Metrics({ processMetrics: false }),
  });
  await runtime.start();
  runtimes.push(runtime);
  // Wait for the Redis connection.
  for (let i = 0; i < 100 && !runtime.ready(); i++) await new Promise((r) => setTimeout(r, 50));
  return runtime.pipeline;
}

const request = (token) => ({
  method: 'GET',
  rawPath: '/api/orders',
  host: 'api.example.com',
  headers: Object.assign(Object.create(null), {
    authorization: `Bearer ${token}`,
    'x-request-id': 'bench',
    'user-agent': 'bench',
  }),
  contextExtensions: Object.create(null),
});
const distinctReqs = tokens.map(request);
const repeatedReqs = tokens.slice(0, 100).map(request);

const serialize = checkResponseSerializer();
const encode = (d) => {
  const r = toCheckResponse(d, 'bench', serialize);
  return r[WIRE] ?? serialize(r);
};

const plain = await pipelineFor(false);
const limited = await pipelineFor(true);

async function pass(pipeline, reqs, n) {
  let allowed = 0;
  let bytes = 0;
  let next = 0;
  const c0 = process.cpuUsage();
  const worker = async () => {
    while (next < n) {
      let d = pipeline.check(reqs[next++ % reqs.length]);
      if (typeof d.then === 'function') d = await d;
      bytes += encode(d).length;
      if (d.kind === 'allow') allowed++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const c = process.cpuUsage(c0);
  if (allowed !== n) throw new Error(`expected ${n} allows, got ${allowed}`);
  if (bytes === 0) throw new Error('nothing was serialized');
  return n / ((c.user + c.system) / 1e6);
}

const results = { distinct: { plain: [], limited: [] }, repeated: { plain: [], limited: [] } };
await pass(plain, distinctReqs, 500);
await pass(limited, distinctReqs, 500);
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? ['plain', 'limited'] : ['limited', 'plain'];
  for (const v of order)
    results.distinct[v].push(await pass(v === 'plain' ? plain : limited, distinctReqs, DISTINCT));
  for (const v of order)
    results.repeated[v].push(await pass(v === 'plain' ? plain : limited, repeatedReqs, REPEATED_CHECKS));
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const best = (a) => Math.max(...a);
const fmt = (x) => Math.round(x).toLocaleString('en-US');
console.log(`node ${process.version}, ${ROUNDS} rounds, ${DISTINCT} distinct tokens, Redis ${REDIS_URL}`);
for (const kind of ['distinct', 'repeated']) {
  const { plain: p, limited: l } = results[kind];
  console.log(
    `${kind.padEnd(9)} checks per CPU-second: no rate limit ${fmt(best(p))} (median ${fmt(median(p))})` +
      `  one rate limit on Redis ${fmt(best(l))} (median ${fmt(median(l))})` +
      `  ratio best ${(best(l) / best(p)).toFixed(3)} median of per-round ratios ${median(l.map((x, i) => x / p[i])).toFixed(3)}`,
  );
}
await Promise.all(runtimes.map((r) => r.close()));
