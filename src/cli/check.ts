import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { systemClock, type Clock } from '../core/time.js';
import { authorizationClientConstructor } from '../envoy/protos.js';
import { buildCheckRequest, type CheckRequestMessage } from '../envoy/check-request.js';
export type { CheckRequestMessage } from '../envoy/check-request.js';
import { UsageError } from './args.js';

// Kept for callers that import UsageError from here.
export { UsageError };

export interface CheckCommandOptions {
  readonly address: string;
  readonly token?: string;
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly headers: readonly string[];
  readonly context: readonly string[];
  readonly timeoutMs: number;
  /** TLS: CA bundle for the server certificate; client certificate and key for mTLS. */
  readonly tlsCa?: string | undefined;
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
}

function pairs(list: readonly string[], what: string): [string, string][] {
  return list.map((kv) => {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${what} expects k=v, got "${kv}"`);
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  });
}

// A CheckResponse as the grpc-js client decodes it (keepCase, oneofs: `kind` names the
// member of a oneof that is set). Every field may be absent: it comes off the network.

/** google.protobuf.Value, decoded. */
interface DecodedValue {
  kind?: string;
  stringValue?: string;
  numberValue?: number;
  boolValue?: boolean;
  structValue?: DecodedStruct;
  listValue?: { values?: DecodedValue[] };
}

/** google.protobuf.Struct, decoded. */
interface DecodedStruct {
  fields?: Record<string, DecodedValue>;
}

interface DecodedHeaderOption {
  header: { key: string; value: string };
}

/** service.auth.v3.CheckResponse, decoded. */
export interface DecodedCheckResponse {
  status?: { code?: number; message?: string };
  ok_response?: {
    headers?: DecodedHeaderOption[];
    headers_to_remove?: string[];
    query_parameters_to_remove?: string[];
    response_headers_to_add?: DecodedHeaderOption[];
  };
  denied_response?: { status?: { code?: number }; headers?: DecodedHeaderOption[]; body?: string };
  dynamic_metadata?: DecodedStruct;
}

/** The Authorization client's one method. */
interface AuthorizationClient extends grpc.Client {
  Check(
    request: CheckRequestMessage,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, response?: DecodedCheckResponse) => void,
  ): void;
}

/** google.protobuf.Struct (keepCase, oneofs) → plain JSON. */
export function fromStruct(s: DecodedStruct | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}
function fromValue(v: DecodedValue | undefined): unknown {
  switch (v?.kind) {
    case 'stringValue':
      return v.stringValue;
    case 'numberValue':
      return v.numberValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

/** Builds a CheckRequest exactly as Envoy does (lower-case keys, pseudo-headers, repeated headers joined with ','). */
export function envoyCheckRequest(
  opts: Omit<CheckCommandOptions, 'address' | 'timeoutMs'>,
): CheckRequestMessage {
  return buildCheckRequest({
    method: opts.method,
    path: opts.path,
    host: opts.host,
    token: opts.token,
    headers: pairs(opts.headers, 'header'),
    context: pairs(opts.context, 'context'),
  });
}

/** CheckResponse → plain JSON decision (what the `check` command prints). */
export function describeCheckResponse(res: DecodedCheckResponse | undefined): Record<string, unknown> {
  const code = res?.status?.code ?? 0;
  if (code === 0) {
    const ok = res?.ok_response ?? {};
    return {
      decision: 'allow',
      grpc_status: 0,
      headers: Object.fromEntries((ok.headers ?? []).map((h) => [h.header.key, h.header.value])),
      headers_to_remove: ok.headers_to_remove ?? [],
      query_parameters_to_remove: ok.query_parameters_to_remove ?? [],
      dynamic_metadata: res?.dynamic_metadata ? fromStruct(res.dynamic_metadata) : undefined,
      ...(ok.response_headers_to_add?.length
        ? {
            response_headers: Object.fromEntries(
              ok.response_headers_to_add.map((h) => [h.header.key, h.header.value]),
            ),
          }
        : {}),
    };
  }
  const denied = res?.denied_response ?? {};
  let body: unknown = denied.body;
  try {
    body = JSON.parse(denied.body as string);
  } catch {
    /* keep the text */
  }
  return {
    decision: 'deny',
    grpc_status: code,
    reason: res?.status?.message,
    http_status: denied.status?.code,
    headers: Object.fromEntries((denied.headers ?? []).map((h) => [h.header.key, h.header.value])),
    body,
    ...(res?.dynamic_metadata ? { dynamic_metadata: fromStruct(res.dynamic_metadata) } : {}),
  };
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(
      `--${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
}

/** Plaintext unless --tls-ca is given; --tls-cert and --tls-key add a client certificate. */
export function channelCredentials(
  opts: Pick<CheckCommandOptions, 'tlsCa' | 'tlsCert' | 'tlsKey'>,
): grpc.ChannelCredentials {
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
    throw new UsageError('--tls-cert and --tls-key go together');
  if (opts.tlsCa === undefined) {
    if (opts.tlsCert !== undefined)
      throw new UsageError('--tls-cert needs --tls-ca (the server is verified too)');
    return grpc.credentials.createInsecure();
  }
  return grpc.credentials.createSsl(
    readPem('tls-ca', opts.tlsCa),
    opts.tlsKey !== undefined ? readPem('tls-key', opts.tlsKey) : null,
    opts.tlsCert !== undefined ? readPem('tls-cert', opts.tlsCert) : null,
  );
}

/** Sends one CheckRequest and returns the decision as plain JSON. */
export async function runCheck(
  opts: CheckCommandOptions,
  clock: Clock = systemClock,
): Promise<Record<string, unknown>> {
  const Client = authorizationClientConstructor();
  const client = new Client(opts.address, channelCredentials(opts)) as unknown as AuthorizationClient;
  const request = envoyCheckRequest(opts);
  try {
    const res = await new Promise<DecodedCheckResponse | undefined>((resolve, reject) =>
      client.Check(request, { deadline: clock.nowMs() + opts.timeoutMs }, (err, r) =>
        err ? reject(err) : resolve(r),
      ),
    );
    return describeCheckResponse(res);
  } finally {
    client.close();
  }
}
