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
// Two passes over the response (proto-writer.ts): sizes first, then one buffer of the
// exact size. dynamic_metadata's Struct is in struct-encode.ts.

import type { CheckResponse, DeniedHttpResponse, HeaderValueOption, OkHttpResponse } from './messages.js';
import { int32Size, ProtoWriter } from './proto-writer.js';
import { sizeStruct, writeStruct } from './struct-encode.js';

// Tags (field number << 3 | wire type); all fit in one byte.
const T1_VARINT = 0x08;
const T1_LEN = 0x0a;
const T2_LEN = 0x12;
const T3_LEN = 0x1a;
const T4_LEN = 0x22;
const T5_LEN = 0x2a;
const T6_LEN = 0x32;
const T8_LEN = 0x42;

const writer = new ProtoWriter();

/** envoy.service.auth.v3.CheckResponse → its protobuf bytes (what proto-loader's serializer writes, always valid UTF-8). */
export function encodeCheckResponse(r: CheckResponse): Buffer {
  const w = writer;
  w.startSizing();
  const size = sizeResponse(w, r);
  w.startWriting(size);
  writeResponse(w, r);
  return w.finish(size);
}

function sizeResponse(w: ProtoWriter, r: CheckResponse): number {
  let size = 0;
  const status = r.status;
  if (status != null) {
    const i = w.reserve();
    let s = 0;
    if (status.code != null) s += 1 + int32Size(status.code | 0);
    if (status.message != null) s += 1 + w.stringSize(status.message);
    size += 1 + w.nested(i, s);
  }
  if (r.denied_response != null) {
    const i = w.reserve();
    size += 1 + w.nested(i, sizeDenied(w, r.denied_response));
  }
  if (r.ok_response != null) {
    const i = w.reserve();
    size += 1 + w.nested(i, sizeOk(w, r.ok_response));
  }
  if (r.dynamic_metadata != null) {
    const i = w.reserve();
    size += 1 + w.nested(i, sizeStruct(w, r.dynamic_metadata));
  }
  return size;
}

function sizeDenied(w: ProtoWriter, d: DeniedHttpResponse): number {
  let size = 0;
  const status = d.status;
  if (status != null) {
    // An enum (HttpStatus.code): set when it is a number.
    size += typeof status.code === 'number' ? 3 + int32Size(status.code | 0) : 2;
  }
  if (d.headers != null) size += sizeOptions(w, d.headers);
  if (d.body != null) size += 1 + w.stringSize(d.body);
  return size;
}

function sizeOk(w: ProtoWriter, ok: OkHttpResponse): number {
  let size = 0;
  if (ok.headers != null) size += sizeOptions(w, ok.headers);
  if (ok.headers_to_remove != null) size += sizeStrings(w, ok.headers_to_remove);
  if (ok.response_headers_to_add != null) size += sizeOptions(w, ok.response_headers_to_add);
  if (ok.query_parameters_to_remove != null) size += sizeStrings(w, ok.query_parameters_to_remove);
  return size;
}

function sizeStrings(w: ProtoWriter, list: readonly string[]): number {
  let size = 0;
  for (let k = 0; k < list.length; k++) size += 1 + w.stringSize(list[k]!);
  return size;
}

function sizeOptions(w: ProtoWriter, list: readonly HeaderValueOption[]): number {
  let size = 0;
  for (let k = 0; k < list.length; k++) {
    const o = list[k]!;
    const i = w.reserve();
    let s = 0;
    const header = o.header;
    if (header != null) {
      const j = w.reserve();
      let h = 0;
      if (header.key != null) h += 1 + w.stringSize(header.key);
      if (header.value != null) h += 1 + w.stringSize(header.value);
      s += 1 + w.nested(j, h);
    }
    // BoolValue: 2 bytes when its value is set.
    if (o.append != null) s += o.append.value != null ? 4 : 2;
    size += 1 + w.nested(i, s);
  }
  return size;
}

function writeResponse(w: ProtoWriter, r: CheckResponse): void {
  const status = r.status;
  if (status != null) {
    w.byte(T1_LEN);
    w.length();
    if (status.code != null) {
      w.byte(T1_VARINT);
      w.int32(status.code | 0);
    }
    if (status.message != null) {
      w.byte(T2_LEN);
      w.string(status.message);
    }
  }
  if (r.denied_response != null) {
    w.byte(T2_LEN);
    w.length();
    writeDenied(w, r.denied_response);
  }
  if (r.ok_response != null) {
    w.byte(T3_LEN);
    w.length();
    writeOk(w, r.ok_response);
  }
  if (r.dynamic_metadata != null) {
    w.byte(T4_LEN);
    w.length();
    writeStruct(w, r.dynamic_metadata);
  }
}

function writeDenied(w: ProtoWriter, d: DeniedHttpResponse): void {
  const status = d.status;
  if (status != null) {
    w.byte(T1_LEN);
    if (typeof status.code === 'number') {
      const code = status.code | 0;
      w.byte(1 + int32Size(code));
      w.byte(T1_VARINT);
      w.int32(code);
    } else w.byte(0);
  }
  if (d.headers != null) writeOptions(w, T2_LEN, d.headers);
  if (d.body != null) {
    w.byte(T3_LEN);
    w.string(d.body);
  }
}

function writeOk(w: ProtoWriter, ok: OkHttpResponse): void {
  if (ok.headers != null) writeOptions(w, T2_LEN, ok.headers);
  if (ok.headers_to_remove != null) writeStrings(w, T5_LEN, ok.headers_to_remove);
  if (ok.response_headers_to_add != null) writeOptions(w, T6_LEN, ok.response_headers_to_add);
  if (ok.query_parameters_to_remove != null) writeStrings(w, T8_LEN, ok.query_parameters_to_remove);
}

function writeStrings(w: ProtoWriter, tag: number, list: readonly string[]): void {
  for (let k = 0; k < list.length; k++) {
    w.byte(tag);
    w.string(list[k]!);
  }
}

function writeOptions(w: ProtoWriter, tag: number, list: readonly HeaderValueOption[]): void {
  for (let k = 0; k < list.length; k++) {
    const o = list[k]!;
    w.byte(tag);
    w.length();
    const header = o.header;
    if (header != null) {
      w.byte(T1_LEN);
      w.length();
      if (header.key != null) {
        w.byte(T1_LEN);
        w.string(header.key);
      }
      if (header.value != null) {
        w.byte(T2_LEN);
        w.string(header.value);
      }
    }
    if (o.append != null) {
      w.byte(T2_LEN);
      if (o.append.value != null) {
        w.byte(2);
        w.byte(T1_VARINT);
        w.byte(o.append.value ? 1 : 0);
      } else w.byte(0);
    }
  }
}
