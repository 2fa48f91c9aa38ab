import { unescape as percentDecode } from 'node:querystring';
import type { TokenSourceConfig } from '../config/types.js';
import type { AuthRequest } from '../core/request.js';

// Token sources (token_sources), tried in order; the first that yields a
// token wins. Header prefixes match case-insensitively (RFC 7235 auth schemes).

export type CompiledTokenSource =
  | { readonly kind: 'header'; readonly name: string; readonly prefix: string; readonly prefixLower: string }
  | { readonly kind: 'query'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string };

export interface ExtractedToken {
  readonly token: string;
  readonly source: CompiledTokenSource;
}

export function compileTokenSources(sources: readonly TokenSourceConfig[]): CompiledTokenSource[] {
  return sources.map((s) => {
    if (s.header !== undefined) {
      const prefix = s.prefix ?? '';
      return { kind: 'header', name: s.header.toLowerCase(), prefix, prefixLower: prefix.toLowerCase() };
    }
    if (s.query !== undefined) return { kind: 'query', name: s.query };
    return { kind: 'cookie', name: s.cookie! };
  });
}

function fromHeader(value: string, src: { prefixLower: string }): string | undefined {
  const n = src.prefixLower.length;
  if (n > 0) {
    if (value.length <= n || value.slice(0, n).toLowerCase() !== src.prefixLower) return undefined;
    value = value.slice(n);
  }
  // Tolerate extra spaces after the scheme; anything else stays for the strict syntax check.
  let i = 0;
  while (value.charCodeAt(i) === 32) i++;
  return i < value.length ? value.slice(i) : undefined;
}

/**
 * The value of the first query parameter whose raw name (as sent, not
 * percent-decoded) is `name`. Envoy strips query_parameters_to_remove by raw
 * name, so a token found under an encoded variant such as `acc%65ss_token`
 * could not be removed before the request reaches the upstream.
 */
export function queryParam(rawPath: string, name: string): string | undefined {
  const q = rawPath.indexOf('?');
  if (q < 0) return undefined;
  let end = rawPath.indexOf('#', q);
  if (end < 0) end = rawPath.length;
  let start = q + 1;
  while (start <= end) {
    let amp = rawPath.indexOf('&', start);
    if (amp < 0 || amp > end) amp = end;
    const nameEnd = start + name.length;
    if (
      nameEnd <= amp &&
      rawPath.startsWith(name, start) &&
      (nameEnd === amp || rawPath.charCodeAt(nameEnd) === 61) /* = */
    ) {
      return nameEnd === amp ? '' : decodeQueryValue(rawPath.slice(nameEnd + 1, amp));
    }
    start = amp + 1;
  }
  return undefined;
}

function decodeQueryValue(raw: string): string {
  if (raw.indexOf('%') < 0 && raw.indexOf('+') < 0) return raw;
  // form-urlencoded: "+" is a space; invalid percent sequences are kept as sent.
  return percentDecode(raw.replace(/\+/g, ' '));
}

/**
 * Every spelling of `name` as a raw key in the query (`access_token`, `access%5Ftoken`, …).
 * Envoy's query_parameters_to_remove compares raw keys, while the token was read with
 * decoded ones: removing only the decoded name would forward an encoded one upstream.
 */
export function queryParamRawNames(rawPath: string, name: string): string[] {
  const q = rawPath.indexOf('?');
  if (q < 0) return [];
  const h = rawPath.indexOf('#', q);
  const names: string[] = [];
  for (const part of rawPath.slice(q + 1, h < 0 ? undefined : h).split('&')) {
    const eq = part.indexOf('=');
    const raw = eq < 0 ? part : part.slice(0, eq);
    if (names.includes(raw)) continue;
    if (raw === name || new URLSearchParams(`${raw}=`).keys().next().value === name) names.push(raw);
  }
  return names;
}

export function cookieValue(cookieHeader: string, name: string): string | undefined {
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim();
      return v.length > 0 ? v : undefined;
    }
  }
  return undefined;
}

/**
 * The cookie header without the named cookies: undefined when none of them is
 * in it, '' when nothing else is left.
 */
export function cookieHeaderWithout(cookieHeader: string, names: readonly string[]): string | undefined {
  let present = false;
  for (let i = 0; i < names.length && !present; i++) present = cookieHeader.includes(names[i]!);
  if (!present) return undefined;
  let removed = false;
  const kept: string[] = [];
  for (const part of cookieHeader.split(';')) {
    const p = part.trim();
    if (p.length === 0) continue;
    const eq = p.indexOf('=');
    if (eq > 0 && names.includes(p.slice(0, eq).trim())) removed = true;
    else kept.push(p);
  }
  return removed ? kept.join('; ') : undefined;
}

export function extractToken(
  req: AuthRequest,
  sources: readonly CompiledTokenSource[],
): ExtractedToken | undefined {
  for (const source of sources) {
    let token: string | undefined;
    if (source.kind === 'header') {
      const value = req.headers[source.name];
      if (typeof value === 'string') token = fromHeader(value, source);
    } else if (source.kind === 'query') {
      token = queryParam(req.rawPath, source.name);
    } else {
      const cookie = req.headers.cookie;
      if (typeof cookie === 'string') token = cookieValue(cookie, source.name);
    }
    if (token !== undefined && token.length > 0) return { token, source };
  }
  return undefined;
}
