// Request matching of route rules: path (exact, prefix, separated prefix, regex),
// methods and hosts, compiled once from a rule's `match`.
//
// - Rule paths compare with the normalised request path, in which non-ASCII
//   characters stay percent-encoded (UTF-8, upper-case hex): a rule may write
//   "/café" or "/caf%C3%A9", both are stored as the latter. path_regex sees the
//   encoded form too.
// - `match.case_sensitive: false` compares path, path_prefix and
//   path_separated_prefix ASCII-case-insensitively (like Envoy's RouteMatch)
//   and compiles path_regex case-insensitively.
// - path_regex is RE2 (see path-regex.ts): whole-path match, linear time.
// - Hosts compare case-insensitively, with one trailing dot dropped; the
//   request's `:port` is ignored unless the configured entry has a port. Like
//   Envoy virtual hosts, "*" matches any host, "*.example.com" / "*-api.example.com"
//   match a non-empty prefix before the suffix, "api.*" a non-empty suffix.

import type { RuleConfig } from '../config/types.js';
import { encodeRulePath, normalizePath } from './path.js';
import { PathRegex } from './path-regex.js';

export interface MatchInput {
  readonly method: string;
  readonly path: string;
  readonly encodedSeparator: boolean;
  readonly host: string;
}

// ---------------------------------------------------------------- hosts

type HostMatcher = (hostNoPort: string, hostWithPort: string) => boolean;

function stripTrailingDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/** Index of the ":port" separator of a host, or -1 (IPv6 literals in brackets understood). */
function portIndex(host: string): number {
  const colon = host.lastIndexOf(':');
  if (colon < 0) return -1;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    return close >= 0 && colon > close ? colon : -1;
  }
  // A bare IPv6 literal has several colons and no port.
  return host.indexOf(':') === colon ? colon : -1;
}

function compileHost(entry: string): HostMatcher {
  const lower = entry.toLowerCase();
  const withPort = portIndex(lower) >= 0;
  const pattern = withPort ? lower : stripTrailingDot(lower);
  const pick = withPort ? (_: string, full: string) => full : (h: string) => h;
  if (pattern === '*') return () => true;
  if (pattern.startsWith('*')) {
    const suffix = pattern.slice(1);
    return (h, f) => {
      const s = pick(h, f);
      return s.length > suffix.length && s.endsWith(suffix);
    };
  }
  if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    return (h, f) => {
      const s = pick(h, f);
      return s.length > prefix.length && s.startsWith(prefix);
    };
  }
  return (h, f) => pick(h, f) === pattern;
}

// ---------------------------------------------------------------- paths

/**
 * ASCII-only lower-casing, as Envoy's `case_sensitive: false`: a normalised
 * path carries non-ASCII characters percent-encoded, and Unicode case mapping
 * could change its length or turn a non-ASCII letter into an ASCII one.
 */
function asciiLower(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
  }
  return s;
}

/** Why a configured path never equals a normalised request path, or undefined. */
function pathProblem(value: string, exact: boolean): string | undefined {
  if (!value.startsWith('/')) return 'must start with "/"';
  if (value.includes('?') || value.includes('#'))
    return 'must not contain a query or fragment (they are not matched)';
  if (value.includes('\\')) return 'must not contain "\\"';
  if (exact) {
    const n = normalizePath(value);
    if (n.path !== value) {
      return `"${value}" never matches a normalised request path; use "${n.path}"`;
    }
    return undefined;
  }
  if (value.includes('//')) return 'must not contain "//" (request paths have repeated slashes merged)';
  if (/%(?:[0-9a-fA-F]{2})/.test(value)) {
    for (const m of value.matchAll(/%([0-9a-fA-F]{2})/g)) {
      const code = parseInt(m[1]!, 16);
      if (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(code))) {
        return `"${m[0]}" is decoded in request paths; write "${String.fromCharCode(code)}"`;
      }
      if (m[1] !== m[1]!.toUpperCase()) return `"${m[0]}" must use upper-case hex ("${m[0].toUpperCase()}")`;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------- matchers

/** The compiled `match` of one rule. */
export interface CompiledMatch {
  readonly exact?: string;
  readonly prefix?: string;
  readonly separatedPrefix?: string;
  readonly regex?: PathRegex;
  /** `match.case_sensitive: false`: exact/prefix values are stored ASCII-lower-cased. */
  readonly caseInsensitive: boolean;
  readonly methods?: ReadonlySet<string>;
  readonly hosts?: readonly HostMatcher[];
  /** Human-readable summary for check-config. */
  readonly matchText: string;
}

/** Compiles a rule's `match`; problems are pushed with their config path (`at`) and rule name. */
export function compileMatch(
  match: RuleConfig['match'] | undefined,
  at: string,
  named: string,
  problems: string[],
): CompiledMatch {
  const m = match ?? {};
  const parts: string[] = [];
  const caseInsensitive = m.case_sensitive === false;
  const paths: { path?: string; path_prefix?: string; path_separated_prefix?: string } = {};
  let regex: PathRegex | undefined;
  for (const key of ['path', 'path_prefix', 'path_separated_prefix'] as const) {
    const raw = m[key];
    if (raw === undefined) continue;
    parts.push(`${key}=${raw}`);
    // Requests carry non-ASCII (and other non-URI) characters percent-encoded.
    const value = encodeRulePath(raw);
    if (value === undefined) {
      problems.push(`${at}.match.${key}: is not valid Unicode text${named}`);
      continue;
    }
    const problem = pathProblem(value, key !== 'path_prefix');
    if (problem) problems.push(`${at}.match.${key}: ${problem}${named}`);
    if (key === 'path_separated_prefix' && value.length > 1 && value.endsWith('/')) {
      problems.push(`${at}.match.path_separated_prefix: must not end with "/"${named}`);
    }
    paths[key] = caseInsensitive ? asciiLower(value) : value;
  }
  if (m.path_regex !== undefined) {
    parts.push(`path_regex=${m.path_regex}`);
    const compiled = PathRegex.compile(m.path_regex, caseInsensitive);
    if (typeof compiled === 'string') problems.push(`${at}.match.path_regex: ${compiled}${named}`);
    else regex = compiled;
  }
  if (caseInsensitive) {
    if (parts.length === 0) {
      problems.push(
        `${at}.match.case_sensitive: only applies to path, path_prefix, path_separated_prefix or path_regex${named}`,
      );
    }
    parts.push('case_sensitive=false');
  }
  let methods: Set<string> | undefined;
  if (m.methods !== undefined) {
    methods = new Set(m.methods.map((x) => x.toUpperCase()));
    parts.push(`methods=${[...methods].join(',')}`);
    m.methods.forEach((x, j) => {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(x)) {
        problems.push(`${at}.match.methods[${j}]: "${x}" is not an HTTP method${named}`);
      }
    });
  }
  let hosts: HostMatcher[] | undefined;
  if (m.hosts !== undefined) {
    hosts = m.hosts.map(compileHost);
    parts.push(`hosts=${m.hosts.map((h) => h.toLowerCase()).join(',')}`);
    m.hosts.forEach((h, j) => {
      const stars = h.split('*').length - 1;
      const wildcardOk = stars === 0 || (stars === 1 && (h.startsWith('*') || h.endsWith('*')));
      if (h === '' || !wildcardOk) {
        problems.push(
          `${at}.match.hosts[${j}]: "${h}" is not a host or a leading/trailing "*" wildcard${named}`,
        );
      }
    });
  }
  return {
    ...(paths.path !== undefined ? { exact: paths.path } : {}),
    ...(paths.path_prefix !== undefined ? { prefix: paths.path_prefix } : {}),
    ...(paths.path_separated_prefix !== undefined
      ? { separatedPrefix: paths.path_separated_prefix.replace(/\/$/, '') }
      : {}),
    ...(regex ? { regex } : {}),
    caseInsensitive,
    ...(methods ? { methods } : {}),
    ...(hosts ? { hosts } : {}),
    matchText: parts.length > 0 ? parts.join(' ') : '*',
  };
}

/**
 * The first entry whose match accepts the request. `skip` leaves an entry out
 * before its match is looked at (allow rules on an encodedSeparator path).
 */
export function firstMatch<T extends { readonly match: CompiledMatch }>(
  entries: readonly T[],
  input: MatchInput,
  skip?: (entry: T) => boolean,
): T | undefined {
  // Computed on first use by a case-insensitive rule.
  let lowerPath: string | undefined;
  // Computed on first use by a rule with `hosts`.
  let hostNoPort: string | undefined;
  let hostFull = '';
  let method: string | undefined;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (skip !== undefined && skip(entry)) continue;
    const r = entry.match;
    // Exact and prefix values of a case-insensitive rule are stored lower-cased; its regex ignores case.
    const path = r.caseInsensitive ? (lowerPath ??= asciiLower(input.path)) : input.path;
    if (r.exact !== undefined && path !== r.exact) continue;
    if (r.prefix !== undefined && !path.startsWith(r.prefix)) continue;
    if (r.separatedPrefix !== undefined) {
      const sp = r.separatedPrefix;
      if (!path.startsWith(sp) || (path.length !== sp.length && path.charCodeAt(sp.length) !== 47)) continue;
    }
    if (r.methods !== undefined) {
      method ??= input.method.toUpperCase();
      if (!r.methods.has(method)) continue;
    }
    if (r.hosts !== undefined) {
      if (hostNoPort === undefined) {
        hostFull = input.host.toLowerCase();
        const p = portIndex(hostFull);
        hostNoPort = stripTrailingDot(p >= 0 ? hostFull.slice(0, p) : hostFull);
        if (p >= 0) hostFull = hostNoPort + hostFull.slice(p);
      }
      let ok = false;
      for (let j = 0; j < r.hosts.length && !ok; j++) ok = r.hosts[j]!(hostNoPort, hostFull);
      if (!ok) continue;
    }
    if (r.regex !== undefined && !r.regex.matches(input.path)) continue;
    return entry;
  }
  return undefined;
}

/**
 * Why one rule's match does not accept the request (first failing matcher), or undefined
 * when it does. For explanations only: firstMatch is the matcher of the Check path.
 */
export function mismatch(r: CompiledMatch, input: MatchInput): 'path' | 'method' | 'host' | undefined {
  return firstMatch([{ match: { ...r, methods: undefined, hosts: undefined } }], input) === undefined
    ? 'path'
    : r.methods !== undefined && firstMatch([{ match: { ...r, hosts: undefined } }], input) === undefined
      ? 'method'
      : firstMatch([{ match: r }], input) === undefined
        ? 'host'
        : undefined;
}
