import type { ProtoStruct, ProtoValue } from './messages.js';
import { int32Size, type ProtoWriter } from './proto-writer.js';

// google.protobuf.Struct and Value (the CheckResponse's dynamic_metadata) for the
// CheckResponse encoder: sizes, then bytes. A Value carries one kind (as toValue in
// response.ts builds it); map entries are (key = 1, value = 2) in Object.keys order
// (a for-in over own keys: the same order, without an array per Struct).

const T1_VARINT = 0x08;
const T1_LEN = 0x0a;
const T2_I64 = 0x11;
const T2_LEN = 0x12;
const T3_LEN = 0x1a;
const T4_VARINT = 0x20;
const T5_LEN = 0x2a;
const T6_LEN = 0x32;

/** A google.protobuf.Value read without narrowing (one of these is set). */
interface AnyValue {
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}

const hasOwn = Object.hasOwn;

export function sizeStruct(w: ProtoWriter, st: ProtoStruct): number {
  const fields = st.fields;
  if (fields == null) return 0;
  let size = 0;
  for (const key in fields) {
    if (!hasOwn(fields, key)) continue;
    const entry = w.reserve();
    const keySize = 1 + w.stringSize(key);
    const i = w.reserve();
    size += 1 + w.nested(entry, keySize + 1 + w.nested(i, sizeValue(w, fields[key]!)));
  }
  return size;
}

function sizeValue(w: ProtoWriter, value: ProtoValue): number {
  const v = value as AnyValue;
  if (v.stringValue != null) return 1 + w.stringSize(v.stringValue);
  if (v.numberValue != null) return 9;
  if (v.structValue != null) {
    const i = w.reserve();
    return 1 + w.nested(i, sizeStruct(w, v.structValue));
  }
  if (v.boolValue != null) return 2;
  if (v.listValue != null) {
    const i = w.reserve();
    const values = v.listValue.values;
    let s = 0;
    if (values != null)
      for (let k = 0; k < values.length; k++) {
        const j = w.reserve();
        s += 1 + w.nested(j, sizeValue(w, values[k]!));
      }
    return 1 + w.nested(i, s);
  }
  if (typeof v.nullValue === 'number') return 1 + int32Size(v.nullValue | 0);
  return 0;
}

export function writeStruct(w: ProtoWriter, st: ProtoStruct): void {
  const fields = st.fields;
  if (fields == null) return;
  for (const key in fields) {
    if (!hasOwn(fields, key)) continue;
    w.byte(T1_LEN);
    w.length();
    w.byte(T1_LEN);
    w.string(key);
    w.byte(T2_LEN);
    w.length();
    writeValue(w, fields[key]!);
  }
}

function writeValue(w: ProtoWriter, value: ProtoValue): void {
  const v = value as AnyValue;
  if (v.stringValue != null) {
    w.byte(T3_LEN);
    w.string(v.stringValue);
  } else if (v.numberValue != null) {
    w.byte(T2_I64);
    w.double(v.numberValue);
  } else if (v.structValue != null) {
    w.byte(T5_LEN);
    w.length();
    writeStruct(w, v.structValue);
  } else if (v.boolValue != null) {
    w.byte(T4_VARINT);
    w.byte(v.boolValue ? 1 : 0);
  } else if (v.listValue != null) {
    w.byte(T6_LEN);
    w.length();
    const values = v.listValue.values;
    if (values != null)
      for (let k = 0; k < values.length; k++) {
        w.byte(T1_LEN);
        w.length();
        writeValue(w, values[k]!);
      }
  } else if (typeof v.nullValue === 'number') {
    w.byte(T1_VARINT);
    w.int32(v.nullValue | 0);
  }
}
