import { setCryptoOffload } from '../crypto/offload.js';
import type { JWK } from 'jose';
import { LocalKeySource } from '../authn/keys/local-source.js';
import type { KeySourceStatus } from '../authn/keys/key-source.js';
import type { ApiKeyFile } from '../authn/api-keys.js';
import { compileApiKeySource, compileTokenSources } from '../authn/extract.js';
import { withDpopTokenSource } from '../authn/sender-constraint.js';
import type { CompiledIssuer } from '../authn/verify.js';
import { extractScopes } from '../authz/claims.js';
import type { RuleSet } from '../authz/compile.js';
import type { LoadedConfig } from '../config/types.js';
import { createTokenService, type TokenService } from '../oauth/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CheckPipeline } from '../check/pipeline.js';
import { RateLimiter } from '../check/rate-limits.js';
import type { Shared } from '../core/shared.js';
import type { Store } from '../store/index.js';
import { createUpstreamTokenMinter, type UpstreamTokenMinter } from '../upstream/token-minter.js';
import { processReplayCache, startOnce, takeKeySource, takeStore, type HeldKeySource } from './carry-over.js';
import { compileConfig, compileIssuer, routeTokens } from './compile-config.js';

export interface RuntimeContext {
  readonly logger: Logger;
  readonly metrics: Metrics;
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
    readonly minter: UpstreamTokenMinter | undefined,
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
    const keyCtx = { baseDir, logger: ctx.logger, metrics: ctx.metrics };
    const { apiKeyFiles, rules, claimMappers, claimHeaders, dynamicMetadata, rateLimits } = compileConfig(
      loaded,
      keyCtx,
    );
    const issuers: CompiledIssuer[] = [];
    const keySources = new Map<string, HeldKeySource>();
    const reread: LocalKeySource[] = [];
    const kept: string[] = [];
    const closers: (() => unknown)[] = [];
    try {
      for (const [index, iss] of config.issuers.entries()) {
        const { held, kept: carried } = takeKeySource(iss, previous?.keySources.get(iss.name), keyCtx);
        if (carried) {
          kept.push(iss.name);
          if (held.shared.value instanceof LocalKeySource) reread.push(held.shared.value);
        }
        closers.push(() => held.shared.release());
        keySources.set(iss.name, held);
        issuers.push(compileIssuer(iss, index, held.shared.value, keyCtx));
      }
      const minterKey = previous?.minter?.ephemeralKey;
      const minter = config.upstream.token
        ? await createUpstreamTokenMinter(
            config.upstream.token,
            {
              ...keyCtx,
              cacheAdmission: config.verified_token_cache.admission,
              ...(minterKey ? { ephemeralKey: minterKey } : {}),
            },
            routeTokens(config.rules),
          )
        : undefined;
      let heldStore: Shared<Store> | undefined;
      let tokenService: TokenService | undefined;
      // Rate-limit counters live in the store too.
      if (config.token_endpoint.enabled || rateLimits.length > 0) {
        heldStore = takeStore(
          config.store,
          ctx.logger,
          previous && { cfg: previous.config.store, held: previous.heldStore },
        );
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
        // ["*"]: every claim, the default.
        ...(config.upstream.metadata_claims.includes('*')
          ? {}
          : { metadataClaims: config.upstream.metadata_claims }),
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
        cacheAdmission: config.verified_token_cache.admission,
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

  /** Starts every issuer's key source; resolves when each first load has finished. */
  async start(): Promise<void> {
    // Process-wide: applied when this runtime goes live (a refused reload leaves it as is).
    setCryptoOffload(this.config.server.crypto_offload);
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
