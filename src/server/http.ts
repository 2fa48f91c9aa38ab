import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TlsMaterial } from '../net/tls-files.js';
import { registerOAuthRoutes } from '../oauth/index.js';
import { clusterMetricsFromPrimary } from './cluster.js';
import type { Runtime } from './runtime.js';
import { registerWellKnownRoutes } from './well-known.js';

export interface HttpServerDeps {
  readonly runtime: () => Runtime;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** False while draining for shutdown: readiness fails first. */
  readonly accepting: () => boolean;
  /** Called on every /readyz: a readiness prober (kubelet) is watching this process. */
  readonly probed?: () => void;
  /** Time a client has to send its request headers (ms); tests shorten it. */
  readonly headersTimeoutMs?: number;
  /** HTTPS (and client certificates when requestCert) instead of plain HTTP. */
  readonly tls?: TlsMaterial;
}

// Listener limits against slow and piled-up clients: a connection that trickles its
// headers (slowloris) or its body is closed instead of holding a socket for ever.
export const HTTP_HEADERS_TIMEOUT_MS = 10_000;
export const HTTP_REQUEST_TIMEOUT_MS = 30_000;
/** Node enforces both timeouts only when it sweeps its connections, this often (its default is 30 s). */
export const HTTP_CONNECTIONS_CHECK_INTERVAL_MS = 1_000;

/** Admin and OAuth HTTP server: health, readiness, metrics, well-known documents, token endpoint. */
export function createHttpServer(deps: HttpServerDeps): FastifyInstance {
  const tls = deps.tls;
  const app = Fastify({
    ...(tls
      ? {
          https: {
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca ? { ca: tls.ca } : {}),
            requestCert: tls.requestCert,
            rejectUnauthorized: tls.rejectUnauthorized,
          },
        }
      : {}),
    logger: false,
    bodyLimit: 1024 * 1024,
    // Idle socket timeout.
    connectionTimeout: 10_000,
    requestTimeout: HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: 5_000,
    http: {
      headersTimeout: deps.headersTimeoutMs ?? HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: HTTP_REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: HTTP_CONNECTIONS_CHECK_INTERVAL_MS,
    },
    routerOptions: { maxParamLength: 200 },
  }) as unknown as FastifyInstance;
  // Connections beyond the cap are closed as they arrive; per process (each worker has its own).
  app.server.maxConnections = deps.runtime().config.server.http_max_connections;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    deps.probed?.();
    const rt = deps.runtime();
    const ready = deps.accepting() && rt.ready();
    const body = {
      status: ready ? 'ready' : 'not_ready',
      issuers: rt.issuerStatus(),
      store: rt.store ? { type: rt.config.store.type, ready: rt.store.isReady() } : undefined,
    };
    return reply.code(ready ? 200 : 503).send(body);
  });

  app.get('/metrics', async (_req, reply) => {
    // With server.workers > 1 the primary aggregates every worker's metrics.
    const text = (await clusterMetricsFromPrimary()) ?? (await deps.metrics.registry.metrics());
    return reply.header('content-type', deps.metrics.registry.contentType).send(text);
  });

  registerWellKnownRoutes(app, () => {
    const rt = deps.runtime();
    return {
      publicJwks: () => rt.publicJwks(),
      issuer: () => rt.tokenService?.issuer ?? rt.config.upstream.token?.issuer,
      tokenEndpointEnabled: () => rt.tokenService !== undefined,
      publicBaseUrl: () => rt.config.public_base_url || undefined,
    };
  });
  registerOAuthRoutes(app, () => deps.runtime().tokenService);

  app.setErrorHandler((err: { statusCode?: number; message?: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) deps.logger.error({ err: { message: err.message } }, 'http handler failed');
    void reply.code(status).send({ error: status === 500 ? 'server_error' : 'invalid_request' });
  });
  return app;
}

export function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid address "${address}" (expected HOST:PORT)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}
