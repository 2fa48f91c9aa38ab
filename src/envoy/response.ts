import { DPOP_ALGORITHMS } from '../authn/dpop.js';
import {
  DENY_OUTCOMES,
  GRPC_OK,
  type Allow,
  type Decision,
  type Deny,
  type DenyResponse,
  type HeaderToSet,
} from '../core/decision.js';
import type {
  CheckResponse,
  CheckResponseSerializer,
  DeniedHttpResponse,
  HeaderValueOption,
  OkHttpResponse,
  ProtoStruct,
  ProtoValue,
} from './messages.js';
import { keepFramed } from './grpc-wire.js';

// Decision → envoy.service.auth.v3.CheckResponse (proto-loader keepCase objects).
// Always a CheckResponse, never a gRPC error, so Envoy uses our status and headers.

const JSON_CONTENT_TYPE: HeaderValueOption = {
  header: { key: 'content-type', value: 'application/json' },
};
const TEXT_CONTENT_TYPE: HeaderValueOption = {
  header: { key: 'content-type', value: 'text/plain; charset=utf-8' },
};

function quote(s: string): string {
  // RFC 7235 quoted-string: escape backslash and double quote; our texts carry no CR/LF.
  return `"${s.replace(/[\\"]/g, '\\$&')}"`;
}

export function challenge(d: Deny, realm: string): string | undefined {
  const outcome = DENY_OUTCOMES[d.reason];
  switch (outcome.kind) {
    case 'unauthorized':
      return `Bearer realm=${quote(realm)}`;
    case 'invalid_token':
      return `${d.scheme ?? 'Bearer'} realm=${quote(realm)}, error="invalid_token", error_description=${quote(d.description ?? 'the token is invalid')}`;
    case 'invalid_dpop_proof':
      return `DPoP realm=${quote(realm)}, algs="${DPOP_ALGORITHMS.join(' ')}", error="invalid_dpop_proof", error_description=${quote(d.description ?? 'the DPoP proof is invalid')}`;
    case 'insufficient_scope':
      return `Bearer realm=${quote(realm)}, error="insufficient_scope", error_description=${quote(
        d.description ?? 'the token lacks the required scope',
      )}, scope=${quote(d.scope ?? '')}`;
    default:
      return undefined;
  }
}

export function denyBody(d: Deny): string {
  const outcome = DENY_OUTCOMES[d.reason];
  switch (outcome.kind) {
    case 'unauthorized':
      return '{"error":"unauthorized"}';
    case 'invalid_token':
    case 'invalid_dpop_proof':
      return JSON.stringify({
        error: outcome.kind,
        error_description: d.description ?? 'the token is invalid',
      });
    case 'insufficient_scope':
      return JSON.stringify({
        error: 'insufficient_scope',
        error_description: d.description ?? 'the token lacks the required scope',
        scope: d.scope ?? '',
      });
    case 'forbidden':
      return '{"error":"forbidden"}';
    case 'invalid_request':
      return '{"error":"invalid_request"}';
    case 'rate_limited':
      return '{"error":"rate_limited"}';
    case 'unavailable':
      return '{"error":"temporarily_unavailable"}';
    case 'server_error':
      return '{"error":"server_error"}';
  }
}

/** google.protobuf.Value from plain JSON data (proto-loader's bundled well-known types use camelCase names). */
export function toValue(v: unknown, depth = 0): ProtoValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'number':
      return Number.isFinite(v) ? { numberValue: v } : { nullValue: 0 };
    case 'boolean':
      return { boolValue: v };
    case 'object':
      if (depth > 32) return { nullValue: 0 };
      if (Array.isArray(v)) return { listValue: { values: v.map((x) => toValue(x, depth + 1)) } };
      return { structValue: toStruct(v as Record<string, unknown>, depth + 1) };
    default:
      return { nullValue: 0 };
  }
}

export function toStruct(obj: Record<string, unknown>, depth = 0): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const key of Object.keys(obj)) fields[key] = toValue(obj[key], depth);
  return { fields };
}

// A reusable allow decision (the same Allow object for the same token and rule) is
// built and serialized once; what is kept is only its wire bytes, wrapped in a
// handle that protos.ts's serializer recognises.
export const WIRE = Symbol('serialized CheckResponse');
export interface WireHandle {
  readonly [WIRE]: Buffer;
}
const reusedResponses = new WeakMap<Decision, WireHandle>();

/** The CheckResponse of a decision. */
export function toCheckResponse(decision: Decision, realm: string): CheckResponse;
/** With a serializer, a reusable allow may come back as a handle of its wire bytes. */
export function toCheckResponse(
  decision: Decision,
  realm: string,
  serialize: CheckResponseSerializer,
): CheckResponse | WireHandle;
export function toCheckResponse(
  decision: Decision,
  realm: string,
  serialize?: CheckResponseSerializer,
): CheckResponse | WireHandle {
  if (serialize && decision.kind === 'allow' && decision.base?.reusable && decision.responseHeaders)
    return withResponseHeaders(decision.base, decision.responseHeaders, realm, serialize);
  if (serialize && decision.kind === 'allow' && decision.reusable) {
    let handle = reusedResponses.get(decision);
    if (!handle) {
      // Kept framed, in their own allocation (keepFramed): answering sends them as they are.
      handle = { [WIRE]: keepFramed(serialize(buildCheckResponse(decision, realm))) };
      reusedResponses.set(decision, handle);
    }
    return handle;
  }
  return buildCheckResponse(decision, realm);
}

const headerOptions = (headers: readonly HeaderToSet[]): HeaderValueOption[] =>
  headers.map((h) => ({ header: { key: h.key, value: h.value } }));

// A reusable allow plus per-request response headers (rate limits): the allow's bytes are
// kept in two parts (everything but ok_response, and ok_response's content) and the
// per-request headers are appended inside ok_response. Protobuf reads fields in any order,
// and the repeated response_headers_to_add field may follow the other OkHttpResponse fields.
const splitResponses = new WeakMap<Allow, { head: Buffer; ok: Buffer }>();

function ownCopy(bytes: Buffer): Buffer {
  const own = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(own);
  return own;
}

/** The content of a CheckResponse holding only ok_response (field 3): after its tag byte and length varint. */
function okContent(bytes: Buffer): Buffer {
  let i = 1;
  while (bytes[i]! & 0x80) i++;
  return bytes.subarray(i + 1);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function withResponseHeaders(
  base: Allow,
  headers: readonly HeaderToSet[],
  realm: string,
  serialize: CheckResponseSerializer,
): WireHandle {
  let parts = splitResponses.get(base);
  if (!parts) {
    const { ok_response, ...rest } = buildCheckResponse(base, realm);
    parts = { head: ownCopy(serialize(rest)), ok: ownCopy(okContent(serialize({ ok_response }))) };
    splitResponses.set(base, parts);
  }
  const extra = okContent(serialize({ ok_response: { response_headers_to_add: headerOptions(headers) } }));
  const ok = parts.ok;
  return {
    [WIRE]: Buffer.concat([parts.head, OK_RESPONSE_TAG, varint(ok.length + extra.length), ok, extra]),
  };
}
const OK_RESPONSE_TAG = Buffer.from([0x1a]);

function buildCheckResponse(decision: Decision, realm: string): CheckResponse {
  if (decision.kind === 'allow') {
    const ok: OkHttpResponse = {
      headers: decision.headers.map((h) => ({
        header: { key: h.key, value: h.value },
      })),
      headers_to_remove: decision.headersToRemove,
      query_parameters_to_remove: decision.queryParametersToRemove,
    };
    const response: CheckResponse = { status: { code: GRPC_OK }, ok_response: ok };
    if (decision.responseHeaders) ok.response_headers_to_add = headerOptions(decision.responseHeaders);
    if (decision.metadata) {
      const m = decision.metadata;
      // Configured fields first: the service's own fields always win.
      const meta: Record<string, unknown> = {
        ...m.extra,
        issuer: m.issuer,
        scope: m.scope,
      };
      if (m.claims !== undefined) meta.claims = m.claims;
      if (m.sub !== undefined) meta.sub = m.sub;
      if (decision.dryRun) meta.dry_run = decision.dryRun;
      response.dynamic_metadata = toStruct(meta);
    } else if (decision.dryRun) {
      response.dynamic_metadata = toStruct({
        ...(decision.anonymous ? { anonymous: true } : {}),
        dry_run: decision.dryRun,
      });
    } else if (decision.anonymous) {
      response.dynamic_metadata = ANONYMOUS_METADATA;
    }
    return response;
  }
  const outcome = DENY_OUTCOMES[decision.reason];
  const custom = decision.response;
  if (custom && (outcome.httpStatus === 401 || outcome.httpStatus === 403))
    return customDenial(decision, custom, realm);
  const headers: HeaderValueOption[] = [JSON_CONTENT_TYPE];
  const wwwAuthenticate = challenge(decision, realm);
  if (wwwAuthenticate) headers.push({ header: { key: 'www-authenticate', value: wwwAuthenticate } });
  if (decision.headers) headers.push(...headerOptions(decision.headers));
  return {
    status: { code: outcome.grpcCode, message: decision.reason },
    denied_response: { status: { code: outcome.httpStatus }, headers, body: denyBody(decision) },
    ...(decision.dryRun ? { dynamic_metadata: toStruct({ dry_run: decision.dryRun }) } : {}),
  };
}

const ANONYMOUS_METADATA = toStruct({ anonymous: true });

/** The error code a default body would carry, for {error} in a custom body. */
function errorCode(d: Deny): string {
  const kind = DENY_OUTCOMES[d.reason].kind;
  return kind === 'unavailable' ? 'temporarily_unavailable' : kind;
}

/**
 * A rule's deny_response: its status, headers and body replace the defaults
 * where set. The challenge stays unless the rule sets www-authenticate itself.
 */
function customDenial(d: Deny, custom: DenyResponse, realm: string): CheckResponse {
  const outcome = DENY_OUTCOMES[d.reason];
  const headers: DeniedHttpResponse['headers'] = [];
  let hasContentType = false;
  let hasChallenge = false;
  for (const h of custom.headers) {
    if (h.key === 'content-type') hasContentType = true;
    if (h.key === 'www-authenticate') hasChallenge = true;
    headers.push({ header: { key: h.key, value: h.value } });
  }
  let body: string;
  if (custom.body !== undefined) {
    const values: Record<string, string> = {
      error: errorCode(d),
      error_description: d.description ?? '',
      request_id: d.requestId ?? '',
    };
    body = custom.body.replace(
      /\{(error|error_description|request_id)\}/g,
      (_, k: string) => values[k] ?? '',
    );
    if (!hasContentType) headers.push(TEXT_CONTENT_TYPE);
  } else {
    body = denyBody(d);
    if (!hasContentType) headers.push(JSON_CONTENT_TYPE);
  }
  const wwwAuthenticate = hasChallenge ? undefined : challenge(d, realm);
  if (wwwAuthenticate) headers.push({ header: { key: 'www-authenticate', value: wwwAuthenticate } });
  return {
    status: { code: outcome.grpcCode, message: d.reason },
    denied_response: { status: { code: custom.status ?? outcome.httpStatus }, headers, body },
    ...(d.dryRun ? { dynamic_metadata: toStruct({ dry_run: d.dryRun }) } : {}),
  };
}
