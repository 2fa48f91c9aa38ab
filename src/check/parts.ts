// What a CheckPipeline is built from: the configuration, compiled (see server/runtime.ts).

import type { CacheAdmission } from '../core/admission.js';
import type { ReplayCache } from '../authn/dpop.js';
import type { CompiledTokenSource } from '../authn/extract.js';
import type { CompiledIssuer } from '../authn/verify.js';
import type { ClaimMapper } from '../authz/claims.js';
import type { RuleSet } from '../authz/compile.js';
import type { CompiledExpression } from '../authz/expressions.js';
import type { Clock } from '../core/time.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ClaimHeaders } from '../upstream/claim-headers.js';
import type { UpstreamTokenMinter } from '../upstream/token-minter.js';
import type { RateLimiter } from './rate-limits.js';

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
  readonly minter?: UpstreamTokenMinter;
  /** Where DPoP proof jtis are remembered (the token store when there is one); default per process. */
  readonly replay?: ReplayCache;
  /**
   * upstream.metadata_claims: the local claims in dynamic_metadata.claims; absent = every
   * claim, empty = no claims object.
   */
  readonly metadataClaims?: readonly string[];
  /** upstream.dynamic_metadata, compiled. */
  readonly dynamicMetadata?: readonly { readonly name: string; readonly expression: CompiledExpression }[];
  /** rate_limits: counted on every authenticated allow, memoised or not. */
  readonly rateLimiter?: RateLimiter;
  /** expression_budget_ms: the total time of one check's CEL evaluations. */
  readonly expressionBudgetMs?: number;
  /** Max entries of the verified-token cache; 0 disables it. */
  readonly verifiedCacheMax: number;
  /** verified_token_cache.admission: cache a token at its second use (default) or its first. */
  readonly cacheAdmission?: CacheAdmission;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The current time; default the system clock (tests pass a ManualClock). */
  readonly clock?: Clock;
}
