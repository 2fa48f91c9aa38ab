import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import { ExpressionError, toJsonValue, type ExpressionInput } from '../authz/expressions.js';
import type { Principal } from '../core/request.js';
import { AuthzError, collectProblems, ConfigError } from '../core/errors.js';
import { msToSeconds, secondsToMs, systemClock, wholeSeconds, type Clock } from '../core/time.js';
import type { UpstreamTokenConfig } from '../config/types.js';
import { loadEncryptionKey, type EncryptionKey } from '../crypto/encryption.js';
import { signsInline } from '../crypto/offload.js';
import { keyTail, SecondSighting, type CacheAdmission } from '../core/admission.js';
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
import {
  compileProfile,
  CONFIG_PATH,
  DISABLED_PROFILE,
  type RouteTokenConfig,
  type TokenProfile,
} from './token-profile.js';

export {
  allowedAudiences,
  RESERVED_CLAIMS,
  tokenProfileProblems,
  type RouteTokenConfig,
  type TokenProfile,
} from './token-profile.js';

// The downstream JWT minted for the upstream service on every allowed request
// (IBM API Connect jwt-generate, WSO2 backend JWT); what it holds per route is
// compiled in token-profile.ts.

/** A minted token is reused until this fraction of its lifetime has passed. */
const REUSE_FRACTION = 0.8;

export interface UpstreamTokenMinter {
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

export interface UpstreamTokenMinterContext {
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The previous minter's ephemeral key, reused when `signing` still names no key file and the same alg. */
  readonly ephemeralKey?: SigningKey;
  /** The clock (tests move it); default the system clock. */
  readonly clock?: Clock;
  /** When a minted token is cached: at the credential's second use (default) or its first. */
  readonly cacheAdmission?: CacheAdmission;
}

/** Minting failed at request time; the pipeline answers 500 with a generic body and logs the detail. */
export class MintError extends AuthzError {
  readonly code = 'ERR_TOKEN_MINT_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MintError';
  }
}

const signingFailed = (err: unknown): MintError =>
  new MintError(`signing the downstream token failed: ${(err as Error).message}`, { cause: err });

export interface MintedToken {
  /** The header value. */
  readonly value: string;
  /** epoch ms until which this value may be reused (0: never). */
  readonly reuseUntil: number;
}

interface CacheEntry {
  /** The whole credential (principal.cacheKey): the map's key holds only its tail. */
  readonly credential: string;
  readonly value: Promise<MintedToken>;
  /** epoch ms after which a fresh token is minted */
  readonly refreshAt: number;
}

class Minter implements UpstreamTokenMinter {
  readonly header: string;
  readonly issuer: string;
  readonly ephemeralKey: SigningKey | undefined;
  private readonly bearer: boolean;
  private readonly signingKey: SigningKey;
  private readonly jwsHeader: Readonly<Record<string, unknown>>;
  private readonly cache: LRUCache<string, CacheEntry> | undefined;
  private readonly admission: SecondSighting | undefined;
  private readonly clock: Clock;

  constructor(
    private readonly cfg: UpstreamTokenConfig,
    private readonly keys: SigningKeys,
    private readonly encryption: EncryptionKey | undefined,
    private readonly defaultProfile: TokenProfile,
    private readonly profiles: ReadonlyMap<string, TokenProfile>,
    private readonly metrics: Metrics,
    clock: Clock | undefined,
    admission: CacheAdmission = 'second_use',
  ) {
    this.header = cfg.header.toLowerCase();
    this.issuer = cfg.issuer;
    this.bearer = this.header === 'authorization';
    this.signingKey = keys.current;
    this.ephemeralKey = keys.ephemeral ? keys.current : undefined;
    this.jwsHeader = jwtHeader(keys.current);
    this.cache = cfg.cache ? new LRUCache({ max: cfg.cache_max_entries }) : undefined;
    this.admission =
      cfg.cache && admission === 'second_use' ? new SecondSighting(cfg.cache_max_entries) : undefined;
    this.clock = clock ?? systemClock;
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
    const nowMs = this.clock.nowMs();
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
    // Keyed by the credential's tail (keyTail: no 1 KB string built and hashed per check);
    // an entry is this credential's only when its whole key matches.
    const credential = principal.cacheKey;
    const key = `${profile.id}\n${audiences.join('\n')}\n${keyTail(credential)}`;
    const found = cache.get(key);
    const hit = found !== undefined && found.credential === credential ? found : undefined;
    if (hit && nowMs < hit.refreshAt) {
      this.metrics.hits.mintedToken.inc();
      return hit.value;
    }
    this.metrics.misses.mintedToken.inc();
    const fresh = this.mintFresh(principal, audiences, profile, computed, nowMs, true);
    // A credential with no entry yet is remembered from its second sighting on
    // (core/admission.ts); one that has an entry (being renewed) already passed.
    if (!hit && this.admission && !this.admission.admit(credential)) return fresh.value;
    if (fresh.refreshAt > 0) {
      const entry: CacheEntry = { credential, value: fresh.value, refreshAt: fresh.refreshAt };
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
    const iat = wholeSeconds(msToSeconds(nowMs));
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
    const lifetimeMs = secondsToMs(exp - iat);
    const refreshAt = reusable && lifetimeMs > 0 ? secondsToMs(iat) + lifetimeMs * REUSE_FRACTION : 0;
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
 * Compiles `upstream.token` into a minter. Every configuration problem (reserved
 * static claims, key files, algorithms, key sizes) is reported together in one
 * ConfigError; the encryption key is proven with a trial encryption.
 */
export async function createUpstreamTokenMinter(
  cfg: UpstreamTokenConfig,
  ctx: UpstreamTokenMinterContext,
  routes: readonly RouteTokenConfig[] = [],
): Promise<UpstreamTokenMinter> {
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
  return new Minter(
    cfg,
    keys,
    encryption,
    defaultProfile,
    profiles,
    ctx.metrics,
    ctx.clock,
    ctx.cacheAdmission,
  );
}
