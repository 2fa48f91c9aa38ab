// `npm run demo:envoy`: the service behind a real Envoy on loopback, in one command.
//
// Starts three processes, each in its own process group so that only this script
// stops them, in order:
//   - an echo upstream (scripts/echo-upstream.mjs) that answers with what it received;
//   - the service (`node dist/main.js serve`) with examples/envoy-demo.yaml, unchanged
//     (a link to it sits in a temporary folder beside a fresh demo key pair);
//   - Envoy with envoy/envoy.yaml, only its addresses set to the ports below.
// Then it mints demo tokens with the `mint` command and prints curl commands, each with
// the result to expect. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the three processes
// and removes the temporary folder.
//
// Ports (loopback only; each can be changed, and a busy one is reported by name):
//   DEMO_ENVOY_PORT=10000  DEMO_ENVOY_ADMIN_PORT=9901  DEMO_AUTHZ_GRPC_PORT=9001
//   DEMO_AUTHZ_HTTP_PORT=9002  DEMO_UPSTREAM_PORT=8000
// Envoy: ENVOY_BIN, else `envoy` on the PATH, else .venv-envoy/ (`npm run envoy:install`,
// which this script runs when it finds no Envoy at all).
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'dist', 'main.js');
const HOST = '127.0.0.1';

const PORTS = {
  envoy: ['DEMO_ENVOY_PORT', 10000, 'Envoy listener'],
  envoyAdmin: ['DEMO_ENVOY_ADMIN_PORT', 9901, 'Envoy admin'],
  grpc: ['DEMO_AUTHZ_GRPC_PORT', 9001, 'service gRPC (ext_authz)'],
  http: ['DEMO_AUTHZ_HTTP_PORT', 9002, 'service HTTP (health, metrics)'],
  upstream: ['DEMO_UPSTREAM_PORT', 8000, 'echo upstream'],
};

class DemoError extends Error {}

const log = (line) => process.stderr.write(`[demo] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function readPorts() {
  const ports = {};
  const seen = new Map();
  for (const [key, [name, fallback]] of Object.entries(PORTS)) {
    const raw = process.env[name];
    const port = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new DemoError(`${name}=${raw} is not a port number (1-65535)`);
    if (seen.has(port))
      throw new DemoError(`${name} and ${seen.get(port)} are both ${port}; give each its own port`);
    seen.set(port, name);
    ports[key] = port;
  }
  return ports;
}

/** Resolves when HOST:port can be bound (then released), rejects naming the variable when it cannot. */
function checkFree(key, port) {
  const [name, , what] = PORTS[key];
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err) =>
      reject(
        new DemoError(
          err.code === 'EADDRINUSE'
            ? `port ${port} on ${HOST} (${what}, ${name}) is already in use: stop what uses it, or choose another port: ${name}=<port> npm run demo:envoy`
            : `cannot listen on ${HOST}:${port} (${what}, ${name}): ${err.code ?? err.message}`,
        ),
      ),
    );
    srv.listen(port, HOST, () => srv.close(() => resolve()));
  });
}

function runs(bin) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) return undefined;
  const text = r.stdout + r.stderr;
  return (
    /\/(\d+\.\d+\.\d+)\//.exec(text)?.[1] ??
    text
      .split('\n')
      .find((l) => l.includes('version'))
      ?.trim() ??
    '?'
  );
}

function venvEnvoy() {
  const lib = join(ROOT, '.venv-envoy', 'lib');
  if (!existsSync(lib)) return undefined;
  for (const py of readdirSync(lib)) {
    const bin = join(lib, py, 'site-packages', 'envoy', '_bin', 'envoy');
    if (existsSync(bin)) return bin;
  }
  return undefined;
}

/** ENVOY_BIN, `envoy` on the PATH, .venv-envoy/; with none of them, `npm run envoy:install` first. */
function findEnvoy() {
  if (process.env.ENVOY_BIN) {
    const version = runs(process.env.ENVOY_BIN);
    if (!version)
      throw new DemoError(`ENVOY_BIN=${process.env.ENVOY_BIN} does not run (\`--version\` failed)`);
    return { bin: process.env.ENVOY_BIN, version };
  }
  const candidates = () => [
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((d) => join(d, 'envoy'))
      .filter((p) => existsSync(p)),
    venvEnvoy(),
  ];
  for (const bin of candidates()) {
    const version = bin && runs(bin);
    if (version) return { bin, version };
  }
  log('no Envoy found (ENVOY_BIN, PATH, .venv-envoy/): running `npm run envoy:install`');
  const install = spawnSync('npm', ['run', 'envoy:install'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  const bin = venvEnvoy();
  const version = install.status === 0 && bin ? runs(bin) : undefined;
  if (!version)
    throw new DemoError(
      '`npm run envoy:install` did not provide a working Envoy (see above); or set ENVOY_BIN',
    );
  return { bin, version };
}

function ensureBuilt() {
  if (existsSync(MAIN)) return;
  log('dist/ is missing: running `npm run build`');
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (r.status !== 0 || !existsSync(MAIN)) throw new DemoError('`npm run build` failed (see above)');
}

/** Runs one CLI command of the service (keygen, mint) and returns its stdout. */
function cli(args) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new DemoError(`\`node dist/main.js ${args[0]}\` failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

// --- the three processes ---------------------------------------------------------

const children = [];

/** Starts a long-running child in its own process group, its output prefixed on stderr. */
function start(name, bin, args, env = {}) {
  // a signal during start-up: start nothing more (stopAll only stops what exists)
  if (stopping) throw new DemoError('stopping');
  const child = spawn(bin, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const entry = { name, child, exited: undefined };
  child.on('exit', (code, signal) => {
    entry.exited = signal ? `signal ${signal}` : `code ${code}`;
  });
  child.on('error', (err) => {
    entry.exited = err.message;
  });
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) if (line) process.stderr.write(`[${name}] ${line}\n`);
    });
  }
  children.push(entry);
  return entry;
}

async function waitFor(entry, what, probe, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (entry.exited)
      throw new DemoError(`${entry.name} exited (${entry.exited}) before ${what}; its output is above`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new DemoError(`${entry.name}: no ${what} within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

const httpOk = (url) => fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200);

async function stopOne(entry, graceMs) {
  const { child } = entry;
  if (entry.exited || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

let dir;
let stopping;

/** Envoy first (no new requests), then the service, then the upstream; then the temporary files. */
function stopAll(code, why) {
  stopping ??= (async () => {
    if (why) log(why);
    const order = ['envoy', 'authz', 'upstream'];
    for (const name of order) {
      const entry = children.find((c) => c.name === name);
      if (entry) await stopOne(entry, name === 'authz' ? 15_000 : 5_000);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    const pids = children.map((c) => `${c.name} ${c.child.pid}`).join(', ');
    log(`stopped${pids ? ` (${pids})` : ''}${dir ? `; removed ${dir}` : ''}`);
    process.exit(code);
  })();
  return stopping;
}

// --- the demo ----------------------------------------------------------------------

function renderEnvoy(ports) {
  const doc = YAML.parse(readFileSync(join(ROOT, 'envoy', 'envoy.yaml'), 'utf8'));
  doc.admin.address.socket_address = { address: HOST, port_value: ports.envoyAdmin };
  for (const l of doc.static_resources.listeners)
    l.address.socket_address = { ...l.address.socket_address, address: HOST, port_value: ports.envoy };
  const endpoints = { ext_authz: ports.grpc, backend: ports.upstream };
  for (const c of doc.static_resources.clusters) {
    if (!(c.name in endpoints)) continue;
    for (const group of c.load_assignment.endpoints)
      for (const lb of group.lb_endpoints)
        lb.endpoint.address.socket_address = { address: HOST, port_value: endpoints[c.name] };
  }
  return doc;
}

function mintTokens(keyFile) {
  const now = Math.floor(Date.now() / 1000);
  const base = { iss: 'https://idp.demo.local', aud: 'demo-api' };
  const mint = (claims) =>
    cli(['mint', '--key', keyFile, '--ttl', '3600', '--claims', JSON.stringify({ ...base, ...claims })]);
  const alice = mint({ sub: 'alice', scope: 'orders:read read', roles: ['reader'] });
  const bob = mint({ sub: 'bob', scope: 'admin', roles: ['ops'] });
  const expired = mint({ sub: 'alice', scope: 'orders:read read', iat: now - 7200, exp: now - 3600 });
  // alice's token with its claims changed after signing (sub: mallory): the signature no longer matches
  const [header, , signature] = alice.split('.');
  const forgedClaims = {
    ...JSON.parse(Buffer.from(alice.split('.')[1], 'base64url').toString()),
    sub: 'mallory',
  };
  const tampered = `${header}.${Buffer.from(JSON.stringify(forgedClaims)).toString('base64url')}.${signature}`;
  return { alice, bob, expired, tampered };
}

function instructions(ports, envoy, tokens) {
  const base = `http://${HOST}:${ports.envoy}`;
  const bearer = (t) => ` -H 'Authorization: Bearer ${t}'`;
  const cases = [
    [
      'Allowed: alice (scope "orders:read read") on /orders; the upstream got claim headers and a minted token, not hers',
      `200 with \`"x-user-id":"alice"\` \`"x-user-roles":"reader"\` \`"x-jwt-assertion":"ey\` without \`"authorization"\``,
      '/orders/42',
      tokens.alice,
    ],
    ['No token', '401 with `www-authenticate: Bearer realm="envoy-jwt-authz-demo"`', '/orders/42'],
    [
      'Expired token',
      '401 with `error="invalid_token"` `the token has expired`',
      '/orders/42',
      tokens.expired,
    ],
    [
      'Bad token (claims changed after signing)',
      '401 with `error="invalid_token"` `the token signature is invalid`',
      '/orders/42',
      tokens.tampered,
    ],
    [
      'Insufficient scope: alice on /admin (needs scope admin)',
      '403 with `error="insufficient_scope"` `scope="admin"`',
      '/admin/panel',
      tokens.alice,
    ],
    ['Public route, no token', '200 with `"path":"/public/hello"` without `"x-user-id"`', '/public/hello'],
    [
      'Scope route: bob (scope "admin") on /admin',
      '200 with `"x-user-id":"bob"`',
      '/admin/panel',
      tokens.bob,
    ],
    [
      'Named rule and issuer: /reports applies rule `api` (scope read) to tokens of issuer `corp-idp`',
      '200 with `"x-user-id":"alice"`',
      '/reports/q1',
      tokens.alice,
    ],
  ];
  const lines = [
    '',
    `envoy-jwt-authz behind a real Envoy ${envoy.version}, all on ${HOST}:`,
    `  Envoy      ${base}  (admin http://${HOST}:${ports.envoyAdmin})  config: envoy/envoy.yaml, addresses set to these ports`,
    `  service    ${HOST}:${ports.grpc} gRPC, http://${HOST}:${ports.http} health and metrics  config: examples/envoy-demo.yaml`,
    `  upstream   http://${HOST}:${ports.upstream}  (answers with the JSON of the request it received)`,
    `  processes  ${children.map((c) => `${c.name} ${c.child.pid}`).join(', ')}; temporary files: ${dir}`,
    '',
    'Try these (tokens valid for one hour; the expected result is above each command):',
    '',
  ];
  cases.forEach(([title, expect, path, token], i) => {
    lines.push(
      `# ${i + 1}. ${title}`,
      `#    expect: ${expect}`,
      `curl -si ${base}${path}${token ? bearer(token) : ''}`,
      '',
    );
  });
  lines.push('Ctrl-C stops Envoy, the service and the upstream, and removes the temporary files.', '');
  return lines.join('\n');
}

async function main() {
  const ports = readPorts();
  for (const key of Object.keys(PORTS)) await checkFree(key, ports[key]);
  ensureBuilt();
  const envoy = findEnvoy();

  dir = mkdtempSync(join(tmpdir(), 'envoy-jwt-authz-demo-'));
  const keys = join(dir, 'demo-keys');
  mkdirSync(keys, { mode: 0o700 });
  const pair = JSON.parse(cli(['keygen', '--alg', 'ES256', '--kid', 'demo-1']));
  writeFileSync(join(keys, 'private.jwk.json'), JSON.stringify(pair.private), { mode: 0o600 });
  writeFileSync(join(keys, 'jwks.json'), JSON.stringify({ keys: [pair.public] }));
  // The shipped config itself (a link), so its relative jwks_file finds the keys above.
  const config = join(dir, 'envoy-demo.yaml');
  symlinkSync(join(ROOT, 'examples', 'envoy-demo.yaml'), config);
  const envoyConfig = join(dir, 'envoy.yaml');
  writeFileSync(envoyConfig, YAML.stringify(renderEnvoy(ports)));

  const upstream = start('upstream', process.execPath, [join(ROOT, 'scripts', 'echo-upstream.mjs')], {
    PORT: String(ports.upstream),
    HOST,
  });
  const authz = start('authz', process.execPath, [MAIN, 'serve', '--config', config], {
    AUTHZ_GRPC_ADDRESS: `${HOST}:${ports.grpc}`,
    AUTHZ_HTTP_ADDRESS: `${HOST}:${ports.http}`,
  });
  await waitFor(upstream, 'listening', () => httpOk(`http://${HOST}:${ports.upstream}/`));
  await waitFor(authz, 'ready', () => httpOk(`http://${HOST}:${ports.http}/readyz`));
  const proxy = start('envoy', envoy.bin, ['-c', envoyConfig, '--use-dynamic-base-id', '-l', 'warning']);
  await waitFor(proxy, 'ready', () => httpOk(`http://${HOST}:${ports.envoyAdmin}/ready`));
  // Through Envoy and ext_authz once (the health check must have found the service first).
  await waitFor(proxy, 'allowed request through ext_authz', () =>
    httpOk(`http://${HOST}:${ports.envoy}/public/ready`),
  );

  const tokens = mintTokens(join(keys, 'private.jwk.json'));
  process.stdout.write(instructions(ports, envoy, tokens));
  for (const entry of children)
    entry.child.once('exit', () => {
      if (!stopping)
        void stopAll(1, `${entry.name} exited unexpectedly (${entry.exited}); stopping the others`);
    });
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'])
  process.on(signal, () => void stopAll(0, `${signal}: stopping`));

main().catch((err) => {
  const message = err instanceof DemoError ? err.message : (err.stack ?? String(err));
  process.stderr.write(`demo:envoy: ${message}\n`);
  void stopAll(1);
});
