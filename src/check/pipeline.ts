// The Check pipeline: request → rule → credential → authenticate (authn/authenticate.ts)
// → sender binding → requirement → allow (allow.ts) or deny (deny.ts). Synchronous on the
// common repeated-token path; the rest is split out: which credentials go upstream
// (credentials.ts), audit mode (audit.ts), CORS preflights (cors.ts).

import type { ApiKeyLookup } from '../authn/api-keys.js';
import { Authenticator } from '../authn/authenticate.js';
import { findCredential, type ExtractedToken } from '../authn/extract.js';
import type { CachedPrincipal, MemoHolder } from '../authn/principal-cache.js';
import { extractScopes } from '../authz/claims.js';
import type { ExtensionProblemListener } from '../authz/extensions.js';
import { DEFAULT_EXPRESSION_BUDGET_MS, ExpressionInput } from '../authz/expressions.js';
import { isAmbiguousPath, normalizePath } from '../authz/path.js';
import {
  evaluateExpression,
  evaluateRequirement,
  principalAllowed,
  type DryRun,
  type EffectiveRule,
} from '../authz/requirement.js';
import { deny, type Allow, type Decision, type Deny } from '../core/decision.js';
import type { AuthRequest, Principal } from '../core/request.js';
import { systemClock, type Clock } from '../core/time.js';
import { tracer } from '../observability/tracing.js';
import { Allows, dynamicMetadataFields, type AuthenticatedAllow } from './allow.js';
import { auditAnswer, type AuditHost } from './audit.js';
import { CORS_PREFLIGHT_RULE, isCorsPreflight } from './cors.js';
import { Credentials } from './credentials.js';
import { credentialDeny, denyByRule, mintFailure, ruleDeny } from './deny.js';
import { extensionProblemLogger } from './extension-problems.js';
import type { PipelineParts } from './parts.js';

export { METHOD_OVERRIDE_HEADERS } from './credentials.js';
export type { PipelineParts } from './parts.js';

/** Decides each Check request (see the top of this file). */
export class CheckPipeline {
  private readonly clock: Clock;
  private readonly authn: Authenticator;
  private readonly credentials: Credentials;
  private readonly allows: Allows;
  private readonly audit: AuditHost;
  /** Some dynamic_metadata field reads the request: allow decisions are not reused. */
  private readonly metadataRequestDependent: boolean;
  private readonly expressionBudgetMs: number;
  private readonly onExtensionProblem: ExtensionProblemListener;

  constructor(readonly parts: PipelineParts) {
    const clock = (this.clock = parts.clock ?? systemClock);
    this.metadataRequestDependent =
      parts.dynamicMetadata?.some((m) => m.expression.requestDependent) === true;
    this.expressionBudgetMs = parts.expressionBudgetMs ?? DEFAULT_EXPRESSION_BUDGET_MS;
    const scopeClaims = parts.scopeClaims;
    this.authn = new Authenticator({
      issuers: parts.issuers,
      claimMappers: parts.claimMappers,
      scopesOf: (claims) => extractScopes(claims, scopeClaims),
      maxTokenBytes: parts.maxTokenBytes,
      verifiedCacheMax: parts.verifiedCacheMax,
      ...(parts.cacheAdmission ? { cacheAdmission: parts.cacheAdmission } : {}),
      replay: parts.replay,
      clock,
      metrics: parts.metrics,
    });
    const set = [...parts.claimHeaders.headerNames];
    if (parts.minter && !set.includes(parts.minter.header)) set.push(parts.minter.header);
    this.credentials = new Credentials(parts.tokenSources, set, parts.allowMethodOverride === true);
    this.allows = new Allows(parts, this.credentials);
    this.onExtensionProblem = extensionProblemLogger(parts.logger);
    this.audit = {
      logger: parts.logger,
      metrics: parts.metrics,
      minter: parts.minter,
      allows: this.allows,
      credentials: this.credentials.plan,
      clock,
      authenticate: (token, deadline) => this.authenticate(token, deadline),
      expressionInput: (req, path, principal) => this.expressionInput(req, path, principal),
    };
  }

  /**
   * Decides one request. Synchronous (no promise) on the common repeated-token path:
   * a cached verification whose allow decision for this rule is still valid.
   */
  check(req: AuthRequest, deadline?: number): Decision | Promise<Decision> {
    const t = tracer;
    if (t === undefined) return this.decideCheck(req, deadline);
    return t.traceCheck(req, () => this.decideCheck(req, deadline));
  }

  /** Token → Principal (verified, mapped), or the reason it is refused (see authn/authenticate.ts). */
  authenticate(token: string, deadline?: number, known?: CachedPrincipal | null): Promise<Principal | Deny> {
    return this.authn.authenticate(token, deadline, known);
  }

  private decideCheck(req: AuthRequest, deadline: number | undefined): Decision | Promise<Decision> {
    // Before any rule: no rule decision about a path backends read differently can be trusted.
    if (this.parts.rejectAmbiguousPaths !== false && isAmbiguousPath(req.rawPath))
      return deny('request_invalid', 'the request path is ambiguous');
    if (this.parts.corsPreflight === 'allow' && isCorsPreflight(req))
      return this.allows.unverified(req, CORS_PREFLIGHT_RULE, 'cors_preflight');
    const np = normalizePath(req.rawPath);
    const rule = this.parts.rules.resolve(
      { method: req.method, path: np.path, encodedSeparator: np.encodedSeparator, host: req.host },
      req.contextExtensions,
      this.onExtensionProblem,
    );
    if (rule.dryRun !== undefined) return this.auditCheck(req, np.path, rule, rule.dryRun, deadline);
    return this.decideRule(req, np.path, rule, deadline);
  }

  /** A rule in audit mode: its enforce-mode decision is logged and counted, then answered as audit_action says. */
  private auditCheck(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    dryRun: DryRun,
    deadline: number | undefined,
  ): Decision | Promise<Decision> {
    const would = this.decideRule(req, path, dryRun.enforced, deadline);
    return would instanceof Promise
      ? would.then((w) => auditAnswer(this.audit, req, path, rule, dryRun, w, deadline))
      : auditAnswer(this.audit, req, path, rule, dryRun, would, deadline);
  }

  /** The decision of the resolved rule (in enforce mode). */
  private decideRule(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    deadline: number | undefined,
  ): Decision | Promise<Decision> {
    if (rule.action === 'deny') return denyByRule('rule_deny', 'access to this route is denied', rule, req);
    if (rule.action === 'allow') return this.allows.unverified(req, rule);
    // The connection's peer, before any token: it says who is calling, whatever the token.
    const peers = rule.requirement.sourcePrincipals;
    if (peers !== undefined && !principalAllowed(peers, req.source?.principal))
      return denyByRule('peer_not_allowed', 'the calling workload is not accepted on this route', rule, req);

    const extracted = findCredential(req, this.credentials.plan);
    if (extracted !== undefined && 'problem' in extracted)
      return ruleDeny(credentialDeny(extracted), rule, req);
    if (!extracted) {
      // optional: no token is an anonymous caller; a token that is present must verify.
      if (rule.action === 'optional') return this.allows.unverified(req, rule, 'anonymous');
      return denyByRule('token_missing', undefined, rule, req);
    }
    const apiKeys = extracted.source.apiKeys;
    if (apiKeys !== undefined) return this.apiKeyDecide(req, path, rule, extracted, apiKeys);
    const entry = this.authn.cached(extracted.token);
    // Revocable tokens always go the async way: they need a revocation lookup.
    if (entry && !entry.issuer.status) {
      // A cached verification says nothing about this request's certificate or DPoP proof.
      const bound = this.authn.senderBinding(req, entry.issuer, entry.principal, extracted);
      if (bound === undefined) return this.reuseOrDecide(req, path, rule, entry, extracted);
      if (!(bound instanceof Promise)) return ruleDeny(bound, rule, req, entry.issuer.name);
      return bound.then((d) =>
        d ? ruleDeny(d, rule, req, entry.issuer.name) : this.reuseOrDecide(req, path, rule, entry, extracted),
      );
    }
    return this.authenticateThenDecide(req, path, rule, extracted, deadline, entry ?? null);
  }

  /** An API key: its entry's principal (nothing to verify, no sender binding), then the decision a token gets. */
  private apiKeyDecide(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    extracted: ExtractedToken,
    apiKeys: ApiKeyLookup,
  ): Decision | Promise<Decision> {
    const found = apiKeys.check(extracted.token, this.clock.nowSeconds());
    if ('deny' in found) return ruleDeny(found.deny, rule, req);
    // The key's expiry and state were checked just now.
    return this.reuseOrDecide(req, path, rule, this.allows.apiKeyHolder(found.principal), extracted);
  }

  private async authenticateThenDecide(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    extracted: ExtractedToken,
    deadline: number | undefined,
    cached: CachedPrincipal | null,
  ): Promise<Decision> {
    const principal = await this.authenticate(extracted.token, deadline, cached);
    if ('kind' in principal) return ruleDeny(principal, rule, req);
    const issuer = this.authn.issuerNamed(principal.issuer);
    const unbound = await this.authn.senderBinding(req, issuer, principal, extracted);
    if (unbound) return ruleDeny(unbound, rule, req, principal.issuer);
    return this.decide(req, path, rule, principal, extracted, this.authn.cache?.peek(extracted.token));
  }

  /** A memoised allow for this token and rule, else a fresh decision. */
  private reuseOrDecide(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    entry: MemoHolder,
    extracted: ExtractedToken,
  ): Decision | Promise<Decision> {
    const memo = entry.allows?.get(rule);
    // One credential (checked before): a header or query token's removal is the same for
    // every request, unless an empty token parameter or cookie is to be removed too.
    if (
      memo &&
      memo.source === extracted.source &&
      !extracted.strays &&
      this.clock.nowMs() < memo.reuseUntil
    ) {
      // The allow's content does not depend on the request, but whether it applies does.
      let input: ExpressionInput | undefined;
      if (rule.requirement.expression?.requestDependent) {
        input = this.expressionInput(req, path, entry.principal);
        const problem = evaluateExpression(rule.requirement, input);
        if (problem) return ruleDeny(problem, rule, req, entry.principal.issuer);
      }
      if (this.parts.minter) this.parts.metrics.hits.mintedToken.inc();
      return this.limited(memo.decision, req, path, rule, entry.principal, input);
    }
    return this.decide(req, path, rule, entry.principal, extracted, entry);
  }

  /** Requirement check, then the allow decision (memoised on the cache entry when reusable). */
  private decide(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    principal: Principal,
    extracted: ExtractedToken,
    entry: MemoHolder | undefined,
  ): Decision | Promise<Decision> {
    const span = tracer?.startSpan('authz.require');
    let problem = evaluateRequirement(rule.requirement, principal);
    const { minter, dynamicMetadata } = this.parts;
    const profile = minter?.profile(rule.name);
    // Only when something reads it; its variables are built on first use and shared by the
    // rule's expression, claims_expr and dynamic_metadata.
    const input =
      rule.requirement.expression !== undefined ||
      dynamicMetadata !== undefined ||
      (profile !== undefined && profile.computed.length > 0)
        ? this.expressionInput(req, path, principal)
        : undefined;
    if (!problem && input && rule.requirement.expression)
      problem = evaluateExpression(rule.requirement, input);
    span?.end(problem?.reason);
    let extra: Record<string, unknown> | undefined;
    if (!problem && input && dynamicMetadata) {
      const result = dynamicMetadataFields(dynamicMetadata, input);
      if (result.ok) extra = result.fields;
      else problem = result.deny;
    }
    if (problem) return ruleDeny(problem, rule, req, principal.issuer);
    // A decision reused for the same token must not carry anything that varies between its
    // requests. (A request-dependent require.expression is evaluated again before each reuse.)
    const requestDependent = this.metadataRequestDependent || profile?.requestDependent === true;
    const o: AuthenticatedAllow = { req, rule, principal, extracted, entry, extra, requestDependent };
    if (!minter || profile?.enabled === false)
      return this.limited(this.allows.authenticated(o, undefined), req, path, rule, principal, input);
    return minter.mintEntry(principal, rule.audience, profile, input).then(
      (minted) => this.limited(this.allows.authenticated(o, minted), req, path, rule, principal, input),
      (err: unknown) => mintFailure(err, rule, req, principal.issuer),
    );
  }

  /** The variables of one request's expressions, with its share of the evaluation budget. */
  protected expressionInput(req: AuthRequest, path: string, principal: Principal): ExpressionInput {
    return new ExpressionInput(
      req,
      path,
      principal,
      this.clock.nowSeconds(),
      this.credentials.hidden,
      this.expressionBudgetMs,
    );
  }

  /**
   * An authenticated allow, counted against the rule's rate limits (if any). `input` is the
   * request's expression input when one was made: rate-limit keys and filters share its budget.
   */
  private limited(
    allow: Allow,
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    principal: Principal,
    input?: ExpressionInput,
  ): Decision | Promise<Decision> {
    const limiter = this.parts.rateLimiter;
    const limits = limiter?.forRule(rule.name);
    if (!limits) return allow;
    return limiter!.apply(
      allow,
      limits,
      principal,
      input ?? (() => this.expressionInput(req, path, principal)),
    );
  }
}
