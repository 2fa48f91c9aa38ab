// The real Envoy for the through-the-proxy benchmark: found the same way the e2e
// tests find it (test/helpers/envoy.ts), the shipped envoy/envoy.yaml rendered onto
// loopback ports, one process per row.
//
// Search order: ENVOY_BIN, `envoy` on PATH, .venv-envoy/ (`npm run envoy:install`).
// The container fallback of the tests is left out: a containerised Envoy on a loaded
// 2-core machine would measure the container runtime as much as the proxy.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import YAML from 'yaml';
import { ROOT } from './server.mjs';

function versionOf(bin) {
  try {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 15_000, stdio: 'pipe' });
    return out.split('\n').find((l) => l.includes('version')) ?? out.trim();
  } catch {
    return undefined;
  }
}

function venvBinary(venv) {
  const lib = join(venv, 'lib');
  if (existsSync(lib)) {
    for (const py of readdirSync(lib)) {
      const candidate = join(lib, py, 'site-packages', 'envoy', '_bin', 'envoy');
      if (existsSync(candidate)) return candidate;
    }
  }
  const wrapper = join(venv, 'bin', 'envoy');
  return existsSync(wrapper) ? wrapper : undefined;
}

/** { bin, origin, version } or { reason } (what was tried, and how to install). */
export function findEnvoy(env = process.env) {
  const onPath = (env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((d) => join(d, 'envoy'))
    .find((p) => existsSync(p));
  const tried = [];
  for (const [origin, bin] of [
    ['ENVOY_BIN', env.ENVOY_BIN],
    ['PATH', onPath],
    ['venv', venvBinary(join(ROOT, '.venv-envoy'))],
  ]) {
    if (!bin) continue;
    const version = versionOf(bin);
    if (version) return { origin, bin, version };
    if (origin === 'ENVOY_BIN')
      return { reason: `ENVOY_BIN=${bin} does not run (\`${bin} --version\` failed)` };
    tried.push(`${origin}: ${bin} does not run`);
  }
  return {
    reason:
      `no Envoy (${['ENVOY_BIN unset', ...(tried.length ? tried : ['no envoy on PATH', 'no .venv-envoy/'])].join('; ')}); ` +
      'run `npm run envoy:install` or set ENVOY_BIN',
  };
}

export const shippedEnvoyYaml = () => readFileSync(join(ROOT, 'envoy', 'envoy.yaml'), 'utf8');

function walk(node, visit) {
  if (Array.isArray(node)) for (const n of node) walk(n, visit);
  else if (node && typeof node === 'object') {
    visit(node);
    for (const v of Object.values(node)) walk(v, visit);
  }
}

/**
 * The shipped bootstrap on loopback: admin and listeners on port 0 (read back from the
 * admin API), clusters pointed at `clusters[name]` ("host:port"), then `mutate(doc)`.
 */
export function renderEnvoyConfig(yamlText, { clusters = {}, mutate } = {}) {
  const doc = YAML.parse(yamlText);
  doc.admin.address.socket_address = { address: '127.0.0.1', port_value: 0 };
  for (const l of doc.static_resources.listeners)
    l.address.socket_address = { ...l.address.socket_address, address: '127.0.0.1', port_value: 0 };
  for (const cluster of doc.static_resources.clusters) {
    const target = clusters[cluster.name];
    if (!target) continue;
    const i = target.lastIndexOf(':');
    walk(cluster.load_assignment, (obj) => {
      if (obj.socket_address)
        obj.socket_address = { address: target.slice(0, i), port_value: Number(target.slice(i + 1)) };
    });
  }
  mutate?.(doc);
  return doc;
}

/** The HttpConnectionManager of the first listener (the shipped file has one). */
export function connectionManager(doc) {
  return doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
}

/** Counters and gauges from the admin /stats (name → value), optionally filtered by a regex. */
export async function adminStats(adminUrl, filter) {
  const query = filter ? `?filter=${encodeURIComponent(filter)}` : '';
  const text = await (await fetch(`${adminUrl}/stats${query}`)).text();
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+): (\d+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/**
 * Starts Envoy (`--concurrency` worker threads, default 1) and waits for /ready.
 * stdout (the shipped config's access log) goes to /dev/null; stderr is kept for errors.
 */
let instance = 0;

export async function startEnvoy(envoy, doc, { dir, name, concurrency = 1, logLevel = 'warning' }) {
  // Unique per start: a stale admin-address file from an earlier run would point at a dead port.
  const configPath = join(dir, `envoy-${name}-${++instance}.yaml`);
  const adminFile = join(dir, `envoy-admin-${name}-${instance}.txt`);
  writeFileSync(configPath, YAML.stringify(doc));
  const child = spawn(
    envoy.bin,
    [
      '-c',
      configPath,
      '--use-dynamic-base-id',
      '--concurrency',
      String(concurrency),
      '-l',
      logLevel,
      '--admin-address-path',
      adminFile,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  let exit;
  child.stderr.on('data', (c) => (err += c));
  const gone = new Promise((r) =>
    child.once('exit', (code, signal) => r((exit = `code ${code}, signal ${signal}`))),
  );
  const stop = async () => {
    if (exit) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  };
  const deadline = Date.now() + 20_000;
  try {
    let adminUrl = '';
    for (;;) {
      if (exit) throw new Error(`envoy (${name}) exited before ready (${exit}):\n${err}`);
      if (Date.now() > deadline) throw new Error(`envoy (${name}) not ready within 20 s:\n${err}`);
      if (!adminUrl && existsSync(adminFile)) {
        const text = readFileSync(adminFile, 'utf8').trim();
        if (text) adminUrl = `http://${text}`;
      }
      if (adminUrl) {
        const ok = await fetch(`${adminUrl}/ready`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const listeners = await (await fetch(`${adminUrl}/listeners?format=json`)).json();
    const port = Number(listeners.listener_statuses[0].local_address.socket_address.port_value);
    return {
      pid: child.pid,
      adminUrl,
      port,
      configPath,
      stderr: () => err,
      stats: (filter) => adminStats(adminUrl, filter),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
