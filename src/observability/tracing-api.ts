// Types of tracing shared by tracing.ts (always loaded) and tracing-sdk.ts (loaded
// only when tracing is on).
import type { Decision } from '../core/decision.js';
import type { AuthRequest } from '../core/request.js';

export type TracingProtocol = 'http/protobuf' | 'grpc';
export const TRACING_PROTOCOLS: readonly TracingProtocol[] = ['http/protobuf', 'grpc'];

/**
 * How a Check decides to record a trace.
 * - `ratio`: the `sample_ratio` of the config: a caller's "not sampled" is followed,
 *   otherwise the trace id decides (ratio 1: every Check the caller did not refuse).
 * - the others: the standard OTEL_TRACES_SAMPLER names, with their standard meaning.
 */
export type SamplerName =
  | 'ratio'
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

/** Tracing as it runs: the config section merged with the OTEL_* environment. */
export interface TracingSettings {
  /** Where spans go: the full OTLP/HTTP traces URL, or the gRPC collector URL. */
  readonly endpoint: string;
  readonly protocol: TracingProtocol;
  readonly sampler: SamplerName;
  /** Ratio for the ratio samplers, 0..1. */
  readonly ratio: number;
  readonly serviceName: string;
}

export type AttributeValue = string | number | boolean;

/** Span attribute names of this service (values are codes and names, never token or claim contents). */
export const ATTR = {
  decision: 'authz.decision',
  reason: 'authz.reason',
  issuer: 'authz.issuer',
  rule: 'authz.rule',
} as const;

/** A span in progress. */
export interface TraceSpan {
  setAttribute(key: string, value: AttributeValue): void;
  /** Marks the span failed; `reason` is a short code (never a message that could quote input). */
  fail(reason: string): void;
  /** Ends the span; `reason` (a short code, e.g. a deny reason) is recorded as authz.reason. */
  end(reason?: string): void;
}

export interface Tracer {
  /**
   * Runs one Check inside a span continuing the trace in the request's `traceparent`
   * or B3 headers, and records the decision on it.
   */
  traceCheck(req: AuthRequest, run: () => Decision | Promise<Decision>): Decision | Promise<Decision>;
  /** Runs one HTTP request of the token endpoint inside a server span. */
  traceHttp<T extends { readonly status: number }>(
    method: string,
    route: string,
    headers: Readonly<Record<string, string | string[] | undefined>>,
    run: () => Promise<T>,
  ): Promise<T>;
  /**
   * Starts a span under the Check or request being traced; `root` starts a trace of
   * its own (background work that merely happened to be scheduled from a request).
   */
  startSpan(name: string, root?: boolean): TraceSpan;
  /** Sends what is buffered, then stops. */
  shutdown(): Promise<void>;
}
