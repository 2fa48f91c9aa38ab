// OTLP trace receivers for tests: a loopback HTTP server taking `POST /v1/traces`
// (http/protobuf) and a gRPC server taking TraceService/Export. Both decode the
// ExportTraceServiceRequest with the protobufjs classes generated from the OTLP protos
// that @opentelemetry/otlp-transformer shipped (installed as otlp-transformer-protos).
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';

const require = createRequire(import.meta.url);
const root = require('otlp-transformer-protos/build/src/generated/root.js') as any;
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const ExportTraceServiceResponse = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

export type AttrValue = string | number | boolean;

export interface ReceivedSpan {
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  /** OTLP SpanKind number (1 internal, 2 server). */
  readonly kind: number;
  readonly attributes: Record<string, AttrValue>;
  /** OTLP status code (0 unset, 1 ok, 2 error). */
  readonly statusCode: number;
  readonly resource: Record<string, AttrValue>;
}

const hex = (b: Uint8Array | undefined): string => (b ? Buffer.from(b).toString('hex') : '');

function attrs(list: any[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of list ?? []) {
    // AnyValue's oneof is named `value`: protobufjs reports which field is set.
    const field: string | undefined = kv.value?.value;
    if (field === undefined) continue;
    const v = kv.value[field];
    out[kv.key] =
      field === 'intValue' ? (typeof v === 'object' ? v.toNumber() : Number(v)) : (v as AttrValue);
  }
  return out;
}

/** Decodes one ExportTraceServiceRequest into flat spans. */
export function decodeSpans(body: Uint8Array): ReceivedSpan[] {
  const req = ExportTraceServiceRequest.decode(body);
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          name: s.name,
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          kind: s.kind,
          attributes: attrs(s.attributes),
          statusCode: s.status?.code ?? 0,
          resource,
        });
      }
    }
  }
  return out;
}

export interface OtlpReceiver {
  /** http://127.0.0.1:PORT (HTTP) or http://127.0.0.1:PORT (gRPC). */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Export requests received (including empty ones). */
  readonly requests: number;
  /** Every raw request body, for searches of forbidden bytes. */
  readonly bodies: Buffer[];
  close(): Promise<void>;
}

export async function startHttpOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: Buffer[] = [];
  let requests = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      requests++;
      const body = Buffer.concat(chunks);
      bodies.push(body);
      spans.push(...decodeSpans(body));
      const answer = ExportTraceServiceResponse.encode({}).finish();
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    get requests() {
      return requests;
    },
    bodies,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function startGrpcOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: Buffer[] = [];
  let requests = 0;
  const server = new grpc.Server();
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: (v: Buffer) => v,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: () => Buffer.from(ExportTraceServiceResponse.encode({}).finish()),
        responseDeserialize: (b: Buffer) => b,
      },
    },
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        requests++;
        bodies.push(call.request);
        spans.push(...decodeSpans(call.request));
        callback(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    get requests() {
      return requests;
    },
    bodies,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
