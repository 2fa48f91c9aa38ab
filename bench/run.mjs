#!/usr/bin/env node
// envoy-jwt-authz benchmark orchestrator (issue 6). See bench/README.md.
//
//   node bench/run.mjs [--quick] [--duration S] [--fresh] [--no-h2load]
//   node bench/run.mjs --profile repeated|distinct|invalid|unknown-kid|baseline
//   node bench/run.mjs --envoy [--quick] [--rounds N]   (through the real Envoy: bench/envoy.mjs)
//   node bench/run.mjs --help   (npm run bench -- --help; with --envoy: that benchmark's options)
//
// One server process per scenario (fresh state), load from a separate process.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { checkBody } from './lib/proto.mjs';
import {
  benchConfig,
  checkDelta,
  freePort,
  loadAvg,
  newestFile,
  ROOT,
  startReference,
  startServer,
} from './lib/server.mjs';
import { ecKey, ES_ISS, invalidSignatureTokens, RS_ISS, rsaPool, signTokens } from './lib/tokens.mjs';
import { h2loadPath, h2loadVersion, runH2load } from './lib/h2load.mjs';
import { latencyStats } from './lib/stats.mjs';
import { probe, describe } from './lib/probe.mjs';
import { analyzeProfile, printProfile } from './lib/profile.mjs';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    profile: { type: 'string' },
    fresh: { type: 'boolean', default: false },
    'no-h2load': { type: 'boolean', default: false },
    connections: { type: 'string', default: '4' },
    streams: { type: 'string', default: '32' },
    'memory-tokens': { type: 'string' },
    keep: { type: 'boolean', default: false },
    only: { type: 'string' },
    // --envoy: the rows through the real Envoy instead (bench/envoy.mjs).
    envoy: { type: 'boolean', default: false },
    'envoy-streams': { type: 'string' },
    rounds: { type: 'string' },
    'server-root': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
const HELP = `Usage: npm run bench -- [options]      (builds first)
       node bench/run.mjs [options]
       node bench/run.mjs --profile SCENARIO
       node bench/run.mjs --envoy [options]   (through the real Envoy: node bench/envoy.mjs --help)

The Check service alone: one fresh server (node dist/main.js serve) per scenario, driven
over HTTP/2 with Envoy-shaped CheckRequests by a separate lean process (bench/lib/h2driver.mjs);
every scenario's decisions are checked against the server's /metrics.

Options:
  --quick              3 s per scenario (+1 s warm-up) and 20,000 memory-test tokens
  --duration S         measured seconds per scenario (default 10, after a 2 s warm-up)
  --only A,B           just these scenarios (the reference servers come along when a ratio needs them);
                       also repeated-rl, distinct-rl (a rate limit counted in Redis: REDIS_URL)
  --connections N      driver connections (default 4)
  --streams N          streams in flight per connection (default 32)
  --memory-tokens N    distinct tokens for the memory scenario (default 200,000)
  --profile SCENARIO   one scenario (baseline, repeated, distinct, invalid, unknown-kid) under
                       node --cpu-prof; prints the top self-time functions
  --no-h2load          skip the h2load cross-check rows
  --fresh              re-sign the cached RS256 token pool (bench/results/.cache/)
  --keep               keep the temp directory (configs, logs, bodies)
  --envoy              run bench/envoy.mjs instead (its options: --rounds, --envoy-streams,
                       --server-root, --only ROW, ...; see node bench/envoy.mjs --help)
  -h, --help           this text

Scenarios:                                                                  goal
  ref-grpc-js   bare @grpc/grpc-js answering allow: the yardstick of the ratios
  ref-h2        raw node:http2 answering fixed allow bytes: the ceiling on node:http2
  baseline      one allow-everything rule: gRPC and request/response mapping only
  repeated      100 valid RS256 tokens cycled (caches hit)                  ≥ 1.5 × grpc-js, ≥ 0.6 × h2
  distinct      25,000 valid RS256 tokens (every check verifies and mints)  ≥ 0.6 × grpc-js
  invalid       random signatures for the right issuer and kid (log info)   ≥ 0.6 × grpc-js
  unknown-kid   a kid the issuer never published (log info)                 ≥ 0.6 × grpc-js
  latency       repeated tokens, open loop at half the grpc-js rate         p99 < 5 ms
  memory        200,000 distinct ES256 tokens once each, then VmRSS         RSS < 250 MB
  (with h2load: baseline, repeated-1token and latency-1token again, as a cross-check)

Results: a table and a goals table on stdout, progress on stderr, everything in
bench/results/bench-<timestamp>.json (profiles: bench/results/profiles/*.cpuprofile and
bench/results/profile-<scenario>-<timestamp>.json). Exit code 1 when a server fails or a
scenario's decisions are not the intended ones; missed goals do not change it.
`;
if (opts.help && !opts.envoy) {
  console.log(HELP);
  process.exit(0);
}
if (opts.envoy) process.exit(await (await import('./envoy.mjs')).runEnvoyBench(opts));

const QUICK = opts.quick;
const DURATION = Number(opts.duration ?? (QUICK ? 3 : 10));
const WARMUP = QUICK ? 1 : 2;
const CONNS = Number(opts.connections);
const STREAMS = Number(opts.streams);
const MEMORY_TOKENS = Number(opts['memory-tokens'] ?? (QUICK ? 20_000 : 200_000));
// More than the verified-token and minted-token caches hold (10,000 entries each by
// default) and more than their admission remembers (up to 20,000 tokens: a token is
// cached at its second use): every token arrives as new, every check is a miss.
const DISTINCT_POOL = 25_000;
const INVALID_POOL = 50_000;
const REPEATED_TOKENS = 100;

const RESULTS = join(ROOT, 'bench/results');
const CACHE = join(RESULTS, '.cache');
const PROFILES = join(RESULTS, 'profiles');
mkdirSync(RESULTS, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'authz-bench-'));
const log = (...a) => console.error(...a);

// The goals, as ratios against the two reference servers measured in the same run (an
// allow-all on bare @grpc/grpc-js, and one on raw node:http2): a loaded machine slows
// every row alike, so the ratios hold where absolute numbers do not.
const GOALS = [
  { row: 'repeated', ref: 'ref-grpc-js', min: 1.5, what: 'repeated token ≥ 1.5 × bare grpc-js' },
  { row: 'repeated', ref: 'ref-h2', min: 0.6, what: 'repeated token ≥ 0.6 × raw node:http2' },
  { row: 'distinct', ref: 'ref-grpc-js', min: 0.6, what: 'distinct tokens ≥ 0.6 × bare grpc-js' },
  { row: 'invalid', ref: 'ref-grpc-js', min: 0.6, what: 'invalid-signature flood ≥ 0.6 × bare grpc-js' },
  { row: 'unknown-kid', ref: 'ref-grpc-js', min: 0.6, what: 'unknown-kid flood ≥ 0.6 × bare grpc-js' },
  {
    row: 'latency',
    what: 'open-loop p99 < 5 ms at half the bare grpc-js rate',
    ok: (r) => r.latency?.p99 < 5,
    value: (r) => `p99 ${r.latency?.p99} ms @ ${Math.round(r.target_rate)}/s`,
  },
  {
    row: 'memory',
    what: 'RSS < 250 MB after the distinct-token run',
    ok: (r) => r.memory?.rss_mb < 250,
    value: (r) => `RSS ${r.memory?.rss_mb} MB`,
  },
];
const TARGETS = Object.fromEntries(GOALS.map((g) => [`${g.row}${g.ref ? ` / ${g.ref}` : ''}`, g.what]));

// ---- keys, tokens, bodies --------------------------------------------------------------
const pool = await rsaPool(CACHE, DISTINCT_POOL, { fresh: opts.fresh, log });
const rsKey = pool.key;
const esIssuerKey = ecKey('bench-es-1');
const signingKey = ecKey('bench-downstream-1');
const signingKeyFile = join(work, 'downstream-signing.jwk.json');
writeFileSync(signingKeyFile, JSON.stringify(signingKey.privateJwk), { mode: 0o600 });

const bodiesOf = (tokens, tag) =>
  tokens.map((token, i) => checkBody({ token, requestId: `bench-${tag}-${i}`, seq: i }));
const repeatedBodies = bodiesOf(pool.tokens.slice(0, REPEATED_TOKENS), 'repeated');

// ---- expectations ------------------------------------------------------------------------
const EXPECT = {
  baseline: {
    key: 'allow/rule_allow',
    probe: (d) => d.decision === 'allow' && !d.headers['x-jwt-assertion'],
  },
  authenticated: {
    key: 'allow/authenticated',
    probe: (d) =>
      d.decision === 'allow' &&
      d.headers['x-user-id']?.startsWith('user-') &&
      d.headers['x-user-scope'] === 'read write' &&
      JSON.parse(
        Buffer.from(d.headers['x-jwt-assertion']?.split('.')[0] ?? '', 'base64url').toString() || '{}',
      ).alg === 'ES256',
  },
  authenticatedEs: {
    key: 'allow/authenticated',
    probe: (d) =>
      d.decision === 'allow' && d.headers['x-user-id']?.startsWith('mem-') && !!d.headers['x-jwt-assertion'],
  },
  reference: { key: undefined, probe: (d) => d.decision === 'allow' },
  invalid: {
    key: 'deny/signature_invalid',
    probe: (d) => d.decision === 'deny' && d.code === 16 && d.httpStatus === 401,
  },
  unknownKid: {
    key: 'deny/key_not_found',
    probe: (d) => d.decision === 'deny' && d.code === 16 && d.httpStatus === 401,
  },
};

// ---- running one scenario ------------------------------------------------------------------
const failures = [];

async function withServer(
  name,
  { baseline = false, logLevel = 'warn', nodeArgs = [], reference, rateLimit = false },
  fn,
) {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const config = benchConfig({
    grpcPort,
    httpPort,
    logLevel,
    rsKey,
    esIssuerKey,
    signingKeyFile,
    baseline,
    rateLimit,
  });
  const server = reference
    ? await startReference({ name, workDir: work, script: reference, port: grpcPort })
    : await startServer({ name, workDir: work, config, nodeArgs });
  try {
    const out = await fn(server);
    out.rss_after = server.rss();
    return out;
  } finally {
    const exit = await server.stop();
    if (exit.code !== 0)
      failures.push(`${name}: server exited ${JSON.stringify(exit)} (log ${server.logFile})`);
  }
}

async function driverB(server, name, bodies, { mode, rate, count }) {
  const bodiesFile = join(work, `bodies-${name}.bin`);
  writeFileSync(bodiesFile, Buffer.concat(bodies));
  const latenciesFile = join(work, `latencies-${name}.f64`);
  const specFile = join(work, `spec-${name}.json`);
  writeFileSync(
    specFile,
    JSON.stringify({
      host: '127.0.0.1',
      port: server.grpcPort,
      bodiesFile,
      connections: CONNS,
      streams: STREAMS,
      mode,
      durationS: DURATION,
      warmupS: WARMUP,
      rate,
      count,
      latenciesFile,
    }),
  );
  const res = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bench/lib/h2driver.mjs'), specFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`driver exited ${code}`)),
    );
  });
  const buf = readFileSync(latenciesFile);
  res.latency = latencyStats(new Float64Array(buf.buffer, buf.byteOffset, buf.length / 8));
  rmSync(bodiesFile, { force: true });
  return res;
}

async function scenario(
  name,
  {
    bodies,
    expect,
    driver = 'h2raw',
    baseline,
    logLevel,
    mode = 'duration',
    rate,
    count,
    nodeArgs,
    reference,
    rateLimit,
  },
) {
  log(
    `\n▶ ${name} (${driver}, ${mode}${rate ? ` @ ${Math.round(rate)}/s` : ''}${count ? `, ${count} requests` : ''}, log level ${logLevel ?? 'warn'})`,
  );
  return withServer(name, { baseline, logLevel, nodeArgs, reference, rateLimit }, async (server) => {
    // 1. One real request through node:http2: the decision must be what we intend.
    const p = await probe(server.grpcPort, bodies[bodies.length - 1]);
    const d = describe(p.response);
    if (p.grpcStatus !== 0 || !expect.probe(d)) {
      throw new Error(
        `${name}: probe got an unexpected response: grpc-status ${p.grpcStatus} ${JSON.stringify(d)}`,
      );
    }
    const before = await server.metrics();
    const rssBefore = server.rss();
    const load_before = loadAvg();
    const cpuBefore = server.cpuSeconds();
    let res;
    if (driver === 'h2load') {
      const bodyFile = join(work, `body-${name}.bin`);
      writeFileSync(bodyFile, bodies[0]);
      res = await runH2load(H2LOAD, {
        port: server.grpcPort,
        bodyFile,
        logFile: join(work, `h2load-${name}.log`),
        connections: CONNS,
        streams: STREAMS,
        durationS: DURATION,
        warmupS: WARMUP,
        rps: rate,
      });
      delete res.raw;
      res.requests = res.succeeded;
      res.mode = rate ? 'rate' : 'duration';
    } else {
      res = await driverB(server, name, bodies, { mode, rate, count });
      res.requests = mode === 'count' ? res.completed : res.measured;
    }
    await new Promise((r) => setTimeout(r, mode === 'count' ? 1000 : 300)); // in-flight checks settle
    const after = await server.metrics();
    const delta = checkDelta(before, after);
    // Server CPU per check (whole run incl. warm-up, over every check the server
    // counted): less sensitive than throughput to other load on the machine.
    res.server_cpu_s = Math.round((server.cpuSeconds() - cpuBefore) * 100) / 100;
    const counted = delta.total || (reference ? res.completed : 0);
    res.server_us_per_check = counted ? Math.round((res.server_cpu_s * 1e6) / counted) : undefined;
    res.loadavg_before = load_before;
    res.server = delta;
    res.rss_before = rssBefore;
    // Event-loop delay over the server's life (prom-client default metrics): shows whether
    // latency tails come from the server's own loop being blocked (GC, long tasks).
    res.event_loop_ms = {
      p99: Math.round((after['nodejs_eventloop_lag_p99_seconds'] ?? NaN) * 1e5) / 100,
      max: Math.round((after['nodejs_eventloop_lag_max_seconds'] ?? NaN) * 1e5) / 100,
    };
    if (mode === 'count') {
      const mb = (k) => Math.round((after[k] ?? NaN) / 2 ** 20);
      res.memory = {
        ...server.rss(),
        heap_used_mb: mb('nodejs_heap_size_used_bytes'),
        heap_total_mb: mb('nodejs_heap_size_total_bytes'),
        external_mb: mb('nodejs_external_memory_bytes'),
      };
    }
    // 2. Every decision the server made during the run must be the intended one.
    // A reference server counts nothing: only the driver's own errors are checked.
    const wrong = reference ? [] : Object.entries(delta.checks).filter(([k]) => k !== expect.key);
    const right = reference ? Infinity : (delta.checks[expect.key] ?? 0);
    const minExpected = driver === 'h2load' ? res.succeeded : res.completed - res.errors;
    const problems = [];
    if (wrong.length) problems.push(`unexpected decisions ${JSON.stringify(Object.fromEntries(wrong))}`);
    if (right < minExpected)
      problems.push(`server counted ${right} ${expect.key}, the driver completed ${minExpected}`);
    if (driver !== 'h2load' && res.errors > 0)
      problems.push(`${res.errors} stream errors (RST_STREAM / closed connections)`);
    if (driver === 'h2load' && (res.failed || res.errored || res.non200))
      problems.push(`h2load: ${res.failed} failed, ${res.errored} errored, ${res.non200} non-200`);
    if (problems.length) {
      failures.push(`${name}: ${problems.join('; ')}`);
      res.decisions_ok = false;
      log(`  ✖ DECISIONS WRONG: ${problems.join('; ')}`);
    } else res.decisions_ok = true;
    log(
      `  ${Math.round(res.rps)} checks/s, p50 ${res.latency.p50} ms, p99 ${res.latency.p99} ms; server: ${JSON.stringify(delta.checks)}` +
        (Object.keys(delta.cacheHits).length ? `, cache hits ${JSON.stringify(delta.cacheHits)}` : ''),
    );
    return { name, driver, mode: res.mode ?? mode, target_rate: rate, logLevel: logLevel ?? 'warn', ...res };
  });
}

// ---- profile mode ------------------------------------------------------------------------------
const H2LOAD = opts['no-h2load'] ? undefined : h2loadPath();

async function scenarioSpec(name) {
  switch (name) {
    case 'baseline':
      return { bodies: repeatedBodies, expect: EXPECT.baseline, baseline: true };
    case 'repeated':
      return { bodies: repeatedBodies, expect: EXPECT.authenticated };
    case 'distinct':
      return { bodies: bodiesOf(pool.tokens, 'distinct'), expect: EXPECT.authenticated };
    // The same with one rate limit counted in Redis (only with --only; needs REDIS_URL or a
    // Redis on 127.0.0.1:6379).
    case 'repeated-rl':
      return { bodies: repeatedBodies, expect: EXPECT.authenticated, rateLimit: true };
    case 'distinct-rl':
      return { bodies: bodiesOf(pool.tokens, 'distinct-rl'), expect: EXPECT.authenticated, rateLimit: true };
    case 'invalid': {
      const tokens = invalidSignatureTokens(rsKey, { iss: RS_ISS, count: INVALID_POOL });
      // Denials are logged at info: run at the level a user would configure.
      return { bodies: bodiesOf(tokens, 'invalid'), expect: EXPECT.invalid, logLevel: 'info' };
    }
    case 'unknown-kid': {
      // A real issuer, a kid it never published: no key to try, no refetch (inline JWKS).
      const tokens = invalidSignatureTokens(
        { ...rsKey, kid: 'bench-unknown-kid' },
        { iss: RS_ISS, count: INVALID_POOL, prefix: 'unknown' },
      );
      return { bodies: bodiesOf(tokens, 'unknown-kid'), expect: EXPECT.unknownKid, logLevel: 'info' };
    }
    default:
      throw new Error(`unknown scenario ${name} (baseline, repeated, distinct, invalid, unknown-kid)`);
  }
}

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const env = {
  node: process.version,
  cpus: cpus().length,
  cpu_model: cpus()[0]?.model,
  mem_gb: Math.round(totalmem() / 2 ** 30),
  h2load: H2LOAD ? h2loadVersion(H2LOAD) : null,
  connections: CONNS,
  streams: STREAMS,
  duration_s: DURATION,
  warmup_s: WARMUP,
  quick: QUICK,
  note: 'load generator and server share the same cores; the driver is a raw-frame HTTP/2 client to keep its CPU share small',
};

if (opts.profile) {
  mkdirSync(PROFILES, { recursive: true });
  const spec = await scenarioSpec(opts.profile);
  const res = await scenario(`profile-${opts.profile}`, {
    ...spec,
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${PROFILES}`],
  });
  const file = newestFile(PROFILES, '.cpuprofile');
  const analysis = analyzeProfile(file);
  printProfile(analysis);
  const out = join(RESULTS, `profile-${opts.profile}-${stamp}.json`);
  writeFileSync(out, JSON.stringify({ env, scenario: res, profile: analysis }, null, 2));
  log(`profile summary: ${out}`);
  finish(failures.length ? 1 : 0);
} else {
  const rows = [];
  // --only memory (or a comma list) runs just those scenarios (the references come along when a ratio needs them).
  const only = opts.only ? new Set(opts.only.split(',')) : undefined;
  const want = (name) => !only || only.has(name);
  try {
    // Reference servers (allow-all, no authorization work): what the gRPC stack alone
    // costs. Every throughput goal is a ratio against them, so they always run.
    const needsRefs = ['repeated', 'distinct', 'invalid', 'unknown-kid', 'latency', 'reference'].some(want);
    const refs = {};
    if (needsRefs)
      for (const [name, reference] of [
        ['ref-grpc-js', 'bench/reference/grpc-js-allow-all.mjs'],
        ['ref-h2', 'bench/reference/h2-allow-all.mjs'],
      ]) {
        refs[name] = await scenario(name, { bodies: repeatedBodies, expect: EXPECT.reference, reference });
        rows.push(refs[name]);
      }
    if (want('baseline')) rows.push(await scenario('baseline', await scenarioSpec('baseline')));
    for (const name of ['repeated', 'distinct', 'invalid', 'unknown-kid'])
      if (want(name)) rows.push(await scenario(name, await scenarioSpec(name)));
    for (const name of ['repeated-rl', 'distinct-rl'])
      if (only?.has(name)) rows.push(await scenario(name, await scenarioSpec(name)));
    if (want('latency'))
      rows.push(
        await scenario('latency', {
          bodies: repeatedBodies,
          expect: EXPECT.authenticated,
          mode: 'rate',
          rate: refs['ref-grpc-js'].rps / 2,
        }),
      );
    if (want('memory')) {
      log(`\nsigning ${MEMORY_TOKENS} distinct ES256 tokens for the memory test…`);
      const mem = await signTokens(esIssuerKey, { iss: ES_ISS, prefix: 'mem', count: MEMORY_TOKENS });
      rows.push(
        await scenario('memory', {
          bodies: bodiesOf(mem.tokens, 'memory'),
          expect: EXPECT.authenticatedEs,
          mode: 'count',
          count: MEMORY_TOKENS,
        }),
      );
    }
    if (H2LOAD && !only) {
      // Cross-check with h2load (C client, same body on every request): baseline and one
      // repeated token, closed loop and at half of h2load's baseline rate.
      const hb = await scenario('baseline', { ...(await scenarioSpec('baseline')), driver: 'h2load' });
      rows.push(hb);
      rows.push(
        await scenario('repeated-1token', {
          bodies: repeatedBodies.slice(0, 1),
          expect: EXPECT.authenticated,
          driver: 'h2load',
        }),
      );
      rows.push(
        await scenario('latency-1token', {
          bodies: repeatedBodies.slice(0, 1),
          expect: EXPECT.authenticated,
          driver: 'h2load',
          rate: hb.rps / 2,
        }),
      );
    } else log('\n(h2load not found: built-in driver only)');
  } catch (err) {
    log(`\n✖ ${err.message}`);
    failures.push(err.message);
  }
  report(rows);
  finish(failures.length ? 1 : 0);
}

function report(rows) {
  // Ratios against the references measured by the same driver in this run.
  const ref = {};
  for (const r of rows) if (r.name.startsWith('ref-') && r.driver === 'h2raw') ref[r.name] = r;
  for (const r of rows) {
    if (r.mode !== 'duration' || r.driver !== 'h2raw' || r.name.startsWith('ref-')) continue;
    if (ref['ref-grpc-js']) r.ratio = Math.round((100 * r.rps) / ref['ref-grpc-js'].rps) / 100;
    if (ref['ref-h2']) r.ratio_h2 = Math.round((100 * r.rps) / ref['ref-h2'].rps) / 100;
  }
  const goals = GOALS.map((g) => {
    const r = rows.find((x) => x.name === g.row && x.driver === 'h2raw');
    if (!r) return { ...g, status: 'not run', value: '' };
    if (g.ref) {
      const base = ref[g.ref];
      if (!base) return { ...g, status: 'not run', value: '(no reference row)' };
      const ratio = Math.round((100 * r.rps) / base.rps) / 100;
      const met = r.decisions_ok && ratio >= g.min;
      return {
        ...g,
        ratio,
        met,
        status: met ? 'met' : 'NOT met',
        value: `${ratio.toFixed(2)} × (${Math.round(r.rps)} vs ${Math.round(base.rps)} checks/s; ${r.server_us_per_check ?? '?'} vs ${base.server_us_per_check ?? '?'} µs CPU/check)`,
      };
    }
    const met = r.decisions_ok && g.ok(r);
    return { ...g, met, status: met ? 'met' : 'NOT met', value: g.value(r) };
  });
  const header = [
    'scenario',
    'driver',
    'requests',
    'checks/s',
    'p50 ms',
    'p99 ms',
    'srv p99 ≤ms',
    '× grpc-js',
    '× h2',
    'srv µs/check',
    'notes',
  ];
  const lines = rows.map((r) => [
    r.name,
    r.driver,
    String(r.requests),
    String(Math.round(r.rps)),
    String(r.latency?.p50 ?? ''),
    String(r.latency?.p99 ?? ''),
    r.server?.serverP99Ms !== undefined ? String(r.server.serverP99Ms) : '',
    r.ratio !== undefined ? r.ratio.toFixed(2) : '',
    r.ratio_h2 !== undefined ? r.ratio_h2.toFixed(2) : '',
    String(r.server_us_per_check ?? ''),
    [
      r.logLevel !== 'warn' ? `log ${r.logLevel}` : '',
      r.mode === 'rate' || r.name.startsWith('latency')
        ? `open loop, target ${Math.round(r.target_rate)}/s`
        : '',
      r.flow_control_stalls ? `${r.flow_control_stalls} flow-control stalls` : '',
      r.name.startsWith('latency') && r.event_loop_ms
        ? `server event-loop delay p99 ${r.event_loop_ms.p99} ms, max ${r.event_loop_ms.max} ms`
        : '',
      r.memory
        ? `RSS ${r.memory.rss_mb} MB (peak ${r.memory.hwm_mb}, idle ${r.rss_before.rss_mb}; heap used ${r.memory.heap_used_mb}/${r.memory.heap_total_mb} MB)`
        : '',
      r.server?.cacheHits?.verified_token !== undefined && r.name === 'distinct'
        ? `cache hits ${r.server.cacheHits.verified_token}`
        : '',
      r.decisions_ok === false ? 'DECISIONS WRONG' : '',
    ]
      .filter(Boolean)
      .join('; '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cols) =>
    cols.map((c, i) => (i >= 2 && i <= 9 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  console.log('');
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(fmt(l));
  console.log(
    `\n${env.cpus} cores (${env.cpu_model}), node ${env.node}, ${CONNS} connections × ${STREAMS} streams, ${DURATION} s per scenario (+${WARMUP} s warm-up).` +
      `\nThe load generator runs on the same cores as the server. Ratios (× grpc-js, × h2) are checks/s over the reference row of the same run (built-in driver).` +
      `\nsrv p99 ≤ms: upper bound of the authz_check_duration_seconds bucket holding the 99th percentile (time inside our Check handler; p50/p99 ms are end to end at the driver, gRPC transport and queueing included).` +
      `\nsrv µs/check: server CPU time (user+sys) / checks it counted — steadier than checks/s when other work shares the machine (load average at start: ${loadAvg().join(' ')}).` +
      `\nlatency: open loop at half the bare grpc-js reference's rate; memory: ${MEMORY_TOKENS} distinct ES256 tokens (RSS from /proc after the run).`,
  );
  const file = join(RESULTS, `bench-${stamp}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        env,
        targets: TARGETS,
        goals: goals.map(({ what, status, value, ratio }) => ({ what, status, value, ratio })),
        scenarios: rows,
        failures,
      },
      null,
      2,
    ),
  );
  console.log('\nGoals (ratios against the reference servers of this run):');
  const gw = Math.max(...goals.map((g) => g.what.length));
  for (const g of goals) console.log(`  ${g.what.padEnd(gw)}  ${g.status.padEnd(7)}  ${g.value}`);
  console.log(`results: ${file}`);
  if (failures.length) console.log(`\nFAILED:\n  ${failures.join('\n  ')}`);
}

function finish(code) {
  if (!opts.keep) rmSync(work, { recursive: true, force: true });
  else log(`work dir kept: ${work}`);
  process.exit(code);
}
