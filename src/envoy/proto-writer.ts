// The two-pass protobuf writer the CheckResponse encoder runs on: a size pass that
// records every nested message's size and every string's UTF-8 length in a reused slot
// array (in the order the write pass meets them), then a write pass into one buffer of
// the exact size. One instance per encoder, reused for every response.

/** Buffer's unchecked string writers (what Buffer#write calls after parsing its arguments). */
interface RawWriter extends Buffer {
  utf8Write(s: string, offset: number, length: number): number;
  latin1Write(s: string, offset: number, length: number): number;
}

/** Strings shorter than this are measured and written in JS; longer ones by Buffer. */
const SHORT_STRING = 40;

const EMPTY = Buffer.alloc(0) as RawWriter;

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

export function int32Size(n: number): number {
  return n < 0 ? 10 : varintSize(n);
}

/** UTF-8 length of a string, a lone surrogate counted as 3 bytes (written as U+FFFD). */
export function utf8Length(s: string): number {
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

export class ProtoWriter {
  private slots = new Int32Array(256);
  /** Slots filled by the size pass. */
  private used = 0;
  /** The write pass's next slot. */
  private next = 0;
  private out: RawWriter = EMPTY;
  private pos = 0;

  // ---- size pass

  /** Starts a size pass. */
  startSizing(): void {
    this.used = 0;
  }

  /** A slot for a size the write pass will need. */
  reserve(): number {
    if (this.used === this.slots.length) {
      const grown = new Int32Array(this.used * 2);
      grown.set(this.slots);
      this.slots = grown;
    }
    return this.used++;
  }

  /** A string field's length prefix and bytes (its tag not included). */
  stringSize(s: string): number {
    const i = this.reserve();
    const len = utf8Length(s);
    this.slots[i] = len;
    return varintSize(len) + len;
  }

  /** A nested message's length prefix and content, from its content size kept in slot i. */
  nested(i: number, size: number): number {
    this.slots[i] = size;
    return varintSize(size) + size;
  }

  // ---- write pass

  /** Starts the write pass into a new buffer of `size` bytes. */
  startWriting(size: number): void {
    this.out = Buffer.allocUnsafe(size) as RawWriter;
    this.pos = 0;
    this.next = 0;
  }

  /** The written buffer; throws when the two passes disagree. */
  finish(size: number): Buffer {
    const buf = this.out;
    this.out = EMPTY;
    if (this.pos !== size || this.next !== this.used)
      throw new Error(`CheckResponse encoding wrote ${this.pos} of ${size} bytes`);
    return buf;
  }

  byte(b: number): void {
    this.out[this.pos++] = b;
  }

  varint(n: number): void {
    const b = this.out;
    let p = this.pos;
    while (n > 0x7f) {
      b[p++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    b[p++] = n;
    this.pos = p;
  }

  int32(n: number): void {
    if (n >= 0) return this.varint(n);
    // Sign-extended to 64 bits: ten bytes.
    let lo = n >>> 0;
    let hi = 0xffffffff;
    while (hi) {
      this.out[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.varint(lo);
  }

  /** The next slot's length as a varint: the prefix of a nested message. */
  length(): void {
    this.varint(this.slots[this.next++]!);
  }

  string(s: string): void {
    const len = this.slots[this.next++]!;
    this.varint(len);
    const b = this.out;
    let p = this.pos;
    const n = s.length;
    if (len === n && n < SHORT_STRING) {
      for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
      this.pos = p;
      return;
    }
    // ASCII by latin1; otherwise Buffer's UTF-8 writer, which always writes valid UTF-8
    // (a lone surrogate becomes U+FFFD, 3 bytes, as utf8Length counts it). protobufjs
    // writes a short string's lone surrogate as raw bytes, which Envoy's parser refuses.
    if (len === n) b.latin1Write(s, p, len);
    else b.utf8Write(s, p, len);
    this.pos = p + len;
  }

  double(x: number): void {
    f64[0] = x;
    const b = this.out;
    const p = this.pos;
    if (LITTLE_ENDIAN) for (let k = 0; k < 8; k++) b[p + k] = f64Bytes[k]!;
    else for (let k = 0; k < 8; k++) b[p + k] = f64Bytes[7 - k]!;
    this.pos = p + 8;
  }
}
