// Tracing through the real Envoy (docs/operations.md "Tracing"): a client's W3C or B3 context crosses
// Envoy into the CheckRequest headers, and the service's Check span continues it; with
// Envoy tracing itself (the HCM tracing fragment of docs/operations.md), the Check still joins the
// client's trace. Spans are exported over OTLP/HTTP to a receiver started here.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyOrSkip, type RunningEnvoy } from '../helpers/envoy.js';
import { generateEcKeyPair } from '../helpers/keys.js';
import { httpGet, startStack, type Stack } from '../helpers/stack.js';
import { jwtMinter } from '../helpers/tokens.js';
import {
  startGrpcOtlpReceiver,
  startHttpOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.js';

const envoy = await envoyOrSkip('Envoy tracing end to end');

const ISSUER = 'https://idp.e2e-tracing.test';
const AUDIENCE = 'api://e2e';
const idpKey = generateEcKeyPair({ kid: 'e2e-tracing-1' });
const hex = (n: number): string => randomBytes(n).toString('hex');

const token = jwtMinter(idpKey, { iss: ISSUER, aud: AUDIENCE, sub: 'alice', scope: 'read' });

const get = async (port: number, path: string, headers: Record<string, string>): Promise<number> =>
  (await httpGet(port, path, headers)).status;

/** The Envoy tracing fragment of docs/operations.md, pointed at a collector on loopback. */
function envoyTracing(doc: any, collectorPort: number): void {
  const hcm = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  hcm.tracing = {
    random_sampling: { value: 100 },
    provider: {
      name: 'envoy.tracers.opentelemetry',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig',
        grpc_service: { envoy_grpc: { cluster_name: 'otel_collector' }, timeout: '0.25s' },
        service_name: 'front-envoy',
      },
    },
  };
  doc.static_resources.clusters.push({
    name: 'otel_collector',
    type: 'STATIC',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    load_assignment: {
      cluster_name: 'otel_collector',
      endpoints: [
        {
          lb_endpoints: [
            {
              endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: collectorPort } } },
            },
          ],
        },
      ],
    },
  });
}

describe.skipIf(!envoy)('tracing through Envoy', () => {
  let receiver: OtlpReceiver;
  let envoySpans: OtlpReceiver;
  let stack: Stack;
  let plain: RunningEnvoy;
  let traced: RunningEnvoy;

  beforeAll(async () => {
    receiver = await startHttpOtlpReceiver();
    envoySpans = await startGrpcOtlpReceiver();
    stack = await startStack(envoy!, {
      dirPrefix: 'envoy-tracing-',
      config: {
        issuers: [
          { name: 'corp-idp', issuer: ISSUER, audiences: [AUDIENCE], jwks: { keys: [idpKey.publicJwk] } },
        ],
        rules: [{ name: 'api', match: { path_separated_prefix: '/api' }, require: { scopes_any: ['read'] } }],
        tracing: { otlp_endpoint: receiver.endpoint },
      },
    });
    plain = stack.envoy;
    const collectorPort = Number(new URL(envoySpans.endpoint).port);
    traced = await stack.startEnvoy({ mutate: (d) => envoyTracing(d, collectorPort) });
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    await receiver?.close();
    await envoySpans?.close();
  });

  /** Sends one request through `proxy` and waits for the service's Check span of that trace. */
  async function checkSpanFor(proxy: RunningEnvoy, headers: Record<string, string>, traceId: string) {
    const status = await get(proxy.port, '/api/orders', { authorization: `Bearer ${token()}`, ...headers });
    expect(status).toBe(200);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = receiver.spans.filter(
        (s: ReceivedSpan) => s.name === 'ext_authz.check' && s.traceId === traceId,
      );
      if (found.length > 0) return found;
      if (Date.now() > deadline) throw new Error(`no Check span for trace ${traceId}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it("continues the client's traceparent that Envoy passed in the CheckRequest", async () => {
    const traceId = hex(16);
    const spanId = hex(8);
    const [check] = await checkSpanFor(plain, { traceparent: `00-${traceId}-${spanId}-01` }, traceId);
    expect(check!.parentSpanId).toBe(spanId);
    expect(check!.attributes).toMatchObject({ 'authz.decision': 'allow', 'authz.rule': 'api' });
  }, 20_000);

  it("continues the client's B3 headers", async () => {
    const traceId = hex(16);
    const spanId = hex(8);
    const [check] = await checkSpanFor(
      plain,
      { 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': '1' },
      traceId,
    );
    expect(check!.parentSpanId).toBe(spanId);
  }, 20_000);

  it('joins the trace when Envoy itself traces the request (OpenTelemetry tracer)', async () => {
    const traceId = hex(16);
    const spanId = hex(8);
    const [check] = await checkSpanFor(traced, { traceparent: `00-${traceId}-${spanId}-01` }, traceId);
    expect(check!.traceId).toBe(traceId);
    // Envoy's context for its ext_authz call travels in the gRPC metadata, not in the
    // CheckRequest headers: the Check span hangs under the client's span, next to Envoy's.
    expect(check!.parentSpanId).toBe(spanId);
    const deadline = Date.now() + 10_000;
    let egress: ReceivedSpan | undefined;
    while (!egress && Date.now() < deadline) {
      egress = envoySpans.spans.find(
        (x) => x.traceId === traceId && /Authorization\.Check egress/.test(x.name),
      );
      if (!egress) await new Promise((r) => setTimeout(r, 100));
    }
    expect(egress, 'Envoy exported its ext_authz span in the same trace').toBeDefined();
  }, 20_000);
});
