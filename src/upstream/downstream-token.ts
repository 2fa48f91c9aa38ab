import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import { compileClaimReader, type ClaimReader } from '../authz/claims.js';
import {
  compileExpression,
  ExpressionError,
  toJsonValue,
  type CompiledExpression,
  type ExpressionInput,
} from '../authz/expressions.js';
import type { Principal } from '../core/request.js';
import { collectProblems, ConfigError } from '../core/errors.js';
import type { TokenProfileConfig, UpstreamTokenConfig } from '../config/types.js';
import { loadEncryptionKey, type EncryptionKey } from '../crypto/encryption.js';
import { signsInline } from '../crypto/offload.js';
import {
  jwtHeader,
  loadSigningKeys,
  signJws,
  signJwsAsync,
  type SigningKey,
  type SigningKeys,
} from '../crypto/signing-keys.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { tracer } from '../observability/tracing.js';

// The downstream JWT minted for the upstream service on every allowed request
// (IBM API Connect jwt-generate, WSO2 backend JWT).
//
// Claims: iss, sub, aud, iat, exp, jti are set here and never copied or overridden.
// `copy_claims` names local claims (after claim_mappings), read by the same
// claim-path reader as require.claims and claim_headers (compileClaimReader), so
// `realm_access.roles` and `https://example.com/claims.role` resolve to the same
// value everywhere. The value is always written under the LAST dot-separated
// segment (`roles`, `role`), so the upstream sees a flat claim. Two copy_claims
// entries that would land on the same name are a config error; rename with
// claim_mappings instead. Static `claims` override copied claims of the same name.

const CONFIG_PATH = 'upstream.token';
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set(['iss', 'sub', 'aud', 'iat', 'exp', 'jti']);
/** A minted token is reused until this fraction of its lifetime has passed. */
const REUSE_FRACTION = 0.8;

export interface DownstreamTokenMinter {
  /** Lower-case header name. */
  readonly header: string;
  readonly issuer: string;
  /** The header value: "Bearer <jwt>" when header is "authorization", else the bare JWT (or JWE). */
  mint(principal: Principal, audienceOverride: readonly string[] | undefined): Promise<string>;
  /**
   * Like mint(), plus until when (epoch ms) the same value may be reused for this
   * principal and audience (80% of its lifetime; 0 when it must not be reused).
   */
  mintEntry(
    principal: Principal,
    audienceOverride: readonly string[] | undefined,
    profile?: TokenProfile,
    input?: ExpressionInput,
  ): Promise<MintedToken>;
  /** The token profile of a rule (by name): its own `token`, else upstream.token's. */
  profile(ruleName: string): TokenProfile;
  publicJwks(): JWK[];
  /** The signing key, when it was generated in memory (no key file); a reload hands it on. */
  readonly ephemeralKey: SigningKey | undefined;
  close(): void;
}

export interface DownstreamTokenMinterContext {
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The previous minter's ephemeral key, reused when `signing` still names no key file and the same alg. */
  readonly ephemeralKey?: SigningKey;
  /** Clock in epoch milliseconds (tests); default Date.now. */
  readonly now?: () => number;
}

/** Minting failed at request time; the pipeline answers 500 with a generic body and logs the detail. */
export class MintError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MintError';
  }
}

const signingFailed = (err: unknown): MintError =>
  new MintError(`signing the downstream token failed: ${(err as Error).message}`, { cause: err });

interface CopiedClaim {
  /** Name in the minted token (last path segment). */
  readonly target: string;
  readonly read: ClaimReader;
}

export interface MintedToken {
  /** The header value. */
  readonly value: string;
  /** epoch ms until which this value may be reused (0: never). */
  readonly reuseUntil: number;
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

interface CacheEntry {
  readonly value: Promise<MintedToken>;
  /** epoch ms after which a fresh token is minted */
  readonly refreshAt: number;
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

function compileProfile(
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

const DISABLED_PROFILE: TokenProfile = Object.freeze({
  enabled: false,
  requestDependent: false,
  id: -1,
  audiences: Object.freeze([]),
  ttlSeconds: 0,
  copied: Object.freeze([]),
  statics: Object.freeze({}),
  computed: Object.freeze([]),
});

class Minter implements DownstreamTokenMinter {
  readonly header: string;
  readonly issuer: string;
  readonly ephemeralKey: SigningKey | undefined;
  private readonly bearer: boolean;
  private readonly signingKey: SigningKey;
  private readonly jwsHeader: Readonly<Record<string, unknown>>;
  private readonly cache: LRUCache<string, CacheEntry> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly cfg: UpstreamTokenConfig,
    private readonly keys: SigningKeys,
    private readonly encryption: EncryptionKey | undefined,
    private readonly defaultProfile: TokenProfile,
    private readonly profiles: ReadonlyMap<string, TokenProfile>,
    private readonly metrics: Metrics,
    now: (() => number) | undefined,
  ) {
    this.header = cfg.header.toLowerCase();
    this.issuer = cfg.issuer;
    this.bearer = this.header === 'authorization';
    this.signingKey = keys.current;
    this.ephemeralKey = keys.ephemeral ? keys.current : undefined;
    this.jwsHeader = jwtHeader(keys.current);
    this.cache = cfg.cache ? new LRUCache({ max: cfg.cache_max_entries }) : undefined;
    this.now = now ?? Date.now;
  }

  mint(principal: Principal, audienceOverride: readonly string[] | undefined): Promise<string> {
    return this.mintEntry(principal, audienceOverride).then((m) => m.value);
  }

  profile(ruleName: string): TokenProfile {
    return this.profiles.get(ruleName) ?? this.defaultProfile;
  }

  mintEntry(
    principal: Principal,
    audienceOverride: readonly string[] | undefined,
    profile: TokenProfile = this.defaultProfile,
    input?: ExpressionInput,
  ): Promise<MintedToken> {
    if (!profile.enabled) return Promise.reject(new MintError('no downstream token on this route'));
    const audiences = audienceOverride ?? profile.audiences;
    const cache = this.cache;
    const nowMs = this.now();
    let computed: Record<string, unknown> | undefined;
    if (profile.computed.length > 0) {
      if (!input) return Promise.reject(new MintError('claims_expr needs the request'));
      let name = '';
      try {
        computed = Object.create(null) as Record<string, unknown>;
        for (const c of profile.computed) {
          name = c.name;
          const value = toJsonValue(c.expression.evaluate(input));
          if (value !== null) computed[c.name] = value;
        }
      } catch (err) {
        // The log names the claim (its class kept: a budget denial is still one).
        if (err instanceof ExpressionError) err.message = `claims_expr.${name}: ${err.message}`;
        return Promise.reject(err);
      }
    }
    // A token whose claims depend on the request is never reused.
    if (!cache || profile.requestDependent)
      return this.mintFresh(principal, audiences, profile, computed, nowMs, false).value;

    const key = `${profile.id}\n${principal.cacheKey}\n${audiences.join('\n')}`;
    const hit = cache.get(key);
    if (hit && nowMs < hit.refreshAt) {
      this.metrics.hits.mintedToken.inc();
      return hit.value;
    }
    this.metrics.misses.mintedToken.inc();
    const fresh = this.mintFresh(principal, audiences, profile, computed, nowMs, true);
    if (fresh.refreshAt > 0) {
      const entry: CacheEntry = { value: fresh.value, refreshAt: fresh.refreshAt };
      cache.set(key, entry);
      // A failed mint must not be served to later callers.
      fresh.value.catch(() => {
        if (cache.peek(key) === entry) cache.delete(key);
      });
    } else if (hit) {
      cache.delete(key);
    }
    return fresh.value;
  }

  /** Builds, signs (and encrypts) one token. Concurrent callers of the same cache key share `value`. */
  private mintFresh(
    principal: Principal,
    audiences: readonly string[],
    profile: TokenProfile,
    computed: Readonly<Record<string, unknown>> | undefined,
    nowMs: number,
    reusable: boolean,
  ): { value: Promise<MintedToken>; refreshAt: number } {
    const iat = Math.floor(nowMs / 1000);
    let exp = iat + profile.ttlSeconds;
    if (principal.exp !== undefined && Number.isFinite(principal.exp))
      exp = Math.min(exp, Math.floor(principal.exp));

    const payload: Record<string, unknown> = { iss: this.issuer };
    if (principal.sub !== undefined) payload.sub = principal.sub;
    const aud = audiences.length > 1 ? [...new Set(audiences)] : audiences;
    if (aud.length === 1) payload.aud = aud[0];
    else if (aud.length > 1) payload.aud = aud;
    payload.iat = iat;
    payload.exp = exp;
    if (this.cfg.jti) payload.jti = randomUUID();
    const statics = profile.statics;
    for (const c of profile.copied) {
      if (Object.hasOwn(statics, c.target)) continue;
      const value = c.read(principal.claims);
      if (value !== undefined) payload[c.target] = value;
    }
    for (const name in statics) payload[name] = statics[name];
    if (computed) for (const name in computed) payload[name] = computed[name];

    // Reuse is measured from the token's own (whole-second) iat, so it never outlives
    // 80% of the lifetime the upstream sees.
    const lifetimeMs = (exp - iat) * 1000;
    const refreshAt = reusable && lifetimeMs > 0 ? iat * 1000 + lifetimeMs * REUSE_FRACTION : 0;
    const span = tracer?.startSpan('token.mint');
    let value: Promise<MintedToken>;
    if (!this.encryption && !span && signsInline(this.signingKey.key)) {
      // The common case: a cheap signature, no encryption, no tracing — signed inline,
      // one settled promise and no thread-pool round trip.
      let jws: string;
      try {
        jws = signJws(this.signingKey, this.jwsHeader, payload);
      } catch (err) {
        return { value: Promise.reject(signingFailed(err)), refreshAt };
      }
      value = Promise.resolve({ value: this.bearer ? `Bearer ${jws}` : jws, reuseUntil: refreshAt });
      return { value, refreshAt };
    }
    const signed = (
      signsInline(this.signingKey.key)
        ? new Promise<string>((resolve) => resolve(signJws(this.signingKey, this.jwsHeader, payload)))
        : signJwsAsync(this.signingKey, this.jwsHeader, payload)
    ).catch((err: unknown) => {
      throw signingFailed(err);
    });
    const encryption = this.encryption;
    value = signed.then(async (jws) => {
      let token = jws;
      if (encryption) {
        try {
          token = await encryption.encrypt(jws);
        } catch (err) {
          throw new MintError(`encrypting the downstream token failed: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
      return { value: this.bearer ? `Bearer ${token}` : token, reuseUntil: refreshAt };
    });
    if (span) {
      value.then(
        () => span.end(),
        () => {
          span.fail('mint_failed');
          span.end();
        },
      );
    }
    return { value, refreshAt };
  }

  publicJwks(): JWK[] {
    return this.keys.publicJwks();
  }

  close(): void {
    this.cache?.clear();
  }
}

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

/**
 * Compiles `upstream.token` into a minter. Every configuration problem (reserved
 * static claims, key files, algorithms, key sizes) is reported together in one
 * ConfigError; the encryption key is proven with a trial encryption.
 */
export async function createDownstreamTokenMinter(
  cfg: UpstreamTokenConfig,
  ctx: DownstreamTokenMinterContext,
  routes: readonly RouteTokenConfig[] = [],
): Promise<DownstreamTokenMinter> {
  const problems: string[] = [];
  const header = cfg.header.toLowerCase();
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(header) || header.startsWith(':')) {
    problems.push(`${CONFIG_PATH}.header: "${cfg.header}" is not a valid HTTP header name`);
  }
  const defaultProfile = compileProfile(cfg, {}, 0, ctx.logger, problems, CONFIG_PATH);
  const profiles = new Map<string, TokenProfile>();
  routes.forEach((route, i) => {
    profiles.set(
      route.rule,
      route.token === false
        ? DISABLED_PROFILE
        : compileProfile(cfg, route.token, i + 1, ctx.logger, problems, `${route.at}.token`, defaultProfile),
    );
  });
  const keys = await collectProblems(problems, () =>
    loadSigningKeys(cfg.signing, `${CONFIG_PATH}.signing`, {
      baseDir: ctx.baseDir,
      logger: ctx.logger,
      ...(ctx.ephemeralKey ? { ephemeralKey: ctx.ephemeralKey } : {}),
    }),
  );
  const encryptionCfg = cfg.encryption;
  const encryption = encryptionCfg
    ? await collectProblems(problems, () =>
        loadEncryptionKey(encryptionCfg, `${CONFIG_PATH}.encryption`, {
          baseDir: ctx.baseDir,
          logger: ctx.logger,
        }),
      )
    : undefined;
  if (problems.length > 0 || !keys) throw new ConfigError(problems);
  return new Minter(cfg, keys, encryption, defaultProfile, profiles, ctx.metrics, ctx.now);
}
