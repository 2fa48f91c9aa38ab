import { TRACING_PROTOCOLS } from '../../observability/tracing-api.js';
import { num, oneOf, section, text, Type } from './kit.js';

// tracing: OpenTelemetry over OTLP. Each key wins over its OTEL_* environment variable; the
// merge (observability/tracing.ts) turns the section into the settings that run.

export const TracingSchema = section(
  {
    otlp_endpoint: Type.Optional(
      text({
        description:
          'collector URL (http/protobuf: /v1/traces is added to a bare URL); default OTEL_EXPORTER_OTLP_ENDPOINT',
        examples: ['http://otel-collector:4318'],
      }),
    ),
    protocol: Type.Optional(
      oneOf(TRACING_PROTOCOLS as readonly ['http/protobuf', 'grpc'], {
        description: 'OTLP transport; default OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf',
      }),
    ),
    sample_ratio: Type.Optional(
      num({
        description: 'fraction of the Checks the caller did not refuse to sample',
        minimum: 0,
        maximum: 1,
        'x-default-text': '1 (or OTEL_TRACES_SAMPLER_ARG)',
      }),
    ),
    service_name: Type.Optional(
      text({
        description: 'service.name resource attribute',
        'x-default-text': 'OTEL_SERVICE_NAME, else envoy-jwt-authz',
      }),
    ),
  },
  {
    description:
      'OpenTelemetry tracing (off unless an endpoint is set here or in OTEL_EXPORTER_OTLP_ENDPOINT).',
  },
);
