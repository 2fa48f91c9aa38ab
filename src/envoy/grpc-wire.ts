// gRPC over HTTP/2 as Envoy speaks it: length-prefixed messages, deadlines,
// status in trailers, identity/gzip/deflate message encoding.

import { AuthzError } from '../core/errors.js';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** Message encodings we read; responses are sent uncompressed (always acceptable to a client). */
export const ACCEPT_ENCODING = 'identity,deflate,gzip';

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
const TIMEOUT = /^(\d{1,8})([HMSmun])$/;

/** grpc-timeout ("250m", "5S", …) → milliseconds; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = TIMEOUT.exec(value);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : undefined;
}

/** grpc-message: printable ASCII except '%' as is, everything else as %XX of its UTF-8 bytes. */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** One message with its 5-byte prefix (uncompressed), in one allocation. */
export function frameMessage(message: Uint8Array): Buffer {
  return frameInto(Buffer.allocUnsafe(5 + message.length), message);
}

function frameInto(out: Buffer, message: Uint8Array): Buffer {
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

// Messages kept for reuse (memoised allows, cached denials) are framed once: what the
// caller keeps is a view of the message inside its framed buffer, and answering with
// that view sends the framed buffer as it is, with no copy per answer.
const framedViews = new WeakMap<Uint8Array, Buffer>();

/**
 * A copy of `message` to keep, framed once, in its own allocation (a slice of Node's
 * shared buffer pool would pin the whole slab for as long as it is kept). Returns the
 * message's bytes; framedMessage() of them is the framed buffer.
 */
export function keepFramed(message: Uint8Array): Buffer {
  const framed = frameInto(Buffer.allocUnsafeSlow(5 + message.length), message);
  const view = framed.subarray(5);
  framedViews.set(view, framed);
  return view;
}

/** The message framed: the kept frame of a keepFramed() view, else a new one. */
export function framedMessage(message: Uint8Array): Buffer {
  return framedViews.get(message) ?? frameMessage(message);
}

/** A gRPC call fails with this status (a gRPC status code, not an HTTP one). */
export class WireError extends AuthzError {
  readonly code = 'ERR_GRPC_STATUS';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Collects one request message from DATA chunks. The declared length is checked
 * against the limit as soon as the prefix arrives, so an oversized message is
 * refused before it is buffered.
 */
export class MessageCollector {
  private chunks: Buffer[] = [];
  private received = 0;
  private declared = -1;
  private compressed = false;
  messages = 0;

  constructor(private readonly maxBytes: number) {}

  /** Adds a chunk; throws WireError when the message is too large or a second one starts. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.declared < 0 && this.received >= 5) this.readPrefix();
    if (this.declared >= 0 && this.received > 5 + this.declared)
      throw new WireError(GrpcStatus.INTERNAL, 'more than one request message for a unary method');
  }

  /** The complete message, once the stream has ended. */
  finish(): { compressed: boolean; body: Buffer } {
    if (this.declared < 0)
      throw new WireError(
        GrpcStatus.INTERNAL,
        this.received === 0 ? 'no request message' : 'truncated message prefix',
      );
    if (this.received !== 5 + this.declared) throw new WireError(GrpcStatus.INTERNAL, 'truncated message');
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.received);
    this.chunks = [];
    return { compressed: this.compressed, body: all.subarray(5) };
  }

  private readPrefix(): void {
    const head = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.received);
    this.chunks = [head];
    const flag = head[0]!;
    if (flag > 1) throw new WireError(GrpcStatus.INTERNAL, `invalid message flag ${flag}`);
    this.compressed = flag === 1;
    this.declared = head.readUInt32BE(1);
    if (this.declared > this.maxBytes)
      throw new WireError(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `Received message larger than max (${this.declared} vs. ${this.maxBytes})`,
      );
  }
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);

/** A compressed message body → its bytes, never more than maxBytes of output. */
export async function decompress(encoding: string, body: Buffer, maxBytes: number): Promise<Buffer> {
  try {
    if (encoding === 'gzip') return await gunzip(body, { maxOutputLength: maxBytes });
    if (encoding === 'deflate') return await inflate(body, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError)
      throw new WireError(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `decompressed message larger than max (${maxBytes})`,
      );
    throw new WireError(GrpcStatus.INTERNAL, `could not decompress the ${encoding} message`);
  }
  throw new WireError(GrpcStatus.INTERNAL, 'compressed message without a grpc-encoding');
}
