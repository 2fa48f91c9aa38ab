import type { JWK } from 'jose';
import { createKeySource } from '../authn/keys/index.js';
import type { KeySourceStatus } from '../authn/keys/types.js';
import { compileTokenSources } from '../authn/extract.js';
import type { CompiledIssuer } from '../authn/verify.js';
import { compileClaimMappings, type ClaimMapper } from '../authz/claims.js';
import { RuleSet } from '../authz/rules.js';
import { ConfigError } from '../core/errors.js';
import type { LoadedConfig } from '../config/types.js';
import { createTokenService, type TokenService } from '../oauth/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CheckPipeline } from '../check/pipeline.js';
import { createStore, type Store } from '../store/index.js';
import { ClaimHeaders } from '../upstream/claim-headers.js';
import { createDownstreamTokenMinter, type DownstreamTokenMinter } from '../upstream/downstream-token.js';

export interface RuntimeContext {
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/**
 * One immutable graph built from one config: compiled issuers and rules, key
 * sources, minter, store and token service. A reload builds a new Runtime and
 * swaps it in; the old one is closed after in-flight checks finish.
 */
export class Runtime {
  private constructor(
    readonly loaded: LoadedConfig,
    readonly pipeline: CheckPipeline,
    readonly issuers: readonly CompiledIssuer[],
    readonly minter: DownstreamTokenMinter | undefined,
    readonly store: Store | undefined,
    readonly tokenService: TokenService | undefined,
    readonly rules: RuleSet,
  ) {}

  get config() {
    return this.loaded.config;
  }

  get realm(): string {
    return this.loaded.config.realm;
  }

  static async build(loaded: LoadedConfig, ctx: RuntimeContext): Promise<Runtime> {
    const { config, baseDir } = loaded;
    const problems: string[] = [];
    const knownIssuers = new Set(config.issuers.map((i) => i.name));
    if (config.token_endpoint.enabled) knownIssuers.add('self');
    const rules = RuleSet.compile(config.rules, config.default_action, problems, knownIssuers);
    const claimMappers = new Map<string, ClaimMapper>();
    config.issuers.forEach((iss, i) =>
      claimMappers.set(
        iss.name,
        compileClaimMappings(iss.claim_mappings, problems, `issuers[${i}].claim_mappings`),
      ),
    );
    const claimHeaders = ClaimHeaders.compile(config.upstream.claim_headers, problems);
    const tokenIssuer = config.token_endpoint.enabled ? config.token_endpoint.issuer : undefined;
    config.issuers.forEach((iss, i) => {
      if (tokenIssuer !== undefined && iss.issuer === tokenIssuer) {
        problems.push(
          `issuers[${i}].issuer: "${iss.issuer}" is this service's own token endpoint issuer (token_endpoint.issuer)`,
        );
      }
    });
    if (problems.length > 0) throw new ConfigError(problems);

    const keyCtx = { baseDir, logger: ctx.logger, metrics: ctx.metrics };
    const issuers: CompiledIssuer[] = [];
    const closers: (() => void)[] = [];
    try {
      for (const iss of config.issuers) {
        const keySource = createKeySource(iss, keyCtx);
        closers.push(() => keySource.close());
        issuers.push({
          name: iss.name,
          issuer: iss.issuer,
          audiences: iss.audiences.includes('*') ? 'any' : new Set(iss.audiences),
          algorithms: new Set(iss.algorithms),
          keySource,
          clockSkewSeconds: iss.clock_skew_seconds,
          requiredClaims: iss.required_claims,
          maxLifetimeSeconds: iss.max_lifetime_seconds,
        });
      }
      const minter = config.upstream.token
        ? await createDownstreamTokenMinter(config.upstream.token, keyCtx)
        : undefined;
      let store: Store | undefined;
      let tokenService: TokenService | undefined;
      if (config.token_endpoint.enabled) {
        store = createStore(config.store, { logger: ctx.logger });
        closers.push(() => void store!.close());
        tokenService = await createTokenService(config.token_endpoint, {
          ...keyCtx,
          store,
          issuersByName: new Map(issuers.map((i) => [i.name, i])),
        });
        issuers.push(tokenService.self.issuer);
      }
      const pipeline = new CheckPipeline({
        issuers,
        claimMappers,
        tokenSources: compileTokenSources(config.token_sources),
        maxTokenBytes: config.max_token_bytes,
        rejectAmbiguousPaths: config.reject_ambiguous_paths,
        scopeClaims: config.scope_claims,
        rules,
        claimHeaders,
        forwardOriginalToken: config.upstream.forward_original_token,
        minter,
        self: tokenService?.self,
        verifiedCacheMax: config.verified_token_cache.enabled ? config.verified_token_cache.max_entries : 0,
        logger: ctx.logger,
        metrics: ctx.metrics,
      });
      return new Runtime(loaded, pipeline, issuers, minter, store, tokenService, rules);
    } catch (err) {
      for (const close of closers) close();
      throw err;
    }
  }

  /** Starts every issuer's key source; resolves when each first load has finished. */
  async start(): Promise<void> {
    await Promise.all(this.issuers.map((i) => i.keySource.start()));
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

  async close(): Promise<void> {
    for (const i of this.issuers) i.keySource.close();
    this.minter?.close();
    await this.tokenService?.close();
    await this.store?.close();
  }
}
