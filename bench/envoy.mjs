#!/usr/bin/env node
// Benchmark through the real Envoy (see bench/README.md, "Through Envoy"):
//
//   npm run bench -- --envoy [--quick] [--duration S] [--streams N] [--fresh] [--keep] [--only row,row] [--rounds N]
//   node bench/envoy.mjs [same options]
//
// Every row is a fresh Envoy (the shipped envoy/envoy.yaml rendered onto loopback, one
// worker thread, every route answering with a direct_response so no upstream differs)
// driven by h2load over h2c, plus, for the ext_authz rows, a fresh authz service
// (`node --max-old-space-size=256 dist/main.js serve`). Ratios are to the jwt_authn row
// (Envoy verifying the same RS256 token itself) measured in the same run.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import http2 from 'node:http2';
import { benchConfig, checkDelta, cpuSeconds, freePort, loadAvg, ROOT, startServer } from './lib/server.mjs';
import { AUD, ecKey, RS_ISS, rsaPool } from './lib/tokens.mjs';
import { h2loadPath, h2loadVersion, runH2loadArgs } from './lib/h2load.mjs';
import {
  connectionManager,
  findEnvoy,
  renderEnvoyConfig,
  shippedEnvoyYaml,
  startEnvoy,
} from './lib/envoy.mjs';
import { latencyStats } from './lib/stats.mjs';

// Larger than the verified-token and minted-token caches (10,000 entries each by default).
const DISTINCT_POOL = 12_500;
const PATH = '/api/orders';
const log = (...a) => console.error(...a);

/** opts: the parsed options of bench/run.mjs (quick, duration, streams, fresh, keep). */
export async function runEnvoyBench(opts) {
  const QUICK = !!opts.quick;
  const DURATION = Number(opts.duration ?? (QUICK ? 5 : 10));
  const WARMUP = QUICK ? 1 : 2;
  // One h2load client: h2load cycles its URI list from the first entry for *each* client,
  // so several clients would send each other's "distinct" tokens milliseconds apart and
  // turn them into cache hits. Envoy runs one worker thread, so one downstream connection
  // loses nothing; Envoy itself multiplexes every Check on one HTTP/2 connection anyway.
  const STREAMS = Number(opts['envoy-streams'] ?? 32);

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

  const pool = await rsaPool(CACHE, DISTINCT_POOL, { fresh: opts.fresh, log });
  const rsKey = pool.key;
  const esIssuerKey = ecKey('bench-es-1');
  const signingKeyFile = join(work, 'downstream-signing.jwk.json');
  writeFileSync(signingKeyFile, JSON.stringify(ecKey('bench-downstream-1').privateJwk), { mode: 0o600 });

  // Tokens travel as `?access_token=…`: h2load sends one fixed header set per run but
  // takes a file of URIs, so the query is how each request carries its own token. Every
  // row uses the same request shape, so the rows differ only in who checks the token.
  const tokenSets = {
    repeated: pool.tokens.slice(0, 1),
    distinct: pool.tokens.slice(0, DISTINCT_POOL),
  };

  const rows = [
    { name: 'noauth', auth: 'none', tokens: 'repeated' },
    { name: 'jwt_authn', auth: 'jwt_authn', tokens: 'repeated', reference: true },
    { name: 'jwt_authn-hdr', auth: 'jwt_authn', tokens: 'repeated', via: 'header' },
    { name: 'jwt_authn-distinct', auth: 'jwt_authn', tokens: 'distinct' },
    { name: 'ext_authz-repeated', auth: 'ext_authz', tokens: 'repeated', workers: 1 },
    { name: 'ext_authz-repeated-hdr', auth: 'ext_authz', tokens: 'repeated', workers: 1, via: 'header' },
    { name: 'ext_authz-distinct', auth: 'ext_authz', tokens: 'distinct', workers: 1 },
    { name: 'ext_authz-repeated-w2', auth: 'ext_authz', tokens: 'repeated', workers: 2 },
    { name: 'ext_authz-distinct-w2', auth: 'ext_authz', tokens: 'distinct', workers: 2 },
    // Envoy keeps one HTTP/2 connection per worker thread to the service, and node:cluster
    // hands each connection to one worker: capping streams per connection on the ext_authz
    // cluster makes Envoy open more connections, which the workers then share.
    {
      name: 'ext_authz-distinct-w2-mcs8',
      auth: 'ext_authz',
      tokens: 'distinct',
      workers: 2,
      clusterStreams: 8,
    },
  ];

  // --only a,b: just those rows (the jwt_authn reference comes along for the ratios).
  const only = opts.only ? new Set(['jwt_authn', ...opts.only.split(',')]) : undefined;
  const selected = rows.filter((row) => !only || only.has(row.name));
  // --rounds N: the whole row list N times over (interleaved, so a burst of other load on
  // the machine hits every row alike); each row reports its median-throughput round.
  const ROUNDS = Math.max(1, Number(opts.rounds ?? 1));
  const runs = new Map(selected.map((row) => [row.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) log(`\n=== round ${round}/${ROUNDS}`);
    for (const row of selected) {
      try {
        runs.get(row.name).push(await runRow(row));
      } catch (err) {
        log(`  ✖ ${row.name}: ${err.message}`);
        failures.push(`${row.name}: ${err.message}`);
        runs.get(row.name).push({ ...row, error: err.message, verified: false });
      }
    }
  }
  const results = selected.map((row) => {
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
        ...(r.verified ? {} : { problems: r.problems ?? [r.error] }),
      })),
    };
  });

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
    loadavg_end: loadAvg(),
  };
  report(results, env);
  const file = join(RESULTS, `envoy-${stamp}.json`);
  writeFileSync(file, JSON.stringify({ env, rows: results, failures }, null, 2));
  console.log(`results: ${file}`);
  if (failures.length) console.log(`\nFAILED:\n  ${failures.join('\n  ')}`);
  if (opts.keep) log(`work dir kept: ${work}`);
  else rmSync(work, { recursive: true, force: true });
  return failures.length ? 1 : 0;

  // ---- one row ------------------------------------------------------------------------
  async function runRow(row) {
    log(
      `\n▶ ${row.name} (${row.auth}, ${row.tokens} token${row.tokens === 'repeated' ? '' : 's'}${row.workers ? `, server.workers ${row.workers}` : ''})`,
    );
    let server;
    let proxy;
    try {
      const clusters = {};
      if (row.auth === 'ext_authz') {
        const [grpcPort, httpPort] = [await freePort(), await freePort()];
        const config = benchConfig({
          grpcPort,
          httpPort,
          logLevel: 'warn',
          rsKey,
          esIssuerKey,
          signingKeyFile,
          baseline: false,
        });
        config.server.workers = row.workers;
        config.token_sources = [{ header: 'authorization', prefix: 'Bearer ' }, { query: 'access_token' }];
        server = await startServer({ name: row.name, workDir: work, config });
        clusters.ext_authz = `127.0.0.1:${grpcPort}`;
      }
      const doc = renderEnvoyConfig(shippedEnvoyYaml(), {
        clusters,
        mutate: (d) => shapeForRow(d, row, rsKey),
      });
      proxy = await startEnvoy(envoy, doc, { dir: work, name: row.name });
      if (server) await extAuthzHealthy(proxy);

      // A request with the token must pass and one without it must not (unless no auth):
      // a row whose filter silently allows or denies everything is caught here.
      const tokens = tokenSets[row.tokens];
      const withToken = await probe(proxy.port, `${PATH}?access_token=${tokens[0]}`);
      const without = await probe(proxy.port, PATH);
      if (withToken !== 200) throw new Error(`probe with a valid token got ${withToken}, expected 200`);
      if (row.auth !== 'none' && without !== 401)
        throw new Error(`probe without a token got ${without}, expected 401`);

      const urisFile = join(work, `uris-${row.name}.txt`);
      writeFileSync(
        urisFile,
        row.via === 'header'
          ? `http://127.0.0.1:${proxy.port}${PATH}\n`
          : tokens.map((t) => `http://127.0.0.1:${proxy.port}${PATH}?access_token=${t}\n`).join(''),
      );
      const headerArgs = row.via === 'header' ? ['-H', `authorization: Bearer ${tokens[0]}`] : [];
      const statsBefore = await proxy.stats('^http\\.ingress_http\\.');
      const metricsBefore = server ? await server.metrics() : undefined;
      const cpu0 = { envoy: cpuSeconds(proxy.pid), authz: server ? treeCpu(server.pid) : {} };
      const load_before = loadAvg();

      const res = H2LOAD
        ? await runH2loadArgs(
            H2LOAD,
            [
              '-i',
              urisFile,
              ...headerArgs,
              '-c',
              '1',
              '-m',
              String(STREAMS),
              '-t',
              '1',
              '-D',
              `${DURATION}s`,
              '--warm-up-time',
              `${WARMUP * 1000}ms`,
              '--log-file',
              join(work, `h2load-${row.name}.log`),
            ],
            { logFile: join(work, `h2load-${row.name}.log`), connections: 1, streams: STREAMS },
          )
        : await nodeDriver(proxy.port, urisFile, row.name);
      delete res.raw;
      await new Promise((r) => setTimeout(r, 300)); // in-flight requests settle

      const cpu = {
        envoy: cpuSeconds(proxy.pid) - cpu0.envoy,
        authz: 0,
      };
      // Per process: with server.workers, shows how Envoy's connections spread the Checks.
      const authzSplit = {};
      if (server) {
        for (const [pid, s] of Object.entries(treeCpu(server.pid)))
          authzSplit[pid === String(server.pid) ? 'primary' : `worker ${pid}`] =
            Math.round((s - (cpu0.authz[pid] ?? 0)) * 100) / 100;
        cpu.authz = sum(authzSplit);
      }
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
      const server_checks = server ? checkDelta(metricsBefore, await server.metrics()) : undefined;

      // Every request the driver counted must have been allowed by the row's own filter.
      const problems = [];
      if (res.failed || res.errored || res.non200)
        problems.push(`driver: ${res.failed} failed, ${res.errored} errored, ${res.non200} non-200`);
      if (envoyStats.rq_4xx || envoyStats.rq_5xx)
        problems.push(`envoy answered ${envoyStats.rq_4xx} 4xx, ${envoyStats.rq_5xx} 5xx`);
      if (envoyStats.rq_2xx < res.succeeded)
        problems.push(`envoy counted ${envoyStats.rq_2xx} 2xx, the driver ${res.succeeded}`);
      if (row.auth === 'jwt_authn' && (envoyStats.jwt_allowed < res.succeeded || envoyStats.jwt_denied))
        problems.push(`jwt_authn allowed ${envoyStats.jwt_allowed}, denied ${envoyStats.jwt_denied}`);
      if (row.auth === 'ext_authz') {
        if (
          envoyStats.ext_authz_ok < res.succeeded ||
          envoyStats.ext_authz_denied ||
          envoyStats.ext_authz_error
        )
          problems.push(
            `ext_authz ok ${envoyStats.ext_authz_ok}, denied ${envoyStats.ext_authz_denied}, error ${envoyStats.ext_authz_error}`,
          );
        const wrong = Object.keys(server_checks.checks).filter((k) => k !== 'allow/authenticated');
        if (wrong.length) problems.push(`service decisions ${JSON.stringify(server_checks.checks)}`);
        if ((server_checks.checks['allow/authenticated'] ?? 0) < res.succeeded)
          problems.push(
            `service counted ${server_checks.checks['allow/authenticated'] ?? 0} allows, the driver ${res.succeeded}`,
          );
      }
      if (!(res.succeeded > 0)) problems.push('no request succeeded');
      if (problems.length) {
        failures.push(`${row.name}: ${problems.join('; ')}`);
        log(`  ✖ NOT VERIFIED: ${problems.join('; ')}`);
      }
      const out = {
        ...row,
        driver: res.driver,
        requests: res.succeeded,
        rps: res.rps,
        latency: res.latency,
        seconds: res.seconds,
        envoy_us_per_rq: envoyStats.rq_total
          ? Math.round((cpu.envoy * 1e6) / envoyStats.rq_total)
          : undefined,
        authz_us_per_rq:
          server && envoyStats.rq_total ? Math.round((cpu.authz * 1e6) / envoyStats.rq_total) : undefined,
        cpu_us_per_rq: envoyStats.rq_total
          ? Math.round(((cpu.envoy + cpu.authz) * 1e6) / envoyStats.rq_total)
          : undefined,
        authz_cpu_s: server ? authzSplit : undefined,
        envoy: envoyStats,
        server: server_checks,
        loadavg_before: load_before,
        verified: problems.length === 0,
        problems,
      };
      log(
        `  ${Math.round(out.rps)} req/s, p50 ${out.latency?.p50} ms, p99 ${out.latency?.p99} ms; envoy ${JSON.stringify(envoyStats)}` +
          (server_checks
            ? `; service ${JSON.stringify(server_checks.checks)} cache hits ${JSON.stringify(server_checks.cacheHits)}` +
              ` CPU s ${JSON.stringify(authzSplit)}`
            : ''),
      );
      return out;
    } finally {
      if (proxy) await proxy.stop();
      if (server) {
        const exit = await server.stop();
        if (exit.code !== 0)
          failures.push(`${row.name}: service exited ${JSON.stringify(exit)} (log ${server.logFile})`);
      }
    }
  }

  async function nodeDriver(port, pathsFile, name) {
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
        streams: STREAMS,
        durationS: DURATION,
        warmupS: WARMUP,
        latenciesFile,
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

  function report(results, env) {
    const ref = results.find((r) => r.reference && r.verified)?.rps;
    const refCpu = results.find((r) => r.reference && r.verified)?.cpu_us_per_rq;
    const noauth = results.find((r) => r.auth === 'none' && r.verified)?.rps;
    const header = [
      'row',
      'auth',
      'tokens',
      'workers',
      'requests',
      'req/s',
      'p50 ms',
      'p99 ms',
      '× jwt_authn',
      '× noauth',
      'envoy µs/rq',
      'authz µs/rq',
      'CPU × jwt_authn',
      'verified',
      'notes',
    ];
    const ratio = (r, base) => (base && r.rps ? (r.rps / base).toFixed(2) : '');
    const lines = results.map((r) => [
      r.name,
      r.auth,
      r.tokens === 'repeated' ? '1' : String(DISTINCT_POOL),
      r.workers ? String(r.workers) : '',
      String(r.requests ?? ''),
      r.rps ? String(Math.round(r.rps)) : '',
      String(r.latency?.p50 ?? ''),
      String(r.latency?.p99 ?? ''),
      ratio(r, ref),
      ratio(r, noauth),
      String(r.envoy_us_per_rq ?? ''),
      String(r.authz_us_per_rq ?? ''),
      refCpu && r.cpu_us_per_rq ? (r.cpu_us_per_rq / refCpu).toFixed(2) : '',
      r.verified ? 'yes' : 'NO',
      [
        workerShare(r),
        ...(r.rounds ?? []).map((x, i) => (x.verified ? '' : `round ${i + 1}: ${x.problems.join(', ')}`)),
      ]
        .filter(Boolean)
        .join('; '),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const fmt = (cols) =>
      cols.map((c, i) => (i >= 3 && i <= 12 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
    console.log('');
    console.log(fmt(header).trimEnd());
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const l of lines) console.log(fmt(l).trimEnd());
    console.log(
      `\nEnvoy ${env.envoy.replace(/^.*version: /, '')} (${env.envoy_origin}), 1 worker thread; driver ${env.driver}, 1 connection × ${STREAMS} streams, ` +
        `${DURATION} s per row (+${WARMUP} s warm-up); ${env.cpus} cores (${env.cpu_model}), node ${env.node}, load average ${env.loadavg_end.join(' ')}.` +
        `\nEvery row: GET ${PATH}?access_token=<RS256>, routes answered by Envoy's direct_response (no upstream). ` +
        `\n× jwt_authn: req/s over the jwt_authn row (Envoy verifying the same token itself) in this run. ` +
        `envoy/authz µs/rq: process CPU time (user+sys; authz includes its workers) per request; ` +
        `CPU × jwt_authn: (envoy + authz) CPU per request over the jwt_authn row's (the driver's own CPU left out).` +
        (ROUNDS > 1
          ? `\n${ROUNDS} rounds, rows interleaved; each row shows its median-throughput round (all rounds in the JSON).`
          : '') +
        `\nThe driver, Envoy and the service share the machine's cores.`,
    );
  }
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
function treeCpu(pid) {
  const out = { [pid]: cpuSeconds(pid) };
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    for (const child of children.filter(Boolean)) out[child] = cpuSeconds(Number(child));
  } catch {
    /* no children file: the primary alone */
  }
  return out;
}

/** With server.workers: each worker's share of the service CPU (how Envoy's connections landed). */
function workerShare(r) {
  const split = Object.entries(r.authz_cpu_s ?? {}).filter(([k]) => k !== 'primary');
  if (split.length < 2) return '';
  const total = split.reduce((a, [, v]) => a + v, 0) || 1;
  return `worker CPU split ${split.map(([, v]) => `${Math.round((100 * v) / total)}%`).join('/')}`;
}

const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      'envoy-streams': { type: 'string' },
      only: { type: 'string' },
      rounds: { type: 'string' },
      'no-h2load': { type: 'boolean', default: false },
      fresh: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  });
  process.exit(await runEnvoyBench(values));
}
