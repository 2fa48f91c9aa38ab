// What a resolved rule asks of a verified principal, and the check itself.
// evaluateRequirement runs after verification only; a requirement is compiled
// once from config (compileRequirement) or derived from context_extensions.

import type { Action, RuleConfig } from '../config/types.js';
import { deny, type Deny, type DenyResponse } from '../core/decision.js';
import type { Principal } from '../core/request.js';
import { compileClaimReader, type ClaimReader } from './claims.js';
import {
  compileExpression,
  ExpressionError,
  type CompiledExpression,
  type ExpressionInput,
} from './expressions.js';

export type ClaimValue = string | number | boolean;

export interface ClaimCondition {
  readonly name: string;
  readonly values: readonly ClaimValue[];
  /** Precompiled reader of `name`; compiled on the fly when absent (hand-built requirements). */
  readonly read?: ClaimReader;
}

export interface Requirement {
  readonly scopesAll: readonly string[];
  readonly scopesAny: readonly string[];
  /**
   * A second scopes_any group that must hold too: a route's context_extensions
   * `scopes_any` over a rule that has its own (extensions only tighten a rule).
   */
  readonly scopesAnyAlso?: readonly string[];
  readonly issuers?: ReadonlySet<string>;
  readonly claims: readonly ClaimCondition[];
  /** Precomputed insufficient_scope text (scopes_all, scopes_any, then scopesAnyAlso); computed when absent. */
  readonly scopeText?: string;
}

/** A compiled requirement: every derived field present. */
export interface CompiledRequirement extends Requirement {
  readonly claims: readonly (ClaimCondition & { readonly read: ClaimReader })[];
  readonly scopeText: string;
  /** require.expression, run after scopes and claims hold. */
  readonly expression?: CompiledExpression;
  /** require.source_principals: checked for every request, before the token. */
  readonly sourcePrincipals?: PrincipalMatcher;
}

/** require.source_principals, compiled: exact names and trailing-* prefixes. */
export interface PrincipalMatcher {
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
}

/** Whether the peer principal (absent without a client certificate) is one the list allows. */
export function principalAllowed(m: PrincipalMatcher, principal: string | undefined): boolean {
  if (principal === undefined || principal === '') return false;
  if (m.exact.has(principal)) return true;
  for (let i = 0; i < m.prefixes.length; i++) if (principal.startsWith(m.prefixes[i]!)) return true;
  return false;
}

function compilePrincipals(list: readonly string[], at: string, named: string, problems: string[]) {
  if (list.length === 0) {
    problems.push(`${at}: must not be empty (omit it to accept every peer)${named}`);
    return undefined;
  }
  const exact = new Set<string>();
  const prefixes: string[] = [];
  list.forEach((p, j) => {
    const star = p.indexOf('*');
    if (p === '' || p === '*') {
      problems.push(`${at}[${j}]: "${p}" names no principal (omit the list to accept every peer)${named}`);
    } else if (star >= 0 && star !== p.length - 1) {
      problems.push(`${at}[${j}]: "${p}": "*" is only allowed at the end (a prefix)${named}`);
    } else if (star >= 0) prefixes.push(p.slice(0, -1));
    else exact.add(p);
  });
  return Object.freeze({ exact, prefixes: Object.freeze(prefixes) });
}

/** The rule that applies to one request, after matching and context_extensions. */
export interface EffectiveRule {
  readonly name: string;
  readonly action: Action;
  readonly requirement: CompiledRequirement;
  readonly audience?: readonly string[];
  readonly denyResponse?: DenyResponse;
  /**
   * mode: audit (a dry run): `enforced` is the same rule in enforce mode, whose decision is
   * logged and counted; the request is then answered as `auditAction` says.
   */
  readonly dryRun?: DryRun;
}

export type AuditAction = 'allow' | 'deny';

export interface DryRun {
  readonly auditAction: AuditAction;
  readonly enforced: EffectiveRule;
}

/** The rule in audit mode: evaluated as `rule`, answered as `auditAction` says. */
export function auditVariant(rule: EffectiveRule, auditAction: AuditAction): EffectiveRule {
  const enforced = rule.dryRun?.enforced ?? rule;
  return Object.freeze({ ...enforced, dryRun: Object.freeze({ auditAction, enforced }) });
}

export interface RuleExtras {
  readonly audience?: readonly string[];
  readonly denyResponse?: DenyResponse;
}

const NO_STRINGS: readonly string[] = Object.freeze([]);

export const EMPTY_REQUIREMENT: CompiledRequirement = Object.freeze({
  scopesAll: NO_STRINGS,
  scopesAny: NO_STRINGS,
  claims: Object.freeze([]),
  scopeText: '',
});

export function makeRequirement(
  scopesAll: readonly string[],
  scopesAny: readonly string[],
  issuers: ReadonlySet<string> | undefined,
  claims: CompiledRequirement['claims'],
  expression?: CompiledExpression,
  scopesAnyAlso?: readonly string[],
  sourcePrincipals?: PrincipalMatcher,
): CompiledRequirement {
  const req: CompiledRequirement = {
    scopesAll,
    scopesAny,
    claims,
    scopeText: scopeText(scopesAll, scopesAny, scopesAnyAlso),
    ...(scopesAnyAlso && scopesAnyAlso.length > 0 ? { scopesAnyAlso } : {}),
    ...(issuers ? { issuers } : {}),
    ...(expression ? { expression } : {}),
    ...(sourcePrincipals ? { sourcePrincipals } : {}),
  };
  return Object.freeze(req);
}

function scopeText(
  all: readonly string[],
  any: readonly string[],
  also: readonly string[] | undefined,
): string {
  return [...new Set([...all, ...any, ...(also ?? [])])].join(' ');
}

export function effective(
  name: string,
  action: Action,
  requirement: CompiledRequirement,
  extras: RuleExtras = {},
): EffectiveRule {
  return Object.freeze({
    name,
    action,
    requirement,
    ...(extras.audience ? { audience: extras.audience } : {}),
    ...(extras.denyResponse ? { denyResponse: extras.denyResponse } : {}),
  });
}

/**
 * The rule as resolved for an encodedSeparator path: neither an allow nor an
 * optional rule skips authentication there.
 */
export function guardedVariant(rule: EffectiveRule): EffectiveRule {
  if (rule.dryRun) {
    const guarded = guardedVariant(rule.dryRun.enforced);
    return guarded === rule.dryRun.enforced ? rule : auditVariant(guarded, rule.dryRun.auditAction);
  }
  return rule.action === 'allow' || rule.action === 'optional'
    ? effective(rule.name, 'authenticate', rule.requirement, rule)
    : rule;
}

export function compileRequirement(
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
  const claims: (ClaimCondition & { read: ClaimReader })[] = [];
  for (const [name, values] of Object.entries(r.claims ?? {})) {
    if (!Array.isArray(values) || values.length === 0) {
      problems.push(`${at}.require.claims.${name}: needs at least one value${named}`);
      continue;
    }
    claims.push(Object.freeze({ name, values: Object.freeze([...values]), read: compileClaimReader(name) }));
  }
  let expression: CompiledExpression | undefined;
  if (r.expression !== undefined) {
    expression = compileExpression(r.expression, `${at}.require.expression${named}`, 'bool', problems);
  }
  const sourcePrincipals =
    r.source_principals === undefined
      ? undefined
      : compilePrincipals(r.source_principals, `${at}.require.source_principals`, named, problems);
  if (
    scopesAll.length === 0 &&
    scopesAny.length === 0 &&
    issuers === undefined &&
    claims.length === 0 &&
    expression === undefined &&
    sourcePrincipals === undefined
  ) {
    return EMPTY_REQUIREMENT;
  }
  return makeRequirement(
    scopesAll,
    scopesAny,
    issuers,
    Object.freeze(claims),
    expression,
    undefined,
    sourcePrincipals,
  );
}

function conditionHolds(claim: unknown, values: readonly ClaimValue[]): boolean {
  if (Array.isArray(claim)) {
    for (let i = 0; i < claim.length; i++) {
      const item: unknown = claim[i];
      if (isClaimValue(item) && values.includes(item)) return true;
    }
    return false;
  }
  return isClaimValue(claim) && values.includes(claim);
}

function isClaimValue(v: unknown): v is ClaimValue {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
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
  const also = req.scopesAnyAlso;
  if (ok && also !== undefined && also.length > 0) {
    ok = false;
    for (let i = 0; i < also.length && !ok; i++) ok = scopes.has(also[i]!);
  }
  if (!ok) {
    const scope = req.scopeText ?? scopeText(req.scopesAll, req.scopesAny, also);
    return deny('insufficient_scope', 'the token lacks the scope this route requires', { scope });
  }
  const claims = req.claims;
  for (let i = 0; i < claims.length; i++) {
    const c = claims[i]!;
    const read = c.read ?? compileClaimReader(c.name);
    if (!conditionHolds(read(principal.claims), c.values)) {
      return deny('claims_condition', "the token does not meet this route's conditions");
    }
  }
  return undefined;
}

/**
 * Runs a requirement's expression (after evaluateRequirement held, so never for
 * an unverified token); undefined when it returns true.
 */
export function evaluateExpression(req: CompiledRequirement, input: ExpressionInput): Deny | undefined {
  const expression = req.expression;
  if (expression === undefined) return undefined;
  try {
    if (expression.evaluate(input) === true) return undefined;
    return deny('expression_false', "the request does not meet this route's policy");
  } catch (err) {
    const detail =
      err instanceof ExpressionError ? err.message : `evaluation failed: ${(err as Error).message}`;
    return deny('expression_error', "the route's policy could not be evaluated", {
      logDetail: `require.expression: ${detail}`,
    });
  }
}
