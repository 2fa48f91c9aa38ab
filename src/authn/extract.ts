import type { TokenSourceConfig } from '../config/types.js';
import { credentialKey, decodeQueryComponent, forEachQueryParam } from '../core/query.js';
import type { AuthRequest } from '../core/request.js';
import type { ApiKeyLookup } from './api-keys.js';

// Token sources (token_sources) and API key sources (api_keys). A request carries at most
// one credential (see findCredential). Header prefixes match case-insensitively (RFC 7235
// auth schemes).

export type CompiledTokenSource =
  | {
      readonly kind: 'header';
      readonly name: string;
      readonly prefix: string;
      readonly prefixLower: string;
      /** An API key source: the value is a key to look up, not a token to verify. */
      readonly apiKeys?: ApiKeyLookup;
    }
  | { readonly kind: 'query'; readonly name: string; readonly apiKeys?: ApiKeyLookup }
  | { readonly kind: 'cookie'; readonly name: string; readonly apiKeys?: undefined };

export interface ExtractedToken {
  readonly token: string;
  readonly source: CompiledTokenSource;
  /** An empty token parameter or cookie is present too (see findCredential). */
  readonly strays?: boolean;
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

/** An API key source as a credential source: the whole header value, or the exact query parameter. */
export function compileApiKeySource(
  src: { readonly header?: string; readonly query?: string },
  apiKeys: ApiKeyLookup,
): CompiledTokenSource {
  return src.header !== undefined
    ? { kind: 'header', name: src.header.toLowerCase(), prefix: '', prefixLower: '', apiKeys }
    : { kind: 'query', name: src.query!, apiKeys };
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
  const found = { name, value: undefined as string | undefined };
  forEachQueryParam(rawPath, found, firstValueOf);
  return found.value;
}

function firstValueOf(found: { name: string; value?: string }, name: string, value: string): boolean {
  if (name !== found.name) return false;
  found.value = decodeQueryComponent(value);
  return true;
}

export { credentialKey };

/** The token sources compiled for the one-credential scan and the removals of an allow. */
export interface CredentialPlan {
  readonly sources: readonly CompiledTokenSource[];
  /** Header sources grouped by header name (two prefixes on one header count once). */
  readonly headers: readonly { readonly name: string; readonly sources: readonly HeaderSource[] }[];
  /** credentialKey of every query source name; empty without query sources. */
  readonly queryKeys: ReadonlySet<string>;
  readonly cookieKeys: ReadonlySet<string>;
  /**
   * Length of the shortest query / cookie key: credentialKey never makes a name longer,
   * so a shorter raw name cannot be a token name and is skipped without decoding it.
   */
  readonly minQueryKey: number;
  readonly minCookieKey: number;
}

type HeaderSource = Extract<CompiledTokenSource, { kind: 'header' }>;

export function compileCredentialPlan(sources: readonly CompiledTokenSource[]): CredentialPlan {
  const headers: { name: string; sources: HeaderSource[] }[] = [];
  const queryKeys = new Set<string>();
  const cookieKeys = new Set<string>();
  for (const s of sources) {
    if (s.kind === 'header') {
      const group = headers.find((h) => h.name === s.name);
      if (group) group.sources.push(s);
      else headers.push({ name: s.name, sources: [s] });
    } else if (s.kind === 'query') queryKeys.add(credentialKey(s.name));
    else cookieKeys.add(credentialKey(s.name));
  }
  const shortest = (keys: Set<string>) => Math.min(...[...keys].map((k) => k.length));
  return {
    sources,
    headers,
    queryKeys,
    cookieKeys,
    minQueryKey: shortest(queryKeys),
    minCookieKey: shortest(cookieKeys),
  };
}

/** More than one credential in the request (RFC 6750: a client uses one method only). */
export const MULTIPLE_CREDENTIALS = Object.freeze({ problem: 'multiple' as const });
/**
 * A token query parameter behind ";" (`a=1;access_token=…`): backends that split on ";"
 * read it, but Envoy's query_parameters_to_remove compares raw "&"-separated keys and
 * cannot remove it alone, so such a request is refused.
 */
export const HIDDEN_QUERY_CREDENTIAL = Object.freeze({ problem: 'hidden' as const });
export type CredentialProblem = typeof MULTIPLE_CREDENTIALS | typeof HIDDEN_QUERY_CREDENTIAL;

/** How many token values one header carries (Envoy joins repeated headers with ","). */
function headerCredentials(value: string, sources: readonly HeaderSource[]): number {
  let n = 0;
  for (const part of value.split(',')) {
    let i = 0;
    while (part.charCodeAt(i) === 32 || part.charCodeAt(i) === 9) i++;
    const element = i > 0 ? part.slice(i) : part;
    if (sources.some((s) => fromHeader(element, s) !== undefined)) n++;
  }
  return n;
}

/**
 * The request's one credential. Every configured source is looked at under every
 * spelling a backend would accept: more than one non-empty credential is
 * MULTIPLE_CREDENTIALS, a query credential behind ";" HIDDEN_QUERY_CREDENTIAL. The token
 * is read only from the configured spelling (a header with its prefix, the exact raw
 * query name, the exact cookie name); a lone credential under another spelling is not
 * read (undefined) and is removed by the allow. `strays`: an empty token parameter or
 * cookie is present too (the allow removes it, so its decision depends on the request).
 *
 * The common request (one Authorization header, no query, no cookie) costs one header
 * lookup per header source: the query is scanned only when there is a "?", cookies only
 * when there is a Cookie header.
 */
export function findCredential(
  req: AuthRequest,
  plan: CredentialPlan,
): ExtractedToken | CredentialProblem | undefined {
  let token: string | undefined;
  let source: CompiledTokenSource | undefined;
  let count = 0;
  let strays = false;
  for (const h of plan.headers) {
    const value = req.headers[h.name];
    if (typeof value !== 'string') continue;
    // Repeated header lines arrive joined with ",": count the values in them.
    const joined = value.indexOf(',') >= 0;
    if (joined) {
      const n = headerCredentials(value, h.sources);
      if (n === 0) continue;
      count += n;
      if (count > 1) return MULTIPLE_CREDENTIALS;
    }
    for (const s of h.sources) {
      const t = fromHeader(value, s);
      if (t !== undefined) {
        if (!joined && ++count > 1) return MULTIPLE_CREDENTIALS;
        token = t;
        source = s;
        break;
      }
    }
  }
  if (plan.queryKeys.size > 0 && req.rawPath.indexOf('?') >= 0) {
    const scan: QueryScan = { plan, token, source, count, strays, problem: undefined };
    forEachQueryParam(req.rawPath, scan, scanQueryParam);
    if (scan.problem) return scan.problem;
    ({ token, source, count, strays } = scan);
  }
  const cookie = req.headers.cookie;
  if (plan.cookieKeys.size > 0 && typeof cookie === 'string') {
    // Crumbs end at ";" and also at ",": Envoy joins two HTTP/1.1 Cookie lines with ",".
    const n = cookie.length;
    for (let start = 0, end: number; start < n; start = end + 1) {
      end = start;
      while (end < n && cookie.charCodeAt(end) !== 59 /* ; */ && cookie.charCodeAt(end) !== 44 /* , */) end++;
      if (end - start < plan.minCookieKey) continue;
      const crumb = cookie.slice(start, end);
      const eq = crumb.indexOf('=');
      const name = (eq < 0 ? crumb : crumb.slice(0, eq)).trim();
      if (name.length < plan.minCookieKey || !plan.cookieKeys.has(credentialKey(name))) continue;
      const value = eq < 0 ? '' : crumb.slice(eq + 1).trim();
      if (value.length === 0) strays = true;
      else if (++count > 1) return MULTIPLE_CREDENTIALS;
      else {
        const s = plan.sources.find((x) => x.kind === 'cookie' && x.name === name);
        if (s) {
          token = value;
          source = s;
        }
      }
    }
  }
  if (token === undefined || source === undefined || token.length === 0) return undefined;
  return strays ? { token, source, strays } : { token, source };
}

/** findCredential's state while it reads the query. */
interface QueryScan {
  readonly plan: CredentialPlan;
  token: string | undefined;
  source: CompiledTokenSource | undefined;
  count: number;
  strays: boolean;
  problem: CredentialProblem | undefined;
}

/** One query parameter for findCredential: true (stop) once the request has a problem. */
function scanQueryParam(scan: QueryScan, name: string, rawValue: string): boolean {
  const plan = scan.plan;
  if (name.indexOf(';') >= 0 || rawValue.indexOf(';') >= 0) {
    if (!hidesQueryCredential(name, rawValue, plan.queryKeys)) return false;
    scan.problem = HIDDEN_QUERY_CREDENTIAL;
    return true;
  }
  if (name.length < plan.minQueryKey || !plan.queryKeys.has(credentialKey(name))) return false;
  const value = decodeQueryComponent(rawValue);
  if (value.length === 0) scan.strays = true;
  else if (++scan.count > 1) {
    scan.problem = MULTIPLE_CREDENTIALS;
    return true;
  } else {
    const s = plan.sources.find((x) => x.kind === 'query' && x.name === name);
    if (s) {
      scan.token = value;
      scan.source = s;
    }
  }
  return false;
}

/** A query parameter with a ";" in it, in which some ";"-part names a token parameter. */
function hidesQueryCredential(name: string, value: string, keys: ReadonlySet<string>): boolean {
  for (const p of `${name}=${value}`.split(';')) {
    const eq = p.indexOf('=');
    if (keys.has(credentialKey(eq < 0 ? p : p.slice(0, eq)))) return true;
  }
  return false;
}

/**
 * The raw keys (as Envoy's query_parameters_to_remove compares them: up to the first
 * "=" of each "&"-separated parameter, not decoded) of every token query parameter under
 * any spelling; HIDDEN_QUERY_CREDENTIAL when one is behind ";"; undefined when none.
 */
export function tokenQueryKeys(
  rawPath: string,
  keys: ReadonlySet<string>,
): string[] | typeof HIDDEN_QUERY_CREDENTIAL | undefined {
  if (keys.size === 0) return undefined;
  const found: KeyScan = { keys, names: undefined, hidden: false };
  forEachQueryParam(rawPath, found, collectTokenKey);
  return found.hidden ? HIDDEN_QUERY_CREDENTIAL : found.names;
}

interface KeyScan {
  readonly keys: ReadonlySet<string>;
  names: string[] | undefined;
  hidden: boolean;
}

function collectTokenKey(scan: KeyScan, name: string, value: string): boolean {
  if (name.indexOf(';') >= 0 || value.indexOf(';') >= 0) {
    return (scan.hidden = hidesQueryCredential(name, value, scan.keys));
  }
  if (!scan.keys.has(credentialKey(name))) return false;
  scan.names ??= [];
  if (!scan.names.includes(name)) scan.names.push(name);
  return false;
}

/**
 * The cookie header without the token cookies (names compared by credentialKey, crumbs
 * separated by ";" or ","; `keep` is an exact name left in place): undefined when none
 * of them is in it, '' when nothing else is left. Cookies from joined Cookie lines are
 * separated by "; " as in one Cookie header, while a value with a "," in it (not allowed
 * by RFC 6265, but sent) arrives as it was.
 */
export function cookieHeaderWithout(
  cookieHeader: string,
  keys: ReadonlySet<string>,
  keep?: string,
): string | undefined {
  let removed = false;
  let out = '';
  let start = 0;
  const n = cookieHeader.length;
  while (start <= n) {
    let end = start;
    while (end < n) {
      const c = cookieHeader.charCodeAt(end);
      if (c === 59 /* ; */ || c === 44 /* , */) break;
      end++;
    }
    const crumb = cookieHeader.slice(start, end).trim();
    if (crumb.length > 0) {
      const eq = crumb.indexOf('=');
      const name = (eq < 0 ? crumb : crumb.slice(0, eq)).trim();
      if (name !== keep && keys.has(credentialKey(name))) removed = true;
      else if (out.length === 0) out = crumb;
      // After a "," a crumb with "=" is a cookie of its own (a joined line): "; " as one
      // Cookie header separates cookies; without "=" it was part of the value before.
      else out += (cookieHeader.charCodeAt(start - 1) === 44 && eq < 0 ? ',' : '; ') + crumb;
    }
    start = end + 1;
  }
  return removed ? out : undefined;
}
