// Starting, observing and stopping one server process per scenario.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

export const ROOT = new URL('../../', import.meta.url).pathname;

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * The bench config: the RS256 issuer (inline JWKS), an ES256 issuer (inline JWKS;
 * the memory test's tokens), claim headers and an ES256 downstream token.
 * `baseline` replaces the rules with a single `action: allow` rule on every path.
 */
export function benchConfig({
  grpcPort,
  httpPort,
  logLevel,
  rsKey,
  esIssuerKey,
  signingKeyFile,
  baseline,
  rateLimit,
}) {
  // rateLimit: one limit per issuer + sub counted in Redis (REDIS_URL), high enough never to
  // refuse, so the row measures what counting costs on every allowed check.
  const quota = rateLimit
    ? {
        rate_limits: [{ name: 'bench', limit: 1_000_000, window_seconds: 1 }],
        store: {
          type: 'redis',
          redis_url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
          key_prefix: `bench-${process.pid}-${grpcPort}:`,
        },
      }
    : {};
  return {
    ...quota,
    server: {
      grpc_address: `127.0.0.1:${grpcPort}`,
      http_address: `127.0.0.1:${httpPort}`,
      shutdown_grace_seconds: 5,
      // BENCH_WORKERS=2 measures server.workers (node:cluster); CPU and RSS columns then
      // only see the primary process, so compare checks/s.
      workers: Number(process.env.BENCH_WORKERS ?? 1),
      // BENCH_CRYPTO_OFFLOAD=always|never|auto: where signature work runs (server.crypto_offload).
      ...(process.env.BENCH_CRYPTO_OFFLOAD ? { crypto_offload: process.env.BENCH_CRYPTO_OFFLOAD } : {}),
    },
    log: { level: logLevel },
    issuers: [
      {
        name: 'bench-idp',
        issuer: 'https://idp.bench.local',
        audiences: ['api://orders'],
        algorithms: ['RS256'],
        jwks: { keys: [rsKey.publicJwk] },
      },
      {
        name: 'bench-idp-es',
        issuer: 'https://idp-es.bench.local',
        audiences: ['api://orders'],
        algorithms: ['ES256'],
        jwks: { keys: [esIssuerKey.publicJwk] },
      },
    ],
    rules: baseline
      ? [{ name: 'all', match: { path_prefix: '/' }, action: 'allow' }]
      : [{ name: 'api', match: { path_prefix: '/api' }, require: { scopes_any: ['read', 'write'] } }],
    upstream: {
      claim_headers: { 'x-user-id': 'sub', 'x-user-scope': 'scope' },
      token: {
        issuer: 'https://authz.bench.internal',
        audiences: ['backend'],
        copy_claims: ['scope'],
        signing: { alg: 'ES256', key_file: signingKeyFile },
      },
    },
  };
}

/** `root`: the checkout whose build runs (`ROOT/dist/main.js` unless given: an older build to compare). */
export async function startServer({ name, workDir, config, nodeArgs = [], env = {}, root = ROOT }) {
  const configFile = join(workDir, `config-${name}.json`);
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const logFile = join(workDir, `server-${name}.log`);
  const fd = openSync(logFile, 'w');
  // stdout (pino) goes to a file, as a container runtime would collect it; no pipe
  // back into the bench process, which shares the cores with the server.
  // The same V8 heap setting as `npm start`, the Docker image and the Kubernetes
  // manifest: NODE_OPTIONS=--max-old-space-size=256 (package.json, Dockerfile).
  const child = spawn(
    process.execPath,
    [...nodeArgs, join(root, 'dist/main.js'), 'serve', '--config', configFile],
    {
      cwd: root,
      stdio: ['ignore', fd, fd],
      env: childEnv({ NODE_OPTIONS: '--max-old-space-size=256', ...env }),
    },
  );
  closeSync(fd);
  let exited = null;
  const exitPromise = new Promise((resolve) =>
    child.once('exit', (code, signal) => resolve((exited = { code, signal }))),
  );
  const httpPort = config.server.http_address.split(':').pop();
  const grpcPort = Number(config.server.grpc_address.split(':').pop());
  const base = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      throw new Error(
        `server (${name}) exited during startup (${JSON.stringify(exited)}); log ${logFile}:\n${tail(logFile)}`,
      );
    }
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server (${name}) not ready after 30 s; log ${logFile}:\n${tail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name,
    pid: child.pid,
    grpcPort,
    httpPort: Number(httpPort),
    logFile,
    configFile,
    metrics: () => scrapeMetrics(base),
    rss: () => procStatus(child.pid),
    cpuSeconds: () => cpuSeconds(child.pid),
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const r = await exitPromise;
      clearTimeout(timer);
      return r;
    },
    get exited() {
      return exited;
    },
  };
}

function childEnv(extra) {
  const env = { ...process.env };
  // The config file is the whole truth for the bench (no stray overrides).
  for (const k of ['AUTHZ_CONFIG', 'AUTHZ_GRPC_ADDRESS', 'AUTHZ_HTTP_ADDRESS', 'AUTHZ_LOG_LEVEL'])
    delete env[k];
  return { ...env, ...extra };
}

function tail(file) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

/** utime + stime of a process (or of one thread: `PID/task/TID`), in seconds (clock ticks are 1/100 s on Linux). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function loadAvg() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

/** VmRSS / VmHWM in MB from /proc/<pid>/status. */
export function procStatus(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rss_mb: Math.round(kb('VmRSS') / 102.4) / 10, hwm_mb: Math.round(kb('VmHWM') / 102.4) / 10 };
}

/** Prometheus text → { 'name{labels}': value }. */
export async function scrapeMetrics(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

/** Delta of authz_check_total (by decision/reason) and cache hits between two scrapes. */
export function checkDelta(before, after) {
  const checks = {};
  let total = 0;
  const cacheHits = {};
  const buckets = [];
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (k.startsWith('authz_check_total{')) {
      if (d === 0) continue;
      const decision = /decision="([^"]*)"/.exec(k)[1];
      const reason = /reason="([^"]*)"/.exec(k)[1];
      checks[`${decision}/${reason}`] = (checks[`${decision}/${reason}`] ?? 0) + d;
      total += d;
    } else if (k.startsWith('authz_cache_hits_total{')) {
      cacheHits[/cache="([^"]*)"/.exec(k)[1]] = d;
    } else if (k.startsWith('authz_check_duration_seconds_bucket{')) {
      buckets.push([Number(/le="([^"]*)"/.exec(k)[1].replace('+Inf', 'Infinity')), d]);
    }
  }
  // Server-side p99 from the authz_check_duration_seconds histogram: the upper bound
  // of the bucket holding the 99th percentile (time inside the Check handler only).
  buckets.sort((a, b) => a[0] - b[0]);
  const count = buckets.at(-1)?.[1] ?? 0;
  const p99Bucket = buckets.find(([, c]) => c >= 0.99 * count)?.[0];
  const serverP99Ms = count > 0 && p99Bucket !== undefined ? p99Bucket * 1000 : undefined;
  return { total, checks, cacheHits, serverP99Ms };
}

export function newestFile(dir, ext) {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  return files.length ? join(dir, files[0].f) : undefined;
}

/**
 * A reference server (bench/reference/*.mjs): no config, no metrics; the same
 * handle as startServer so a scenario can drive it.
 */
export async function startReference({ name, workDir, script, port, args = [], nodeArgs = [] }) {
  const logFile = join(workDir, `server-${name}.log`);
  const fd = openSync(logFile, 'w');
  const argv = ['--max-old-space-size=256', ...nodeArgs, join(ROOT, script), String(port), ...args];
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', fd],
  });
  closeSync(fd);
  let exited = null;
  const exitPromise = new Promise((resolve) =>
    child.once('exit', (code, signal) => resolve((exited = { code, signal }))),
  );
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not ready after 30 s`)), 30_000);
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', () => reject(new Error(`${name}: exited during startup; log ${logFile}`)));
  });
  return {
    name,
    pid: child.pid,
    grpcPort: port,
    logFile,
    reference: true,
    metrics: async () => ({}),
    rss: () => procStatus(child.pid),
    cpuSeconds: () => cpuSeconds(child.pid),
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const r = await exitPromise;
      clearTimeout(timer);
      return r.signal === 'SIGKILL' ? r : { code: 0, signal: null };
    },
  };
}
