import { compileClaimReader, type ClaimReader } from '../authz/claims.js';
import { compileExpression, type CompiledExpression } from '../authz/expressions.js';
import type { TokenProfileConfig, UpstreamTokenConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';

// What a downstream token holds, per route: upstream.token's claims (copied, static,
// computed), with a rule's own `token` over them, compiled once at load.
//
// Claims: iss, sub, aud, iat, exp, jti are set by the minter and never copied or
// overridden. `copy_claims` names local claims (after claim_mappings), read by the same
// claim-path reader as require.claims and claim_headers (compileClaimReader), so
// `realm_access.roles` and `https://example.com/claims.role` resolve to the same value
// everywhere. The value is always written under the LAST dot-separated segment (`roles`,
// `role`), so the upstream sees a flat claim. Two copy_claims entries that would land on
// the same name are a config error; rename with claim_mappings instead. Static `claims`
// override copied claims of the same name.

export const CONFIG_PATH = 'upstream.token';
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set(['iss', 'sub', 'aud', 'iat', 'exp', 'jti']);

export interface CopiedClaim {
  /** Name in the minted token (last path segment). */
  readonly target: string;
  readonly read: ClaimReader;
}

/** What one route's downstream token holds: upstream.token with the rule's `token` over it. */
export interface TokenProfile {
  /** false: `token: false`, no downstream token on this route. */
  readonly enabled: boolean;
  /** Some claims_expr reads the request: the token is minted afresh for every request. */
  readonly requestDependent: boolean;
  /** Distinguishes profiles in the reuse cache. */
  readonly id: number;
  readonly audiences: readonly string[];
  readonly ttlSeconds: number;
  readonly copied: readonly CopiedClaim[];
  readonly statics: Readonly<Record<string, unknown>>;
  readonly computed: readonly { readonly name: string; readonly expression: CompiledExpression }[];
}

/** A rule's `token` as passed to the minter. */
export interface RouteTokenConfig {
  readonly rule: string;
  /** Config path of the rule, for problems (e.g. "rules[2]"). */
  readonly at: string;
  readonly token: TokenProfileConfig | false;
}

function compileCopyClaims(
  cfg: { copy_claims: readonly string[]; claims: Record<string, unknown> },
  logger: Pick<Logger, 'info' | 'warn'>,
  problems: string[],
  path: string,
): CopiedClaim[] {
  const out: CopiedClaim[] = [];
  const targets = new Map<string, string>();
  for (const [i, name] of cfg.copy_claims.entries()) {
    const where = `${path}.copy_claims[${i}]`;
    const segments = name.split('.');
    if (segments.some((s) => s === '')) {
      problems.push(`${where}: "${name}" is not a valid claim name or dotted path`);
      continue;
    }
    const target = segments[segments.length - 1]!;
    if (RESERVED_CLAIMS.has(target)) {
      logger.warn(
        { config: where, claim: name },
        `${where}: ${target} is always set by the service and is never copied; entry ignored`,
      );
      continue;
    }
    const earlier = targets.get(target);
    if (earlier !== undefined) {
      problems.push(
        `${where}: "${name}" and "${earlier}" would both be copied as "${target}"; rename one with claim_mappings`,
      );
      continue;
    }
    targets.set(target, name);
    if (Object.hasOwn(cfg.claims, target)) {
      logger.info(
        { config: where, claim: target },
        `${where}: the static claim "${target}" overrides the copied value`,
      );
    }
    out.push({ target, read: compileClaimReader(name) });
  }
  return out;
}

function compileStaticClaims(
  claims: Record<string, unknown>,
  problems: string[],
  path: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const [name, value] of Object.entries(claims)) {
    if (RESERVED_CLAIMS.has(name)) {
      problems.push(
        `${path}.claims.${name}: reserved: iss, sub, aud, iat, exp and jti are always set by the service`,
      );
      continue;
    }
    if (value === undefined) continue;
    out[name] = structuredClone(value);
  }
  return out;
}

function compileClaimExpressions(
  exprs: Record<string, string>,
  statics: Readonly<Record<string, unknown>>,
  problems: string[],
  path: string,
): TokenProfile['computed'] {
  const out: { name: string; expression: CompiledExpression }[] = [];
  for (const [name, source] of Object.entries(exprs)) {
    const where = `${path}.claims_expr.${name}`;
    if (RESERVED_CLAIMS.has(name)) {
      problems.push(`${where}: reserved: iss, sub, aud, iat, exp and jti are always set by the service`);
      continue;
    }
    if (Object.hasOwn(statics, name)) {
      problems.push(`${where}: "${name}" is also a static claim; keep one`);
      continue;
    }
    const expression = compileExpression(source, where, 'value', problems);
    if (expression) out.push(Object.freeze({ name, expression }));
  }
  return Object.freeze(out);
}

export function compileProfile(
  base: UpstreamTokenConfig,
  over: TokenProfileConfig,
  id: number,
  logger: Pick<Logger, 'info' | 'warn'>,
  problems: string[],
  path: string,
  /** upstream.token's own profile: what a route does not override is taken from it as is. */
  inherited?: TokenProfile,
): TokenProfile {
  const own = inherited === undefined;
  const claims = over.claims ?? base.claims;
  const statics =
    own || over.claims !== undefined ? compileStaticClaims(claims, problems, path) : inherited.statics;
  const copied =
    own || over.claims !== undefined || over.copy_claims !== undefined
      ? compileCopyClaims(
          { copy_claims: over.copy_claims ?? base.copy_claims, claims },
          logger,
          problems,
          path,
        )
      : inherited.copied;
  const computed =
    own || over.claims !== undefined || over.claims_expr !== undefined
      ? compileClaimExpressions(over.claims_expr ?? base.claims_expr ?? {}, statics, problems, path)
      : inherited.computed;
  return Object.freeze({
    enabled: true,
    requestDependent: computed.some((c) => c.expression.requestDependent),
    id,
    audiences: Object.freeze([...(over.audiences ?? base.audiences)]),
    ttlSeconds: over.ttl_seconds ?? base.ttl_seconds,
    copied,
    statics,
    computed,
  });
}

export const DISABLED_PROFILE: TokenProfile = Object.freeze({
  enabled: false,
  requestDependent: false,
  id: -1,
  audiences: Object.freeze([]),
  ttlSeconds: 0,
  copied: Object.freeze([]),
  statics: Object.freeze({}),
  computed: Object.freeze([]),
});

/**
 * What a route's context_extensions `audience` may name: upstream.token.allowed_audiences,
 * else every audience configured in upstream.token and in the rules' token profiles.
 */
export function allowedAudiences(
  cfg: UpstreamTokenConfig,
  routes: readonly RouteTokenConfig[],
): ReadonlySet<string> {
  if (cfg.allowed_audiences !== undefined) return new Set(cfg.allowed_audiences);
  const out = new Set(cfg.audiences);
  for (const route of routes)
    if (route.token !== false) for (const a of route.token.audiences ?? []) out.add(a);
  return out;
}

const QUIET: Pick<Logger, 'info' | 'warn'> = { info: () => undefined, warn: () => undefined };

/**
 * The problems of upstream.token's claims and of every route profile, without
 * loading keys: lets a config check list them with the rule problems.
 */
export function tokenProfileProblems(
  cfg: UpstreamTokenConfig,
  routes: readonly RouteTokenConfig[],
): string[] {
  const problems: string[] = [];
  const inherited = compileProfile(cfg, {}, 0, QUIET, problems, CONFIG_PATH);
  for (const route of routes) {
    if (route.token !== false)
      compileProfile(cfg, route.token, 0, QUIET, problems, `${route.at}.token`, inherited);
  }
  return problems;
}
