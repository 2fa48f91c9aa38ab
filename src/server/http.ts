import type { IncomingHttpHeaders } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TlsMaterial } from '../net/tls-files.js';
import { registerOAuthRoutes, rewriteTokenPath } from '../oauth/index.js';
import { clusterMetricsFromPrimary } from './cluster.js';
import type { Runtime } from './runtime.js';
import { registerWellKnownRoutes } from './well-known.js';
import { listenHostPort } from '../core/address.js';
import { registerExplainRoute } from './explain-route.js';

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
  /** Time a client has, once its headers are in, to send the whole body (ms); tests shorten it. */
  readonly bodyTimeoutMs?: number;
  /** HTTPS (and client certificates when requestCert) instead of plain HTTP. */
  readonly tls?: TlsMaterial;
}

// Listener limits against slow and piled-up clients: a connection that trickles its
// headers (slowloris) or its body is closed instead of holding a socket for ever, one
// client address holds at most server.http_max_connections_per_client connections, and
// health probes keep a way in when every ordinary slot is taken.
export const HTTP_HEADERS_TIMEOUT_MS = 10_000;
/** Once the headers are in, the body must arrive in full this soon (the token endpoint's bodies are small). */
export const HTTP_BODY_TIMEOUT_MS = 10_000;
/** Node's own deadline for a whole request: the backstop of the two above. */
export const HTTP_REQUEST_TIMEOUT_MS = HTTP_HEADERS_TIMEOUT_MS + HTTP_BODY_TIMEOUT_MS;
/** Node enforces the header and request timeouts only when it sweeps its connections, this often (its default is 30 s). */
export const HTTP_CONNECTIONS_CHECK_INTERVAL_MS = 1_000;
/**
 * Connections accepted beyond server.http_max_connections for liveness and readiness
 * probes only: such a connection may ask GET /healthz or /readyz once (anything else is
 * 503), is answered with `Connection: close`, and is closed after HTTP_PROBE_DEADLINE_MS.
 */
export const HTTP_PROBE_HEADROOM = 16;
export const HTTP_PROBE_DEADLINE_MS = 2_000;
const PROBE_PATHS = new Set(['/healthz', '/readyz']);

interface ConnectionLimits {
  /** Ordinary connections (server.http_max_connections). */
  readonly max: number;
  /** Connections of one client address, headroom included (server.http_max_connections_per_client). */
  readonly perClient: number;
}

/** The hard ceiling Node enforces before a socket is even handed over: the cap plus the probe headroom. */
export function httpConnectionCeiling(maxConnections: number): number {
  return maxConnections + HTTP_PROBE_HEADROOM;
}

/** One client = one source address (an IPv4 address seen through an IPv6 socket counts as itself). */
function clientOf(socket: Socket): string {
  const a = socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** The connection's identity, the same on a TLS socket as on the TCP socket under it. */
const connectionKey = (socket: Socket) => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;

/**
 * Counts open connections, per client address too, on the listener's TCP sockets (before
 * any TLS handshake). A connection over its client's cap is closed on arrival; one over
 * the global cap is kept for a probe only (see HTTP_PROBE_HEADROOM). Limits are read on
 * every connection, so a reload applies them at once.
 */
function guardConnections(
  server: NetServer,
  limits: () => ConnectionLimits,
  refused: (reason: 'client_connections' | 'connections') => void,
): (socket: Socket) => boolean {
  let open = 0;
  const byClient = new Map<string, number>();
  const probeOnly = new Set<string>();
  // Node closed a connection beyond maxConnections before handing it over.
  server.on('drop', () => refused('connections'));
  server.on('connection', (socket: Socket) => {
    const { max, perClient } = limits();
    const client = clientOf(socket);
    const mine = byClient.get(client) ?? 0;
    if (mine >= perClient || open >= httpConnectionCeiling(max)) {
      refused(mine >= perClient ? 'client_connections' : 'connections');
      socket.destroy();
      return;
    }
    open++;
    byClient.set(client, mine + 1);
    const key = connectionKey(socket);
    let deadline: NodeJS.Timeout | undefined;
    if (open > max) {
      probeOnly.add(key);
      deadline = setTimeout(() => socket.destroy(), HTTP_PROBE_DEADLINE_MS).unref();
    }
    socket.once('close', () => {
      open--;
      const left = (byClient.get(client) ?? 1) - 1;
      if (left > 0) byClient.set(client, left);
      else byClient.delete(client);
      if (deadline) {
        clearTimeout(deadline);
        probeOnly.delete(key);
      }
    });
  });
  return (socket) => probeOnly.size > 0 && probeOnly.has(connectionKey(socket));
}

const hasBody = (h: IncomingHttpHeaders) =>
  h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');

/** The body did not arrive in time: 408 when no answer has started, and the connection is closed either way. */
function bodyTimedOut(reply: FastifyReply, metrics: Metrics): void {
  metrics.httpRefusedTotal.inc({ reason: 'body_timeout' });
  const socket = reply.request.raw.socket;
  const res = reply.raw;
  if (res.headersSent || reply.sent) {
    socket.destroy();
    return;
  }
  // Fastify is still waiting for the body; this answer is written past it.
  reply.hijack();
  res.writeHead(408, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
  res.end('{"error":"invalid_request","error_description":"the request body did not arrive in time"}', () =>
    socket.destroy(),
  );
}

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
            // The header deadline starts after the handshake; a trickled handshake gets the same bound.
            handshakeTimeout: deps.headersTimeoutMs ?? HTTP_HEADERS_TIMEOUT_MS,
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
    // token_endpoint.path (read per request: a reload may change it).
    rewriteUrl: (req) => rewriteTokenPath(req.method, req.url, deps.runtime().tokenService?.tokenPath),
  }) as unknown as FastifyInstance;
  // Per process (each worker has its own counts). Beyond the cap plus the probe headroom,
  // Node closes connections as they arrive; the guard does the rest.
  app.server.maxConnections = httpConnectionCeiling(deps.runtime().config.server.http_max_connections);
  const isProbeOnly = guardConnections(
    app.server,
    () => {
      const server = deps.runtime().config.server;
      return { max: server.http_max_connections, perClient: server.http_max_connections_per_client };
    },
    (reason) => deps.metrics.httpRefusedTotal.inc({ reason }),
  );
  const bodyTimeoutMs = deps.bodyTimeoutMs ?? HTTP_BODY_TIMEOUT_MS;

  app.addHook('onRequest', (req, reply, done) => {
    const raw = req.raw;
    if (isProbeOnly(raw.socket)) {
      void reply.header('connection', 'close');
      const q = raw.url?.indexOf('?') ?? -1;
      const path = q < 0 ? raw.url : raw.url?.slice(0, q);
      if (!((raw.method === 'GET' || raw.method === 'HEAD') && PROBE_PATHS.has(path ?? ''))) {
        deps.metrics.httpRefusedTotal.inc({ reason: 'probe_only' });
        void reply.code(503).send({ error: 'temporarily_unavailable' });
        return;
      }
    }
    if (!raw.complete && hasBody(raw.headers)) {
      const timer = setTimeout(bodyTimedOut, bodyTimeoutMs, reply, deps.metrics);
      const stop = () => clearTimeout(timer);
      raw.once('end', stop);
      raw.once('close', stop);
    }
    done();
  });

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
      tokenEndpoint: () =>
        rt.tokenService && {
          path: rt.tokenService.tokenPath,
          grantTypes: rt.tokenService.grantTypesSupported,
          authMethods: rt.tokenService.authMethodsSupported,
        },
      publicBaseUrl: () => rt.config.public_base_url || undefined,
    };
  });
  registerOAuthRoutes(app, () => deps.runtime().tokenService);
  registerExplainRoute(app, deps.runtime);

  app.setErrorHandler((err: { statusCode?: number; message?: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) deps.logger.error({ err: { message: err.message } }, 'http handler failed');
    void reply.code(status).send({ error: status === 500 ? 'server_error' : 'invalid_request' });
  });
  return app;
}

export function splitAddress(address: string): { host: string; port: number } {
  const a = listenHostPort(address);
  if (!a) throw new Error(`invalid address "${address}" (expected HOST:PORT)`);
  return a;
}
