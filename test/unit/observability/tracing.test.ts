// The `tracing` config section merged with the OTEL_* environment (docs/operations.md "Tracing"):
// what wins, how endpoints are completed, and which problems name which key.
import { describe, expect, it } from 'vitest';
import { resolveTracingSettings, type TracingSection } from '../../../src/observability/tracing.js';
import { collectConfigProblems } from '../../../src/config/load.js';

function resolve(section: TracingSection | undefined, env: NodeJS.ProcessEnv = {}) {
  const problems: string[] = [];
  const settings = resolveTracingSettings(section, env, problems);
  return { settings, problems };
}

describe('resolveTracingSettings', () => {
  it('is off without a section and without OTEL_* variables', () => {
    expect(resolve(undefined)).toEqual({ settings: undefined, problems: [] });
  });

  it('turns on from the config alone, with the OTLP/HTTP traces path added to a bare endpoint', () => {
    expect(resolve({ otlp_endpoint: 'http://collector:4318' }).settings).toEqual({
      endpoint: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      sampler: 'ratio',
      ratio: 1,
      serviceName: 'envoy-jwt-authz',
    });
  });

  it('keeps an endpoint that already names a path', () => {
    expect(resolve({ otlp_endpoint: 'https://collector/otlp/traces' }).settings?.endpoint).toBe(
      'https://collector/otlp/traces',
    );
  });

  it('turns on from OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: /v1/traces appended)', () => {
    const { settings } = resolve(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/base/' });
    expect(settings?.endpoint).toBe('http://collector:4318/base/v1/traces');
  });

  it('uses OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as the traces URL itself, before the general variable', () => {
    const { settings } = resolve(undefined, {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:4318',
    });
    expect(settings?.endpoint).toBe('http://traces:4318/custom');
  });

  it('prefers every config key over its environment variable', () => {
    const { settings } = resolve(
      { otlp_endpoint: 'http://from-config:4317', protocol: 'grpc', sample_ratio: 0.25, service_name: 'cfg' },
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://from-env:4318',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_TRACES_SAMPLER: 'always_on',
        OTEL_SERVICE_NAME: 'env',
      },
    );
    expect(settings).toEqual({
      endpoint: 'http://from-config:4317/',
      protocol: 'grpc',
      sampler: 'ratio',
      ratio: 0.25,
      serviceName: 'cfg',
    });
  });

  it('takes protocol, sampler and service name from the environment when the config is silent', () => {
    const { settings } = resolve(
      { otlp_endpoint: 'http://c:4317' },
      {
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.01',
        OTEL_SERVICE_NAME: 'authz-prod',
      },
    );
    expect(settings).toMatchObject({
      protocol: 'grpc',
      sampler: 'parentbased_traceidratio',
      ratio: 0.01,
      serviceName: 'authz-prod',
    });
  });

  it('is switched off by OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, whatever the config says', () => {
    expect(
      resolve({ otlp_endpoint: 'http://c:4318' }, { OTEL_SDK_DISABLED: 'true' }).settings,
    ).toBeUndefined();
    expect(
      resolve({ otlp_endpoint: 'http://c:4318' }, { OTEL_TRACES_EXPORTER: 'none' }).settings,
    ).toBeUndefined();
  });

  it('names the key or variable at fault', () => {
    expect(resolve({ otlp_endpoint: 'http://c', sample_ratio: 2 }).problems).toEqual([
      'tracing.sample_ratio: must be a number from 0 to 1, got 2',
    ]);
    expect(resolve({ otlp_endpoint: 'http://c', sample_ratio: '0.5' }).problems[0]).toMatch(
      /^tracing.sample_ratio:/,
    );
    expect(resolve(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }).problems).toEqual([
      'OTEL_EXPORTER_OTLP_ENDPOINT: not a valid URL (e.g. http://otel-collector:4318)',
    ]);
    expect(resolve({ otlp_endpoint: 'ftp://c' }).problems[0]).toMatch(
      /^tracing.otlp_endpoint: must be an http/,
    );
    expect(resolve({ otlp_endpoint: 'http://user:pw@c' }).problems[0]).toMatch(/must not carry credentials/);
    expect(
      resolve(undefined, {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      }).problems,
    ).toEqual(['OTEL_EXPORTER_OTLP_PROTOCOL: must be one of http/protobuf, grpc, got "http/json"']);
    expect(
      resolve(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_TRACES_SAMPLER: 'jaeger_remote' })
        .problems[0],
    ).toMatch(/^OTEL_TRACES_SAMPLER: must be one of/);
    expect(
      resolve(undefined, {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c',
        OTEL_TRACES_SAMPLER: 'traceidratio',
        OTEL_TRACES_SAMPLER_ARG: 'lots',
      }).problems[0],
    ).toMatch(/^OTEL_TRACES_SAMPLER_ARG:/);
    expect(resolve({ protocol: 'grpc' }).problems[0]).toMatch(/^tracing.otlp_endpoint: required/);
  });
});

describe('the tracing section in a config', () => {
  it('is validated with the rest of the config, problems naming tracing.*', () => {
    const { problems } = collectConfigProblems(
      { tracing: { otlp_endpoint: 'http://c:4318', protocol: 'zipkin', color: 'blue' } },
      {},
    );
    expect(problems).toContain('tracing.protocol: must be one of http/protobuf, grpc, got "zipkin"');
    expect(problems.some((p) => p.startsWith('tracing.color: unknown key'))).toBe(true);
  });

  it('resolves to the settings tracing runs with (undefined while off)', () => {
    expect(collectConfigProblems({}, {}).config?.tracing).toBeUndefined();
    expect(
      collectConfigProblems({ tracing: { otlp_endpoint: 'http://c:4318', sample_ratio: 0.5 } }, {}).config
        ?.tracing,
    ).toMatchObject({ endpoint: 'http://c:4318/v1/traces', ratio: 0.5 });
    expect(
      collectConfigProblems({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).config?.tracing?.endpoint,
    ).toBe('http://c:4318/v1/traces');
  });
});
