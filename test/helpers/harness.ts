// Starts the real service (gRPC Check + HTTP) on ephemeral loopback ports and talks
// to it exactly as Envoy does: lower-case header keys, pseudo-headers, repeated
// headers joined with ',', per-route context_extensions.
import { writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { App } from '../../src/server/app.js';
import { loadConfigFile, loadConfigObject } from '../../src/config/load.js';
import { authorizationClientConstructor } from '../../src/envoy/protos.js';
import { describeCheckResponse, envoyCheckRequest, type CheckRequestMessage } from '../../src/cli/check.js';
import { Metrics } from '../../src/observability/metrics.js';
import { captureLogger } from './logger.js';

export interface EnvoyCall {
  method?: string;
  path?: string;
  host?: string;
  token?: string;
  headers?: Record<string, string>;
  context?: Record<string, string>;
  /** The URL scheme Envoy received the request with (default http). */
  scheme?: string;
  /** PEM of the client certificate Envoy saw; sent URL-encoded as attributes.source.certificate. */
  clientCertificate?: string;
  /** gRPC deadline in ms (Envoy's ext_authz timeout). */
  timeoutMs?: number;
}

export interface Decision {
  decision: 'allow' | 'deny';
  grpc_status: number;
  reason?: string;
  http_status?: number;
  headers: Record<string, string>;
  headers_to_remove?: string[];
  query_parameters_to_remove?: string[];
  dynamic_metadata?: Record<string, any>;
  /** Allow: headers Envoy adds to the client's response (response_headers_to_add). */
  response_headers?: Record<string, string>;
  body?: any;
}

export interface TestService {
  readonly service: App;
  readonly grpcAddress: string;
  readonly httpUrl: string;
  readonly logs: ReturnType<typeof captureLogger>;
  /** Raw CheckResponse. */
  checkRaw(call: EnvoyCall | CheckRequestMessage | Record<string, unknown>): Promise<any>;
  check(call: EnvoyCall): Promise<Decision>;
  close(): Promise<void>;
}

export async function startTestService(
  config: Record<string, unknown>,
  opts: { baseDir?: string; logLevel?: string; configFile?: string } = {},
): Promise<TestService> {
  // With configFile the config is written there and read back as `serve --config` does.
  if (opts.configFile) writeFileSync(opts.configFile, JSON.stringify(config));
  const loaded = opts.configFile
    ? loadConfigFile(opts.configFile, {})
    : loadConfigObject(config, opts.baseDir ?? process.cwd(), {});
  const logs = captureLogger(opts.logLevel ?? 'debug');
  const service = await App.start(loaded, {
    logger: logs.logger,
    metrics: new Metrics({ processMetrics: false }),
    grpcAddress: '127.0.0.1:0',
    httpAddress: '127.0.0.1:0',
  });
  const grpcAddress = `127.0.0.1:${service.grpcPort}`;
  const Client = authorizationClientConstructor();
  const client = new Client(grpcAddress, grpc.credentials.createInsecure()) as any;
  const checkRaw = (call: EnvoyCall | CheckRequestMessage | Record<string, unknown>): Promise<any> => {
    const c = call as EnvoyCall;
    const isEnvoyCall = !('attributes' in call);
    const request = isEnvoyCall
      ? envoyCheckRequest({
          method: c.method ?? 'GET',
          path: c.path ?? '/api/orders',
          host: c.host ?? 'api.example.com',
          token: c.token,
          headers: Object.entries(c.headers ?? {}).map(([k, v]) => `${k}=${v}`),
          context: Object.entries(c.context ?? {}).map(([k, v]) => `${k}=${v}`),
        })
      : (call as CheckRequestMessage);
    if (isEnvoyCall && c.scheme !== undefined) {
      request.attributes.request.http.scheme = c.scheme;
      request.attributes.request.http.headers[':scheme'] = c.scheme;
    }
    if (isEnvoyCall && c.clientCertificate !== undefined)
      request.attributes.source = { certificate: encodeURIComponent(c.clientCertificate) };
    return new Promise((resolve, reject) =>
      client.Check(
        request,
        { deadline: Date.now() + (c.timeoutMs ?? 5000) },
        (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res)),
      ),
    );
  };
  return {
    service,
    grpcAddress,
    httpUrl: `http://127.0.0.1:${service.httpPort}`,
    logs,
    checkRaw,
    check: async (call) => describeCheckResponse(await checkRaw(call)) as unknown as Decision,
    close: async () => {
      client.close();
      await service.shutdown(1);
    },
  };
}
