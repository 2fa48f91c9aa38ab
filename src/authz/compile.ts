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

import type { Action, DenyResponseConfig, RuleConfig } from '../config/types.js';
import type { DenyResponse, HeaderToSet } from '../core/decision.js';
import {
  ExtensionResolver,
  hasOwnKeys,
  SYNTHETIC_RULE_NAMES,
  type ExtensionProblemListener,
  type ResolvableRule,
} from './extensions.js';
import { compileMatch, firstMatch, mismatch, type CompiledMatch, type MatchInput } from './match.js';
import {
  auditVariant,
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

  private constructor(
    rules: CompiledRule[],
    defaultAction: Action,
    allowedAudiences: ReadonlySet<string> | undefined,
  ) {
    this.rules = rules;
    this.byName = new Map(rules.map((r) => [r.name, r]));
    const plain = effective('default', defaultAction, EMPTY_REQUIREMENT);
    const defaultRule = { index: -1, plain, guarded: guardedVariant(plain) };
    this.defaultRule = defaultRule;
    this.extensions = new ExtensionResolver(
      {
        byName: (name) => this.byName.get(name),
        match: (input) => this.match(input),
        defaultRule,
      },
      allowedAudiences,
    );
    this.summary = Object.freeze([
      ...rules.map((r) => ({ name: r.name, action: r.action, match: r.match.matchText })),
      { name: 'default', action: defaultAction, match: '(no rule matched)' },
    ]);
  }

  /**
   * Compiles `rules` (already structurally validated). Semantic problems are
   * pushed onto `problems` with their config path. `knownIssuers`, when given,
   * is the set of issuer names `require.issuers` may name (include "self" when
   * the token endpoint is enabled). `allowedAudiences`, when given, is what the
   * `audience` context extension may name (upstream.token.allowed_audiences).
   */
  static compile(
    rules: readonly RuleConfig[],
    defaultAction: Action,
    problems: string[],
    knownIssuers?: ReadonlySet<string>,
    allowedAudiences?: ReadonlySet<string>,
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
      const denyResponse =
        rule.deny_response !== undefined
          ? compileDenyResponse(rule.deny_response, `${at}.deny_response`, named, problems)
          : undefined;
      const enforced = effective(name, rule.action, requirement, denyResponse ? { denyResponse } : {});
      const plain = rule.mode === 'audit' ? auditVariant(enforced, rule.audit_action ?? 'allow') : enforced;
      compiled.push({
        index: i,
        name,
        action: rule.action,
        match,
        plain,
        guarded: guardedVariant(plain),
      });
    });
    return new RuleSet(compiled, defaultAction, allowedAudiences);
  }

  /**
   * The rule that applies to a request: first matching rule (or the named
   * `rule` extension), with context_extensions overrides applied. Without
   * extensions this returns a precomputed object (no allocation).
   * onExtensionProblem hears of each unknown key ('ignored'), of a recognised
   * key with a blank value ('blank', the request is denied), of a key that would
   * loosen a configured rule ('loosening', the rule applies) and of an audience
   * that is not allowed ('audience', the request is denied).
   */
  resolve(
    input: MatchInput,
    contextExtensions: Readonly<Record<string, string>>,
    onExtensionProblem?: ExtensionProblemListener,
  ): EffectiveRule {
    if (!hasOwnKeys(contextExtensions)) {
      const rule = this.match(input) ?? this.defaultRule;
      return input.encodedSeparator ? rule.guarded : rule.plain;
    }
    return this.extensions.resolve(input, contextExtensions, onExtensionProblem);
  }

  /**
   * The rules in first-match order up to the one that matches, each with why it did not
   * (path, method, host, or an allow rule skipped on an encoded path). For explanations.
   */
  considered(input: MatchInput): { name: string; action: Action; matched: boolean; why?: string }[] {
    const out: { name: string; action: Action; matched: boolean; why?: string }[] = [];
    for (const r of this.rules) {
      if (input.encodedSeparator && skipOnEncodedPath(r)) {
        out.push({ name: r.name, action: r.action, matched: false, why: 'allow rule skipped: encoded path' });
        continue;
      }
      const why = mismatch(r.match, input);
      out.push({
        name: r.name,
        action: r.action,
        matched: why === undefined,
        ...(why ? { why: `${why} mismatch` } : {}),
      });
      if (why === undefined) return out;
    }
    return out;
  }

  private match(input: MatchInput): CompiledRule | undefined {
    return firstMatch(this.rules, input, input.encodedSeparator ? skipOnEncodedPath : undefined);
  }
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const BODY_PLACEHOLDER = /\{([a-z_]+)\}/g;
const PLACEHOLDERS: ReadonlySet<string> = new Set(['error', 'error_description', 'request_id']);
/** Headers a deny response may not set: Envoy owns them. */
const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'host',
]);

function compileDenyResponse(
  cfg: DenyResponseConfig,
  at: string,
  named: string,
  problems: string[],
): DenyResponse {
  const headers: HeaderToSet[] = [];
  for (const [rawName, value] of Object.entries(cfg.headers ?? {})) {
    const name = rawName.toLowerCase();
    if (!HEADER_NAME.test(name) || FORBIDDEN_HEADERS.has(name)) {
      problems.push(`${at}.headers.${rawName}: not a header a response may set${named}`);
      continue;
    }
    if (/[\r\n\0]/.test(value)) {
      problems.push(`${at}.headers.${rawName}: must not contain CR, LF or NUL${named}`);
      continue;
    }
    headers.push(Object.freeze({ key: name, value }));
  }
  if (cfg.body !== undefined) {
    for (const m of cfg.body.matchAll(BODY_PLACEHOLDER)) {
      if (!PLACEHOLDERS.has(m[1]!)) {
        problems.push(
          `${at}.body: unknown placeholder "${m[0]}" (allowed: {error}, {error_description}, {request_id})${named}`,
        );
      }
    }
  }
  return Object.freeze({
    ...(cfg.status !== undefined ? { status: cfg.status } : {}),
    headers: Object.freeze(headers),
    ...(cfg.body !== undefined ? { body: cfg.body } : {}),
  });
}
