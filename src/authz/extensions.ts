// Envoy's per-route context_extensions applied over the matched (or named) rule.
//
// - Keys other than rule, action, scopes_all, scopes_any, issuers and audience
//   are ignored (reported through onProblem). An unknown `rule` name or an
//   invalid `action` fails closed (deny). A recognised key present with an
//   empty or blank value (typically an empty template variable in envoy.yaml)
//   also denies, reported through onProblem: read as "no value", it would drop
//   the scope or issuer requirement it was meant to set.
// - The derived rules are cached by (base rule, path guard, recognised keys), so
//   a route's extensions cost one map lookup after the first request.

import type { Action } from '../config/types.js';
import type { MatchInput } from './match.js';
import { effective, makeRequirement, EMPTY_REQUIREMENT, type EffectiveRule } from './requirement.js';

/** What resolve() reports about a context_extensions key. */
export type ExtensionProblem = 'ignored' | 'blank';

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
]);
const ACTIONS: ReadonlySet<string> = new Set<Action>(['allow', 'deny', 'authenticate', 'optional']);

function isAction(value: string): value is Action {
  return ACTIONS.has(value);
}

/** Bound on the cache of rules derived from context_extensions. */
const EXTENSION_CACHE_MAX = 1024;

/** Names of the synthetic rules this resolver answers with; configured rules may not use them. */
export const SYNTHETIC_RULE_NAMES: readonly string[] = ['unknown-rule', 'invalid-action', 'blank-extension'];

function isBlank(value: string): boolean {
  return value === '' || value.trim() === '';
}

function splitList(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(/\s+/)) if (part !== '') out.push(part);
  return out;
}

export function hasOwnKeys(obj: Readonly<Record<string, string>>): boolean {
  for (const key in obj) if (Object.hasOwn(obj, key)) return true;
  return false;
}

export class ExtensionResolver {
  private readonly unknownRule = effective('unknown-rule', 'deny', EMPTY_REQUIREMENT);
  private readonly invalidAction = effective('invalid-action', 'deny', EMPTY_REQUIREMENT);
  private readonly blankExtension = effective('blank-extension', 'deny', EMPTY_REQUIREMENT);
  private readonly cache = new Map<string, EffectiveRule>();

  constructor(private readonly rules: RuleLookup) {}

  resolve(
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

    let base: ResolvableRule | undefined;
    const ruleName = Object.hasOwn(ext, 'rule') ? ext.rule : undefined;
    if (ruleName !== undefined) {
      // Instead of matching: fail closed when the name is not configured.
      base = this.rules.byName(ruleName);
      if (base === undefined) return this.unknownRule;
    } else {
      base = this.rules.match(input) ?? this.rules.defaultRule;
    }
    const rawAction = Object.hasOwn(ext, 'action') ? ext.action : undefined;
    let action: Action | undefined;
    if (rawAction !== undefined) {
      if (!isAction(rawAction)) return this.invalidAction;
      action = rawAction;
    }

    // Only ignored keys: the precomputed rule, as without extensions.
    if (cacheKey === '') return input.encodedSeparator ? base.guarded : base.plain;
    cacheKey = `${base.index}\u0000${input.encodedSeparator ? 1 : 0}\u0000${cacheKey}`;
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined) return cached;

    const result = applyExtensions(base.plain, ext, action, input.encodedSeparator);
    if (this.cache.size >= EXTENSION_CACHE_MAX) this.cache.clear();
    this.cache.set(cacheKey, result);
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
  // Values are not blank here: resolve() denied those already.
  const issuers = has('issuers') ? new Set(splitList(ext.issuers!)) : req.issuers;
  const audience = has('audience') ? Object.freeze(splitList(ext.audience!)) : base.audience;
  let finalAction = action ?? base.action;
  if (encodedSeparator && (finalAction === 'allow' || finalAction === 'optional'))
    finalAction = 'authenticate';
  const requirement =
    scopesAll === req.scopesAll && scopesAny === req.scopesAny && issuers === req.issuers
      ? req
      : makeRequirement(
          Object.freeze(scopesAll),
          Object.freeze(scopesAny),
          issuers,
          req.claims,
          req.expression,
        );
  return effective(base.name, finalAction, requirement, {
    ...(audience ? { audience } : {}),
    ...(base.denyResponse ? { denyResponse: base.denyResponse } : {}),
  });
}
