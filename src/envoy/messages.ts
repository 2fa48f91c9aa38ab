// The ext_authz messages as this service reads and writes them, in proto-loader's
// object shape (keepCase field names; google.protobuf well-known types in camelCase).
// CheckRequest: only the fields a check reads (check-decode.ts decodes exactly these).
// CheckResponse: only the fields a response sets.

// ---------------------------------------------------------------- CheckRequest

/** config.core.v3.HeaderValue inside a HeaderMap (raw_value when Envoy sends raw bytes). */
export interface DecodedHeaderValue {
  key?: string;
  value?: string;
  raw_value?: Uint8Array;
}

/** service.auth.v3.AttributeContext.HttpRequest. */
export interface DecodedHttpRequest {
  method?: string;
  headers?: Record<string, string>;
  path?: string;
  host?: string;
  scheme?: string;
  header_map?: { headers: DecodedHeaderValue[] };
}

export interface DecodedSocketAddress {
  address?: string;
  port_value?: number;
}

/** service.auth.v3.AttributeContext.Peer. */
export interface DecodedPeer {
  /** Only the socket address of Address (a pipe or internal address is skipped). */
  address?: { socket_address?: DecodedSocketAddress };
  principal?: string;
  certificate?: string;
}

/** service.auth.v3.CheckRequest. */
export interface DecodedCheckRequest {
  attributes?: {
    source?: DecodedPeer;
    destination?: DecodedPeer;
    request?: { http?: DecodedHttpRequest };
    context_extensions?: Record<string, string>;
  };
}

// ---------------------------------------------------------------- CheckResponse

/** google.protobuf.Value. */
export type ProtoValue =
  | { nullValue: 0 }
  | { stringValue: string }
  | { numberValue: number }
  | { boolValue: boolean }
  | { listValue: { values: ProtoValue[] } }
  | { structValue: ProtoStruct };

/** google.protobuf.Struct. */
export interface ProtoStruct {
  fields: Record<string, ProtoValue>;
}

/**
 * config.core.v3.HeaderValueOption. The service leaves `append` unset: in a
 * CheckResponse's headers it defaults to false (replace), as external_auth.proto says.
 */
export interface HeaderValueOption {
  header: { key: string; value: string };
  append?: { value: boolean };
}

/** service.auth.v3.OkHttpResponse. */
export interface OkHttpResponse {
  headers?: HeaderValueOption[];
  headers_to_remove?: readonly string[];
  query_parameters_to_remove?: readonly string[];
  response_headers_to_add?: HeaderValueOption[];
}

/** service.auth.v3.DeniedHttpResponse. */
export interface DeniedHttpResponse {
  status: { code: number };
  headers: HeaderValueOption[];
  body: string;
}

/** service.auth.v3.CheckResponse. */
export interface CheckResponse {
  status?: { code: number; message?: string };
  ok_response?: OkHttpResponse;
  denied_response?: DeniedHttpResponse;
  dynamic_metadata?: ProtoStruct;
}

/** proto-loader's CheckResponse encoder. */
export type CheckResponseSerializer = (response: CheckResponse) => Buffer;
