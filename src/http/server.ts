import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { registerOAuthRoutes } from '../oauth/index.js';
import { clusterMetricsFromPrimary } from '../cluster.js';
import type { Runtime } from '../runtime.js';
import { registerWellKnownRoutes } from './well-known.js';

export interface HttpServerDeps {
  readonly runtime: () => Runtime;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** False while draining for shutdown: readiness fails first. */
  readonly accepting: () => boolean;
}

/** Admin and OAuth HTTP server: health, readiness, metrics, well-known documents, token endpoint. */
export function createHttpServer(deps: HttpServerDeps): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: 1024 * 1024,
    connectionTimeout: 10_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
    routerOptions: { maxParamLength: 200 },
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
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
