// The one reader of a request's query string. The credential sources (which parameter
// carries a token or API key, which raw keys Envoy must remove) and the expressions'
// `request.query` both go through forEachQueryParam, so they agree on what a parameter is.

/**
 * Calls `visit(ctx, name, value)` for each parameter of the query of a raw `:path`, in
 * order, until `visit` returns true. The rules, common to every reader:
 *
 * - The query is what follows the first "?", up to a "#" (a fragment) or the end.
 * - Parameters are separated by "&" only; an empty one (`a=1&&b=2`) is skipped. A ";" is
 *   part of the parameter: `a=1;b=2` is `a` with the value `1;b=2`, as URLSearchParams
 *   reads it. (The credential path refuses a token name behind ";", because backends
 *   that split on it would read one Envoy cannot remove: see HIDDEN_QUERY_CREDENTIAL.)
 * - The name ends at the first "="; a parameter without "=" has the value "".
 * - Name and value are passed raw, as sent (not percent-decoded): Envoy removes
 *   parameters by raw name. Decode them with decodeQueryComponent, or compare names as a
 *   backend would with credentialKey.
 * - Every value of a repeated name is passed; readers that keep one keep the first.
 *
 * On the Check path: no array, no decoding, two substrings a parameter; `visit` is meant
 * to be a module-level function and `ctx` its state (no closure per call).
 */
export function forEachQueryParam<C>(
  rawPath: string,
  ctx: C,
  visit: (ctx: C, name: string, value: string) => boolean | void,
): void {
  const q = rawPath.indexOf('?');
  if (q < 0) return;
  let end = rawPath.indexOf('#', q);
  if (end < 0) end = rawPath.length;
  for (let start = q + 1; start < end;) {
    let amp = rawPath.indexOf('&', start);
    if (amp < 0 || amp > end) amp = end;
    if (amp > start) {
      let eq = rawPath.indexOf('=', start);
      if (eq < 0 || eq > amp) eq = amp;
      const value = eq < amp ? rawPath.slice(eq + 1, amp) : '';
      if (visit(ctx, rawPath.slice(start, eq), value) === true) return;
    }
    start = amp + 1;
  }
}

/**
 * A query name or value as sent, decoded as a form does: "+" is a space, percent
 * sequences are UTF-8 bytes (an invalid sequence stays as sent, invalid UTF-8 becomes
 * U+FFFD), the same result as URLSearchParams. Most values need no decoding and are
 * returned as they are.
 */
export function decodeQueryComponent(raw: string): string {
  if (raw.indexOf('%') < 0 && raw.indexOf('+') < 0) return raw;
  const text = raw.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(text);
  } catch {
    return decodeMalformed(text);
  }
}

/** Byte-wise, for text with a malformed sequence: its UTF-8 bytes, each valid %XX replaced. */
function decodeMalformed(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  let out = 0;
  for (let i = 0; i < bytes.length; i++) {
    const hi = i + 2 < bytes.length && bytes[i] === 37 /* % */ ? hexValue(bytes[i + 1]!) : -1;
    const lo = hi < 0 ? -1 : hexValue(bytes[i + 2]!);
    if (lo < 0) {
      bytes[out++] = bytes[i]!;
    } else {
      bytes[out++] = hi * 16 + lo;
      i += 2;
    }
  }
  return bytes.toString('utf8', 0, out);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 70) return c - 55; // A-F
  if (c >= 97 && c <= 102) return c - 87; // a-f
  return -1;
}

/**
 * A parameter or cookie name as backends read it: percent- and form-decoded ("+" is a
 * space), case-insensitive, outer spaces dropped, ".", "+" and space read as "_", and a
 * trailing "[...]" (PHP-style arrays) dropped. `ACCESS_TOKEN`, `access.token`,
 * `access+token`, `access%5Ftoken` and `access_token[]` all read as `access_token`.
 */
export function credentialKey(rawName: string): string {
  // Most names are already in that form: no decoding, no new string.
  if (PLAIN_NAME.test(rawName)) return rawName;
  let n = decodeQueryComponent(rawName).trim().toLowerCase();
  if (n.endsWith(']')) {
    const b = n.indexOf('[');
    if (b > 0) n = n.slice(0, b);
  }
  return n.replace(/[. +]/g, '_');
}

const PLAIN_NAME = /^[a-z0-9_-]*$/;
