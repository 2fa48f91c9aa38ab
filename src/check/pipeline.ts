import { LRUCache } from 'lru-cache';
import { deny, type Allow, type Decision, type Deny, type HeaderToSet } from '../core/decision.js';
import {
  compileCredentialPlan,
  cookieHeaderWithout,
  findCredential,
  HIDDEN_QUERY_CREDENTIAL,
  tokenQueryKeys,
  type CompiledTokenSource,
  type CredentialPlan,
  type CredentialProblem,
  type ExtractedToken,
} from '../authn/extract.js';
import type { ApiKeyLookup } from '../authn/api-keys.js';
import { exceedsBytes } from '../authn/jws.js';
import { verifyJwt, type CompiledIssuer } from '../authn/verify.js';
import { MemoryReplayCache, type ReplayCache } from '../authn/dpop.js';
import {
  checkSenderConstraint,
  confirmationOf,
  isDpopSource,
  type SenderCheckContext,
} from '../authn/sender-constraint.js';
import { extractScopes, type ClaimMapper } from '../authz/claims.js';
import { isAmbiguousPath, normalizePath, type NormalizedPath } from '../authz/path.js';
import type { RuleSet } from '../authz/compile.js';
import type { ExtensionProblemListener } from '../authz/extensions.js';
import {
  effective,
  EMPTY_REQUIREMENT,
  evaluateExpression,
  evaluateRequirement,
  principalAllowed,
  type DryRun,
  type EffectiveRule,
} from '../authz/requirement.js';
import {
  DEFAULT_EXPRESSION_BUDGET_MS,
  ExpressionError,
  ExpressionInput,
  hiddenCredentials,
  toJsonValue,
  type CompiledExpression,
  type HiddenCredentials,
} from '../authz/expressions.js';
import type { AuthRequest, Principal } from '../core/request.js';
import type { ClaimHeaders } from '../upstream/claim-headers.js';
import type { DownstreamTokenMinter, MintedToken } from '../upstream/downstream-token.js';
import type { RateLimiter } from './rate-limits.js';
import { recordDryRun, VERIFIED_TOKEN_DENIALS, withDryRun } from './dry-run.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ATTR, tracer } from '../observability/tracing.js';

/** Everything a check needs, compiled once from config (see runtime.ts). */
export interface PipelineParts {
  readonly issuers: readonly CompiledIssuer[];
  /** Claim mapping per issuer name. */
  readonly claimMappers: ReadonlyMap<string, ClaimMapper>;
  readonly tokenSources: readonly CompiledTokenSource[];
  readonly maxTokenBytes: number;
  /** Refuse ambiguous paths before any rule (see authz/path.ts); default true. */
  readonly rejectAmbiguousPaths?: boolean;
  /** cors_preflight: 'allow' lets CORS preflights through without a token; default 'authenticate'. */
  readonly corsPreflight?: 'allow' | 'authenticate';
  readonly scopeClaims: readonly string[];
  readonly rules: RuleSet;
  readonly claimHeaders: ClaimHeaders;
  /** Keep a verified token for the upstream (an unverified credential is always removed). */
  readonly forwardOriginalToken: boolean;
  /** Keep the method-override headers (METHOD_OVERRIDE_HEADERS); default false: removed from every allow. */
  readonly allowMethodOverride?: boolean;
  readonly minter?: DownstreamTokenMinter;
  /** Where DPoP proof jtis are remembered (the token store when there is one); default per process. */
  readonly replay?: ReplayCache;
  /** upstream.dynamic_metadata, compiled. */
  readonly dynamicMetadata?: readonly { readonly name: string; readonly expression: CompiledExpression }[];
  /** rate_limits: counted on every authenticated allow, memoised or not. */
  readonly rateLimiter?: RateLimiter;
  /** expression_budget_ms: the total time of one check's CEL evaluations. */
  readonly expressionBudgetMs?: number;
  /** Max entries of the verified-token cache; 0 disables it. */
  readonly verifiedCacheMax: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Seconds since the epoch; tests pin it. */
  readonly now?: () => number;
}

/** A principal whose allow decisions are memoised: a cached token's, or an API key's. */
interface MemoHolder {
  readonly principal: Principal;
  /** epoch seconds after which the entry is useless (exp + skew). */
  readonly expiresAt: number;
  /** Allow decisions already made for this principal, by effective rule (identity). */
  allows?: Map<EffectiveRule, MemoisedAllow>;
}

interface CachedPrincipal extends MemoHolder {
  readonly principal: Principal;
  readonly issuer: CompiledIssuer;
  /** Key-set generation the token was verified against; a key change invalidates. */
  readonly generation: number;
  /** epoch seconds after which the entry is useless (exp + skew). */
  readonly expiresAt: number;
  /** Raw claims, for the revocation check of issuers that have one (issuer.status). */
  readonly claims?: Record<string, unknown>;
  /** Allow decisions already made for this token, by effective rule (identity). */
  allows?: Map<EffectiveRule, MemoisedAllow>;
}

interface MemoisedAllow {
  readonly source: CompiledTokenSource;
  readonly decision: Allow;
  /** epoch ms */
  readonly reuseUntil: number;
}

/** Size accounting of the verified-token cache (see the constructor). */
const ENTRY_BUDGET_BYTES = 4096;
const ENTRY_OVERHEAD_BYTES = 1024;

/** Distinct rules one cached token keeps decisions for (bounded: rules with context_extensions vary). */
const MAX_MEMOISED_RULES = 8;

function withRule(d: Deny, rule: EffectiveRule, issuer?: string): Deny {
  d.rule = rule.name;
  if (issuer !== undefined) d.issuer = issuer;
  return d;
}

/**
 * Headers some frameworks read as the request method: rules match the real method, so an
 * allowed request does not carry them upstream (unless upstream.allow_method_override).
 */
export const METHOD_OVERRIDE_HEADERS: readonly string[] = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];

function credentialDeny(problem: CredentialProblem): Deny {
  return problem === HIDDEN_QUERY_CREDENTIAL
    ? deny('request_invalid', 'a token query parameter is separated by ";"', {
        logDetail: 'a token query parameter behind ";" cannot be removed by Envoy',
      })
    : deny('multiple_credentials', 'the request carries more than one credential');
}

const OPAQUE_TOKEN = /^[A-Za-z0-9_-]{16,512}$/;
/** Three base64url parts: what is verified as a JWT; anything else an introspection endpoint may vouch for. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * A CORS preflight, as Envoy's jwt_authn tells one: OPTIONS with a non-empty Origin and
 * Access-Control-Request-Method. A plain OPTIONS is not one.
 */
function isCorsPreflight(req: AuthRequest): boolean {
  if (req.method !== 'OPTIONS') return false;
  const h = req.headers;
  return !!h.origin && !!h['access-control-request-method'];
}

/** What a preflight let through under cors_preflight: allow is decided by (never a configured rule). */
const CORS_PREFLIGHT_RULE: EffectiveRule = effective('cors_preflight', 'allow', EMPTY_REQUIREMENT);

function withIssuer(d: Deny, issuer: string): Deny {
  d.issuer = issuer;
  return d;
}

/** The Check pipeline: request → rule → token → verify → require → enrich → decision. */
export class CheckPipeline {
  private readonly issuersByIss = new Map<string, CompiledIssuer>();
  private readonly issuersByName = new Map<string, CompiledIssuer>();
  private readonly replay: ReplayCache;
  private readonly injectable: readonly string[];
  private readonly credentials: CredentialPlan;
  /** What an allow rule removes (see allowUnverified); shared by every such decision. */
  private readonly unverifiedRemovals: {
    readonly headers: string[];
    readonly query: string[];
    readonly cookies: string[];
  };
  private readonly cache?: LRUCache<string, CachedPrincipal>;
  private readonly lookupIssuer = (iss: string) => this.issuersByIss.get(iss);
  private readonly now: () => number;
  /** Issuers that vouch for opaque access tokens: our own store first, then introspection endpoints in config order. */
  private readonly opaqueIssuers: readonly CompiledIssuer[];
  /** Some opaque issuer asks about any token that is not a compact JWS. */
  private readonly introspects: boolean;
  /** Token-source headers and query parameters that expressions never see. */
  private readonly hiddenCredentials: HiddenCredentials;
  /** Some dynamic_metadata field reads the request: allow decisions are not reused. */
  private readonly metadataRequestDependent: boolean;
  private readonly expressionBudgetMs: number;

  constructor(readonly parts: PipelineParts) {
    this.metadataRequestDependent =
      parts.dynamicMetadata?.some((m) => m.expression.requestDependent) === true;
    this.expressionBudgetMs = parts.expressionBudgetMs ?? DEFAULT_EXPRESSION_BUDGET_MS;
    for (const issuer of parts.issuers) {
      this.issuersByIss.set(issuer.issuer, issuer);
      this.issuersByName.set(issuer.name, issuer);
    }
    // Our own store first: this service's opaque tokens are never shown to another IdP.
    const opaque = parts.issuers.filter((i) => i.status?.issuesOpaqueTokens);
    this.opaqueIssuers = [
      ...opaque.filter((i) => !i.status?.introspects),
      ...opaque.filter((i) => i.status?.introspects),
    ];
    this.introspects = opaque.some((i) => i.status?.introspects);
    this.replay = parts.replay ?? new MemoryReplayCache();
    const names = [...parts.claimHeaders.headerNames];
    if (parts.minter && !names.includes(parts.minter.header)) names.push(parts.minter.header);
    if (!parts.allowMethodOverride)
      for (const h of METHOD_OVERRIDE_HEADERS) if (!names.includes(h)) names.push(h);
    this.injectable = names;
    this.credentials = compileCredentialPlan(parts.tokenSources);
    // Nothing was verified: every token source goes, forward_original_token or not.
    const removals = { headers: [...names], query: [] as string[], cookies: [] as string[] };
    for (const src of parts.tokenSources) {
      const list =
        src.kind === 'header' ? removals.headers : src.kind === 'query' ? removals.query : removals.cookies;
      if (!list.includes(src.name)) list.push(src.name);
    }
    this.unverifiedRemovals = removals;
    this.hiddenCredentials = hiddenCredentials(
      parts.tokenSources.filter((t) => t.kind === 'header').map((t) => t.name),
      parts.tokenSources.filter((t) => t.kind === 'query').map((t) => t.name),
    );
    if (parts.verifiedCacheMax > 0) {
      // Bounded by count and by an estimate of bytes: a typical entry (token, principal,
      // memoised decision with its wire bytes) is about 4 KiB; large tokens count for more,
      // so max_entries tokens of 16 KiB cannot hold 16x the memory.
      this.cache = new LRUCache({
        max: parts.verifiedCacheMax,
        maxSize: parts.verifiedCacheMax * ENTRY_BUDGET_BYTES,
        sizeCalculation: (_entry, token) => ENTRY_OVERHEAD_BYTES + token.length * 4,
      });
    }
    this.now = parts.now ?? (() => Date.now() / 1000);
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

  private decideCheck(req: AuthRequest, deadline: number | undefined): Decision | Promise<Decision> {
    // Before any rule: no rule decision about a path backends read differently can be trusted.
    if (this.parts.rejectAmbiguousPaths !== false && isAmbiguousPath(req.rawPath))
      return deny('request_invalid', 'the request path is ambiguous');
    if (this.parts.corsPreflight === 'allow' && isCorsPreflight(req))
      return this.allowUnverified(req, CORS_PREFLIGHT_RULE, 'cors_preflight');
    const np = normalizePath(req.rawPath);
    const rule = this.parts.rules.resolve(
      { method: req.method, path: np.path, encodedSeparator: np.encodedSeparator, host: req.host },
      req.contextExtensions,
      this.onIgnoredExtension,
    );
    if (rule.dryRun !== undefined) return this.auditCheck(req, np, rule, rule.dryRun, deadline);
    return this.decideRule(req, np, rule, deadline);
  }

  /** The decision of the resolved rule (in enforce mode). */
  private decideRule(
    req: AuthRequest,
    np: NormalizedPath,
    rule: EffectiveRule,
    deadline: number | undefined,
  ): Decision | Promise<Decision> {
    if (rule.action === 'deny')
      return this.ruleDeny(deny('rule_deny', 'access to this route is denied'), rule, req);
    if (rule.action === 'allow') return this.allowUnverified(req, rule);
    // The connection's peer, before any token: it says who is calling, whatever the token.
    const peers = rule.requirement.sourcePrincipals;
    if (peers !== undefined && !principalAllowed(peers, req.source?.principal))
      return this.ruleDeny(
        deny('peer_not_allowed', 'the calling workload is not accepted on this route'),
        rule,
        req,
      );

    const extracted = findCredential(req, this.credentials);
    if (extracted !== undefined && 'problem' in extracted)
      return this.ruleDeny(credentialDeny(extracted), rule, req);
    if (!extracted) {
      // optional: no token is an anonymous caller; a token that is present must verify.
      if (rule.action === 'optional') return this.allowUnverified(req, rule, 'anonymous');
      return this.ruleDeny(deny('token_missing'), rule, req);
    }
    const apiKeys = extracted.source.apiKeys;
    if (apiKeys !== undefined) return this.apiKeyDecide(req, np.path, rule, extracted, apiKeys);
    const entry = this.cachedVerification(extracted.token);
    // Revocable tokens always go the async way: they need a revocation lookup.
    if (entry && !entry.issuer.status) {
      // A cached verification says nothing about this request's certificate or DPoP proof.
      const bound = this.senderBinding(req, entry.issuer, entry.principal, extracted);
      if (bound === undefined) return this.reuseOrDecide(req, np.path, rule, entry, extracted);
      if (!(bound instanceof Promise))
        return this.ruleDeny(withRule(bound, rule, entry.issuer.name), rule, req);
      return bound.then((d) =>
        d
          ? this.ruleDeny(withRule(d, rule, entry.issuer.name), rule, req)
          : this.reuseOrDecide(req, np.path, rule, entry, extracted),
      );
    }
    return this.authenticateThenDecide(req, np.path, rule, extracted, deadline, entry ?? null);
  }

  /** An API key: its entry's principal (nothing to verify, no sender binding), then the decision a token gets. */
  private apiKeyDecide(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    extracted: ExtractedToken,
    apiKeys: ApiKeyLookup,
  ): Decision | Promise<Decision> {
    const found = apiKeys.check(extracted.token, this.now());
    if ('deny' in found) return this.ruleDeny(found.deny, rule, req);
    // One principal object per key entry and keys-file version: its allows are memoised
    // like a cached token's (the key's expiry and state were checked just now).
    const p = found.principal;
    let holder = this.apiKeyMemos.get(p);
    if (!holder) {
      holder = { principal: p, expiresAt: p.exp ?? Infinity };
      this.apiKeyMemos.set(p, holder);
    }
    return this.reuseOrDecide(req, path, rule, holder, extracted);
  }

  /** Memoised allows of API key principals (they live as long as their keys-file version). */
  private readonly apiKeyMemos = new WeakMap<Principal, MemoHolder>();

  /**
   * A rule in audit mode: its enforce-mode decision is logged and counted, then the request
   * is answered as audit_action says (see dry-run.ts).
   */
  private auditCheck(
    req: AuthRequest,
    np: NormalizedPath,
    rule: EffectiveRule,
    dryRun: DryRun,
    deadline: number | undefined,
  ): Decision | Promise<Decision> {
    const settle = (would: Decision): Decision | Promise<Decision> => {
      const outcome = recordDryRun(
        this.parts.logger,
        this.parts.metrics,
        req,
        rule,
        would,
        dryRun.auditAction,
      );
      let answer: Decision | Promise<Decision>;
      if (dryRun.auditAction === 'deny')
        answer =
          would.kind === 'deny'
            ? would
            : this.ruleDeny(deny('rule_deny', 'access to this route is denied'), rule, req);
      else answer = would.kind === 'allow' ? would : this.auditAllow(req, np.path, rule, would, deadline);
      return answer instanceof Promise
        ? answer.then((a) => withDryRun(a, outcome))
        : withDryRun(answer, outcome);
    };
    const would = this.decideRule(req, np, dryRun.enforced, deadline);
    return would instanceof Promise ? would.then(settle) : settle(would);
  }

  /**
   * audit_action allow of a would-be deny: enriched like an authenticated allow when the
   * token verified (and only the policy refused it), else like an anonymous allow.
   */
  private async auditAllow(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    would: Deny,
    deadline: number | undefined,
  ): Promise<Decision> {
    const extracted = VERIFIED_TOKEN_DENIALS.has(would.reason)
      ? findCredential(req, this.credentials)
      : undefined;
    if (extracted === undefined || 'problem' in extracted)
      return this.allowUnverified(req, rule, 'anonymous');
    // An API key is looked up in its keys file, never sent to a token verifier or an
    // introspection endpoint.
    const apiKeys = extracted.source.apiKeys;
    let principal: Principal;
    if (apiKeys !== undefined) {
      const found = apiKeys.check(extracted.token, this.now());
      if ('deny' in found) return this.allowUnverified(req, rule, 'anonymous');
      principal = found.principal;
    } else {
      const verified = await this.authenticate(extracted.token, deadline);
      if ('kind' in verified) return this.allowUnverified(req, rule, 'anonymous');
      principal = verified;
    }
    const minter = this.parts.minter;
    const profile = minter?.profile(rule.name);
    let minted: MintedToken | undefined;
    if (minter && profile?.enabled !== false) {
      try {
        const input =
          profile && profile.computed.length > 0 ? this.expressionInput(req, path, principal) : undefined;
        minted = await minter.mintEntry(principal, rule.audience, profile, input);
      } catch {
        return this.allowUnverified(req, rule, 'anonymous');
      }
    }
    // No cache entry: never memoised.
    return this.allow(req, rule, principal, extracted, undefined, minted, undefined, true);
  }

  /** Names the rule on a denial and hands it the rule's own answer (deny_response), if any. */
  private ruleDeny(d: Deny, rule: EffectiveRule, req: AuthRequest): Deny {
    d.rule = rule.name;
    if (rule.denyResponse) {
      d.response = rule.denyResponse;
      d.requestId = req.requestId;
    }
    return d;
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
    if (memo && memo.source === extracted.source && !extracted.strays && Date.now() < memo.reuseUntil) {
      // The allow's content does not depend on the request, but whether it applies does.
      let input: ExpressionInput | undefined;
      if (rule.requirement.expression?.requestDependent) {
        input = this.expressionInput(req, path, entry.principal);
        const problem = evaluateExpression(rule.requirement, input);
        if (problem) {
          problem.issuer = entry.principal.issuer;
          return this.ruleDeny(problem, rule, req);
        }
      }
      if (this.parts.minter) this.parts.metrics.hits.mintedToken.inc();
      return this.limited(memo.decision, req, path, rule, entry.principal, input);
    }
    return this.decide(req, path, rule, entry.principal, extracted, entry);
  }

  /** The variables of one request's expressions, with its share of the evaluation budget. */
  protected expressionInput(req: AuthRequest, path: string, principal: Principal): ExpressionInput {
    return new ExpressionInput(
      req,
      path,
      principal,
      this.now(),
      this.hiddenCredentials,
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

  private senderBinding(
    req: AuthRequest,
    issuer: CompiledIssuer | undefined,
    principal: Principal,
    extracted: ExtractedToken,
  ): Deny | undefined | Promise<Deny | undefined> {
    return checkSenderConstraint(
      issuer?.senderConstraint,
      principal.confirmation,
      req,
      extracted.token,
      extracted.source,
      this.senderContext,
    );
  }

  private readonly senderContext = (): SenderCheckContext => ({ replay: this.replay, now: this.now() });

  /**
   * An allow that verified nothing: besides the injectable (and method-override) headers,
   * every configured token source is removed — its headers, its query parameter under
   * every spelling a backend reads as the same name, its cookie out of every Cookie value
   * — forward_original_token or not, so the upstream never receives a credential that
   * nobody checked (and cannot mistake it for one we did). A token parameter behind ";"
   * cannot be removed by Envoy: such a request is refused.
   */
  private allowUnverified(
    req: AuthRequest,
    rule: EffectiveRule,
    why?: 'anonymous' | 'cors_preflight',
  ): Allow | Deny {
    const anonymous = why === 'anonymous';
    const r = this.unverifiedRemovals;
    let headers: HeaderToSet[] = [];
    let headersToRemove = r.headers;
    const cookie = req.headers.cookie;
    if (r.cookies.length > 0 && typeof cookie === 'string') {
      const rest = cookieHeaderWithout(cookie, this.credentials.cookieKeys);
      if (rest === '') headersToRemove = [...r.headers, 'cookie'];
      else if (rest !== undefined) headers = [{ key: 'cookie', value: rest }];
    }
    // Envoy strips query parameters by their raw keys: every spelling a backend reads as
    // the token parameter (access%5Ftoken, ACCESS_TOKEN, access.token, …) is listed.
    let queryParametersToRemove = r.query;
    if (r.query.length > 0 && req.rawPath.indexOf('?') >= 0) {
      const raw = tokenQueryKeys(req.rawPath, this.credentials.queryKeys);
      if (raw === HIDDEN_QUERY_CREDENTIAL) return this.ruleDeny(credentialDeny(raw), rule, req);
      if (Array.isArray(raw) && raw.some((k) => !r.query.includes(k)))
        queryParametersToRemove = [...new Set([...r.query, ...raw])];
    }
    // Nothing request-specific to add or remove: one decision per rule, answered from
    // its cached response bytes (see envoy/response.ts).
    const constant =
      headers.length === 0 && headersToRemove === r.headers && queryParametersToRemove === r.query;
    const memo = anonymous ? this.anonymousAllows : this.ruleAllows;
    if (constant) {
      const known = memo.get(rule);
      if (known) return known;
    }
    const allow: Allow = {
      kind: 'allow',
      headers,
      headersToRemove,
      queryParametersToRemove,
      reason: why ?? (rule.name === 'default' ? 'default_allow' : 'rule_allow'),
      ...(anonymous ? { anonymous } : {}),
      rule: rule.name,
      ...(constant ? { reusable: true } : {}),
    };
    if (constant) memo.set(rule, allow);
    return allow;
  }

  /** The constant allow of each allow rule and each optional rule's anonymous allow. */
  private readonly ruleAllows = new WeakMap<EffectiveRule, Allow>();
  private readonly anonymousAllows = new WeakMap<EffectiveRule, Allow>();

  // Named for its first use; it also hears of blank values and audiences that are not
  // allowed (both deny the request) and of attempts to loosen a configured rule.
  private readonly onIgnoredExtension: ExtensionProblemListener = (key, problem, rule, value) => {
    const logger = this.parts.logger;
    switch (problem) {
      case 'blank':
        logger.error(
          { extension_key: key },
          'context_extensions key has an empty value; request denied (check envoy.yaml)',
        );
        return;
      case 'loosening':
        logger.warn(
          { extension_key: key, extension_value: value, rule },
          'context_extensions cannot loosen the configured rule; the rule applies (check envoy.yaml)',
        );
        return;
      case 'audience':
        // An audience name is not a secret; it shows who asked for what.
        logger.error(
          { extension_key: key, audience: value, rule },
          'context_extensions audience is not in upstream.token.allowed_audiences; request denied',
        );
        return;
      case 'ignored':
        logger.debug({ extension_key: key }, 'ignored unknown context_extensions key');
    }
  };

  private async authenticateThenDecide(
    req: AuthRequest,
    path: string,
    rule: EffectiveRule,
    extracted: ExtractedToken,
    deadline: number | undefined,
    cached: CachedPrincipal | null,
  ): Promise<Decision> {
    const principal = await this.authenticate(extracted.token, deadline, cached);
    if ('kind' in principal) return this.ruleDeny(principal, rule, req);
    const unbound = await this.senderBinding(
      req,
      this.issuersByName.get(principal.issuer),
      principal,
      extracted,
    );
    if (unbound) return this.ruleDeny(withRule(unbound, rule, principal.issuer), rule, req);
    return this.decide(req, path, rule, principal, extracted, this.cache?.peek(extracted.token));
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
    const minter = this.parts.minter;
    const profile = minter?.profile(rule.name);
    // Only when something reads it; its variables are built on first use and shared by the
    // rule's expression, claims_expr and dynamic_metadata.
    const input =
      rule.requirement.expression !== undefined ||
      this.parts.dynamicMetadata !== undefined ||
      (profile !== undefined && profile.computed.length > 0)
        ? this.expressionInput(req, path, principal)
        : undefined;
    if (!problem && input && rule.requirement.expression)
      problem = evaluateExpression(rule.requirement, input);
    span?.end(problem?.reason);
    let extra: Record<string, unknown> | undefined;
    if (!problem && input && this.parts.dynamicMetadata) {
      const result = this.dynamicMetadata(input);
      if (result.ok) extra = result.fields;
      else problem = result.deny;
    }
    if (problem) {
      problem.issuer = principal.issuer;
      return this.ruleDeny(problem, rule, req);
    }
    // A decision reused for the same token must not carry anything that varies between its
    // requests. (A request-dependent require.expression is evaluated again before each reuse.)
    const requestDependent = this.metadataRequestDependent || profile?.requestDependent === true;
    if (!minter || profile?.enabled === false)
      return this.limited(
        this.allow(req, rule, principal, extracted, entry, undefined, extra, requestDependent),
        req,
        path,
        rule,
        principal,
        input,
      );
    return minter.mintEntry(principal, rule.audience, profile, input).then(
      (minted) =>
        this.limited(
          this.allow(req, rule, principal, extracted, entry, minted, extra, requestDependent),
          req,
          path,
          rule,
          principal,
          input,
        ),
      (err: unknown) => {
        if (err instanceof ExpressionError) {
          return this.ruleDeny(
            deny('expression_error', "the route's policy could not be evaluated", {
              issuer: principal.issuer,
              logDetail: err.message,
            }),
            rule,
            req,
          );
        }
        return deny('mint_failed', undefined, {
          rule: rule.name,
          issuer: principal.issuer,
          logDetail: (err as Error).message,
        });
      },
    );
  }

  /** upstream.dynamic_metadata for one request; an evaluation error denies (fail closed). */
  private dynamicMetadata(
    input: ExpressionInput,
  ): { ok: true; fields: Record<string, unknown> } | { ok: false; deny: Deny } {
    const fields: Record<string, unknown> = Object.create(null);
    for (const m of this.parts.dynamicMetadata ?? []) {
      try {
        fields[m.name] = toJsonValue(m.expression.evaluate(input));
      } catch (err) {
        const d = deny('expression_error', "the route's policy could not be evaluated", {
          logDetail: `upstream.dynamic_metadata.${m.name}: ${(err as Error).message}`,
        });
        return { ok: false, deny: d };
      }
    }
    return { ok: true, fields };
  }

  private allow(
    req: AuthRequest,
    rule: EffectiveRule,
    principal: Principal,
    extracted: ExtractedToken,
    entry: MemoHolder | undefined,
    minted: MintedToken | undefined,
    extra: Record<string, unknown> | undefined,
    requestDependent: boolean,
  ): Allow {
    const headers: HeaderToSet[] = [];
    this.parts.claimHeaders.build(principal, headers, (header, claim, why, quiet) => {
      const fields = { request_id: req.requestId, header, claim, why };
      if (quiet) this.parts.logger.debug(fields, 'claim header not set');
      else this.parts.logger.warn(fields, 'claim header not set');
    });
    const minter = this.parts.minter;
    if (minter && minted) headers.push({ key: minter.header, value: minted.value });
    const headersToRemove: string[] = [];
    for (const name of this.injectable) if (!headers.some((h) => h.key === name)) headersToRemove.push(name);
    const queryParametersToRemove: string[] = [];
    const source = extracted.source;
    // An API key never goes upstream.
    const forward = this.parts.forwardOriginalToken && source.apiKeys === undefined;
    if (!forward) {
      if (source.kind === 'header') {
        // A minted token written to the same header already replaces it; Envoy applies
        // removals after sets, so listing it would drop our own value.
        if (minter?.header !== source.name && !headersToRemove.includes(source.name))
          headersToRemove.push(source.name);
        // The proof goes with the token it was made for.
        if (isDpopSource(source) && !headersToRemove.includes('dpop')) headersToRemove.push('dpop');
      } else if (source.kind === 'query') {
        // The only token parameter in the request (any other spelling would have been a
        // second credential), under the exact name it was read from.
        queryParametersToRemove.push(source.name);
      }
    }
    // Empty token parameters and cookies beside the token go too.
    if (extracted.strays && req.rawPath.indexOf('?') >= 0) {
      const raw = tokenQueryKeys(req.rawPath, this.credentials.queryKeys);
      if (Array.isArray(raw))
        for (const k of raw)
          if (
            !(forward && source.kind === 'query' && k === source.name) &&
            !queryParametersToRemove.includes(k)
          )
            queryParametersToRemove.push(k);
    }
    const cookie = req.headers.cookie;
    if (typeof cookie === 'string' && ((source.kind === 'cookie' && !forward) || extracted.strays)) {
      const keep = forward && source.kind === 'cookie' ? source.name : undefined;
      const rest = cookieHeaderWithout(cookie, this.credentials.cookieKeys, keep);
      if (rest === '') headersToRemove.push('cookie');
      else if (rest !== undefined) headers.push({ key: 'cookie', value: rest });
    }
    // The decision only depends on (token, rule, token source) — except a cookie rewrite
    // or stray empty credentials to remove, which depend on the request — so it is
    // reused, response bytes included, until the minted token is due for renewal or the
    // verification expires.
    const reusable =
      entry !== undefined &&
      (source.kind === 'header' || source.kind === 'query') &&
      !extracted.strays &&
      !requestDependent &&
      (minted === undefined || minted.reuseUntil > 0);
    const allow: Allow = {
      kind: 'allow',
      headers,
      headersToRemove,
      queryParametersToRemove,
      metadata: {
        issuer: principal.issuer,
        sub: principal.sub,
        scope: principal.scope,
        claims: principal.claims,
        ...(extra ? { extra } : {}),
      },
      reason: 'authenticated',
      rule: rule.name,
      issuer: principal.issuer,
      reusable,
    };
    if (reusable) {
      const allows = (entry.allows ??= new Map());
      if (allows.size >= MAX_MEMOISED_RULES) allows.clear();
      allows.set(rule, {
        source,
        decision: allow,
        reuseUntil: Math.min(minted?.reuseUntil ?? Infinity, entry.expiresAt * 1000),
      });
    }
    return allow;
  }

  /** A still-valid cached verification of exactly this token string, if any. */
  private cachedVerification(token: string): CachedPrincipal | undefined {
    const cache = this.cache;
    if (!cache) return undefined;
    const cached = cache.get(token);
    if (!cached) {
      this.parts.metrics.misses.verifiedToken.inc();
      return undefined;
    }
    const source = cached.issuer.keySource;
    // Valid while the token has not expired, the key set is unchanged, and the keys
    // are still usable (not stale beyond max_stale_seconds).
    if (
      cached.expiresAt > this.now() &&
      cached.generation === source.generation &&
      source.current() !== undefined
    ) {
      this.parts.metrics.hits.verifiedToken.inc();
      return cached;
    }
    cache.delete(token);
    this.parts.metrics.misses.verifiedToken.inc();
    return undefined;
  }

  /** Token → Principal (verified, mapped), or the reason it is refused. */
  async authenticate(
    token: string,
    deadline?: number,
    /** The cache lookup the caller already did (null: it missed), so it is not repeated. */
    known?: CachedPrincipal | null,
  ): Promise<Principal | Deny> {
    const cached = known === undefined ? this.cachedVerification(token) : known;
    if (cached) {
      if (cached.issuer.status) {
        const revoked = await this.checkRevoked(cached.issuer, cached.claims ?? {});
        if (revoked) return revoked;
      }
      return cached.principal;
    }

    if (exceedsBytes(token, this.parts.maxTokenBytes))
      return deny('token_too_large', 'the token is too large');
    if (
      this.opaqueIssuers.length > 0 &&
      (this.introspects ? !COMPACT_JWS.test(token) : token.indexOf('.') < 0 && OPAQUE_TOKEN.test(token))
    ) {
      return this.authenticateOpaque(token);
    }

    const now = this.now();
    const span = tracer?.startSpan('jwt.verify');
    const res = await verifyJwt(token, this.lookupIssuer, {
      deadline,
      maxTokenBytes: this.parts.maxTokenBytes,
      now,
    });
    if (span) {
      if (res.issuer) span.setAttribute(ATTR.issuer, res.issuer.name);
      span.end(res.ok ? undefined : res.deny.reason);
    }
    if (!res.ok) {
      if (res.issuer) res.deny.issuer = res.issuer.name;
      return res.deny;
    }
    const issuer = res.issuer;
    if (issuer.status) {
      const revoked = await this.checkRevoked(issuer, res.claims);
      if (revoked) return revoked;
    }
    const principal = this.toPrincipal(issuer.name, res.claims, token);
    if (this.cache) {
      let exp = typeof res.claims.exp === 'number' ? res.claims.exp + issuer.clockSkewSeconds : now + 300;
      // Never beyond the validity of the certificate that verified it.
      if (res.keyNotAfter !== undefined) exp = Math.min(exp, res.keyNotAfter / 1000);
      // Raw claims are kept only where a cache hit needs them (the revocation check).
      const claims = issuer.status ? res.claims : undefined;
      this.cache.set(token, { principal, issuer, generation: res.generation, expiresAt: exp, claims });
    }
    return principal;
  }

  /**
   * Asks each opaque issuer in turn; the first that knows the token decides. When
   * none does and one could not answer, the answer is unavailable rather than inactive.
   */
  private async authenticateOpaque(token: string): Promise<Principal | Deny> {
    let unavailable: Deny | undefined;
    for (const issuer of this.opaqueIssuers) {
      const found = await issuer.status!.lookupOpaque(token);
      if (found.status === 'active') return this.toPrincipal(issuer.name, found.claims, token);
      if (found.status === 'refused') return withIssuer(found.deny, issuer.name);
      if (found.status === 'unavailable')
        unavailable ??= withIssuer(
          found.deny ?? deny('store_unavailable', 'the token store is unavailable'),
          issuer.name,
        );
    }
    if (unavailable) return unavailable;
    const only = this.opaqueIssuers.length === 1 ? this.opaqueIssuers[0]!.name : undefined;
    return deny('token_inactive', 'the token is not active', { issuer: only });
  }

  private async checkRevoked(
    issuer: CompiledIssuer,
    claims: Record<string, unknown>,
  ): Promise<Deny | undefined> {
    const revoked = await issuer.status?.isRevoked(claims);
    if (revoked === 'unavailable')
      return deny('store_unavailable', 'the token store is unavailable', { issuer: issuer.name });
    if (revoked) return deny('token_revoked', 'the token has been revoked', { issuer: issuer.name });
    return undefined;
  }

  private toPrincipal(issuerName: string, claims: Record<string, unknown>, token: string): Principal {
    const mapper = this.parts.claimMappers.get(issuerName);
    const local = mapper ? mapper(claims) : claims;
    const scopes = extractScopes(local, this.parts.scopeClaims);
    return {
      issuer: issuerName,
      sub: typeof claims.sub === 'string' ? claims.sub : undefined,
      claims: local,
      scopes: new Set(scopes),
      scope: scopes.join(' '),
      exp: typeof claims.exp === 'number' ? claims.exp : undefined,
      confirmation: confirmationOf(claims),
      cacheKey: token,
    };
  }
}
