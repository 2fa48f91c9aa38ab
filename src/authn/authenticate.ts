// Authentication: a bearer token → the verified caller (Principal), or the reason it is
// refused. The one entry the Check pipeline calls. It owns the verified-token cache,
// routes opaque tokens to the issuers that vouch for them (our own store, then
// introspection endpoints), verifies JWTs, checks revocation, maps the claims, and checks
// that the request presents the token as its holder (certificate or DPoP binding).
// API keys are looked up by their own source (api-keys.ts): nothing here sees them.

import { deny, denyWith, type Deny } from '../core/decision.js';
import type { AuthRequest, Principal } from '../core/request.js';
import { msToSeconds, type Clock } from '../core/time.js';
import type { Metrics } from '../observability/metrics.js';
import { ATTR, tracer } from '../observability/tracing.js';
import { MemoryReplayCache, type ReplayCache } from './dpop.js';
import type { ExtractedToken } from './extract.js';
import { exceedsBytes } from './jws.js';
import type { CacheAdmission } from '../core/admission.js';
import { PrincipalCache, type CachedPrincipal } from './principal-cache.js';
import { checkSenderConstraint, confirmationOf, type SenderCheckContext } from './sender-constraint.js';
import { verifyJwt, type CompiledIssuer } from './verify.js';

export interface AuthenticatorParts {
  readonly issuers: readonly CompiledIssuer[];
  /** Claim mapping per issuer name (claim_mappings): raw claims → local claims. */
  readonly claimMappers: ReadonlyMap<string, (claims: Record<string, unknown>) => Record<string, unknown>>;
  /** The scopes of a token's local claims (scope_claims). */
  readonly scopesOf: (claims: Readonly<Record<string, unknown>>) => string[];
  readonly maxTokenBytes: number;
  /** Max entries of the verified-token cache; 0 disables it. */
  readonly verifiedCacheMax: number;
  /** When a verified token is cached: at its second use (default) or its first. */
  readonly cacheAdmission?: CacheAdmission;
  /** Where DPoP proof jtis are remembered (the token store when there is one); default per process. */
  readonly replay?: ReplayCache;
  readonly clock: Clock;
  readonly metrics: Metrics;
}

const OPAQUE_TOKEN = /^[A-Za-z0-9_-]{16,512}$/;
/** Three base64url parts: what is verified as a JWT; anything else an introspection endpoint may vouch for. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Seconds a verification without exp is cached. */
const NO_EXP_CACHE_SECONDS = 300;

export class Authenticator {
  private readonly issuersByIss = new Map<string, CompiledIssuer>();
  private readonly issuersByName = new Map<string, CompiledIssuer>();
  private readonly lookupIssuer = (iss: string) => this.issuersByIss.get(iss);
  /** Issuers that vouch for opaque access tokens: our own store first, then introspection endpoints in config order. */
  private readonly opaqueIssuers: readonly CompiledIssuer[];
  /** Some opaque issuer asks about any token that is not a compact JWS. */
  private readonly introspects: boolean;
  /** The verified-token cache; absent when disabled. */
  readonly cache?: PrincipalCache;
  private readonly replay: ReplayCache;
  private readonly senderContext = (): SenderCheckContext => ({
    replay: this.replay,
    now: this.parts.clock.nowSeconds(),
  });

  constructor(private readonly parts: AuthenticatorParts) {
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
    if (parts.verifiedCacheMax > 0)
      this.cache = new PrincipalCache(
        parts.verifiedCacheMax,
        parts.clock,
        parts.metrics,
        parts.cacheAdmission ?? 'second_use',
      );
  }

  /** The configured issuer of that name (a principal's issuer). */
  issuerNamed(name: string): CompiledIssuer | undefined {
    return this.issuersByName.get(name);
  }

  /**
   * Whether this request may present the principal's token (its certificate, its DPoP
   * proof): undefined when it may, else the denial. Checked on every request, cached
   * verification or not. Synchronous unless a DPoP proof has to be verified.
   */
  senderBinding(
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

  /** A still-valid cached verification of exactly this token string, if any. */
  cached(token: string): CachedPrincipal | undefined {
    return this.cache?.get(token);
  }

  /** Token → Principal (verified, mapped), or the reason it is refused. */
  async authenticate(
    token: string,
    deadline?: number,
    /** The cache lookup the caller already did (null: it missed), so it is not repeated. */
    known?: CachedPrincipal | null,
  ): Promise<Principal | Deny> {
    const cached = known === undefined ? this.cached(token) : known;
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

    const now = this.parts.clock.nowSeconds();
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
    if (!res.ok) return res.issuer ? denyWith(res.deny, { issuer: res.issuer.name }) : res.deny;
    const issuer = res.issuer;
    if (issuer.status) {
      const revoked = await this.checkRevoked(issuer, res.claims);
      if (revoked) return revoked;
    }
    const principal = this.toPrincipal(issuer.name, res.claims, token);
    if (this.cache) {
      let exp =
        typeof res.claims.exp === 'number'
          ? res.claims.exp + issuer.clockSkewSeconds
          : now + NO_EXP_CACHE_SECONDS;
      // Never beyond the validity of the certificate that verified it.
      if (res.keyNotAfter !== undefined) exp = Math.min(exp, msToSeconds(res.keyNotAfter));
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
      if (found.status === 'refused') return denyWith(found.deny, { issuer: issuer.name });
      if (found.status === 'unavailable')
        unavailable ??= found.deny
          ? denyWith(found.deny, { issuer: issuer.name })
          : deny('store_unavailable', 'the token store is unavailable', { issuer: issuer.name });
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

  /** The verified caller: claims mapped (claim_mappings), scopes read, confirmation kept. */
  private toPrincipal(issuerName: string, claims: Record<string, unknown>, token: string): Principal {
    const mapper = this.parts.claimMappers.get(issuerName);
    const local = mapper ? mapper(claims) : claims;
    const scopes = this.parts.scopesOf(local);
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
