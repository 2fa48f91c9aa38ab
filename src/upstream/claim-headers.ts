// upstream.claim_headers: local claims copied into request headers for the
// backend. Scalars as strings, arrays joined with ",", objects as JSON. A value
// that could smuggle a header (control characters, CR/LF, NEL, U+2028/U+2029)
// or is oversized is dropped, never truncated or escaped, and reported. So is a
// value the backend would read as something else: leading or trailing whitespace
// (HTTP parsers trim it, "  admin  " would become "admin") or a list element
// with a "," or outer whitespace (it would read as two elements, or another one).

import type { HeaderToSet } from '../core/decision.js';
import type { Principal } from '../core/request.js';
import { compileClaimReader, type ClaimReader } from '../authz/claims.js';

/** Longest header value (UTF-8 bytes) the service sets. */
export const MAX_CLAIM_HEADER_BYTES = 8192;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
// C0, DEL, C1 and the Unicode line/paragraph separators: some HTTP stacks and
// log pipelines treat U+0085, U+2028 and U+2029 as line breaks.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
/** Whitespace an HTTP parser (or a list parser) trims; \s also covers Unicode spaces. */
const EDGE_SPACE = /^\s|\s$/;
const RESERVED: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'te',
  'upgrade',
]);

function scalarText(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'boolean':
      return String(v);
    default:
      return undefined;
  }
}

/** The header value of a claim, or undefined when nothing is to be set. */
export function encodeClaimValue(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  const scalar = scalarText(v);
  if (scalar !== undefined) return scalar;
  if (Array.isArray(v)) {
    let out = '';
    let first = true;
    for (let i = 0; i < v.length; i++) {
      const e: unknown = v[i];
      if (e === null || e === undefined) continue;
      const text = scalarText(e) ?? (typeof e === 'object' ? JSON.stringify(e) : undefined);
      if (text === undefined) continue;
      out = first ? text : out + ',' + text;
      first = false;
    }
    return out;
  }
  if (typeof v === 'object') return JSON.stringify(v);
  return undefined;
}

/** A list element that would not read back as itself from the ","-joined value. */
function ambiguousElement(list: readonly unknown[]): boolean {
  for (const e of list) {
    if (e === null || e === undefined) continue;
    const text = scalarText(e) ?? (typeof e === 'object' ? JSON.stringify(e) : undefined);
    if (text !== undefined && (text.indexOf(',') >= 0 || EDGE_SPACE.test(text))) return true;
  }
  return false;
}

function tooLong(value: string): boolean {
  // Each UTF-16 unit is at least one UTF-8 byte and at most three.
  if (value.length > MAX_CLAIM_HEADER_BYTES) return true;
  if (value.length * 3 <= MAX_CLAIM_HEADER_BYTES) return false;
  return Buffer.byteLength(value, 'utf8') > MAX_CLAIM_HEADER_BYTES;
}

export class ClaimHeaders {
  readonly headerNames: readonly string[];
  private readonly claimNames: readonly string[];
  private readonly readers: readonly ClaimReader[];

  private constructor(headerNames: string[], claimNames: string[], readers: ClaimReader[]) {
    this.headerNames = Object.freeze(headerNames);
    this.claimNames = Object.freeze(claimNames);
    this.readers = Object.freeze(readers);
  }

  /** Keys are header names (lower-cased here), values local claim names (dotted allowed). */
  static compile(map: Readonly<Record<string, string>>, problems: string[]): ClaimHeaders {
    const headerNames: string[] = [];
    const claimNames: string[] = [];
    const readers: ClaimReader[] = [];
    const seen = new Map<string, string>();
    for (const [header, claim] of Object.entries(map)) {
      const at = `upstream.claim_headers.${header}`;
      const name = header.toLowerCase();
      if (name.startsWith(':')) {
        problems.push(`${at}: pseudo-headers cannot be set`);
        continue;
      }
      if (!TOKEN.test(name)) {
        problems.push(`${at}: not a valid header name (RFC 7230 token)`);
        continue;
      }
      if (RESERVED.has(name)) {
        problems.push(`${at}: "${name}" is managed by the proxy and cannot be set`);
        continue;
      }
      const previous = seen.get(name);
      if (previous !== undefined) {
        problems.push(
          `${at}: same header as upstream.claim_headers.${previous} (names are case-insensitive)`,
        );
        continue;
      }
      if (typeof claim !== 'string' || claim === '') {
        problems.push(`${at}: must name a claim`);
        continue;
      }
      seen.set(name, header);
      headerNames.push(name);
      claimNames.push(claim);
      readers.push(compileClaimReader(claim));
    }
    return new ClaimHeaders(headerNames, claimNames, readers);
  }

  /**
   * Appends a header for each configured claim the principal has. Values with
   * control characters or longer than MAX_CLAIM_HEADER_BYTES are not set, nor values
   * that would read as something else upstream (outer whitespace, a list element with
   * a "," or outer whitespace); onDropped says which and why (never the value), `quiet`
   * for the latter (a debug line: they come from the token's claims). The value is
   * never trimmed: what is not set here is used unchanged everywhere else.
   */
  build(
    principal: Principal,
    out: HeaderToSet[],
    onDropped: (header: string, claim: string, why: string, quiet: boolean) => void,
  ): void {
    const claims = principal.claims;
    for (let i = 0; i < this.readers.length; i++) {
      const raw = this.readers[i]!(claims);
      const value = encodeClaimValue(raw);
      if (value === undefined) continue;
      if (CONTROL.test(value)) {
        onDropped(this.headerNames[i]!, this.claimNames[i]!, 'value contains a control character', false);
        continue;
      }
      if (EDGE_SPACE.test(value)) {
        onDropped(
          this.headerNames[i]!,
          this.claimNames[i]!,
          'value has leading or trailing whitespace',
          true,
        );
        continue;
      }
      if (Array.isArray(raw) && ambiguousElement(raw)) {
        onDropped(
          this.headerNames[i]!,
          this.claimNames[i]!,
          'a list element contains "," or leading or trailing whitespace',
          true,
        );
        continue;
      }
      if (tooLong(value)) {
        onDropped(
          this.headerNames[i]!,
          this.claimNames[i]!,
          `value longer than ${MAX_CLAIM_HEADER_BYTES} bytes`,
          false,
        );
        continue;
      }
      out.push({ key: this.headerNames[i]!, value });
    }
  }
}
