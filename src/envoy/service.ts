import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { deny, type Decision } from '../core/decision.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { CheckPipeline } from '../check/pipeline.js';
import { authorizationService, checkResponseSerializer } from './protos.js';
import { toAuthRequest } from './request.js';
import { toCheckResponse } from './response.js';

/** What the gRPC edge needs from the current runtime (swapped atomically on reload). */
export interface CheckTarget {
  readonly pipeline: CheckPipeline;
  readonly realm: string;
}

/** Envoy's deadline minus this margin is when we answer 503 rather than let Envoy time out. */
const DEADLINE_MARGIN_MS = 25;

export class CheckService {
  private inFlight = 0;
  private readonly serialize = checkResponseSerializer();
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly target: () => CheckTarget,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** Resolves when no check is in flight. */
  drained(): Promise<void> {
    return this.inFlight === 0
      ? Promise.resolve()
      : new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  readonly check = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>): void => {
    const started = performance.now();
    const target = this.target();
    let req: ReturnType<typeof toAuthRequest>;
    let decision: Decision | Promise<Decision>;
    try {
      req = toAuthRequest(call.request);
      decision = req
        ? target.pipeline.check(req, this.deadlineOf(call))
        : deny('request_invalid', 'the check request carries no HTTP attributes');
    } catch (err) {
      decision = this.failed(err);
    }
    const requestId = req?.requestId;
    if (!(decision instanceof Promise)) {
      this.respond(decision, callback, target, started, requestId);
      return;
    }
    // Async path (a verification, a key fetch, a mint, a store lookup): tracked for draining.
    this.inFlight++;
    decision
      .catch((err: unknown) => this.failed(err))
      .then((d) => this.respond(d, callback, target, started, requestId))
      .finally(() => {
        if (--this.inFlight === 0) for (const w of this.drainWaiters.splice(0)) w();
      });
  };

  private respond(
    decision: Decision,
    callback: grpc.sendUnaryData<any>,
    target: CheckTarget,
    started: number,
    requestId: string | undefined,
  ): void {
    let response: any;
    try {
      response = toCheckResponse(decision, target.realm, this.serialize);
    } catch (err) {
      decision = this.failed(err);
      response = toCheckResponse(decision, target.realm);
    }
    callback(null, response);
    this.record(decision, requestId, (performance.now() - started) / 1000);
  }

  /** Fail closed: any unexpected error is a deny, never an allow and never a gRPC error. */
  private failed(err: unknown): Decision {
    this.logger.error(
      { err: { message: (err as Error)?.message, stack: (err as Error)?.stack } },
      'check failed',
    );
    return deny('internal_error');
  }

  /** Envoy's deadline minus a margin, when the call has one. */
  private deadlineOf(call: grpc.ServerUnaryCall<any, any>): number | undefined {
    const callDeadline = call.getDeadline();
    const deadlineMs = callDeadline instanceof Date ? callDeadline.getTime() : callDeadline;
    return Number.isFinite(deadlineMs) ? deadlineMs - DEADLINE_MARGIN_MS : undefined;
  }

  private record(decision: Decision, requestId: string | undefined, seconds: number): void {
    const reason = decision.reason;
    const issuer = decision.issuer ?? '';
    this.metrics.countCheck(decision.kind, reason, issuer);
    this.metrics.checkDuration.observe(seconds);
    const isAllow = decision.kind === 'allow';
    if (isAllow ? !this.logger.isLevelEnabled('debug') : !this.logger.isLevelEnabled('info')) return;
    const line: Record<string, unknown> = {
      request_id: requestId,
      decision: decision.kind,
      reason,
      issuer: decision.issuer,
      rule: decision.rule,
      duration_ms: Math.round(seconds * 1e6) / 1e3,
    };
    if (isAllow) this.logger.debug(line, 'check allowed');
    else {
      if (decision.logDetail) line.detail = decision.logDetail;
      this.logger.info(line, 'check denied');
    }
  }
}

export interface GrpcServerHandle {
  readonly server: grpc.Server;
  readonly port: number;
  readonly health: HealthImplementation;
  close(graceMs: number): Promise<void>;
}

export async function startGrpcServer(address: string, service: CheckService): Promise<GrpcServerHandle> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(authorizationService(), { Check: service.check });
  const health = new HealthImplementation({
    '': 'NOT_SERVING',
    'envoy.service.auth.v3.Authorization': 'NOT_SERVING',
  });
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    server,
    port,
    health,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

export function setServing(health: HealthImplementation, serving: boolean): void {
  const status = serving ? 'SERVING' : 'NOT_SERVING';
  health.setStatus('', status);
  health.setStatus('envoy.service.auth.v3.Authorization', status);
}
