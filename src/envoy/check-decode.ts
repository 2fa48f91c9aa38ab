// A CheckRequest decoder that reads only the fields a check uses and skips the rest
// (metadata, timestamps, bodies, peer labels and services) without building objects for them.
// Its output has the shape proto-loader gives (keepCase, defaults off) for those
// fields, so request.ts reads either; test/unit/check-decode.test.ts holds it to
// proto-loader's full decoder on a generated corpus.
//
// The input is hostile: every length is bounds-checked, a malformed message throws
// (the transport answers INTERNAL, as grpc-js does for an undecodable request),
// and maps are null-prototype objects so a "__proto__" key is only a key.

import { AuthzError } from '../core/errors.js';
import type {
  DecodedCheckRequest,
  DecodedHeaderValue,
  DecodedHttpRequest,
  DecodedPeer,
  DecodedSocketAddress,
} from './messages.js';

/** A CheckRequest that is not valid protobuf (or nests too deeply). */
export class DecodeError extends AuthzError {
  readonly code = 'ERR_CHECK_DECODE';
}

export type {
  DecodedCheckRequest,
  DecodedHeaderValue,
  DecodedHttpRequest,
  DecodedPeer,
  DecodedSocketAddress,
};

// Wire types.
const VARINT = 0;
const I64 = 1;
const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
const I32 = 5;

// The one protobuf wire reader of the service (CheckRequest and HealthCheckRequest).
// Kept module-local: the decoder's hot loop reads it and the wire types above.
// Sub-messages are read with the same Reader: enter() narrows `end` to the field and
// leave() restores it, so a request costs no reader object per header.
class Reader {
  pos: number;
  end: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    end: number,
  ) {
    this.pos = start;
    this.end = end;
  }

  varint(): number {
    // Values we keep (tags, lengths) fit in 32 bits; longer varints are read and
    // their high bits dropped, as for skipped int64 fields.
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError('truncated varint');
      const b = this.buf[this.pos++]!;
      if (shift < 28) result |= (b & 0x7f) << shift;
      else if (shift === 28) result += (b & 0x0f) * 0x10000000;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
    throw new DecodeError('varint too long');
  }

  /** Bounds of a length-delimited field; advances past it. */
  len(): number {
    const n = this.varint();
    const start = this.pos;
    if (n > this.end - start) throw new DecodeError('length out of range');
    this.pos = start + n;
    return start;
  }

  string(): string {
    const start = this.len();
    return this.buf.toString('utf8', start, this.pos);
  }

  /** Enters a length-delimited field: `end` becomes the field's end; returns the outer end for leave(). */
  enter(): number {
    const n = this.varint();
    if (n > this.end - this.pos) throw new DecodeError('length out of range');
    const outer = this.end;
    this.end = this.pos + n;
    return outer;
  }

  /** Leaves the field entered last (its loop has read it to its end). */
  leave(outer: number): void {
    this.pos = this.end;
    this.end = outer;
  }

  skip(wireType: number, depth = 0): void {
    switch (wireType) {
      case VARINT:
        this.varint();
        return;
      case I64:
        this.advance(8);
        return;
      case LEN:
        this.len();
        return;
      case I32:
        this.advance(4);
        return;
      case SGROUP: {
        if (depth > 32) throw new DecodeError('groups nested too deeply');
        for (;;) {
          const tag = this.varint();
          if ((tag & 7) === EGROUP) return;
          this.skip(tag & 7, depth + 1);
        }
      }
      default:
        throw new DecodeError(`invalid wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) throw new DecodeError('truncated field');
    this.pos += n;
  }
}

// Header names Envoy sends on most requests, and short values that recur (methods,
// schemes): read as these constant strings instead of a new string per request. Only
// an exact byte match is replaced, so what a check sees is the same either way.
const KNOWN_NAMES = [
  ':authority',
  ':path',
  ':method',
  ':scheme',
  'accept',
  'accept-encoding',
  'accept-language',
  'authorization',
  'cache-control',
  'connection',
  'content-length',
  'content-type',
  'cookie',
  'dpop',
  'forwarded',
  'host',
  'origin',
  'pragma',
  'referer',
  'te',
  'traceparent',
  'tracestate',
  'user-agent',
  'x-api-key',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-spanid',
  'x-b3-traceid',
  'x-envoy-attempt-count',
  'x-envoy-expected-rq-timeout-ms',
  'x-envoy-external-address',
  'x-envoy-internal',
  'x-envoy-original-path',
  'x-forwarded-client-cert',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-proto',
  'x-real-ip',
  'x-request-id',
  'access-control-request-headers',
  'access-control-request-method',
  'sec-fetch-mode',
  'sec-fetch-site',
  'sec-fetch-dest',
  'upgrade-insecure-requests',
];
const KNOWN_VALUES = [
  'GET',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'HEAD',
  'OPTIONS',
  'http',
  'https',
  'HTTP/1.1',
  'HTTP/2',
  'trailers',
  '*/*',
  'application/json',
  'gzip',
  'gzip, deflate, br',
  'no-cache',
  'true',
  '0',
  '1',
];

type Interned = readonly { readonly bytes: Uint8Array; readonly text: string }[];
function internTable(words: readonly string[]): Interned[] {
  const byLength: Interned[] = [];
  for (const text of words) {
    const list = (byLength[text.length] ??= []) as { bytes: Uint8Array; text: string }[];
    list.push({ bytes: Buffer.from(text, 'latin1'), text });
  }
  return byLength;
}
const NAMES = internTable(KNOWN_NAMES);
const VALUES = internTable(KNOWN_VALUES);

/** The string field at the reader (advanced past it): a constant of `table` when its bytes are one. */
function internedString(r: Reader, table: Interned[]): string {
  const start = r.len();
  const end = r.pos;
  const candidates = table[end - start];
  if (candidates !== undefined) {
    const buf = r.buf;
    for (let c = 0; c < candidates.length; c++) {
      const bytes = candidates[c]!.bytes;
      let i = 0;
      while (i < bytes.length && buf[start + i] === bytes[i]) i++;
      if (i === bytes.length) return candidates[c]!.text;
    }
  }
  return r.buf.toString('utf8', start, end);
}

/**
 * One map<string,string> entry into `into` (the last of repeated keys wins, as in protobufjs);
 * `intern`: known header names and values come back as constants (the headers map).
 */
function mapEntry(r: Reader, into: Record<string, string>, intern: boolean): void {
  const outer = r.enter();
  let key = '';
  let value = '';
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === LEN) key = intern ? internedString(r, NAMES) : r.string();
    else if (field === 2 && wt === LEN) value = intern ? internedString(r, VALUES) : r.string();
    else r.skip(wt);
  }
  r.leave(outer);
  into[key] = value;
}

function headerValue(r: Reader): DecodedHeaderValue {
  const outer = r.enter();
  const out: DecodedHeaderValue = {};
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === LEN) out.key = r.string();
    else if (field === 2 && wt === LEN) out.value = r.string();
    else if (field === 3 && wt === LEN) {
      const start = r.len();
      // Its own copy: the request buffer is not kept alive by the decoded request.
      out.raw_value = Buffer.from(r.buf.subarray(start, r.pos));
    } else r.skip(wt);
  }
  r.leave(outer);
  return out;
}

// A sub-message that occurs twice replaces the earlier one, as in protobufjs (the
// decoder this one stands in for), rather than merging into it.

function httpRequest(r: Reader): DecodedHttpRequest {
  const outer = r.enter();
  const out: DecodedHttpRequest = {};
  while (r.pos < r.end) {
    const tag = r.varint();
    const wt = tag & 7;
    if (wt !== LEN) {
      r.skip(wt);
      continue;
    }
    switch (tag >>> 3) {
      case 2:
        out.method = internedString(r, VALUES);
        break;
      case 3:
        mapEntry(r, (out.headers ??= Object.create(null) as Record<string, string>), true);
        break;
      case 4:
        out.path = r.string();
        break;
      case 5:
        out.host = r.string();
        break;
      case 6:
        out.scheme = internedString(r, VALUES);
        break;
      case 13: {
        const hmOuter = r.enter();
        const list: DecodedHeaderValue[] = [];
        out.header_map = { headers: list };
        while (r.pos < r.end) {
          const t = r.varint();
          if (t >>> 3 === 1 && (t & 7) === LEN) list.push(headerValue(r));
          else r.skip(t & 7);
        }
        r.leave(hmOuter);
        break;
      }
      default:
        // id, query, protocol, body...: a check reads none of them.
        r.len();
    }
  }
  r.leave(outer);
  return out;
}

/** envoy.config.core.v3.Address: its socket_address (address, port_value) only. */
function address(r: Reader): { socket_address?: DecodedSocketAddress } {
  const outer = r.enter();
  const out: { socket_address?: DecodedSocketAddress } = {};
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag >>> 3 !== 1 || (tag & 7) !== LEN) {
      r.skip(tag & 7);
      continue;
    }
    const saOuter = r.enter();
    const sa: DecodedSocketAddress = {};
    out.socket_address = sa;
    while (r.pos < r.end) {
      const t = r.varint();
      const field = t >>> 3;
      const wt = t & 7;
      if (field === 2 && wt === LEN) sa.address = r.string();
      // uint32: the low 32 bits, as protobufjs reads it.
      else if (field === 3 && wt === VARINT) sa.port_value = r.varint() >>> 0;
      else r.skip(wt);
    }
    r.leave(saOuter);
  }
  r.leave(outer);
  return out;
}

function peer(r: Reader): DecodedPeer {
  const outer = r.enter();
  const out: DecodedPeer = {};
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === LEN) out.address = address(r);
    else if (field === 4 && wt === LEN) out.principal = r.string();
    else if (field === 5 && wt === LEN) out.certificate = r.string();
    else r.skip(wt);
  }
  r.leave(outer);
  return out;
}

/**
 * HealthCheckRequest { string service = 1 } bytes → the service name ('' when absent).
 * Throws DecodeError on malformed input; groups are refused in this message.
 */
export function decodeHealthService(buf: Buffer): string {
  const r = new Reader(buf, 0, buf.length);
  let service = '';
  while (r.pos < r.end) {
    const tag = r.varint();
    const wt = tag & 7;
    if (tag >>> 3 === 1 && wt === LEN) service = r.string();
    else if (wt === SGROUP) throw new DecodeError('group in a health request');
    else r.skip(wt);
  }
  return service;
}

/** CheckRequest bytes → the fields a check reads. Throws DecodeError on malformed input. */
export function decodeCheckRequest(buf: Buffer): DecodedCheckRequest {
  const r = new Reader(buf, 0, buf.length);
  const out: DecodedCheckRequest = {};
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag >>> 3 !== 1 || (tag & 7) !== LEN) {
      r.skip(tag & 7);
      continue;
    }
    const aOuter = r.enter();
    const attrs: NonNullable<DecodedCheckRequest['attributes']> = {};
    out.attributes = attrs;
    while (r.pos < r.end) {
      const t = r.varint();
      const field = t >>> 3;
      const wt = t & 7;
      if (wt !== LEN) r.skip(wt);
      else if (field === 1) attrs.source = peer(r);
      else if (field === 2) attrs.destination = peer(r);
      else if (field === 4) {
        const reqOuter = r.enter();
        const request: { http?: DecodedHttpRequest } = {};
        attrs.request = request;
        while (r.pos < r.end) {
          const rt = r.varint();
          if (rt >>> 3 === 2 && (rt & 7) === LEN) request.http = httpRequest(r);
          else r.skip(rt & 7);
        }
        r.leave(reqOuter);
      } else if (field === 10)
        mapEntry(r, (attrs.context_extensions ??= Object.create(null) as Record<string, string>), false);
      else r.len();
    }
    r.leave(aOuter);
  }
  return out;
}
