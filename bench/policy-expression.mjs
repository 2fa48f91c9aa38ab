#!/usr/bin/env node
// Cost of a CEL require.expression on the Check path, in one process:
//   rule A: require scopes_all [read]
//   rule B: the same plus  claims.org.id == request.headers['x-org'] && 'admin' in scopes
// Distinct tokens (every check verifies an ES256 signature: pool larger than the
// verified-token cache) and repeated tokens (100 tokens; rule A's allow is reused,
// rule B reads the request so it is decided on every check). Rounds alternate A and
// B so machine noise hits both; prints checks per CPU-second (best and median) and B/A.
//
//   npm run build && node bench/policy-expression.mjs [--rounds 7] [--distinct 4000]
import { parseArgs } from 'node:util';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, exportJWK } from 'jose';
import { loadConfigObject } from '../dist/config/load.js';
import { Runtime } from '../dist/server/runtime.js';
import { createLogger } from '../dist/observability/logger.js';
import { Metrics } from '../dist/observability/metrics.js';

const { values: opts } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, distinct: { type: 'string', default: '4000' } },
});
const ROUNDS = Number(opts.rounds);
const DISTINCT = Number(opts.distinct);
const REPEATED = 100;
const ISS = 'https://bench.example.com';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const now = Math.floor(Date.now() / 1000);
const sign = (i) =>
  new SignJWT({ sub: `u${i}`, scope: 'read admin', org: { id: 'o1' } })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISS)
    .setAudience('api')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);
const tokens = [];
for (let i = 0; i < DISTINCT; i++) tokens.push(await sign(i));

async function pipelineFor(expression) {
  const require = { scopes_all: ['read'], ...(expression ? { expression } : {}) };
  const loaded = loadConfigObject(
    {
      issuers: [
        { name: 'bench', issuer: ISS, audiences: ['api'], algorithms: ['ES256'], jwks: { keys: [jwk] } },
      ],
      rules: [{ name: 'api', match: { path_prefix: '/api' }, require }],
      upstream: { claim_headers: { 'x-user-id': 'sub' } },
      // Smaller than the distinct pool: cycled round-robin, every distinct check verifies.
      verified_token_cache: { max_entries: Math.min(1000, Math.floor(DISTINCT / 4)) },
    },
    process.cwd(),
    {},
  );
  const runtime = await Runtime.build(loaded, {
    logger: createLogger('silent'),
    metrics: new Metrics({ processMetrics: false }),
  });
  await runtime.start();
  return runtime.pipeline;
}

const request = (token) => ({
  method: 'GET',
  rawPath: '/api/orders?page=1',
  host: 'api.example.com',
  headers: Object.assign(Object.create(null), {
    authorization: `Bearer ${token}`,
    'x-org': 'o1',
    'x-request-id': 'bench',
    'user-agent': 'bench',
  }),
  contextExtensions: Object.create(null),
});
const distinctReqs = tokens.map(request);
const repeatedReqs = tokens.slice(0, REPEATED).map(request);

const plain = await pipelineFor(undefined);
const withExpr = await pipelineFor("claims.org.id == request.headers['x-org'] && 'admin' in scopes");

async function pass(pipeline, reqs, n) {
  let allowed = 0;
  // CPU time of this process rather than wall time: other load on a shared machine
  // stretches wall time without changing the work a check costs.
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    let d = pipeline.check(reqs[i % reqs.length]);
    if (typeof d.then === 'function') d = await d;
    if (d.kind === 'allow') allowed++;
  }
  const c = process.cpuUsage(c0);
  const s = (c.user + c.system) / 1e6;
  if (allowed !== n) throw new Error(`expected ${n} allows, got ${allowed}`);
  return n / s;
}

const results = { distinct: { plain: [], expr: [] }, repeated: { plain: [], expr: [] } };
// Warm-up (JIT, caches of repeated tokens).
await pass(plain, distinctReqs, 500);
await pass(withExpr, distinctReqs, 500);
for (let r = 0; r < ROUNDS; r++) {
  // Alternate which variant goes first, so neither always runs after the other's garbage.
  const order = r % 2 === 0 ? ['plain', 'expr'] : ['expr', 'plain'];
  for (const v of order)
    results.distinct[v].push(await pass(v === 'plain' ? plain : withExpr, distinctReqs, DISTINCT));
  for (const v of order)
    results.repeated[v].push(await pass(v === 'plain' ? plain : withExpr, repeatedReqs, 100_000));
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const best = (a) => Math.max(...a);
const fmt = (x) => Math.round(x).toLocaleString('en-US');
console.log(`node ${process.version}, ${ROUNDS} rounds, ${DISTINCT} distinct tokens`);
for (const kind of ['distinct', 'repeated']) {
  const { plain: p, expr: e } = results[kind];
  console.log(
    `${kind.padEnd(9)} checks per CPU-second: without expression ${fmt(best(p))} (median ${fmt(median(p))})` +
      `  with expression ${fmt(best(e))} (median ${fmt(median(e))})` +
      `  ratio best ${(best(e) / best(p)).toFixed(3)} median of per-round ratios ${median(e.map((x, i) => x / p[i])).toFixed(3)}`,
  );
}
