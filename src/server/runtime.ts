import { setCryptoOffload } from '../crypto/offload.js';
import { isDeepStrictEqual } from 'node:util';
import type { JWK } from 'jose';
import { createKeySource, keySourceSettings } from '../authn/keys/index.js';
import { LocalKeySource } from '../authn/keys/local-source.js';
import type { KeySource, KeySourceStatus } from '../authn/keys/types.js';
import { ApiKeyFile } from '../authn/api-keys.js';
import { compileApiKeySource, compileTokenSources } from '../authn/extract.js';
import { MemoryReplayCache } from '../authn/dpop.js';
import { compileSenderConstraint, withDpopTokenSource } from '../authn/sender-constraint.js';
import type { CompiledIssuer } from '../authn/verify.js';
import { compileClaimMappings, extractScopes, type ClaimMapper } from '../authz/claims.js';
import { RuleSet } from '../authz/compile.js';
import { compileExpression, type CompiledExpression } from '../authz/expressions.js';
import { ConfigError } from '../core/errors.js';
import type { IssuerConfig, LoadedConfig, RuleConfig } from '../config/types.js';
import { IntrospectionCheck, type IntrospectionOptions } from '../authn/introspection.js';
import { readSecretFile } from '../crypto/key-files.js';
import { createTokenService, type TokenService } from '../oauth/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CheckPipeline } from '../check/pipeline.js';
import { compileRateLimits, RateLimiter } from '../check/rate-limits.js';
import { Shared } from '../core/shared.js';
import { createStore, type Store } from '../store/index.js';
import { ClaimHeaders } from '../upstream/claim-headers.js';
import {
  allowedAudiences,
  createDownstreamTokenMinter,
  type DownstreamTokenMinter,
  tokenProfileProblems,
  type RouteTokenConfig,
} from '../upstream/downstream-token.js';

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
function routeTokens(rules: readonly RuleConfig[]): RouteTokenConfig[] {
  const out: RouteTokenConfig[] = [];
  rules.forEach((rule, i) => {
    if (rule.token !== undefined)
      out.push({ rule: rule.name ?? `rules[${i}]`, at: `rules[${i}]`, token: rule.token });
  });
  return out;
}

/** An issuer's introspection endpoint as its token status (its client secret read now). */
function introspectionCheck(
  iss: IssuerConfig,
  index: number,
  claims: IntrospectionOptions['claims'],
  ctx: RuntimeContext & { baseDir: string },
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

export interface RuntimeContext {
  readonly logger: Logger;
  readonly metrics: Metrics;
}

// One per process, so a reload does not forget the DPoP proofs already seen.
let memoryReplay: MemoryReplayCache | undefined;
const processReplayCache = (): MemoryReplayCache => (memoryReplay ??= new MemoryReplayCache());

/** A key source with the settings it was built from (see keySourceSettings). */
interface HeldKeySource {
  readonly settings: Record<string, unknown>;
  readonly shared: Shared<KeySource>;
}

// Key sources started once, whichever runtime asked first: a source carried over by a
// reload is already running and must not fetch again.
const started = new WeakMap<KeySource, Promise<void>>();
function startOnce(source: KeySource): Promise<void> {
  let p = started.get(source);
  if (!p) {
    p = source.start();
    started.set(source, p);
  }
  return p;
}

/**
 * One immutable graph built from one config: compiled issuers and rules, key
 * sources, minter, store and token service. A reload builds a new Runtime from the
 * running one and swaps it in; the old one is closed after in-flight checks finish.
 *
 * What a reload carries over when its own settings did not change: the store (with
 * every revocation, used assertion jti, opaque and refresh token in it), each
 * issuer's key source (its fetched keys and refresh schedule), and ephemeral signing
 * keys. Store and key sources are reference-counted: the old runtime's close() only
 * closes what the new one did not take over.
 */
export class Runtime {
  private closed = false;

  private constructor(
    readonly loaded: LoadedConfig,
    readonly pipeline: CheckPipeline,
    readonly issuers: readonly CompiledIssuer[],
    readonly minter: DownstreamTokenMinter | undefined,
    private readonly heldStore: Shared<Store> | undefined,
    readonly tokenService: TokenService | undefined,
    readonly rules: RuleSet,
    private readonly keySources: ReadonlyMap<string, HeldKeySource>,
    /** Carried-over file-based key sources, re-read at start (a reload is how operators say "files changed"). */
    private readonly reread: readonly LocalKeySource[],
    /** api_keys, in config order; each watches its keys_file once started. */
    readonly apiKeyFiles: readonly ApiKeyFile[],
  ) {}

  get store(): Store | undefined {
    return this.heldStore?.value;
  }

  get config() {
    return this.loaded.config;
  }

  get realm(): string {
    return this.loaded.config.realm;
  }

  /** log.denials_per_second */
  get denialLogsPerSecond(): number {
    return this.loaded.config.log.denials_per_second;
  }

  /**
   * Compiles a config. With `previous` (a reload), state whose settings did not change
   * is taken over from the running runtime instead of being built afresh.
   */
  static async build(loaded: LoadedConfig, ctx: RuntimeContext, previous?: Runtime): Promise<Runtime> {
    const { config, baseDir } = loaded;
    setCryptoOffload(config.server.crypto_offload);
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
    const ruleNames = new Set(['default', ...config.rules.map((r, i) => r.name ?? `rules[${i}]`)]);
    const rateLimits = compileRateLimits(config.rate_limits, ruleNames, problems);
    // Listed with the rule problems; the minter compiles the profiles again below.
    if (config.upstream.token)
      problems.push(...tokenProfileProblems(config.upstream.token, routeTokens(config.rules)));
    if (problems.length > 0) throw new ConfigError(problems);

    const keyCtx = { baseDir, logger: ctx.logger, metrics: ctx.metrics };
    const issuers: CompiledIssuer[] = [];
    const keySources = new Map<string, HeldKeySource>();
    const reread: LocalKeySource[] = [];
    const kept: string[] = [];
    const closers: (() => unknown)[] = [];
    try {
      for (const iss of config.issuers) {
        const settings = keySourceSettings(iss, baseDir);
        const before = previous?.keySources.get(iss.name);
        let shared =
          before && isDeepStrictEqual(before.settings, settings) ? before.shared.acquire() : undefined;
        if (shared) {
          kept.push(iss.name);
          if (shared.value instanceof LocalKeySource) reread.push(shared.value);
        } else {
          shared = new Shared(createKeySource(iss, keyCtx), (s) => s.close());
        }
        const held = shared;
        closers.push(() => held.release());
        keySources.set(iss.name, { settings, shared: held });
        const keySource = held.value;
        const claimRules = {
          audiences: iss.audiences.includes('*') ? ('any' as const) : new Set(iss.audiences),
          clockSkewSeconds: iss.clock_skew_seconds,
          requiredClaims: iss.required_claims,
          maxLifetimeSeconds: iss.max_lifetime_seconds,
        };
        issuers.push({
          name: iss.name,
          issuer: iss.issuer,
          algorithms: new Set(iss.algorithms),
          keySource,
          ...claimRules,
          senderConstraint: compileSenderConstraint(iss),
          status:
            iss.introspection && introspectionCheck(iss, config.issuers.indexOf(iss), claimRules, keyCtx),
        });
      }
      const minterKey = previous?.minter?.ephemeralKey;
      const minter = config.upstream.token
        ? await createDownstreamTokenMinter(
            config.upstream.token,
            { ...keyCtx, ...(minterKey ? { ephemeralKey: minterKey } : {}) },
            routeTokens(config.rules),
          )
        : undefined;
      let heldStore: Shared<Store> | undefined;
      let tokenService: TokenService | undefined;
      // Rate-limit counters live in the store too.
      if (config.token_endpoint.enabled || rateLimits.length > 0) {
        heldStore = Runtime.takeStore(loaded, ctx, previous);
        const store = heldStore;
        closers.push(() => store.release());
      }
      if (config.token_endpoint.enabled && heldStore) {
        const store = heldStore;
        const tokenKey = previous?.tokenService?.ephemeralKey;
        tokenService = await createTokenService(config.token_endpoint, {
          ...keyCtx,
          store: store.value,
          issuersByName: new Map(issuers.map((i) => [i.name, i])),
          ...(tokenKey ? { ephemeralKey: tokenKey } : {}),
          ...(config.public_base_url ? { publicBaseUrl: config.public_base_url } : {}),
          // As Check reads them: after the issuer's claim mappings.
          scopesOf: (claims, issuerName) => {
            const mapper = claimMappers.get(issuerName);
            return extractScopes(mapper ? mapper(claims) : claims, config.scope_claims);
          },
        });
        // Our own issuer: its status check (revocations, opaque tokens) comes with it.
        issuers.push(tokenService.self.issuer);
      } else if (previous?.heldStore && !heldStore) {
        ctx.logger.info(
          { store: previous.heldStore.value.type },
          'neither the token endpoint nor rate limits are configured: the store is closed with the old configuration and its state is not kept',
        );
      }
      const pipeline = new CheckPipeline({
        issuers,
        claimMappers,
        // Compiled issuers, not config.issuers: our own ("self") accepts DPoP-bound tokens too.
        tokenSources: [
          ...withDpopTokenSource(
            compileTokenSources(config.token_sources),
            issuers.map((i) => ({ sender_constraint: i.senderConstraint })),
          ),
          ...config.api_keys.map((src, i) => compileApiKeySource(src, apiKeyFiles[i]!)),
        ],
        maxTokenBytes: config.max_token_bytes,
        rejectAmbiguousPaths: config.reject_ambiguous_paths,
        corsPreflight: config.cors_preflight,
        scopeClaims: config.scope_claims,
        rules,
        claimHeaders,
        forwardOriginalToken: config.upstream.forward_original_token,
        allowMethodOverride: config.upstream.allow_method_override,
        minter,
        // DPoP proof jtis: in the shared store when there is one, else remembered per process.
        replay: heldStore?.value ?? processReplayCache(),
        ...(dynamicMetadata.length > 0 ? { dynamicMetadata } : {}),
        ...(rateLimits.length > 0 && heldStore
          ? {
              rateLimiter: new RateLimiter(
                rateLimits,
                heldStore.value,
                config.rate_limits_fail === 'open',
                ctx.logger,
                ctx.metrics,
              ),
            }
          : {}),
        verifiedCacheMax: config.verified_token_cache.enabled ? config.verified_token_cache.max_entries : 0,
        expressionBudgetMs: config.expression_budget_ms,
        logger: ctx.logger,
        metrics: ctx.metrics,
      });
      if (previous) {
        ctx.logger.info(
          { kept, rebuilt: config.issuers.map((i) => i.name).filter((n) => !kept.includes(n)) },
          'reload: key sources whose settings did not change keep their keys',
        );
      }
      return new Runtime(
        loaded,
        pipeline,
        issuers,
        minter,
        heldStore,
        tokenService,
        rules,
        keySources,
        reread,
        apiKeyFiles,
      );
    } catch (err) {
      for (const close of closers) void close();
      throw err;
    }
  }

  /** The previous runtime's store when the `store` section is unchanged, else a new one (and a log line saying so). */
  private static takeStore(
    loaded: LoadedConfig,
    ctx: RuntimeContext,
    previous: Runtime | undefined,
  ): Shared<Store> {
    const cfg = loaded.config.store;
    const before = previous?.heldStore;
    if (before && previous && isDeepStrictEqual(previous.config.store, cfg)) {
      const shared = before.acquire();
      if (shared) return shared;
    } else if (before) {
      const fields = { previous_type: before.value.type, type: cfg.type };
      if (before.value.type === 'memory') {
        ctx.logger.warn(
          fields,
          'store settings changed: a new store was built; revocations, used assertion jtis, opaque and refresh tokens held in the old in-memory store are not carried over',
        );
      } else {
        ctx.logger.info(
          fields,
          'store settings changed: a new store was built; entries written under the old settings are not carried over',
        );
      }
    }
    return new Shared(createStore(cfg, { logger: ctx.logger }), (s) => s.close());
  }

  /** Starts every issuer's key source; resolves when each first load has finished. */
  async start(): Promise<void> {
    for (const f of this.apiKeyFiles) f.start();
    await Promise.all([
      ...this.issuers.map((i) => startOnce(i.keySource)),
      ...this.reread.map((s) => s.reload()),
    ]);
  }

  issuerStatus(): Record<string, KeySourceStatus> {
    const out: Record<string, KeySourceStatus> = {};
    for (const i of this.issuers) out[i.name] = i.keySource.status();
    return out;
  }

  /** Every issuer's first key load finished (keys or a recorded error), and the store is reachable. */
  ready(): boolean {
    return this.issuers.every((i) => i.keySource.status().loaded) && (this.store?.isReady() ?? true);
  }

  /** Public keys of every key this service signs with (downstream tokens and token endpoint). */
  publicJwks(): JWK[] {
    return [...(this.minter?.publicJwks() ?? []), ...(this.tokenService?.publicJwks() ?? [])];
  }

  /** Closes what this runtime owns; a store or key source also held by a newer runtime stays open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.minter?.close();
    for (const f of this.apiKeyFiles) f.close();
    await this.tokenService?.close();
    await Promise.all([
      ...[...this.keySources.values()].map((k) => k.shared.release()),
      this.heldStore?.release(),
    ]);
  }
}
