// A CheckResponse encoder written for the shapes response.ts builds, in place of
// proto-loader's (protobufjs fromObject + encode, which builds a message object per
// field and a linked list of write operations per call).
//
// Its output is byte for byte what protobufjs writes for the same object (see
// test/unit/envoy/check-encode.test.ts): fields in field-number order; a singular
// field whenever it is set (not null/undefined), zero values included; a repeated
// field only when non-empty; negative int32 as 10-byte varints; doubles as 64-bit
// little-endian; map<string, Value> entries as (key = 1, value = 2) in Object.keys
// order (read by a for-in over own keys: the same order, without an array per
// Struct). Strings are always valid UTF-8: a lone surrogate (JSON can carry one in a
// claim) is written as U+FFFD, where protobufjs writes the raw surrogate bytes for
// strings under 40 units — the one difference, and one Envoy's parser would refuse.
//
// Two passes over the response: the first computes every nested message's size and
// every string's UTF-8 length into a reused slot array (in the order the second pass
// meets them), the second writes into one buffer of the exact size.
//
// A google.protobuf.Value carries one kind (as toValue in response.ts builds it).

import type {
  CheckResponse,
  DeniedHttpResponse,
  HeaderValueOption,
  OkHttpResponse,
  ProtoStruct,
  ProtoValue,
} from './messages.js';

/** Buffer's unchecked string writers (what Buffer#write calls after parsing its arguments). */
interface RawWriter extends Buffer {
  utf8Write(s: string, offset: number, length: number): number;
  latin1Write(s: string, offset: number, length: number): number;
}

// Tags (field number << 3 | wire type); all fit in one byte.
const T1_VARINT = 0x08;
const T1_LEN = 0x0a;
const T2_I64 = 0x11;
const T2_LEN = 0x12;
const T3_LEN = 0x1a;
const T4_VARINT = 0x20;
const T4_LEN = 0x22;
const T5_LEN = 0x2a;
const T6_LEN = 0x32;
const T8_LEN = 0x42;

/** A google.protobuf.Value read without narrowing (one of these is set). */
interface AnyValue {
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}

/** Strings shorter than this are measured and written in JS (as protobufjs does); longer ones by Buffer. */
const SHORT_STRING = 40;

const hasOwn = Object.hasOwn;

// ---------------------------------------------------------------- slots

let slots = new Int32Array(256);
/** Slots filled by the size pass. */
let used = 0;
/** The write pass's next slot. */
let next = 0;

function reserve(): number {
  if (used === slots.length) {
    const grown = new Int32Array(used * 2);
    grown.set(slots);
    slots = grown;
  }
  return used++;
}

// ---------------------------------------------------------------- size pass

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

function int32Size(n: number): number {
  return n < 0 ? 10 : varintSize(n);
}

function utf8Length(s: string): number {
  const n = s.length;
  if (n >= SHORT_STRING) return Buffer.byteLength(s, 'utf8');
  let len = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) len += 1;
    else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: two units, four bytes.
      i++;
      len += 2;
    } else len += 2;
  }
  return len;
}

/** A string field's length prefix and bytes (its tag not included). */
function stringSize(s: string): number {
  const i = reserve();
  const len = utf8Length(s);
  slots[i] = len;
  return varintSize(len) + len;
}

/** A nested message's length prefix and content, from its content size kept in slot i. */
function nested(i: number, size: number): number {
  slots[i] = size;
  return varintSize(size) + size;
}

function sizeResponse(r: CheckResponse): number {
  let size = 0;
  const status = r.status;
  if (status != null) {
    const i = reserve();
    let s = 0;
    if (status.code != null) s += 1 + int32Size(status.code | 0);
    if (status.message != null) s += 1 + stringSize(status.message);
    size += 1 + nested(i, s);
  }
  if (r.denied_response != null) {
    const i = reserve();
    size += 1 + nested(i, sizeDenied(r.denied_response));
  }
  if (r.ok_response != null) {
    const i = reserve();
    size += 1 + nested(i, sizeOk(r.ok_response));
  }
  if (r.dynamic_metadata != null) {
    const i = reserve();
    size += 1 + nested(i, sizeStruct(r.dynamic_metadata));
  }
  return size;
}

function sizeDenied(d: DeniedHttpResponse): number {
  let size = 0;
  const status = d.status;
  if (status != null) {
    // An enum (HttpStatus.code): set when it is a number.
    size += typeof status.code === 'number' ? 3 + int32Size(status.code | 0) : 2;
  }
  if (d.headers != null) size += sizeOptions(d.headers);
  if (d.body != null) size += 1 + stringSize(d.body);
  return size;
}

function sizeOk(ok: OkHttpResponse): number {
  let size = 0;
  if (ok.headers != null) size += sizeOptions(ok.headers);
  if (ok.headers_to_remove != null) size += sizeStrings(ok.headers_to_remove);
  if (ok.response_headers_to_add != null) size += sizeOptions(ok.response_headers_to_add);
  if (ok.query_parameters_to_remove != null) size += sizeStrings(ok.query_parameters_to_remove);
  return size;
}

function sizeStrings(list: readonly string[]): number {
  let size = 0;
  for (let k = 0; k < list.length; k++) size += 1 + stringSize(list[k]!);
  return size;
}

function sizeOptions(list: readonly HeaderValueOption[]): number {
  let size = 0;
  for (let k = 0; k < list.length; k++) {
    const o = list[k]!;
    const i = reserve();
    let s = 0;
    const header = o.header;
    if (header != null) {
      const j = reserve();
      let h = 0;
      if (header.key != null) h += 1 + stringSize(header.key);
      if (header.value != null) h += 1 + stringSize(header.value);
      s += 1 + nested(j, h);
    }
    // BoolValue: 2 bytes when its value is set.
    if (o.append != null) s += o.append.value != null ? 4 : 2;
    size += 1 + nested(i, s);
  }
  return size;
}

function sizeStruct(st: ProtoStruct): number {
  const fields = st.fields;
  if (fields == null) return 0;
  let size = 0;
  for (const key in fields) {
    if (!hasOwn(fields, key)) continue;
    const entry = reserve();
    const keySize = 1 + stringSize(key);
    const i = reserve();
    size += 1 + nested(entry, keySize + 1 + nested(i, sizeValue(fields[key]!)));
  }
  return size;
}

function sizeValue(value: ProtoValue): number {
  const v = value as AnyValue;
  if (v.stringValue != null) return 1 + stringSize(v.stringValue);
  if (v.numberValue != null) return 9;
  if (v.structValue != null) {
    const i = reserve();
    return 1 + nested(i, sizeStruct(v.structValue));
  }
  if (v.boolValue != null) return 2;
  if (v.listValue != null) {
    const i = reserve();
    const values = v.listValue.values;
    let s = 0;
    if (values != null)
      for (let k = 0; k < values.length; k++) {
        const j = reserve();
        s += 1 + nested(j, sizeValue(values[k]!));
      }
    return 1 + nested(i, s);
  }
  if (typeof v.nullValue === 'number') return 1 + int32Size(v.nullValue | 0);
  return 0;
}

// ---------------------------------------------------------------- write pass

let out: RawWriter;
let pos = 0;

function writeVarint(n: number): void {
  const b = out;
  let p = pos;
  while (n > 0x7f) {
    b[p++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  b[p++] = n;
  pos = p;
}

function writeInt32(n: number): void {
  if (n >= 0) return writeVarint(n);
  // Sign-extended to 64 bits: ten bytes.
  let lo = n >>> 0;
  let hi = 0xffffffff;
  while (hi) {
    out[pos++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  writeVarint(lo);
}

/** The next slot's length as a varint: the prefix of a nested message. */
function writeLength(): void {
  writeVarint(slots[next++]!);
}

function writeString(s: string): void {
  const len = slots[next++]!;
  writeVarint(len);
  const b = out;
  let p = pos;
  const n = s.length;
  if (n >= SHORT_STRING) {
    if (len === n) b.latin1Write(s, p, len);
    else b.utf8Write(s, p, len);
    pos = p + len;
    return;
  }
  if (len === n) {
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    pos = p;
    return;
  }
  // Non-ASCII: Buffer's writer, which always writes valid UTF-8 (a lone surrogate
  // becomes U+FFFD, 3 bytes, as utf8Length counts it). protobufjs's own loop would
  // write the surrogate's raw bytes, which Envoy's protobuf parser refuses.
  b.utf8Write(s, p, len);
  pos = p + len;
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function writeDouble(x: number): void {
  f64[0] = x;
  const b = out;
  const p = pos;
  if (LITTLE_ENDIAN) for (let k = 0; k < 8; k++) b[p + k] = f64Bytes[k]!;
  else for (let k = 0; k < 8; k++) b[p + k] = f64Bytes[7 - k]!;
  pos = p + 8;
}

function writeResponse(r: CheckResponse): void {
  const status = r.status;
  if (status != null) {
    out[pos++] = T1_LEN;
    writeLength();
    if (status.code != null) {
      out[pos++] = T1_VARINT;
      writeInt32(status.code | 0);
    }
    if (status.message != null) {
      out[pos++] = T2_LEN;
      writeString(status.message);
    }
  }
  if (r.denied_response != null) {
    out[pos++] = T2_LEN;
    writeLength();
    writeDenied(r.denied_response);
  }
  if (r.ok_response != null) {
    out[pos++] = T3_LEN;
    writeLength();
    writeOk(r.ok_response);
  }
  if (r.dynamic_metadata != null) {
    out[pos++] = T4_LEN;
    writeLength();
    writeStruct(r.dynamic_metadata);
  }
}

function writeDenied(d: DeniedHttpResponse): void {
  const status = d.status;
  if (status != null) {
    out[pos++] = T1_LEN;
    if (typeof status.code === 'number') {
      const code = status.code | 0;
      out[pos++] = 1 + int32Size(code);
      out[pos++] = T1_VARINT;
      writeInt32(code);
    } else out[pos++] = 0;
  }
  if (d.headers != null) writeOptions(T2_LEN, d.headers);
  if (d.body != null) {
    out[pos++] = T3_LEN;
    writeString(d.body);
  }
}

function writeOk(ok: OkHttpResponse): void {
  if (ok.headers != null) writeOptions(T2_LEN, ok.headers);
  if (ok.headers_to_remove != null) writeStrings(T5_LEN, ok.headers_to_remove);
  if (ok.response_headers_to_add != null) writeOptions(T6_LEN, ok.response_headers_to_add);
  if (ok.query_parameters_to_remove != null) writeStrings(T8_LEN, ok.query_parameters_to_remove);
}

function writeStrings(tag: number, list: readonly string[]): void {
  for (let k = 0; k < list.length; k++) {
    out[pos++] = tag;
    writeString(list[k]!);
  }
}

function writeOptions(tag: number, list: readonly HeaderValueOption[]): void {
  for (let k = 0; k < list.length; k++) {
    const o = list[k]!;
    out[pos++] = tag;
    writeLength();
    const header = o.header;
    if (header != null) {
      out[pos++] = T1_LEN;
      writeLength();
      if (header.key != null) {
        out[pos++] = T1_LEN;
        writeString(header.key);
      }
      if (header.value != null) {
        out[pos++] = T2_LEN;
        writeString(header.value);
      }
    }
    if (o.append != null) {
      out[pos++] = T2_LEN;
      if (o.append.value != null) {
        out[pos++] = 2;
        out[pos++] = T1_VARINT;
        out[pos++] = o.append.value ? 1 : 0;
      } else out[pos++] = 0;
    }
  }
}

function writeStruct(st: ProtoStruct): void {
  const fields = st.fields;
  if (fields == null) return;
  for (const key in fields) {
    if (!hasOwn(fields, key)) continue;
    out[pos++] = T1_LEN;
    writeLength();
    out[pos++] = T1_LEN;
    writeString(key);
    out[pos++] = T2_LEN;
    writeLength();
    writeValue(fields[key]!);
  }
}

function writeValue(value: ProtoValue): void {
  const v = value as AnyValue;
  if (v.stringValue != null) {
    out[pos++] = T3_LEN;
    writeString(v.stringValue);
  } else if (v.numberValue != null) {
    out[pos++] = T2_I64;
    writeDouble(v.numberValue);
  } else if (v.structValue != null) {
    out[pos++] = T5_LEN;
    writeLength();
    writeStruct(v.structValue);
  } else if (v.boolValue != null) {
    out[pos++] = T4_VARINT;
    out[pos++] = v.boolValue ? 1 : 0;
  } else if (v.listValue != null) {
    out[pos++] = T6_LEN;
    writeLength();
    const values = v.listValue.values;
    if (values != null)
      for (let k = 0; k < values.length; k++) {
        out[pos++] = T1_LEN;
        writeLength();
        writeValue(values[k]!);
      }
  } else if (typeof v.nullValue === 'number') {
    out[pos++] = T1_VARINT;
    writeInt32(v.nullValue | 0);
  }
}

// ---------------------------------------------------------------- entry point

/** envoy.service.auth.v3.CheckResponse → its protobuf bytes, as proto-loader's serializer writes them. */
export function encodeCheckResponse(r: CheckResponse): Buffer {
  used = 0;
  const size = sizeResponse(r);
  const buf = Buffer.allocUnsafe(size) as RawWriter;
  out = buf;
  pos = 0;
  next = 0;
  writeResponse(r);
  if (pos !== size || next !== used) throw new Error(`CheckResponse encoding wrote ${pos} of ${size} bytes`);
  out = EMPTY;
  return buf;
}

const EMPTY = Buffer.alloc(0) as RawWriter;
