// Route rules: compiled once from config (match, requirement, resolved variants),
// resolved per request (first match wins, or the `rule` context extension), then
// overridden by Envoy's per-route context_extensions (see extensions.ts).
//
// Paths flagged `encodedSeparator` by normalizePath (%2F, %5C, invalid
// percent-encoding, a backslash, "//..") never satisfy an `allow`: an `allow`
// rule does not match them (matching continues with later rules), and if the
// final action would still be `allow` (default_action, `rule` or `action`
// extension) it becomes `authenticate`. Such a path means different things to
// different backends, so it never skips authentication, while a valid token can
// still reach it.

import type { Action, RuleConfig } from '../config/types.js';
import {
  ExtensionResolver,
  hasOwnKeys,
  SYNTHETIC_RULE_NAMES,
  type ExtensionProblem,
  type ResolvableRule,
} from './extensions.js';
import { compileMatch, firstMatch, type CompiledMatch, type MatchInput } from './match.js';
import {
  compileRequirement,
  effective,
  guardedVariant,
  EMPTY_REQUIREMENT,
  type EffectiveRule,
} from './requirement.js';

interface CompiledRule extends ResolvableRule {
  readonly name: string;
  readonly action: Action;
  readonly match: CompiledMatch;
}

export interface RuleSummary {
  name: string;
  action: Action;
  match: string;
}

const RESERVED_NAMES: ReadonlySet<string> = new Set(['default', ...SYNTHETIC_RULE_NAMES]);

const skipOnEncodedPath = (r: CompiledRule): boolean => r.action === 'allow';

export class RuleSet {
  readonly summary: readonly RuleSummary[];
  private readonly rules: readonly CompiledRule[];
  private readonly byName: ReadonlyMap<string, CompiledRule>;
  private readonly defaultRule: ResolvableRule;
  private readonly extensions: ExtensionResolver;

  private constructor(rules: CompiledRule[], defaultAction: Action) {
    this.rules = rules;
    this.byName = new Map(rules.map((r) => [r.name, r]));
    const plain = effective('default', defaultAction, EMPTY_REQUIREMENT);
    const defaultRule = { index: -1, plain, guarded: guardedVariant(plain) };
    this.defaultRule = defaultRule;
    this.extensions = new ExtensionResolver({
      byName: (name) => this.byName.get(name),
      match: (input) => this.match(input),
      defaultRule,
    });
    this.summary = Object.freeze([
      ...rules.map((r) => ({ name: r.name, action: r.action, match: r.match.matchText })),
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
      if (RESERVED_NAMES.has(name)) problems.push(`${at}.name: "${name}" is reserved`);

      const match = compileMatch(rule.match, at, named, problems);
      const requirement = compileRequirement(rule, at, named, problems, knownIssuers);
      const plain = effective(name, rule.action, requirement);
      compiled.push({
        index: i,
        name,
        action: rule.action,
        match,
        plain,
        guarded: guardedVariant(plain),
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
      const rule = this.match(input) ?? this.defaultRule;
      return input.encodedSeparator ? rule.guarded : rule.plain;
    }
    return this.extensions.resolve(input, contextExtensions, onExtensionProblem);
  }

  private match(input: MatchInput): CompiledRule | undefined {
    return firstMatch(this.rules, input, input.encodedSeparator ? skipOnEncodedPath : undefined);
  }
}
