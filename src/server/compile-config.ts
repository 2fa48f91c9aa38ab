import { ApiKeyFile } from '../authn/api-keys.js';
import { IntrospectionCheck, type IntrospectionOptions } from '../authn/introspection.js';
import type { KeySource } from '../authn/keys/key-source.js';
import { compileSenderConstraint } from '../authn/sender-constraint.js';
import type { CompiledIssuer } from '../authn/verify.js';
import { compileClaimMappings, type ClaimMapper } from '../authz/claims.js';
import { RuleSet } from '../authz/compile.js';
import { compileExpression, type CompiledExpression } from '../authz/expressions.js';
import { compileRateLimits } from '../check/rate-limits.js';
import type { IssuerConfig, LoadedConfig, RuleConfig } from '../config/types.js';
import { ConfigError } from '../core/errors.js';
import { readSecretFile } from '../crypto/key-files.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ClaimHeaders } from '../upstream/claim-headers.js';
import { allowedAudiences, tokenProfileProblems, type RouteTokenConfig } from '../upstream/token-minter.js';

// The parts of a runtime that a config compiles to without any running state (no key
// source, store or signing key): checked together, so one ConfigError lists every problem.

/** What compiling a config and building its key sources, store and keys need. */
export interface BuildContext {
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** The config's stateless parts, compiled. */
export interface CompiledConfig {
  /** api_keys, in config order; their files are read now. */
  readonly apiKeyFiles: ApiKeyFile[];
  readonly rules: RuleSet;
  /** Each issuer's claim mappings, by issuer name. */
  readonly claimMappers: Map<string, ClaimMapper>;
  readonly claimHeaders: ClaimHeaders;
  readonly dynamicMetadata: { name: string; expression: CompiledExpression }[];
  readonly rateLimits: ReturnType<typeof compileRateLimits>;
}

/** Fields every allow's dynamic_metadata already has. */
const METADATA_FIELDS: ReadonlySet<string> = new Set(['issuer', 'sub', 'scope', 'claims', 'anonymous']);

function compileDynamicMetadata(
  fields: Record<string, string>,
  problems: string[],
): { name: string; expression: CompiledExpression }[] {
  const out: { name: string; expression: CompiledExpression }[] = [];
  for (const [name, source] of Object.entries(fields)) {
    const where = `upstream.dynamic_metadata.${name}`;
    if (METADATA_FIELDS.has(name)) {
      problems.push(`${where}: "${name}" is always set by the service; choose another name`);
      continue;
    }
    const expression = compileExpression(source, where, 'value', problems);
    if (expression) out.push({ name, expression });
  }
  return out;
}

/** Rules with a `token` profile, named as the rule set names them. */
export function routeTokens(rules: readonly RuleConfig[]): RouteTokenConfig[] {
  const out: RouteTokenConfig[] = [];
  rules.forEach((rule, i) => {
    if (rule.token !== undefined)
      out.push({ rule: rule.name ?? `rules[${i}]`, at: `rules[${i}]`, token: rule.token });
  });
  return out;
}

/**
 * Compiles rules, claim mappings, claim headers, dynamic metadata and rate limits, and
 * reads the API key files; throws one ConfigError with every problem found.
 */
export function compileConfig(loaded: LoadedConfig, ctx: BuildContext): CompiledConfig {
  const { config, baseDir } = loaded;
  const problems: string[] = [];
  const knownIssuers = new Set(config.issuers.map((i) => i.name));
  if (config.token_endpoint.enabled) knownIssuers.add('self');
  // API key sources are named like issuers; their files are read now (a bad one is a config error).
  const apiKeyFiles: ApiKeyFile[] = [];
  config.api_keys.forEach((src, i) => {
    knownIssuers.add(src.name);
    try {
      apiKeyFiles.push(
        new ApiKeyFile(src.name, `api_keys[${i}].keys_file`, src.keys_file, baseDir, {
          logger: ctx.logger,
        }),
      );
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
    }
  });
  const upstreamToken = config.upstream.token;
  const rules = RuleSet.compile(
    config.rules,
    config.default_action,
    problems,
    knownIssuers,
    upstreamToken ? allowedAudiences(upstreamToken, routeTokens(config.rules)) : undefined,
  );
  const claimMappers = new Map<string, ClaimMapper>();
  config.issuers.forEach((iss, i) =>
    claimMappers.set(
      iss.name,
      compileClaimMappings(iss.claim_mappings, problems, `issuers[${i}].claim_mappings`),
    ),
  );
  const claimHeaders = ClaimHeaders.compile(config.upstream.claim_headers, problems);
  const dynamicMetadata = compileDynamicMetadata(config.upstream.dynamic_metadata, problems);
  const metadataClaims = config.upstream.metadata_claims;
  if (metadataClaims.includes('*') && metadataClaims.length > 1)
    problems.push(
      'upstream.metadata_claims: "*" (every claim) stands alone; list claim names or "*", not both',
    );
  const ruleNames = new Set(['default', ...config.rules.map((r, i) => r.name ?? `rules[${i}]`)]);
  const rateLimits = compileRateLimits(config.rate_limits, ruleNames, problems);
  // Listed with the rule problems; the minter compiles the profiles again later.
  if (config.upstream.token)
    problems.push(...tokenProfileProblems(config.upstream.token, routeTokens(config.rules)));
  if (problems.length > 0) throw new ConfigError(problems);
  return { apiKeyFiles, rules, claimMappers, claimHeaders, dynamicMetadata, rateLimits };
}

/** An issuer's introspection endpoint as its token status (its client secret read now). */
function introspectionCheck(
  iss: IssuerConfig,
  index: number,
  claims: IntrospectionOptions['claims'],
  ctx: BuildContext,
): IntrospectionCheck {
  const cfg = iss.introspection!;
  const where = `issuers[${index}].introspection.client_secret_file`;
  const secret = readSecretFile(cfg.client_secret_file, ctx.baseDir, where);
  if (secret.length === 0) throw new ConfigError([`${where}: the secret is empty`]);
  return new IntrospectionCheck({
    issuer: iss.name,
    endpoint: cfg.endpoint,
    clientId: cfg.client_id,
    clientSecret: secret.toString('utf8'),
    cacheSeconds: cfg.cache_seconds,
    timeoutMs: cfg.timeout_ms,
    insecureHttp: iss.insecure_http,
    claims,
    logger: ctx.logger,
    metrics: ctx.metrics,
  });
}

/** The config's issuer `issuers[index]` over its key source, as verification reads it. */
export function compileIssuer(
  iss: IssuerConfig,
  index: number,
  keySource: KeySource,
  ctx: BuildContext,
): CompiledIssuer {
  const claimRules = {
    audiences: iss.audiences.includes('*') ? ('any' as const) : new Set(iss.audiences),
    clockSkewSeconds: iss.clock_skew_seconds,
    requiredClaims: iss.required_claims,
    maxLifetimeSeconds: iss.max_lifetime_seconds,
  };
  return {
    name: iss.name,
    issuer: iss.issuer,
    algorithms: new Set(iss.algorithms),
    keySource,
    ...claimRules,
    senderConstraint: compileSenderConstraint(iss),
    status: iss.introspection && introspectionCheck(iss, index, claimRules, ctx),
  };
}
