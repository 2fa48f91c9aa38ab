// The e2e stack in one call: this service in-process (harness.ts), the echo upstream as
// Envoy's `backend` cluster, optionally the CheckRequest recorder between Envoy and the
// service (ext-authz-recorder.ts), and the real Envoy (envoy.ts) on a rendered bootstrap
// (the shipped envoy/envoy.yaml unless told otherwise), all on loopback ports, sharing one
// temp dir, with one stop() for the whole. Plus the HTTP/1.1 client the e2e files use.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import {
  renderEnvoyConfig,
  shippedEnvoyYaml,
  startEnvoy,
  type EnvoyInstall,
  type RenderOptions,
  type RunningEnvoy,
} from './envoy.js';
import { startRecorder, type ExtAuthzRecorder } from './ext-authz-recorder.js';
import { startTestService, type TestService } from './harness.js';
import type { TestKeyPair } from './keys.js';
import { startEcho } from './echo-upstream.mjs';
import { collectReply, type HttpsReply } from './tls.js';
import { sleep } from './wait.js';

export interface StackEnvoyOptions extends Omit<RenderOptions, 'mutate'> {
  /** The bootstrap, YAML text or parsed (default: the shipped envoy/envoy.yaml). */
  yaml?: string | Record<string, any>;
  /** Access logs to this file (see RenderOptions); a relative path is in the stack's dir. */
  accessLogPath?: string;
  /**
   * Fields added to the first access log's JSON format (it then goes to `access.log` in the
   * stack's dir unless accessLogPath says otherwise, flushed every 20 ms): see accessLogEntry.
   */
  accessLogFields?: Record<string, string>;
  /** Last word on the parsed bootstrap; `dir` is the stack's temp dir. */
  mutate?: (doc: any, dir: string) => void;
  logLevel?: string;
  extraArgs?: string[];
}

export interface StackOptions {
  /** The service's config; without one no service starts (point `ext_authz` elsewhere). */
  config?: Record<string, unknown>;
  /** startTestService's options; relative paths in the config resolve against the stack's dir. */
  service?: { logLevel?: string; configFile?: string; baseDir?: string };
  /** Put the CheckRequest recorder between Envoy and the service. */
  recorder?: boolean;
  /** The echo upstream as cluster `backend` (default true). */
  upstream?: boolean;
  /** Prefix of the temp dir's name, or a dir of the caller's (which stop() leaves in place). */
  dirPrefix?: string;
  dir?: string;
  /** Written into the dir before anything starts: file name → content. */
  files?: Record<string, string | Buffer>;
  envoy?: StackEnvoyOptions;
}

export interface Stack {
  readonly dir: string;
  /** The in-process service (absent without `config`). */
  readonly service: TestService;
  /** The recorder (absent without `recorder: true`). */
  readonly recorder: ExtAuthzRecorder;
  /** The echo upstream (absent with `upstream: false`) and its host:port. */
  readonly upstream: Server;
  readonly upstreamAddress: string;
  readonly envoy: RunningEnvoy;
  /** http://127.0.0.1:<Envoy's first listener port> */
  readonly url: string;
  /** Another Envoy in front of the same service and upstream (default clusters as the first); stop() stops it too. */
  startEnvoy(opts?: StackEnvoyOptions): Promise<RunningEnvoy>;
  stop(): Promise<void>;
}

/** Starts the stack (see the top of this file); on a failure, stops what it started and throws. */
export async function startStack(envoy: EnvoyInstall, opts: StackOptions = {}): Promise<Stack> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), opts.dirPrefix ?? 'envoy-stack-'));
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content);
  let service: TestService | undefined;
  let recorder: ExtAuthzRecorder | undefined;
  let upstream: Server | undefined;
  let upstreamAddress = '';
  const proxies: RunningEnvoy[] = [];

  const stop = async () => {
    for (const p of proxies) await p.stop();
    await recorder?.close();
    await service?.close();
    await new Promise((r) => (upstream ? upstream.close(r) : r(undefined)));
    if (!opts.dir) rmSync(dir, { recursive: true, force: true });
  };
  const addEnvoy = async (o: StackEnvoyOptions = {}): Promise<RunningEnvoy> => {
    const { yaml, mutate, logLevel, extraArgs, clusters, accessLogPath, accessLogFields, ...render } = o;
    const logPath = accessLogPath ?? (accessLogFields ? 'access.log' : undefined);
    const doc = renderEnvoyConfig(yaml ?? shippedEnvoyYaml(), {
      ...render,
      accessLogPath: logPath && resolve(dir, logPath),
      clusters: {
        ...(service || recorder ? { ext_authz: recorder?.address ?? service!.grpcAddress } : {}),
        ...(upstream ? { backend: upstreamAddress } : {}),
        ...clusters,
      },
      mutate: (d) => {
        if (accessLogFields) {
          const hcm = d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
          Object.assign(hcm.access_log[0].typed_config.log_format.json_format, accessLogFields);
        }
        mutate?.(d, dir);
      },
    });
    const flush = accessLogFields ? ['--file-flush-interval-msec', '20'] : [];
    const proxy = await startEnvoy(envoy, doc, {
      dir,
      logLevel,
      extraArgs: [...flush, ...(extraArgs ?? [])],
    });
    proxies.push(proxy);
    return proxy;
  };

  try {
    if (opts.config) service = await startTestService(opts.config, { baseDir: dir, ...opts.service });
    if (opts.recorder && service) recorder = await startRecorder(service.grpcAddress);
    if (opts.upstream !== false) {
      upstream = await startEcho(0);
      upstreamAddress = `127.0.0.1:${(upstream.address() as { port: number }).port}`;
    }
    const first = await addEnvoy(opts.envoy);
    return {
      dir,
      service: service!,
      recorder: recorder!,
      upstream: upstream!,
      upstreamAddress,
      envoy: first,
      url: `http://127.0.0.1:${first.port}`,
      startEnvoy: addEnvoy,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** An issuer of the service config with the key's public JWK inline, accepting only the key's alg. */
export function inlineIssuer(
  issuer: string,
  audience: string,
  key: TestKeyPair,
  name = 'corp-idp',
): Record<string, unknown> {
  return { name, issuer, audiences: [audience], algorithms: [key.alg], jwks: { keys: [key.publicJwk] } };
}

/**
 * The entry of a JSON access log (one object a line) whose `test_id` is `id`, once Envoy has
 * written it (undefined if none appears within 2 s: Envoy writes its access log asynchronously).
 */
export async function accessLogEntry(file: string, id: string): Promise<any> {
  let entry: any;
  for (let i = 0; i < 100 && !entry; i++) {
    if (existsSync(file))
      entry = readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .find((e) => e.test_id === id);
    if (!entry) await sleep(20);
  }
  return entry;
}

// --- the client ------------------------------------------------------------------

export type Reply = HttpsReply;

/** A GET over HTTP/1.1 with node:http (the path goes as given: no dot-segment resolution). */
export function httpGet(
  port: number,
  path: string,
  headers: Record<string, string | string[]> = {},
): Promise<Reply> {
  return collectReply(path, (onResponse) =>
    request({ host: '127.0.0.1', port, path, method: 'GET', headers }, onResponse),
  );
}

/** What the echo upstream received (its reply body). */
export interface Echo {
  method: string;
  path: string;
  httpVersion: string;
  headers: Record<string, string | undefined>;
  rawHeaders: string[];
}

/** The echo of a request that passed (expects 200). */
export function echoOf(reply: Reply): Echo {
  expect(reply.status, reply.body).toBe(200);
  return JSON.parse(reply.body) as Echo;
}
