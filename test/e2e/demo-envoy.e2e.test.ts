// `npm run demo:envoy` exactly as a newcomer runs it: the command as a child process,
// the curl commands it prints run as printed (with the real curl when there is one,
// else node's fetch with the same arguments), each answer checked against the result
// printed above the command; then Ctrl-C (SIGINT to the process group, as a terminal
// sends it) and nothing left: no process, no temporary folder, every port free.
// The demo runs the shipped envoy/envoy.yaml (only its ports changed) with the shipped
// examples/envoy-demo.yaml, so this is also the test that the two agree through the
// real Envoy (the /reports route names the config's issuer and rule).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import YAML from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, freePort, REPO_ROOT, shippedEnvoyYaml } from '../helpers/envoy.js';

const envoy = await envoyOrSkip('npm run demo:envoy');
const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;

const PORT_VARS = [
  'DEMO_ENVOY_PORT',
  'DEMO_ENVOY_ADMIN_PORT',
  'DEMO_AUTHZ_GRPC_PORT',
  'DEMO_AUTHZ_HTTP_PORT',
  'DEMO_UPSTREAM_PORT',
] as const;

interface Demo {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runDemo(env: Record<string, string>): Demo {
  let out = '';
  let err = '';
  // Its own process group, like a shell job: SIGINT to the group is what Ctrl-C does.
  const child = spawn('npm', ['run', 'demo:envoy'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, ...(envoy?.bin ? { ENVOY_BIN: envoy.bin } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout!.on('data', (c: Buffer) => (out += String(c)));
  child.stderr!.on('data', (c: Buffer) => (err += String(c)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function until(what: string, ok: () => boolean, demo: Demo, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void demo.exited.then(() => (gone = true));
  while (!ok()) {
    if (gone || Date.now() > deadline)
      throw new Error(`no ${what}:\n--- stdout\n${demo.stdout()}\n--- stderr\n${demo.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The words of a printed command: plain words and '…' single-quoted ones (all the demo prints). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) words.push(m[1] ?? m[2]!);
  return words;
}

interface Printed {
  title: string;
  status: number;
  present: string[];
  absent: string[];
  command: string;
}

/** `# N. title` / `#    expect: STATUS with `a` `b` without `c`` / `curl …` */
function parseCommands(stdout: string): Printed[] {
  const re = /^# \d+\. (.+)\n#\s+expect: (\d{3})(.*)\n(curl .+)$/gm;
  const out: Printed[] = [];
  for (let m = re.exec(stdout); m; m = re.exec(stdout)) {
    const [withPart, withoutPart = ''] = m[3]!.split(' without ');
    const quoted = (s: string) => [...s.matchAll(/`([^`]+)`/g)].map((q) => q[1]!);
    out.push({
      title: m[1]!,
      status: Number(m[2]),
      present: quoted(withPart!),
      absent: quoted(withoutPart),
      command: m[4]!,
    });
  }
  return out;
}

/** Runs a printed curl command; the answer as curl -si shows it (status line, headers, body). */
async function runCurl(command: string): Promise<string> {
  const [bin, ...args] = shellWords(command);
  expect(bin).toBe('curl');
  if (hasCurl)
    return new Promise((resolve, reject) =>
      execFile('curl', [...args, '--max-time', '10'], (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
  // No curl here: node's fetch with the same arguments (-si, the URL, -H headers).
  const headers: Record<string, string> = {};
  let url = '';
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-H') {
      const h = args[++i]!;
      headers[h.slice(0, h.indexOf(':')).trim()] = h.slice(h.indexOf(':') + 1).trim();
    } else if (args[i] === '-si') continue;
    else url = args[i]!;
  }
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  const lines = [`HTTP/1.1 ${res.status} ${res.statusText}`];
  res.headers.forEach((v, k) => lines.push(`${k}: ${v}`));
  return `${lines.join('\r\n')}\r\n\r\n${await res.text()}`;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
};

const bindable = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

/** The demo's processes and temporary folder are there; after `stop`, none is, and every port is free. */
async function stopsEverything(demo: Demo, env: Record<string, string>, stop: (npmPid: number) => void) {
  const stdout = demo.stdout();
  const processes = /processes\s+upstream (\d+), authz (\d+), envoy (\d+); temporary files: (\S+)/.exec(
    stdout,
  );
  expect(processes, stdout).not.toBeNull();
  const pids = processes!.slice(1, 4).map(Number);
  const dir = processes![4]!;
  for (const pid of pids) expect(alive(pid)).toBe(true);
  expect(existsSync(dir)).toBe(true);

  stop(demo.child.pid!);
  const exit = await demo.exited;
  expect(exit, demo.stderr()).toEqual({ code: 0, signal: null });
  for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
  expect(existsSync(dir)).toBe(false);
  for (const name of PORT_VARS) expect(await bindable(Number(env[name])), name).toBe(true);
  expect(demo.stderr()).toMatch(/\[demo\] stopped \(upstream \d+, authz \d+, envoy \d+\); removed /);
}

describe.skipIf(!envoy?.bin)('npm run demo:envoy, as a newcomer runs it', () => {
  const started: Demo[] = [];
  afterAll(() => {
    // only if an assertion failed half-way: the demo's group (npm and the script)
    for (const d of started) if (d.child.exitCode === null) process.kill(-d.child.pid!, 'SIGKILL');
  });

  it('prints curl commands whose answers are the printed ones; Ctrl-C stops all three processes and cleans up', async () => {
    const env: Record<string, string> = {};
    for (const name of PORT_VARS) env[name] = String(await freePort());
    const demo = runDemo(env);
    started.push(demo);
    await until('printed commands', () => /Ctrl-C stops/.test(demo.stdout()), demo, 90_000);
    const stdout = demo.stdout();

    const commands = parseCommands(stdout);
    const titles = commands.map((c) => c.title).join('\n');
    expect(titles).toMatch(/^Allowed/m);
    expect(titles).toMatch(/^No token/m);
    expect(titles).toMatch(/^Expired token/m);
    expect(titles).toMatch(/^Bad token/m);
    expect(titles).toMatch(/^Insufficient scope/m);
    expect(titles).toMatch(/^Public route/m);
    expect(titles).toMatch(/^Scope route/m);
    expect(commands.map((c) => c.status)).toEqual(expect.arrayContaining([200, 401, 403]));
    for (const c of commands) {
      expect(c.command).toContain(`http://127.0.0.1:${env.DEMO_ENVOY_PORT}/`);
      expect(c.present.length, c.title).toBeGreaterThan(0);
    }

    for (const c of commands) {
      const answer = await runCurl(c.command);
      expect(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1], `${c.title}\n${answer}`).toBe(String(c.status));
      for (const text of c.present) expect(answer, c.title).toContain(text);
      for (const text of c.absent) expect(answer, c.title).not.toContain(text);
    }

    await stopsEverything(demo, env, (pid) => process.kill(-pid, 'SIGINT'));
  }, 150_000);

  it('SIGTERM to the npm process alone (a supervisor, `kill PID`) stops all three as well', async () => {
    const env: Record<string, string> = {};
    for (const name of PORT_VARS) env[name] = String(await freePort());
    const demo = runDemo(env);
    started.push(demo);
    await until('printed commands', () => /Ctrl-C stops/.test(demo.stdout()), demo, 90_000);
    await stopsEverything(demo, env, (pid) => process.kill(pid, 'SIGTERM'));
  }, 150_000);

  it('a busy port is refused by name before anything starts', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const env: Record<string, string> = {};
    for (const name of PORT_VARS) env[name] = String(await freePort());
    env.DEMO_AUTHZ_GRPC_PORT = String((busy.address() as { port: number }).port);
    try {
      const demo = runDemo(env);
      started.push(demo);
      const exit = await demo.exited;
      expect(exit.code).not.toBe(0);
      expect(demo.stderr()).toContain(
        `port ${env.DEMO_AUTHZ_GRPC_PORT} on 127.0.0.1 (service gRPC (ext_authz), DEMO_AUTHZ_GRPC_PORT) is already in use`,
      );
      expect(demo.stdout()).not.toMatch(/^curl /m);
    } finally {
      busy.close();
    }
  }, 60_000);
});

// Without Envoy too: every name envoy/envoy.yaml uses is defined by the shipped config.
describe('envoy/envoy.yaml and examples/envoy-demo.yaml name the same things', () => {
  const envoyDoc = YAML.parse(shippedEnvoyYaml());
  const config = YAML.parse(readFileSync(join(REPO_ROOT, 'examples', 'envoy-demo.yaml'), 'utf8'));
  const extensions: Record<string, string>[] = [];
  const removed: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      const obj = node as Record<string, any>;
      if (obj.context_extensions) extensions.push(obj.context_extensions);
      if (Array.isArray(obj.request_headers_to_remove)) removed.push(...obj.request_headers_to_remove);
      Object.values(obj).forEach(walk);
    }
  };
  walk(envoyDoc);

  it('issuers and rules named in context_extensions exist in the service config', () => {
    const issuers = extensions.flatMap((e) => (e.issuers ? e.issuers.split(' ') : []));
    const rules = extensions.flatMap((e) => (e.rule ? [e.rule] : []));
    expect(issuers.length + rules.length).toBeGreaterThan(0);
    const issuerNames = config.issuers.map((i: { name: string }) => i.name);
    const ruleNames = config.rules.map((r: { name: string }) => r.name);
    for (const name of issuers) expect(issuerNames).toContain(name);
    for (const name of rules) expect(ruleNames).toContain(name);
  });

  it('the identity headers envoy.yaml strips are the ones the service injects', () => {
    const injected = [...Object.keys(config.upstream.claim_headers), config.upstream.token.header];
    expect([...removed].sort()).toEqual([...injected].sort());
  });

  it("the ext_authz cluster points at the service config's gRPC address", () => {
    const cluster = envoyDoc.static_resources.clusters.find((c: { name: string }) => c.name === 'ext_authz');
    const { address, port_value } =
      cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    expect(`${address}:${port_value}`).toBe(config.server.grpc_address);
  });
});
