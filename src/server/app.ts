import { isDeepStrictEqual } from 'node:util';
import type { FastifyInstance } from 'fastify';
import type { LoadedConfig } from '../config/types.js';
import { CheckHandler } from '../envoy/check-handler.js';
import { startGrpcServer, type GrpcServerHandle } from '../envoy/transport.js';
import { createHttpServer, httpConnectionCeiling, splitAddress } from './http.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { Runtime } from './runtime.js';
import { ConfigError } from '../core/errors.js';
import { secondsToMs, systemClock, type Clock, type EpochMs } from '../core/time.js';
import { loadTlsMaterial, tlsEnabled, type TlsMaterial, type TlsSettings } from '../net/tls-files.js';
import { watchTlsFiles } from './tls-reload.js';

/** The TLS material of one listener at start; a problem with it is a config error naming the field. */
function listenerTls(
  field: string,
  settings: TlsSettings,
  baseDir: string,
  clock: Clock,
): TlsMaterial | undefined {
  if (!tlsEnabled(settings)) return undefined;
  const { material, problems } = loadTlsMaterial(field, settings, baseDir, clock);
  if (!material) throw new ConfigError(problems);
  return material;
}

const secureContextOf = (m: TlsMaterial) => ({ cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) });
import { startTracing, stopTracing } from '../observability/tracing.js';

export interface AppOptions {
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Override server.grpc_address / server.http_address (tests use 127.0.0.1:0). */
  readonly grpcAddress?: string;
  readonly httpAddress?: string;
  /** Time a client has to send its HTTP request headers (ms; default 10 s); tests shorten it. */
  readonly httpHeadersTimeoutMs?: number;
  /** Time a client has, after its headers, to send its HTTP request body (ms; default 10 s); tests shorten it. */
  readonly httpBodyTimeoutMs?: number;
  /** The system clock by default; tests pin it. */
  readonly clock?: Clock;
}

/** A health probe this recent means a health checker is watching (see App.shutdown). */
const PROBE_RECENT_MS = 60_000;

/** The running service: gRPC Check + health, HTTP admin/OAuth, reload and drain. */
export class App {
  private runtime: Runtime;
  private accepting = true;
  private reloading: Promise<void> = Promise.resolve();
  /** Replaced runtimes still finishing their checks; closed after a delay or at shutdown. */
  private readonly draining = new Set<Runtime>();
  /** Stops the certificate file polling of the TLS listeners. */
  private readonly stopWatching: (() => void)[] = [];
  /** This app started the process's tracing (and stops it at shutdown). */
  private ownsTracing = false;
  /** When the last HTTP readiness probe (/readyz) came; 0: never. */
  private readinessProbeAt: EpochMs = 0;

  private constructor(
    runtime: Runtime,
    readonly grpc: GrpcServerHandle,
    readonly http: FastifyInstance,
    readonly httpPort: number,
    private readonly checks: CheckHandler,
    private readonly opts: AppOptions & { metrics: Metrics; clock: Clock },
  ) {
    this.runtime = runtime;
  }

  get grpcPort(): number {
    return this.grpc.port;
  }

  get current(): Runtime {
    return this.runtime;
  }

  static async start(loaded: LoadedConfig, options: AppOptions): Promise<App> {
    const opts = {
      ...options,
      metrics: options.metrics ?? new Metrics(),
      clock: options.clock ?? systemClock,
    };
    const { logger, metrics, clock } = opts;
    // Before the runtime, so the store and key sources it builds are traced too.
    const tracingSettings = loaded.config.tracing;
    const ownsTracing = tracingSettings ? await startTracing(tracingSettings, logger) : false;
    let runtime: Runtime;
    try {
      runtime = await Runtime.build(loaded, { logger, metrics });
    } catch (err) {
      if (ownsTracing) await stopTracing();
      throw err;
    }
    let app: App | undefined;
    const checks = new CheckHandler(() => app?.runtime ?? runtime, logger, metrics);
    let grpc: GrpcServerHandle | undefined;
    let http: FastifyInstance | undefined;
    const server = loaded.config.server;
    const watchers: (() => void)[] = [];
    try {
      const grpcTls = listenerTls('server.grpc_tls', server.grpc_tls, loaded.baseDir, clock);
      const httpTls = listenerTls('server.http_tls', server.http_tls, loaded.baseDir, clock);
      grpc = await startGrpcServer(opts.grpcAddress ?? server.grpc_address, checks, {
        maxMessageBytes: server.grpc_max_message_bytes,
        clock,
        ...(grpcTls
          ? {
              tls: {
                ...secureContextOf(grpcTls),
                requestCert: grpcTls.requestCert,
                rejectUnauthorized: grpcTls.rejectUnauthorized,
              },
            }
          : {}),
      });
      const g = grpc;
      if (grpcTls)
        watchers.push(
          watchTlsFiles(
            'server.grpc_tls',
            server.grpc_tls,
            loaded.baseDir,
            (m) => g.setSecureContext(secureContextOf(m)),
            logger,
          ),
        );
      http = createHttpServer({
        ...(httpTls ? { tls: httpTls } : {}),
        runtime: () => app?.runtime ?? runtime,
        metrics,
        logger,
        accepting: () => app?.accepting ?? true,
        probed: () => {
          if (app) app.readinessProbeAt = clock.nowMs();
        },
        ...(opts.httpHeadersTimeoutMs !== undefined ? { headersTimeoutMs: opts.httpHeadersTimeoutMs } : {}),
        ...(opts.httpBodyTimeoutMs !== undefined ? { bodyTimeoutMs: opts.httpBodyTimeoutMs } : {}),
      });
      const { host, port } = splitAddress(opts.httpAddress ?? loaded.config.server.http_address);
      await http.listen({ host, port });
      const address = http.server.address();
      const httpPort = typeof address === 'object' && address ? address.port : port;
      const h = http;
      if (httpTls)
        watchers.push(
          watchTlsFiles(
            'server.http_tls',
            server.http_tls,
            loaded.baseDir,
            (m) => (h.server as unknown as import('node:tls').Server).setSecureContext(secureContextOf(m)),
            logger,
          ),
        );
      app = new App(runtime, grpc, http, httpPort, checks, opts);
      app.stopWatching.push(...watchers);
      app.ownsTracing = ownsTracing;
    } catch (err) {
      for (const stop of watchers) stop();
      await http?.close();
      await grpc?.close(0);
      await runtime.close();
      if (ownsTracing) await stopTracing();
      throw err;
    }
    logger.info(
      {
        grpc_address: opts.grpcAddress ?? server.grpc_address,
        grpc_port: grpc.port,
        http_port: app.httpPort,
        grpc_tls: !!server.grpc_tls.cert_file,
        http_tls: !!server.http_tls.cert_file,
      },
      'listening',
    );
    await runtime.start();
    grpc.health.setServing(true);
    logger.info({ issuers: runtime.issuerStatus() }, 'ready');
    return app;
  }

  /**
   * Replaces the running config. Throws (and keeps the old config serving) when the
   * new one is invalid; reloads are serialised. The store, key sources and ephemeral
   * signing keys whose settings did not change are carried over (see Runtime.build).
   */
  reload(loaded: LoadedConfig): Promise<void> {
    const next = this.reloading.then(async () => {
      const { logger, metrics } = this.opts;
      const fresh = await Runtime.build(loaded, { logger, metrics }, this.runtime);
      // The tracer provider lives as long as the process (spans in flight belong to it).
      if (!isDeepStrictEqual(fresh.config.tracing, this.runtime.config.tracing))
        logger.warn('tracing settings changed: they apply after a restart; tracing continues as before');
      await fresh.start();
      const old = this.runtime;
      this.runtime = fresh;
      // The per-client cap is read on every connection; Node's ceiling is set here.
      this.http.server.maxConnections = httpConnectionCeiling(fresh.config.server.http_max_connections);
      logger.info({ issuers: fresh.issuerStatus() }, 'configuration reloaded');
      // Checks already running on the old graph finish with it; close it once they are done
      // (what the new graph took over stays open).
      this.draining.add(old);
      setTimeout(() => {
        this.draining.delete(old);
        void old.close();
      }, 5_000).unref();
    });
    this.reloading = next.catch(() => undefined);
    return next;
  }

  /**
   * Health turns NOT_SERVING (gRPC health and /readyz); with a drain delay, checks are
   * still answered for that long, so that health checkers (Envoy's, the kubelet's) take
   * this replica out of rotation before its listeners close: closing at once would make
   * the checks that keep arriving until then fail. The delay is skipped when nothing has
   * probed health in the last minute (nobody would notice NOT_SERVING: a local Ctrl-C),
   * unless `alwaysDelay` (a cluster worker: the probes may have reached another worker).
   * Then the listeners close (GOAWAY), in-flight checks drain (up to graceSeconds), and
   * the servers close.
   */
  async shutdown(
    graceSeconds = this.runtime.config.server.shutdown_grace_seconds,
    drainDelaySeconds = 0,
    alwaysDelay = false,
  ): Promise<void> {
    this.accepting = false;
    for (const stop of this.stopWatching.splice(0)) stop();
    this.grpc.health.setServing(false);
    const probed =
      alwaysDelay ||
      this.grpc.health.probedWithin(PROBE_RECENT_MS) ||
      (this.readinessProbeAt > 0 && this.opts.clock.nowMs() - this.readinessProbeAt <= PROBE_RECENT_MS);
    if (drainDelaySeconds > 0 && probed) {
      this.opts.logger.info(
        { drain_delay_seconds: drainDelaySeconds },
        'NOT_SERVING: still answering checks while health checkers take this process out of rotation',
      );
      await new Promise((r) => setTimeout(r, secondsToMs(drainDelaySeconds)));
    }
    const graceMs = secondsToMs(graceSeconds);
    const drained = this.checks.drained();
    await Promise.race([drained, new Promise((r) => setTimeout(r, graceMs).unref())]);
    await this.grpc.close(Math.min(graceMs, 2000));
    await this.http.close();
    const old = [...this.draining];
    this.draining.clear();
    await Promise.all([this.runtime.close(), ...old.map((r) => r.close())]);
    if (this.ownsTracing) {
      this.ownsTracing = false;
      await stopTracing();
    }
  }
}
