import type { AuthRequest, Peer } from '../core/request.js';
import type { DecodedCheckRequest, DecodedHeaderValue, DecodedPeer } from './messages.js';

const EMPTY: Readonly<Record<string, string>> = Object.freeze(Object.create(null));

/** What a malformed or oversized x-request-id is logged as (nothing of the value itself). */
export const INVALID_REQUEST_ID = 'invalid';
const MAX_REQUEST_ID_LENGTH = 128;
// The header is client-controlled: anything else could forge log lines or flood them.
const REQUEST_ID = /^[A-Za-z0-9._:-]+$/;

/** The x-request-id as logged: itself when short and plain, else INVALID_REQUEST_ID; absent stays absent. */
export function loggableRequestId(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  return raw.length <= MAX_REQUEST_ID_LENGTH && REQUEST_ID.test(raw) ? raw : INVALID_REQUEST_ID;
}

function headerMapToRecord(headerMap: { headers?: DecodedHeaderValue[] }): Record<string, string> {
  // HeaderMap (encode_raw_headers: true): repeated entries, raw_value bytes. Join
  // repeated headers with ',' as Envoy does for the plain `headers` map.
  const out: Record<string, string> = Object.create(null);
  const list: readonly (DecodedHeaderValue | undefined)[] = Array.isArray(headerMap.headers)
    ? headerMap.headers
    : [];
  for (const h of list) {
    if (typeof h?.key !== 'string') continue;
    const key = h.key.toLowerCase();
    const value =
      typeof h.value === 'string' && h.value.length > 0
        ? h.value
        : h.raw_value instanceof Uint8Array
          ? Buffer.from(h.raw_value).toString('latin1')
          : '';
    out[key] = key in out ? `${out[key]},${value}` : value;
  }
  return out;
}

/** attributes.source / destination → Peer; undefined when Envoy said nothing of it. */
function toPeer(p: DecodedPeer | undefined): Peer | undefined {
  if (!p || typeof p !== 'object') return undefined;
  const sa = p.address?.socket_address;
  const address = typeof sa?.address === 'string' && sa.address.length > 0 ? sa.address : undefined;
  const port = typeof sa?.port_value === 'number' && sa.port_value > 0 ? sa.port_value : undefined;
  const principal = typeof p.principal === 'string' && p.principal.length > 0 ? p.principal : undefined;
  if (address === undefined && principal === undefined) return undefined;
  return { address, port, principal };
}

/**
 * The decoded CheckRequest (check-decode.ts; proto-loader's keepCase objects have the
 * same shape) → AuthRequest. Returns undefined when it carries no HTTP attributes at all.
 */
export function toAuthRequest(checkRequest: DecodedCheckRequest): AuthRequest | undefined {
  // Typed, yet still checked at run time: a decoder's output is data from the network.
  const attributes = (checkRequest as DecodedCheckRequest | undefined)?.attributes;
  const http = attributes?.request?.http;
  if (!http || typeof http !== 'object') return undefined;
  let headers: Record<string, string> =
    http.headers && typeof http.headers === 'object' ? http.headers : EMPTY;
  if (http.header_map && Object.keys(headers).length === 0) headers = headerMapToRecord(http.header_map);
  const path = typeof http.path === 'string' && http.path.length > 0 ? http.path : (headers[':path'] ?? '/');
  const method =
    typeof http.method === 'string' && http.method.length > 0 ? http.method : (headers[':method'] ?? 'GET');
  const host =
    typeof http.host === 'string' && http.host.length > 0 ? http.host : (headers[':authority'] ?? '');
  const ext = attributes.context_extensions;
  const scheme = typeof http.scheme === 'string' && http.scheme.length > 0 ? http.scheme : headers[':scheme'];
  const cert = attributes.source?.certificate;
  const source = toPeer(attributes.source);
  const destination = toPeer(attributes.destination);
  return {
    method: method.toUpperCase(),
    rawPath: path,
    host,
    headers,
    contextExtensions: ext && typeof ext === 'object' ? ext : EMPTY,
    requestId: loggableRequestId(headers['x-request-id']),
    scheme,
    clientCertificate: typeof cert === 'string' && cert.length > 0 ? cert : undefined,
    source,
    destination,
  };
}
