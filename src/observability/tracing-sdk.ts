// The OpenTelemetry SDK side of tracing.ts, imported only once tracing is switched on.
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  diag,
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
} from '@opentelemetry/api';
import { CompositePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import {
  defaultResource,
  resourceFromAttributes,
  detectResources,
  envDetector,
} from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter as OtlpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as OtlpGrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
} from '@opentelemetry/semantic-conventions';
import type { Decision } from '../core/decision.js';
import type { AuthRequest } from '../core/request.js';
import type { Logger } from './logger.js';
import {
  ATTR,
  type AttributeValue,
  type TraceSpan,
  type Tracer,
  type TracingSettings,
} from './tracing-api.js';

type HeaderMap = Readonly<Record<string, string | string[] | undefined>>;

// Header names in an AuthRequest are already lower-case; the propagators ask in lower case.
const headerGetter: TextMapGetter<HeaderMap> = {
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
};

function sampler(s: TracingSettings): Sampler {
  const ratio = () => new TraceIdRatioBasedSampler(s.ratio);
  switch (s.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio();
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio() });
    case 'ratio':
      // A caller that did not sample is followed; otherwise the ratio (on the trace id, so
      // every service sampling by ratio agrees) decides, so the ratio bounds the cost
      // even when Envoy samples every request.
      return new ParentBasedSampler({
        root: ratio(),
        remoteParentSampled: ratio(),
        remoteParentNotSampled: new AlwaysOffSampler(),
        localParentSampled: new AlwaysOnSampler(),
        localParentNotSampled: new AlwaysOffSampler(),
      });
  }
}

function exporter(s: TracingSettings): SpanExporter {
  return s.protocol === 'grpc'
    ? new OtlpGrpcExporter({ url: s.endpoint })
    : new OtlpProtoExporter({ url: s.endpoint });
}

class Handle implements TraceSpan {
  constructor(private readonly span: Span) {}
  setAttribute(key: string, value: AttributeValue): void {
    this.span.setAttribute(key, value);
  }
  fail(reason: string): void {
    this.span.setAttribute(ATTR.reason, reason);
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
  }
  end(reason?: string): void {
    if (reason !== undefined) this.span.setAttribute(ATTR.reason, reason);
    this.span.end();
  }
}

const NOOP_SPAN: TraceSpan = {
  setAttribute: () => undefined,
  fail: () => undefined,
  end: () => undefined,
};

function recordDecision(span: Span, d: Decision): void {
  span.setAttribute(ATTR.decision, d.kind);
  span.setAttribute(ATTR.reason, d.reason);
  if (d.rule !== undefined) span.setAttribute(ATTR.rule, d.rule);
  if (d.issuer !== undefined) span.setAttribute(ATTR.issuer, d.issuer);
  // A deny is the service working as intended; only a failure to decide is an error.
  if (
    d.kind === 'deny' &&
    (d.reason === 'internal_error' || d.reason === 'mint_failed' || d.reason === 'store_unavailable')
  )
    span.setStatus({ code: SpanStatusCode.ERROR, message: d.reason });
}

function failed(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.name ?? 'Error' });
  span.end();
}

class SdkTracer implements Tracer {
  private readonly provider: BasicTracerProvider;
  private readonly tracer;
  private readonly propagator = new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new B3Propagator()],
  });
  private readonly als = new AsyncLocalStorage<Context>();

  constructor(settings: TracingSettings) {
    const resource = defaultResource()
      .merge(detectResources({ detectors: [envDetector] }))
      .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName }));
    this.provider = new BasicTracerProvider({
      resource,
      sampler: sampler(settings),
      spanProcessors: [new BatchSpanProcessor(exporter(settings))],
    });
    this.tracer = this.provider.getTracer('envoy-jwt-authz');
  }

  traceCheck(req: AuthRequest, run: () => Decision | Promise<Decision>): Decision | Promise<Decision> {
    const parent = this.propagator.extract(ROOT_CONTEXT, req.headers, headerGetter);
    const span = this.tracer.startSpan('ext_authz.check', { kind: SpanKind.SERVER }, parent);
    // Not sampled: nothing under it is recorded either (children outside a recorded
    // span are no-ops), so the Check runs as if tracing were off.
    if (!span.isRecording()) return run();
    let result: Decision | Promise<Decision>;
    try {
      result = this.als.run(trace.setSpan(parent, span), run);
    } catch (err) {
      failed(span, err);
      throw err;
    }
    if (!(result instanceof Promise)) {
      recordDecision(span, result);
      span.end();
      return result;
    }
    return result.then(
      (d) => {
        recordDecision(span, d);
        span.end();
        return d;
      },
      (err: unknown) => {
        failed(span, err);
        throw err;
      },
    );
  }

  async traceHttp<T extends { readonly status: number }>(
    method: string,
    route: string,
    headers: HeaderMap,
    run: () => Promise<T>,
  ): Promise<T> {
    const parent = this.propagator.extract(ROOT_CONTEXT, headers, headerGetter);
    const span = this.tracer.startSpan(
      `${method} ${route}`,
      { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_HTTP_ROUTE]: route } },
      parent,
    );
    if (!span.isRecording()) return run();
    try {
      const answer = await this.als.run(trace.setSpan(parent, span), run);
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, answer.status);
      if (answer.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      return answer;
    } catch (err) {
      failed(span, err);
      throw err;
    }
  }

  startSpan(name: string, root = false): TraceSpan {
    let ctx = ROOT_CONTEXT;
    if (!root) {
      // Only under a recorded Check or request: a child never starts a trace of its own.
      const current = this.als.getStore();
      if (current === undefined) return NOOP_SPAN;
      ctx = current;
    }
    return new Handle(this.tracer.startSpan(name, { kind: SpanKind.INTERNAL }, ctx));
  }

  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}

export function createSdkTracer(settings: TracingSettings, logger: Logger): Tracer {
  // Export failures reach the OpenTelemetry diagnostic logger; route them to ours.
  diag.setLogger(
    {
      error: (message) => logger.warn({ detail: message }, 'tracing: export problem'),
      warn: (message) => logger.warn({ detail: message }, 'tracing: export problem'),
      info: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  return new SdkTracer(settings);
}
