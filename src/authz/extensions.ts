// Envoy's per-route context_extensions applied over the matched (or named) rule.
//
// - Keys other than rule, action, scopes_all, scopes_any, issuers and audience
//   are ignored (reported through onProblem). An unknown `rule` name or an
//   invalid `action` fails closed (deny). A recognised key present with an
//   empty or blank value (typically an empty template variable in envoy.yaml)
//   also denies, reported through onProblem: read as "no value", it would drop
//   the scope or issuer requirement it was meant to set.
// - The service config is the floor; a route may only tighten it:
//   * a request the path matches to a configured `deny` rule is denied whatever
//     `action` or `rule` says (reported as 'loosening');
//   * over a configured rule (matched or named by `rule`), `action` applies only
//     when it is stricter (allow < optional < authenticate < deny), else the
//     rule's action stays (reported as 'loosening'); over default_action (no
//     rule matched) the route's action replaces it;
//   * `scopes_all` adds to the rule's scopes_all, `scopes_any` adds a second
//     group of which one scope must be held too, `issuers` narrows the rule's
//     issuers (their intersection);
//   * `mode: enforce` makes an audit rule enforce; `mode: audit` (a dry run, answered
//     as an allow) applies over default_action only: over a configured rule in
//     enforce mode it would loosen it (reported as 'loosening'). Any other value
//     fails closed (deny);
//   * `audience` must name audiences of upstream.token.allowed_audiences, else
//     the request is denied (reported as 'audience'), so a caller that reaches
//     the gRPC port cannot have a token minted for any audience it likes.
// - The derived rules are cached by (base rule, path guard, recognised keys), so
//   a route's extensions cost one map lookup after the first request.

import type { Action } from '../config/types.js';
import type { MatchInput } from './match.js';
import {
  auditVariant,
  effective,
  makeRequirement,
  EMPTY_REQUIREMENT,
  type EffectiveRule,
} from './requirement.js';

/**
 * What resolve() reports about a context_extensions key: 'ignored' (unknown key),
 * 'blank' (denied), 'loosening' (the service rule applies instead; `rule` names it),
 * 'audience' (not an allowed audience: denied; `value` is the requested audience).
 */
export type ExtensionProblem = 'ignored' | 'blank' | 'loosening' | 'audience';

export type ExtensionProblemListener = (
  key: string,
  problem: ExtensionProblem,
  rule?: string,
  value?: string,
) => void;

/** A configured rule as the resolver needs it. */
export interface ResolvableRule {
  readonly index: number;
  /** The rule as resolved for a normal path. */
  readonly plain: EffectiveRule;
  /** The rule as resolved for an encodedSeparator path (allow → authenticate). */
  readonly guarded: EffectiveRule;
}

export interface RuleLookup {
  byName(name: string): ResolvableRule | undefined;
  match(input: MatchInput): ResolvableRule | undefined;
  readonly defaultRule: ResolvableRule;
}

const RULE_EXTENSION_KEYS: ReadonlySet<string> = new Set([
  'rule',
  'action',
  'scopes_all',
  'scopes_any',
  'issuers',
  'audience',
  'mode',
]);
const ACTIONS: ReadonlySet<string> = new Set<Action>(['allow', 'deny', 'authenticate', 'optional']);

function isAction(value: string): value is Action {
  return ACTIONS.has(value);
}

/** Bound on the cache of rules derived from context_extensions. */
const EXTENSION_CACHE_MAX = 1024;

/** Names of the synthetic rules this resolver answers with; configured rules may not use them. */
export const SYNTHETIC_RULE_NAMES: readonly string[] = [
  'unknown-rule',
  'invalid-action',
  'blank-extension',
  'audience-not-allowed',
  'invalid-mode',
];

/** How strict an action is: a route's `action` may raise a configured rule's, never lower it. */
const STRICTNESS: Readonly<Record<Action, number>> = { allow: 0, optional: 1, authenticate: 2, deny: 3 };

/** Bound on the memo of audience values already checked. */
const AUDIENCE_MEMO_MAX = 256;

function isBlank(value: string): boolean {
  return value === '' || value.trim() === '';
}

function splitList(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(/\s+/)) if (part !== '') out.push(part);
  return out;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((x) => set.has(x));
}

export function hasOwnKeys(obj: Readonly<Record<string, string>>): boolean {
  for (const key in obj) if (Object.hasOwn(obj, key)) return true;
  return false;
}

export class ExtensionResolver {
  private readonly unknownRule = effective('unknown-rule', 'deny', EMPTY_REQUIREMENT);
  private readonly invalidAction = effective('invalid-action', 'deny', EMPTY_REQUIREMENT);
  private readonly blankExtension = effective('blank-extension', 'deny', EMPTY_REQUIREMENT);
  private readonly audienceNotAllowed = effective('audience-not-allowed', 'deny', EMPTY_REQUIREMENT);
  private readonly invalidMode = effective('invalid-mode', 'deny', EMPTY_REQUIREMENT);
  private readonly cache = new Map<string, EffectiveRule>();
  /** Raw `audience` values already checked against allowedAudiences. */
  private readonly audienceMemo = new Map<string, boolean>();

  /**
   * `allowedAudiences`: what the `audience` key may name; undefined when no token is
   * minted (upstream.token unset), where the key has nothing to act on.
   */
  constructor(
    private readonly rules: RuleLookup,
    private readonly allowedAudiences?: ReadonlySet<string>,
  ) {}

  resolve(
    input: MatchInput,
    ext: Readonly<Record<string, string>>,
    onProblem: ExtensionProblemListener | undefined,
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

    let base: ResolvableRule | undefined;
    const ruleName = Object.hasOwn(ext, 'rule') ? ext.rule : undefined;
    if (ruleName !== undefined) {
      // Instead of matching: fail closed when the name is not configured.
      base = this.rules.byName(ruleName);
      if (base === undefined) return this.unknownRule;
      // ...but a path the service denies stays denied whichever rule the route names.
      if (base.plain.action !== 'deny') {
        const matched = this.rules.match(input);
        if (matched !== undefined && matched.plain.action === 'deny') {
          onProblem?.('rule', 'loosening', matched.plain.name, ruleName);
          return matched.plain;
        }
      }
    } else {
      base = this.rules.match(input) ?? this.rules.defaultRule;
    }
    const rawAction = Object.hasOwn(ext, 'action') ? ext.action : undefined;
    let action: Action | undefined;
    if (rawAction !== undefined) {
      if (!isAction(rawAction)) return this.invalidAction;
      action = rawAction;
      // A configured rule's action is a floor; default_action is not a rule.
      if (base !== this.rules.defaultRule && STRICTNESS[action] < STRICTNESS[base.plain.action]) {
        onProblem?.('action', 'loosening', base.plain.name, action);
        if (base.plain.action === 'deny') return base.plain;
      }
    }
    const rawMode = Object.hasOwn(ext, 'mode') ? ext.mode : undefined;
    if (rawMode !== undefined) {
      if (rawMode !== 'enforce' && rawMode !== 'audit') return this.invalidMode;
      // A dry run answers with an allow: over a configured rule that enforces, it would loosen it.
      if (rawMode === 'audit' && base !== this.rules.defaultRule && !base.plain.dryRun)
        onProblem?.('mode', 'loosening', base.plain.name, rawMode);
    }
    const rawAudience = Object.hasOwn(ext, 'audience') ? ext.audience : undefined;
    if (rawAudience !== undefined && !this.audienceAllowed(rawAudience)) {
      onProblem?.('audience', 'audience', base.plain.name, rawAudience);
      return this.audienceNotAllowed;
    }

    // Only ignored keys: the precomputed rule, as without extensions.
    if (cacheKey === '') return input.encodedSeparator ? base.guarded : base.plain;
    cacheKey = `${base.index}\u0000${input.encodedSeparator ? 1 : 0}\u0000${cacheKey}`;
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined) return cached;

    const floor = base !== this.rules.defaultRule;
    const result = applyExtensions(base.plain, floor, ext, action, input.encodedSeparator);
    if (this.cache.size >= EXTENSION_CACHE_MAX) this.cache.clear();
    this.cache.set(cacheKey, result);
    return result;
  }

  /** Every audience of a (non-blank) `audience` value is allowed; memoised per value. */
  private audienceAllowed(value: string): boolean {
    const allowed = this.allowedAudiences;
    if (allowed === undefined) return true;
    const known = this.audienceMemo.get(value);
    if (known !== undefined) return known;
    const ok = splitList(value).every((a) => allowed.has(a));
    if (this.audienceMemo.size >= AUDIENCE_MEMO_MAX) this.audienceMemo.clear();
    this.audienceMemo.set(value, ok);
    return ok;
  }
}

function union(a: readonly string[], b: readonly string[]): readonly string[] {
  return Object.freeze([...new Set([...a, ...b])]);
}

/**
 * The rule with a route's extensions over it. `floor`: `base` is a configured rule,
 * whose action the route may only make stricter (over default_action it replaces it).
 * Requirements only tighten, whatever the base.
 */
function applyExtensions(
  rule: EffectiveRule,
  floor: boolean,
  ext: Readonly<Record<string, string>>,
  action: Action | undefined,
  encodedSeparator: boolean,
): EffectiveRule {
  const derived = applyToEnforced(rule.dryRun?.enforced ?? rule, floor, ext, action, encodedSeparator);
  // mode: enforce always applies; mode: audit only where the route sets the policy (over
  // default_action) or the rule is in audit mode already.
  const mode = Object.hasOwn(ext, 'mode') ? ext.mode : undefined;
  if (mode === 'enforce') return derived;
  if (rule.dryRun) return auditVariant(derived, rule.dryRun.auditAction);
  if (mode === 'audit' && !floor) return auditVariant(derived, 'allow');
  return derived;
}

function applyToEnforced(
  base: EffectiveRule,
  floor: boolean,
  ext: Readonly<Record<string, string>>,
  action: Action | undefined,
  encodedSeparator: boolean,
): EffectiveRule {
  const req = base.requirement;
  const has = (k: string): boolean => Object.hasOwn(ext, k);
  // Values are not blank here: resolve() denied those already.
  const scopesAll = has('scopes_all') ? union(req.scopesAll, splitList(ext.scopes_all!)) : req.scopesAll;
  let scopesAny = req.scopesAny;
  let scopesAnyAlso = req.scopesAnyAlso;
  if (has('scopes_any')) {
    const routeAny = Object.freeze([...new Set(splitList(ext.scopes_any!))]);
    // One of the rule's and one of the route's: a second group when the rule has one.
    if (scopesAny.length === 0) scopesAny = routeAny;
    else if (!sameSet(scopesAny, routeAny)) scopesAnyAlso = routeAny;
  }
  let issuers = req.issuers;
  if (has('issuers')) {
    const routeIssuers = splitList(ext.issuers!);
    issuers = new Set(issuers ? routeIssuers.filter((i) => issuers!.has(i)) : routeIssuers);
  }
  const audience = has('audience') ? Object.freeze(splitList(ext.audience!)) : base.audience;
  let finalAction = base.action;
  if (action !== undefined && (!floor || STRICTNESS[action] > STRICTNESS[base.action])) finalAction = action;
  if (encodedSeparator && (finalAction === 'allow' || finalAction === 'optional'))
    finalAction = 'authenticate';
  const requirement =
    scopesAll === req.scopesAll &&
    scopesAny === req.scopesAny &&
    scopesAnyAlso === req.scopesAnyAlso &&
    issuers === req.issuers
      ? req
      : makeRequirement(
          scopesAll,
          scopesAny,
          issuers,
          req.claims,
          req.expression,
          scopesAnyAlso,
          req.sourcePrincipals,
        );
  return effective(base.name, finalAction, requirement, {
    ...(audience ? { audience } : {}),
    ...(base.denyResponse ? { denyResponse: base.denyResponse } : {}),
  });
}
