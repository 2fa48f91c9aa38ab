import type { Logger } from './logger.js';
import {
  TRACING_PROTOCOLS,
  type SamplerName,
  type Tracer,
  type TracingProtocol,
  type TracingSettings,
} from './tracing-api.js';

export {
  ATTR,
  TRACING_PROTOCOLS,
  type AttributeValue,
  type SamplerName,
  type TraceSpan,
  type Tracer,
  type TracingProtocol,
  type TracingSettings,
} from './tracing-api.js';

// OpenTelemetry tracing, one provider per process. Nothing of the SDK (not even
// @opentelemetry/api) is imported until tracing is switched on: call sites read the
// `tracer` binding below, which stays undefined while tracing is off, so a Check then
// costs one comparison per call site and allocates nothing.

const STANDARD_SAMPLERS: readonly string[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

/** The `tracing` section of the config as validated structurally (see config/load.ts). */
export interface TracingSection {
  otlp_endpoint?: string;
  protocol?: string;
  sample_ratio?: unknown;
  service_name?: string;
}

export const DEFAULT_SERVICE_NAME = 'envoy-jwt-authz';

const blank = (v: string | undefined): v is undefined => v === undefined || v.trim() === '';

/**
 * Merges the config section with the OTEL_* environment: a key set in the config wins
 * over its environment variable, which wins over the default. Tracing is off unless an
 * endpoint is known; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none switch it off
 * whatever the config says. Problems name the config key or variable at fault.
 */
export function resolveTracingSettings(
  section: TracingSection | undefined,
  env: NodeJS.ProcessEnv,
  problems: string[],
): TracingSettings | undefined {
  const s = section ?? {};
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return undefined;

  let protocol: string;
  let protocolFrom: string;
  if (s.protocol !== undefined) [protocol, protocolFrom] = [s.protocol, 'tracing.protocol'];
  else if (!blank(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL))
    [protocol, protocolFrom] = [
      env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL.trim(),
      'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
    ];
  else if (!blank(env.OTEL_EXPORTER_OTLP_PROTOCOL))
    [protocol, protocolFrom] = [env.OTEL_EXPORTER_OTLP_PROTOCOL.trim(), 'OTEL_EXPORTER_OTLP_PROTOCOL'];
  else [protocol, protocolFrom] = ['http/protobuf', ''];
  if (!(TRACING_PROTOCOLS as readonly string[]).includes(protocol)) {
    problems.push(`${protocolFrom}: must be one of ${TRACING_PROTOCOLS.join(', ')}, got "${protocol}"`);
    return undefined;
  }
  const proto = protocol as TracingProtocol;

  // The per-signal variable is the traces URL itself; the general one (and the config
  // key, when it has no path) is the collector's base URL.
  let endpoint: string | undefined;
  let endpointFrom = 'tracing.otlp_endpoint';
  let isBase = true;
  if (s.otlp_endpoint !== undefined) endpoint = s.otlp_endpoint;
  else if (!blank(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)) {
    [endpoint, endpointFrom, isBase] = [
      env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.trim(),
      'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
      false,
    ];
  } else if (!blank(env.OTEL_EXPORTER_OTLP_ENDPOINT)) {
    [endpoint, endpointFrom] = [env.OTEL_EXPORTER_OTLP_ENDPOINT.trim(), 'OTEL_EXPORTER_OTLP_ENDPOINT'];
  }
  if (endpoint === undefined) {
    if (section !== undefined && Object.keys(section).length > 0)
      problems.push(
        'tracing.otlp_endpoint: required to switch tracing on (or set OTEL_EXPORTER_OTLP_ENDPOINT); remove the tracing section to leave it off',
      );
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    problems.push(`${endpointFrom}: not a valid URL (e.g. http://otel-collector:4318)`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${endpointFrom}: must be an http:// or https:// URL`);
    return undefined;
  }
  if (url.username || url.password) {
    problems.push(`${endpointFrom}: must not carry credentials (use OTEL_EXPORTER_OTLP_HEADERS)`);
    return undefined;
  }
  if (proto === 'http/protobuf') {
    const path = url.pathname.replace(/\/+$/, '');
    const appendPath = endpointFrom === 'OTEL_EXPORTER_OTLP_ENDPOINT' || (isBase && path === '');
    if (appendPath) url.pathname = `${path}/v1/traces`;
  } else {
    url.pathname = '/';
  }

  let sampler: SamplerName = 'ratio';
  let ratio = 1;
  if (s.sample_ratio !== undefined) {
    if (typeof s.sample_ratio !== 'number' || !(s.sample_ratio >= 0 && s.sample_ratio <= 1)) {
      problems.push(
        `tracing.sample_ratio: must be a number from 0 to 1, got ${JSON.stringify(s.sample_ratio)}`,
      );
      return undefined;
    }
    ratio = s.sample_ratio;
  } else if (!blank(env.OTEL_TRACES_SAMPLER)) {
    const name = env.OTEL_TRACES_SAMPLER.trim().toLowerCase();
    if (!STANDARD_SAMPLERS.includes(name)) {
      problems.push(`OTEL_TRACES_SAMPLER: must be one of ${STANDARD_SAMPLERS.join(', ')}, got "${name}"`);
      return undefined;
    }
    sampler = name as SamplerName;
    if (name.endsWith('traceidratio') && !blank(env.OTEL_TRACES_SAMPLER_ARG)) {
      const arg = Number(env.OTEL_TRACES_SAMPLER_ARG);
      if (!(arg >= 0 && arg <= 1)) {
        problems.push(
          `OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1, got "${env.OTEL_TRACES_SAMPLER_ARG}"`,
        );
        return undefined;
      }
      ratio = arg;
    }
  }
  const serviceName =
    s.service_name ?? (blank(env.OTEL_SERVICE_NAME) ? DEFAULT_SERVICE_NAME : env.OTEL_SERVICE_NAME.trim());
  return { endpoint: url.href, protocol: proto, sampler, ratio, serviceName };
}

/** The process's tracer: undefined while tracing is off. */
export let tracer: Tracer | undefined;
let activeSettings: TracingSettings | undefined;

/**
 * Starts the SDK for this process (exporter, batch processor, sampler, propagators).
 * Idempotent for equal settings; different settings while running are refused (a
 * restart applies them).
 */
export async function startTracing(settings: TracingSettings, logger: Logger): Promise<boolean> {
  if (tracer) {
    if (JSON.stringify(activeSettings) !== JSON.stringify(settings))
      logger.warn('tracing is already running with other settings in this process; restart to apply them');
    return false;
  }
  const { createSdkTracer } = await import('./tracing-sdk.js');
  tracer = createSdkTracer(settings, logger);
  activeSettings = settings;
  logger.info(
    {
      endpoint: settings.endpoint,
      protocol: settings.protocol,
      sampler: settings.sampler,
      ratio: settings.ratio,
    },
    'tracing on',
  );
  return true;
}

/** Flushes and stops the SDK (at shutdown); tracing is off afterwards. */
export async function stopTracing(): Promise<void> {
  const t = tracer;
  tracer = undefined;
  activeSettings = undefined;
  await t?.shutdown();
}

/** The settings tracing runs with in this process, if it is on. */
export function tracingSettings(): TracingSettings | undefined {
  return activeSettings;
}
