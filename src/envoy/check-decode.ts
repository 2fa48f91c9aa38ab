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
class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
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

function sub(r: Reader): Reader {
  const start = r.len();
  return new Reader(r.buf, start, r.pos);
}

/** One map<string,string> entry into `into` (the last of repeated keys wins, as in protobufjs). */
function mapEntry(r: Reader, into: Record<string, string>): void {
  const e = sub(r);
  let key = '';
  let value = '';
  while (e.pos < e.end) {
    const tag = e.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === LEN) key = e.string();
    else if (field === 2 && wt === LEN) value = e.string();
    else e.skip(wt);
  }
  into[key] = value;
}

function headerValue(r: Reader): DecodedHeaderValue {
  const m = sub(r);
  const out: DecodedHeaderValue = {};
  while (m.pos < m.end) {
    const tag = m.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === LEN) out.key = m.string();
    else if (field === 2 && wt === LEN) out.value = m.string();
    else if (field === 3 && wt === LEN) {
      const start = m.len();
      // Its own copy: the request buffer is not kept alive by the decoded request.
      out.raw_value = Buffer.from(m.buf.subarray(start, m.pos));
    } else m.skip(wt);
  }
  return out;
}

// A sub-message that occurs twice replaces the earlier one, as in protobufjs (the
// decoder this one stands in for), rather than merging into it.

function httpRequest(r: Reader): DecodedHttpRequest {
  const m = sub(r);
  const out: DecodedHttpRequest = {};
  while (m.pos < m.end) {
    const tag = m.varint();
    const wt = tag & 7;
    if (wt !== LEN) {
      m.skip(wt);
      continue;
    }
    switch (tag >>> 3) {
      case 1:
        out.id = m.string();
        break;
      case 2:
        out.method = m.string();
        break;
      case 3:
        mapEntry(m, (out.headers ??= Object.create(null) as Record<string, string>));
        break;
      case 4:
        out.path = m.string();
        break;
      case 5:
        out.host = m.string();
        break;
      case 6:
        out.scheme = m.string();
        break;
      case 7:
        out.query = m.string();
        break;
      case 10:
        out.protocol = m.string();
        break;
      case 13: {
        const hm = sub(m);
        const list: DecodedHeaderValue[] = [];
        out.header_map = { headers: list };
        while (hm.pos < hm.end) {
          const t = hm.varint();
          if (t >>> 3 === 1 && (t & 7) === LEN) list.push(headerValue(hm));
          else hm.skip(t & 7);
        }
        break;
      }
      default:
        m.len();
    }
  }
  return out;
}

/** envoy.config.core.v3.Address: its socket_address (address, port_value) only. */
function address(r: Reader): { socket_address?: DecodedSocketAddress } {
  const m = sub(r);
  const out: { socket_address?: DecodedSocketAddress } = {};
  while (m.pos < m.end) {
    const tag = m.varint();
    if (tag >>> 3 !== 1 || (tag & 7) !== LEN) {
      m.skip(tag & 7);
      continue;
    }
    const s = sub(m);
    const sa: DecodedSocketAddress = {};
    out.socket_address = sa;
    while (s.pos < s.end) {
      const t = s.varint();
      const field = t >>> 3;
      const wt = t & 7;
      if (field === 2 && wt === LEN) sa.address = s.string();
      // uint32: the low 32 bits, as protobufjs reads it.
      else if (field === 3 && wt === VARINT) sa.port_value = s.varint() >>> 0;
      else s.skip(wt);
    }
  }
  return out;
}

function peer(r: Reader): DecodedPeer {
  const m = sub(r);
  const out: DecodedPeer = {};
  while (m.pos < m.end) {
    const tag = m.varint();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === LEN) out.address = address(m);
    else if (field === 4 && wt === LEN) out.principal = m.string();
    else if (field === 5 && wt === LEN) out.certificate = m.string();
    else m.skip(wt);
  }
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
    const a = sub(r);
    const attrs: NonNullable<DecodedCheckRequest['attributes']> = {};
    out.attributes = attrs;
    while (a.pos < a.end) {
      const t = a.varint();
      const field = t >>> 3;
      const wt = t & 7;
      if (wt !== LEN) a.skip(wt);
      else if (field === 1) attrs.source = peer(a);
      else if (field === 2) attrs.destination = peer(a);
      else if (field === 4) {
        const req = sub(a);
        const request: { http?: DecodedHttpRequest } = {};
        attrs.request = request;
        while (req.pos < req.end) {
          const rt = req.varint();
          if (rt >>> 3 === 2 && (rt & 7) === LEN) request.http = httpRequest(req);
          else req.skip(rt & 7);
        }
      } else if (field === 10)
        mapEntry(a, (attrs.context_extensions ??= Object.create(null) as Record<string, string>));
      else a.len();
    }
  }
  return out;
}
