// Route rules: compiled once from config into matchers, resolved per request
// (first match wins), then overridden by Envoy's per-route context_extensions.
// evaluateRequirement checks a verified principal against the resolved rule.
//
// Decisions worth knowing (documented in the README):
// - Paths flagged `encodedSeparator` by normalizePath (%2F, %5C, invalid
//   percent-encoding, a backslash, "//..") never satisfy an `allow`: an `allow`
//   rule does not match them (matching continues with later rules), and if the
//   final action would still be `allow` (default_action, `rule` or `action`
//   extension) it becomes `authenticate`. Such a path means different things
//   to different backends, so it never skips authentication, while a valid
//   token can still reach it.
// - Rule paths compare with the normalised request path, in which non-ASCII
//   characters stay percent-encoded (UTF-8, upper-case hex): a rule may write
//   "/café" or "/caf%C3%A9", both are stored as the latter. path_regex sees the
//   encoded form too.
// - `match.case_sensitive: false` compares path, path_prefix and
//   path_separated_prefix ASCII-case-insensitively (like Envoy's RouteMatch)
//   and gives path_regex the `i` flag.
// - Hosts compare case-insensitively, with one trailing dot dropped; the
//   request's `:port` is ignored unless the configured entry has a port. Like
//   Envoy virtual hosts, "*" matches any host, "*.example.com" / "*-api.example.com"
//   match a non-empty prefix before the suffix, "api.*" a non-empty suffix.
// - context_extensions keys other than rule, action, scopes_all, scopes_any,
//   issuers and audience are ignored (reported through onExtensionProblem).
//   An unknown `rule` name or an invalid `action` fails closed (deny). A
//   recognised key present with an empty or blank value (typically an empty
//   template variable in envoy.yaml) also denies, reported through
//   onExtensionProblem: read as "no value", it would drop the scope or issuer
//   requirement it was meant to set.

import type { Action, RuleConfig } from '../config/types.js';
import { deny, type Deny } from '../core/decision.js';
import type { Principal } from '../core/request.js';
import { compileClaimReader, type ClaimReader } from './claims.js';
import { encodeRulePath, normalizePath } from './path.js';

export interface Requirement {
  readonly scopesAll: readonly string[];
  readonly scopesAny: readonly string[];
  readonly issuers?: ReadonlySet<string>;
  readonly claims: readonly {
    readonly name: string;
    readonly values: readonly (string | number | boolean)[];
  }[];
}

export interface EffectiveRule {
  readonly name: string;
  readonly action: Action;
  readonly requirement: Requirement;
  readonly audience?: readonly string[];
}

export interface MatchInput {
  readonly method: string;
  readonly path: string;
  readonly encodedSeparator: boolean;
  readonly host: string;
}

type ClaimValue = string | number | boolean;

interface CompiledCondition {
  readonly name: string;
  readonly values: readonly ClaimValue[];
  readonly read: ClaimReader;
}

/** A Requirement with its precomputed insufficient_scope text. */
interface CompiledRequirement extends Requirement {
  readonly scopeText: string;
}

const EMPTY_REQUIREMENT: CompiledRequirement = Object.freeze({
  scopesAll: Object.freeze([]) as readonly string[],
  scopesAny: Object.freeze([]) as readonly string[],
  claims: Object.freeze([]) as readonly CompiledCondition[],
  scopeText: '',
});

function makeRequirement(
  scopesAll: readonly string[],
  scopesAny: readonly string[],
  issuers: ReadonlySet<string> | undefined,
  claims: readonly { readonly name: string; readonly values: readonly ClaimValue[] }[],
): CompiledRequirement {
  const req: CompiledRequirement = {
    scopesAll,
    scopesAny,
    claims,
    scopeText: [...scopesAll, ...scopesAny].join(' '),
    ...(issuers ? { issuers } : {}),
  };
  return Object.freeze(req);
}

function effective(
  name: string,
  action: Action,
  requirement: Requirement,
  audience?: readonly string[],
): EffectiveRule {
  return Object.freeze(audience ? { name, action, requirement, audience } : { name, action, requirement });
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

// ---------------------------------------------------------------- rules

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

interface CompiledRule {
  readonly index: number;
  readonly name: string;
  readonly action: Action;
  readonly requirement: CompiledRequirement;
  /** The rule as resolved for a normal path. */
  readonly plain: EffectiveRule;
  /** The rule as resolved for an encodedSeparator path (allow → authenticate). */
  readonly guarded: EffectiveRule;
  readonly exact?: string;
  readonly prefix?: string;
  readonly separatedPrefix?: string;
  readonly regex?: RegExp;
  /** `match.case_sensitive: false`: exact/prefix values are stored ASCII-lower-cased. */
  readonly caseInsensitive: boolean;
  readonly methods?: ReadonlySet<string>;
  readonly hosts?: readonly HostMatcher[];
  readonly matchText: string;
}

function guardedVariant(rule: EffectiveRule): EffectiveRule {
  return rule.action === 'allow'
    ? effective(rule.name, 'authenticate', rule.requirement, rule.audience)
    : rule;
}

const RULE_EXTENSION_KEYS = new Set(['rule', 'action', 'scopes_all', 'scopes_any', 'issuers', 'audience']);
const ACTIONS: ReadonlySet<string> = new Set<Action>(['allow', 'deny', 'authenticate']);

/** Bound on the cache of rules derived from context_extensions. */
const EXTENSION_CACHE_MAX = 1024;

/** What resolve() reports about a context_extensions key. */
export type ExtensionProblem = 'ignored' | 'blank';

function isBlank(value: string): boolean {
  return value === '' || value.trim() === '';
}

function splitList(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(/\s+/)) if (part !== '') out.push(part);
  return out;
}

function hasOwnKeys(obj: Readonly<Record<string, string>>): boolean {
  for (const key in obj) if (Object.hasOwn(obj, key)) return true;
  return false;
}

function regexErrorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  // V8: "Invalid regular expression: /^(?:…)$/u: Unterminated group" → keep the cause.
  const m = /^Invalid regular expression: \/.*\/[a-z]*: (.*)$/s.exec(msg);
  return m ? m[1]! : msg;
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

export interface RuleSummary {
  name: string;
  action: Action;
  match: string;
}

export class RuleSet {
  readonly summary: readonly RuleSummary[];
  private readonly rules: readonly CompiledRule[];
  private readonly byName: ReadonlyMap<string, CompiledRule>;
  private readonly defaultPlain: EffectiveRule;
  private readonly defaultGuarded: EffectiveRule;
  private readonly unknownRule: EffectiveRule;
  private readonly invalidAction: EffectiveRule;
  private readonly blankExtension: EffectiveRule;
  private readonly extensionCache = new Map<string, EffectiveRule>();

  private constructor(rules: CompiledRule[], defaultAction: Action) {
    this.rules = rules;
    this.byName = new Map(rules.map((r) => [r.name, r]));
    this.defaultPlain = effective('default', defaultAction, EMPTY_REQUIREMENT);
    this.defaultGuarded = guardedVariant(this.defaultPlain);
    this.unknownRule = effective('unknown-rule', 'deny', EMPTY_REQUIREMENT);
    this.invalidAction = effective('invalid-action', 'deny', EMPTY_REQUIREMENT);
    this.blankExtension = effective('blank-extension', 'deny', EMPTY_REQUIREMENT);
    this.summary = Object.freeze([
      ...rules.map((r) => ({ name: r.name, action: r.action, match: r.matchText })),
      { name: 'default', action: defaultAction, match: '(no rule matched)' },
    ]);
  }

  /**
   * Compiles `rules` (already structurally validated). Semantic problems are
   * pushed onto `problems` with their config path. `knownIssuers`, when given,
   * is the set of issuer names `require.issuers` may name (include "self" when
   * the token endpoint is enabled).
   */
  static compile(
    rules: readonly RuleConfig[],
    defaultAction: Action,
    problems: string[],
    knownIssuers?: ReadonlySet<string>,
  ): RuleSet {
    const compiled: CompiledRule[] = [];
    const firstIndexByName = new Map<string, number>();
    rules.forEach((rule, i) => {
      const at = `rules[${i}]`;
      const name = rule.name ?? at;
      const named = rule.name !== undefined ? ` (rule "${rule.name}")` : '';
      const seen = firstIndexByName.get(name);
      if (seen !== undefined) {
        problems.push(`${at}.name: duplicate rule name "${name}" (also rules[${seen}])`);
      } else {
        firstIndexByName.set(name, i);
      }
      if (
        name === 'default' ||
        name === 'unknown-rule' ||
        name === 'invalid-action' ||
        name === 'blank-extension'
      ) {
        problems.push(`${at}.name: "${name}" is reserved`);
      }

      const match = rule.match ?? {};
      const parts: string[] = [];
      const caseInsensitive = match.case_sensitive === false;
      const paths: { path?: string; path_prefix?: string; path_separated_prefix?: string } = {};
      let regex: RegExp | undefined;
      for (const key of ['path', 'path_prefix', 'path_separated_prefix'] as const) {
        const raw = match[key];
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
      if (match.path_regex !== undefined) {
        parts.push(`path_regex=${match.path_regex}`);
        try {
          regex = new RegExp(`^(?:${match.path_regex})$`, caseInsensitive ? 'iu' : 'u');
        } catch (err) {
          problems.push(`${at}.match.path_regex: invalid regular expression: ${regexErrorText(err)}${named}`);
        }
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
      if (match.methods !== undefined) {
        methods = new Set(match.methods.map((m) => m.toUpperCase()));
        parts.push(`methods=${[...methods].join(',')}`);
        match.methods.forEach((m, j) => {
          if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(m)) {
            problems.push(`${at}.match.methods[${j}]: "${m}" is not an HTTP method${named}`);
          }
        });
      }
      let hosts: HostMatcher[] | undefined;
      if (match.hosts !== undefined) {
        hosts = match.hosts.map(compileHost);
        parts.push(`hosts=${match.hosts.map((h) => h.toLowerCase()).join(',')}`);
        match.hosts.forEach((h, j) => {
          const stars = h.split('*').length - 1;
          const wildcardOk = stars === 0 || (stars === 1 && (h.startsWith('*') || h.endsWith('*')));
          if (h === '' || !wildcardOk) {
            problems.push(
              `${at}.match.hosts[${j}]: "${h}" is not a host or a leading/trailing "*" wildcard${named}`,
            );
          }
        });
      }

      const requirement = compileRequirement(rule, at, named, problems, knownIssuers);
      const plain = effective(name, rule.action, requirement);
      compiled.push({
        index: i,
        name,
        action: rule.action,
        requirement,
        plain,
        guarded: guardedVariant(plain),
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
      });
    });
    return new RuleSet(compiled, defaultAction);
  }

  /**
   * The rule that applies to a request: first matching rule (or the named
   * `rule` extension), with context_extensions overrides applied. Without
   * extensions this returns a precomputed object (no allocation).
   * onExtensionProblem hears of each unknown key ('ignored') and of a
   * recognised key with a blank value ('blank', the request is denied).
   */
  resolve(
    input: MatchInput,
    contextExtensions: Readonly<Record<string, string>>,
    onExtensionProblem?: (key: string, problem: ExtensionProblem) => void,
  ): EffectiveRule {
    if (!hasOwnKeys(contextExtensions)) {
      const rule = this.match(input);
      if (rule === undefined) return input.encodedSeparator ? this.defaultGuarded : this.defaultPlain;
      return input.encodedSeparator ? rule.guarded : rule.plain;
    }
    return this.resolveWithExtensions(input, contextExtensions, onExtensionProblem);
  }

  private match(input: MatchInput): CompiledRule | undefined {
    const rules = this.rules;
    // Computed on first use by a case-insensitive rule.
    let lowerPath: string | undefined;
    // Computed on first use by a rule with `hosts`.
    let hostNoPort: string | undefined;
    let hostFull = '';
    let method: string | undefined;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (input.encodedSeparator && r.action === 'allow') continue;
      // Exact and prefix values of a case-insensitive rule are stored lower-cased; its regex has the `i` flag.
      const path = r.caseInsensitive ? (lowerPath ??= asciiLower(input.path)) : input.path;
      if (r.exact !== undefined && path !== r.exact) continue;
      if (r.prefix !== undefined && !path.startsWith(r.prefix)) continue;
      if (r.separatedPrefix !== undefined) {
        const sp = r.separatedPrefix;
        if (!path.startsWith(sp) || (path.length !== sp.length && path.charCodeAt(sp.length) !== 47))
          continue;
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
      if (r.regex !== undefined && !r.regex.test(input.path)) continue;
      return r;
    }
    return undefined;
  }

  private resolveWithExtensions(
    input: MatchInput,
    ext: Readonly<Record<string, string>>,
    onProblem: ((key: string, problem: ExtensionProblem) => void) | undefined,
  ): EffectiveRule {
    let cacheKey = '';
    for (const key in ext) {
      if (!Object.hasOwn(ext, key)) continue;
      if (!RULE_EXTENSION_KEYS.has(key)) {
        onProblem?.(key, 'ignored');
        continue;
      }
      const value = ext[key]!;
      if (isBlank(value)) {
        onProblem?.(key, 'blank');
        return this.blankExtension;
      }
      cacheKey += `${key}\u0000${value}\u0000`;
    }

    let base: CompiledRule | undefined;
    const ruleName = Object.hasOwn(ext, 'rule') ? ext.rule : undefined;
    if (ruleName !== undefined) {
      // Instead of matching: fail closed when the name is not configured.
      base = this.byName.get(ruleName);
      if (base === undefined) return this.unknownRule;
    } else {
      base = this.match(input);
    }
    const action = Object.hasOwn(ext, 'action') ? ext.action : undefined;
    if (action !== undefined && !ACTIONS.has(action)) return this.invalidAction;

    if (cacheKey === '') {
      // Only ignored keys: the precomputed rule, as without extensions.
      if (base === undefined) return input.encodedSeparator ? this.defaultGuarded : this.defaultPlain;
      return input.encodedSeparator ? base.guarded : base.plain;
    }
    const baseRule = base ? base.plain : this.defaultPlain;
    cacheKey = `${base ? base.index : -1}\u0000${input.encodedSeparator ? 1 : 0}\u0000${cacheKey}`;
    const cached = this.extensionCache.get(cacheKey);
    if (cached !== undefined) return cached;

    const result = applyExtensions(baseRule, ext, action as Action | undefined, input.encodedSeparator);
    if (this.extensionCache.size >= EXTENSION_CACHE_MAX) this.extensionCache.clear();
    this.extensionCache.set(cacheKey, result);
    return result;
  }
}

function applyExtensions(
  base: EffectiveRule,
  ext: Readonly<Record<string, string>>,
  action: Action | undefined,
  encodedSeparator: boolean,
): EffectiveRule {
  const req = base.requirement;
  const has = (k: string): boolean => Object.hasOwn(ext, k);
  let scopesAll = req.scopesAll;
  let scopesAny = req.scopesAny;
  if (has('scopes_all') || has('scopes_any')) {
    // Together they replace the rule's scope requirement.
    scopesAll = has('scopes_all') ? splitList(ext.scopes_all!) : [];
    scopesAny = has('scopes_any') ? splitList(ext.scopes_any!) : [];
  }
  // Values are not blank here: resolveWithExtensions denied those already.
  const issuers = has('issuers') ? new Set(splitList(ext.issuers!)) : req.issuers;
  const audience = has('audience') ? Object.freeze(splitList(ext.audience!)) : base.audience;
  let finalAction = action ?? base.action;
  if (encodedSeparator && finalAction === 'allow') finalAction = 'authenticate';
  const requirement =
    scopesAll === req.scopesAll && scopesAny === req.scopesAny && issuers === req.issuers
      ? req
      : makeRequirement(Object.freeze(scopesAll), Object.freeze(scopesAny), issuers, req.claims);
  return effective(base.name, finalAction, requirement, audience);
}

function compileRequirement(
  rule: RuleConfig,
  at: string,
  named: string,
  problems: string[],
  knownIssuers: ReadonlySet<string> | undefined,
): CompiledRequirement {
  const r = rule.require;
  if (r === undefined) return EMPTY_REQUIREMENT;
  const checkScopes = (key: 'scopes_all' | 'scopes_any'): readonly string[] => {
    const list = r[key] ?? [];
    list.forEach((s, j) => {
      if (s === '' || /\s/.test(s)) {
        problems.push(
          `${at}.require.${key}[${j}]: "${s}" can never match a scope (scopes contain no spaces)${named}`,
        );
      }
    });
    return Object.freeze([...new Set(list)]);
  };
  const scopesAll = checkScopes('scopes_all');
  const scopesAny = checkScopes('scopes_any');
  let issuers: ReadonlySet<string> | undefined;
  if (r.issuers !== undefined) {
    if (r.issuers.length === 0) {
      problems.push(`${at}.require.issuers: must not be empty (omit it to accept every issuer)${named}`);
    }
    r.issuers.forEach((name, j) => {
      if (knownIssuers && !knownIssuers.has(name)) {
        problems.push(`${at}.require.issuers[${j}]: unknown issuer "${name}"${named}`);
      }
    });
    issuers = new Set(r.issuers);
  }
  const claims: CompiledCondition[] = [];
  for (const [name, values] of Object.entries(r.claims ?? {})) {
    if (!Array.isArray(values) || values.length === 0) {
      problems.push(`${at}.require.claims.${name}: needs at least one value${named}`);
      continue;
    }
    claims.push(Object.freeze({ name, values: Object.freeze([...values]), read: compileClaimReader(name) }));
  }
  if (scopesAll.length === 0 && scopesAny.length === 0 && issuers === undefined && claims.length === 0) {
    return EMPTY_REQUIREMENT;
  }
  return makeRequirement(scopesAll, scopesAny, issuers, Object.freeze(claims));
}

// ---------------------------------------------------------------- evaluation

function conditionHolds(claim: unknown, values: readonly ClaimValue[]): boolean {
  if (Array.isArray(claim)) {
    for (let i = 0; i < claim.length; i++) if (values.includes(claim[i] as ClaimValue)) return true;
    return false;
  }
  if (typeof claim !== 'string' && typeof claim !== 'number' && typeof claim !== 'boolean') return false;
  return values.includes(claim);
}

/** Checks a verified principal against a requirement; undefined when it holds. */
export function evaluateRequirement(req: Requirement, principal: Principal): Deny | undefined {
  if (req.issuers !== undefined && !req.issuers.has(principal.issuer)) {
    return deny('issuer_not_allowed', 'the token issuer is not accepted on this route');
  }
  const scopes = principal.scopes;
  let ok = true;
  for (let i = 0; i < req.scopesAll.length && ok; i++) ok = scopes.has(req.scopesAll[i]!);
  if (ok && req.scopesAny.length > 0) {
    ok = false;
    for (let i = 0; i < req.scopesAny.length && !ok; i++) ok = scopes.has(req.scopesAny[i]!);
  }
  if (!ok) {
    const scope =
      (req as Partial<CompiledRequirement>).scopeText ?? [...req.scopesAll, ...req.scopesAny].join(' ');
    return deny('insufficient_scope', 'the token lacks the scope this route requires', { scope });
  }
  const claims = req.claims;
  for (let i = 0; i < claims.length; i++) {
    const c = claims[i]!;
    const read = (c as Partial<CompiledCondition>).read;
    const value = read ? read(principal.claims) : compileClaimReader(c.name)(principal.claims);
    if (!conditionHolds(value, c.values)) {
      return deny('claims_condition', "the token does not meet this route's conditions");
    }
  }
  return undefined;
}
