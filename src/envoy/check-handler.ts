import { deny, type Decision, type Deny } from '../core/decision.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { LogSampler } from '../observability/log-sampler.js';
import type { CheckPipeline } from '../check/pipeline.js';
import { checkResponseSerializer } from './protos.js';
import type { CheckResponse, DecodedCheckRequest } from './messages.js';
import { toAuthRequest } from './auth-request.js';
import { toCheckResponse, WIRE, type WireHandle } from './response.js';
import { DenyWireCache } from './precomputed.js';

/** What the gRPC edge needs from the current runtime (swapped atomically on reload). */
export interface CheckTarget {
  readonly pipeline: CheckPipeline;
  readonly realm: string;
  /** "check denied" lines per reason per second (log.denials_per_second); 0 = all. Default 20. */
  readonly denialLogsPerSecond?: number;
}

const DEFAULT_DENIAL_LOGS_PER_SECOND = 20;

/** Envoy's deadline minus this margin is when we answer 503 rather than let Envoy time out. */
const DEADLINE_MARGIN_MS = 25;

export class CheckHandler {
  private inFlight = 0;
  private readonly serialize = checkResponseSerializer();
  private drainWaiters: (() => void)[] = [];
  private sampler?: LogSampler;
  private denyCache?: DenyWireCache;
  private samplerRate = -1;
  private readonly suppressedCounters = new Map<string, { inc(): void }>();

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

  /**
   * One Check: the decoded request and the client's deadline (epoch ms) → the
   * serialized CheckResponse. Synchronous when the pipeline decides synchronously.
   */
  readonly check = (request: DecodedCheckRequest, deadline: number | undefined): Buffer | Promise<Buffer> => {
    const started = performance.now();
    const target = this.target();
    let req: ReturnType<typeof toAuthRequest>;
    let decision: Decision | Promise<Decision>;
    try {
      req = toAuthRequest(request);
      decision = req
        ? target.pipeline.check(req, deadline === undefined ? undefined : deadline - DEADLINE_MARGIN_MS)
        : deny('request_invalid', 'the check request carries no HTTP attributes');
    } catch (err) {
      decision = this.failed(err);
    }
    const requestId = req?.requestId;
    if (!(decision instanceof Promise)) return this.respond(decision, target, started, requestId);
    // Async path (a verification, a key fetch, a mint, a store lookup): tracked for draining.
    this.inFlight++;
    return decision
      .catch((err: unknown) => this.failed(err))
      .then((d) => this.respond(d, target, started, requestId))
      .finally(() => {
        if (--this.inFlight === 0) for (const w of this.drainWaiters.splice(0)) w();
      });
  };

  private respond(
    decision: Decision,
    target: CheckTarget,
    started: number,
    requestId: string | undefined,
  ): Buffer {
    let bytes: Buffer;
    try {
      bytes =
        decision.kind === 'deny'
          ? this.denyBytes(decision, target.realm)
          : this.encode(toCheckResponse(decision, target.realm, this.serialize));
    } catch (err) {
      decision = this.failed(err);
      bytes = this.encode(toCheckResponse(decision, target.realm));
    }
    this.record(decision, target, requestId, (performance.now() - started) / 1000);
    return bytes;
  }

  private denyBytes(d: Deny, realm: string): Buffer {
    let cache = this.denyCache;
    if (cache === undefined || cache.realm !== realm) this.denyCache = cache = new DenyWireCache(realm);
    return cache.bytesFor(d, this.encodeDeny);
  }

  private readonly encodeDeny = (d: Deny): Buffer =>
    this.serialize(toCheckResponse(d, this.denyCache!.realm));

  private encode(response: CheckResponse | WireHandle): Buffer {
    return (response as Partial<WireHandle>)[WIRE] ?? this.serialize(response as CheckResponse);
  }

  /** Fail closed: any unexpected error is a deny, never an allow and never a gRPC error. */
  private failed(err: unknown): Decision {
    this.logger.error(
      { err: { message: (err as Error)?.message, stack: (err as Error)?.stack } },
      'check failed',
    );
    return deny('internal_error');
  }

  /** The denial-line sampler for the current log.denials_per_second (rebuilt when a reload changes it). */
  private denialSampler(target: CheckTarget): LogSampler {
    const rate = target.denialLogsPerSecond ?? DEFAULT_DENIAL_LOGS_PER_SECOND;
    if (this.sampler && this.samplerRate === rate) return this.sampler;
    this.sampler?.flush();
    this.samplerRate = rate;
    this.sampler = new LogSampler(
      rate,
      (reason) => {
        let c = this.suppressedCounters.get(reason);
        if (!c) this.suppressedCounters.set(reason, (c = this.metrics.logSuppressedTotal.labels(reason)));
        c.inc();
      },
      (suppressed) =>
        this.logger.info(
          { suppressed, limit_per_second: rate },
          'check denied lines suppressed (beyond log.denials_per_second)',
        ),
    );
    return this.sampler;
  }

  private record(
    decision: Decision,
    target: CheckTarget,
    requestId: string | undefined,
    seconds: number,
  ): void {
    const reason = decision.reason;
    const issuer = decision.issuer ?? '';
    this.metrics.countCheck(decision.kind, reason, issuer);
    this.metrics.checkDuration.observe(seconds);
    const isAllow = decision.kind === 'allow';
    if (isAllow ? !this.logger.isLevelEnabled('debug') : !this.logger.isLevelEnabled('info')) return;
    // Under a flood of one kind of denial, a line per request costs more than the check.
    if (!isAllow && !this.denialSampler(target).take(reason)) return;
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
