// Route-matching path normalisation. Rules are matched against the
// path a backend will most plausibly resolve, so that `/public/../admin` or
// `/public/%2e%2e/admin` cannot slip past an `/admin` rule through a `/public`
// allow rule.
//
// Steps, in order:
//   1. drop the query (`?…`) and fragment (`#…`);
//   2. decode percent-encoded unreserved characters (RFC 3986 §2.3: ALPHA DIGIT - . _ ~),
//      upper-case the hex of every other %XX;
//   3. remove dot-segments (RFC 3986 §5.2.4);
//   4. merge repeated slashes (a trailing slash is kept);
//   5. make sure the result starts with "/".
//
// `encodedSeparator` marks a path whose meaning depends on who decodes it, so
// the rule engine never lets it satisfy an `allow` rule:
//   - %2F or %5C (kept encoded: backends disagree on whether they separate segments),
//   - invalid percent-encoding ("%zz", a trailing "%"), kept as "%25…",
//   - a literal backslash (some servers treat it as "/"),
//   - an empty segment followed by ".." ("/a//../b"): resolving dots before
//     merging slashes (Envoy's order, used here) gives "/a/b", merging first
//     (nginx's order) gives "/b".

export interface NormalizedPath {
  readonly path: string;
  readonly encodedSeparator: boolean;
}

const SLASH = 47;
const DOT = 46;
const PERCENT = 37;
const BACKSLASH = 92;
const QUESTION = 63;
const HASH = 35;

/** Hex digit value, or -1. */
function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  if (code >= 65 && code <= 70) return code - 55; // A-F
  if (code >= 97 && code <= 102) return code - 87; // a-f
  return -1;
}

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(code: number): boolean {
  return (
    (code >= 65 && code <= 90) ||
    (code >= 97 && code <= 122) ||
    (code >= 48 && code <= 57) ||
    code === 45 ||
    code === 46 ||
    code === 95 ||
    code === 126
  );
}

const HEX = '0123456789ABCDEF';

export function normalizePath(rawPath: string): NormalizedPath {
  // Common case, one pass: starts with "/", no "%", no "\\", no "//" or "/."
  // before the query or fragment. Anything else takes the full path below.
  const len = rawPath.length;
  if (rawPath.charCodeAt(0) === SLASH) {
    let prev = SLASH;
    let i = 1;
    for (; i < len; i++) {
      const c = rawPath.charCodeAt(i);
      if (c === QUESTION || c === HASH) break;
      if (c === PERCENT || c === BACKSLASH || (prev === SLASH && (c === SLASH || c === DOT))) {
        i = -1;
        break;
      }
      prev = c;
    }
    if (i >= 0) return { path: i === len ? rawPath : rawPath.slice(0, i), encodedSeparator: false };
  }
  let end = len;
  const q = rawPath.indexOf('?');
  if (q >= 0) end = q;
  const h = rawPath.indexOf('#');
  if (h >= 0 && h < end) end = h;
  return normalizeSlow(end === len ? rawPath : rawPath.slice(0, end));
}

function normalizeSlow(input: string): NormalizedPath {
  let suspicious = input.includes('\\');

  // 2. Percent-decoding of unreserved characters.
  let decoded = input;
  if (input.includes('%')) {
    let out = '';
    let from = 0;
    for (let i = input.indexOf('%'); i >= 0; i = input.indexOf('%', i)) {
      out += input.slice(from, i);
      const complete = i + 2 < input.length;
      const hi = complete ? hexValue(input.charCodeAt(i + 1)) : -1;
      const lo = complete ? hexValue(input.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) {
        suspicious = true;
        out += '%25';
        i += 1;
      } else {
        const byte = hi * 16 + lo;
        if (isUnreserved(byte)) {
          out += String.fromCharCode(byte);
        } else {
          if (byte === 0x2f || byte === 0x5c) suspicious = true;
          out += '%' + HEX[hi] + HEX[lo];
        }
        i += 3;
      }
      from = i;
    }
    decoded = out + input.slice(from);
  }

  // 3 + 4. Dot-segments, then repeated slashes. The input is treated as
  // absolute: a path without a leading "/" gets one.
  const segments = decoded.split('/');
  const start = segments[0] === '' ? 1 : 0;
  const stack: string[] = [];
  const last = segments.length - 1;
  for (let i = start; i <= last; i++) {
    const seg = segments[i]!;
    if (seg === '.' || seg === '..') {
      if (seg === '..' && stack.length > 0) {
        if (stack.pop() === '') suspicious = true;
      }
      if (i === last) stack.push('');
      continue;
    }
    stack.push(seg);
  }
  let path = '';
  for (let i = 0; i < stack.length; i++) {
    const seg = stack[i]!;
    if (seg === '') {
      // Merge: an empty segment only survives as the trailing slash.
      if (i === stack.length - 1 && path !== '') path += '/';
      continue;
    }
    path += '/' + seg;
  }
  if (path === '') path = '/';
  return { path, encodedSeparator: suspicious };
}

// ---------------------------------------------------------------- ambiguous paths
//
// A path is ambiguous when backends are known to read it differently from the
// normalisation above, so no rule decision about it can be trusted:
//   - ";" (raw or %3B): servlet containers strip path parameters, so
//     "/public/..;/admin" is "/admin" to Tomcat and "/public/..;/admin" to us;
//   - %25: a framework that decodes twice reads "%252e%252e" as "..";
//   - a raw or encoded backslash: IIS and some frameworks read it as "/";
//   - raw or encoded control characters (C0, DEL and, encoded as UTF-8, C1):
//     truncation at NUL, header or log injection, CR/LF splitting;
//   - percent-encoded bytes that are not valid UTF-8 (overlong forms such as
//     %C0%AE for ".", surrogates, truncated sequences) and malformed escapes
//     ("%zz", "%2"): lenient decoders turn them into dots and slashes;
//   - raw characters outside RFC 3986 (space, `"`, `<`, `{`, non-ASCII, …).
// Only the part before "?" (or "#") is examined, like the rule matching.

/** Raw characters a path may carry unencoded: RFC 3986 pchar and "/", minus ";", plus "%". */
const RAW_PATH_OK = new Uint8Array(128);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/%") {
  RAW_PATH_OK[ch.charCodeAt(0)] = 1;
}

/** The byte of the escape "%XX" at `i`, or -1 when it is not one. */
function escapedByte(s: string, i: number): number {
  if (i + 2 >= s.length || s.charCodeAt(i) !== PERCENT) return -1;
  const hi = hexValue(s.charCodeAt(i + 1));
  const lo = hexValue(s.charCodeAt(i + 2));
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/**
 * True when the path (before "?" or "#") has a form that backends resolve
 * differently: see the list above. Allocation-free; one pass.
 */
export function isAmbiguousPath(rawPath: string): boolean {
  const len = rawPath.length;
  for (let i = 0; i < len; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === QUESTION || c === HASH) return false;
    if (c >= 128 || RAW_PATH_OK[c] === 0) return true;
    if (c !== PERCENT) continue;
    const byte = escapedByte(rawPath, i);
    if (byte < 0) return true;
    i += 2;
    if (byte < 0x80) {
      if (byte < 0x20 || byte === 0x7f || byte === 0x25 || byte === 0x3b || byte === 0x5c) return true;
      continue;
    }
    // A UTF-8 lead byte and its continuation bytes, each percent-encoded.
    let need: number;
    let cp: number;
    let min: number;
    if (byte >= 0xc2 && byte <= 0xdf) {
      need = 1;
      cp = byte & 0x1f;
      min = 0x80;
    } else if (byte >= 0xe0 && byte <= 0xef) {
      need = 2;
      cp = byte & 0x0f;
      min = 0x800;
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      need = 3;
      cp = byte & 0x07;
      min = 0x10000;
    } else {
      // A lone continuation byte, an overlong lead (C0, C1) or beyond U+10FFFF (F5–FF).
      return true;
    }
    for (let k = 0; k < need; k++) {
      const next = escapedByte(rawPath, i + 1);
      if (next < 0 || (next & 0xc0) !== 0x80) return true;
      cp = (cp << 6) | (next & 0x3f);
      i += 3;
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f) return true;
  }
  return false;
}

/**
 * A rule's path written with characters a request carries percent-encoded
 * ("/café", "/a b") in the form a request path has after normalisation
 * ("/caf%C3%A9", "/a%20b": UTF-8, upper-case hex), so both spellings in the
 * config match the same requests. Escapes already present, ";", "?", "#" and
 * "\\" are left for the caller's checks. Undefined for a lone surrogate.
 */
export function encodeRulePath(value: string): string | undefined {
  let out = '';
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 128 && (RAW_PATH_OK[c] === 1 || c === 59 || c === QUESTION || c === HASH || c === BACKSLASH))
      continue;
    const pair = c >= 0xd800 && c <= 0xdbff ? 2 : 1;
    let encoded: string;
    try {
      encoded = encodeURIComponent(value.slice(i, i + pair));
    } catch {
      return undefined;
    }
    out += value.slice(from, i) + encoded;
    i += pair - 1;
    from = i + 1;
  }
  return from === 0 ? value : out + value.slice(from);
}
