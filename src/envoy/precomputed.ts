import type { Deny, DenyResponse } from '../core/decision.js';
import { keepFramed } from './grpc-wire.js';

// Wire bytes of denials whose CheckResponse does not depend on the request: under a
// flood of bad tokens every answer is one of a handful of byte strings, so each is
// encoded once instead of building, JSON-stringifying and protobuf-encoding it per call.

/**
 * The Deny fields a CheckResponse is built from (plus those only logged or counted).
 * A denial carrying any other field — one added later — is encoded afresh: a field
 * this cache does not know of must never be answered from another request's bytes.
 */
const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  'kind',
  'reason',
  'description',
  'scope',
  'scheme',
  'response',
  'requestId',
  // Not part of the response:
  'logDetail',
  'issuer',
  'rule',
]);

/** Distinct denials kept; descriptions come from code and config, so a few dozen in practice. */
const MAX_ENTRIES = 256;

export class DenyWireCache {
  private readonly bytes = new Map<string, Buffer>();
  private readonly responseIds = new WeakMap<DenyResponse, number>();
  private nextResponseId = 1;

  constructor(
    /** The realm the bytes were made for (a reload may change it). */
    readonly realm: string,
  ) {}

  /**
   * The cached bytes for this denial, or the encoder's output (cached when the
   * response does not depend on the request).
   */
  bytesFor(d: Deny, encode: (d: Deny) => Buffer): Buffer {
    const key = this.key(d);
    if (key === undefined) return encode(d);
    let out = this.bytes.get(key);
    if (out === undefined) {
      const encoded = encode(d);
      if (this.bytes.size >= MAX_ENTRIES) return encoded;
      // Kept framed, in its own allocation (keepFramed): answering sends it as it is.
      out = keepFramed(encoded);
      this.bytes.set(key, out);
    }
    return out;
  }

  get size(): number {
    return this.bytes.size;
  }

  private key(d: Deny): string | undefined {
    for (const field in d) if (!KNOWN_FIELDS.has(field)) return undefined;
    let responseId = 0;
    const custom = d.response;
    if (custom !== undefined) {
      // {request_id} makes every body different; {error} and {error_description} come from the key.
      if (custom.body !== undefined && custom.body.includes('{request_id}')) return undefined;
      responseId = this.responseIds.get(custom) ?? 0;
      if (responseId === 0) this.responseIds.set(custom, (responseId = this.nextResponseId++));
    }
    // \u0000 cannot occur in descriptions or scopes that reach a header; \u0001 marks "unset".
    return `${d.reason}\u0000${d.description ?? '\u0001'}\u0000${d.scope ?? '\u0001'}\u0000${d.scheme ?? ''}\u0000${responseId}`;
  }
}
