// Route-matching path normalisation (SPEC §5). Rules are matched against the
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
