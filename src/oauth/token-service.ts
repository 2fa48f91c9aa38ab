import type { JWK } from 'jose';
import type { CompiledIssuer } from '../authn/verify.js';
import { ConfigError } from '../core/errors.js';
import { systemClock } from '../core/time.js';
import type { TokenEndpointConfig } from '../config/types.js';
import { loadSigningKeys, type SigningKey, type SigningKeys } from '../crypto/signing-keys.js';
import { compileClient } from './clients.js';
import { configuredTokenUrl } from './dpop-binding.js';
import type { HttpAnswer } from './answers.js';
import { handleIntrospect } from './introspect.js';
import { handleRevoke } from './revoke.js';
import { SelfTokens, type SelfTokenSupport } from './self-tokens.js';
import type {
  Client,
  ClientAuthMethod,
  ExchangePolicy,
  GrantIssuer,
  OAuthRequest,
  OAuthState,
  TokenServiceContext,
} from './state.js';
import { enabledGrants, handleToken } from './token.js';

// The OAuth 2.0 token endpoint for the JWT bearer grant (RFC 7523; docs/token-endpoint.md "Overview"), refresh
// tokens with rotation and reuse detection (RFC 9700 §4.14.2), revocation (RFC 7009)
// and introspection (RFC 7662). Tokens, assertions and secrets are never logged.
// This file builds the service from config; each endpoint lives in its own file.

export { GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN, randomToken } from './requests.js';
export { CLIENT_ASSERTION_TYPE_JWT } from './client-auth.js';
export { CLIENT_ASSERTION_SKEW_SECONDS } from './assertions.js';
export { MAX_STORE_CACHE_MS, SELF_SKEW_SECONDS, type SelfTokenSupport } from './self-tokens.js';
export type { OpaqueLookup } from '../authn/token-status.js';
export type { OAuthRequest, TokenServiceContext } from './state.js';

export interface TokenService {
  readonly self: SelfTokenSupport;
  /** The `iss` of issued tokens. */
  readonly issuer: string;
  /** Public JWKs of the access-token signing keys (current and previous); empty for opaque tokens. */
  publicJwks(): JWK[];
  /** The access-token signing key, when it was generated in memory (no key file); a reload hands it on. */
  readonly ephemeralKey: SigningKey | undefined;
  /** POST /oauth2/token */
  handleToken(req: OAuthRequest): Promise<HttpAnswer>;
  /** POST /oauth2/revoke */
  handleRevoke(req: OAuthRequest): Promise<HttpAnswer>;
  /** POST /oauth2/introspect */
  handleIntrospect(req: OAuthRequest): Promise<HttpAnswer>;
  /** Max request body (token_endpoint.max_body_bytes). */
  readonly maxBodyBytes: number;
  /** Where the token endpoint is served (token_endpoint.path). */
  readonly tokenPath: string;
  /** What discovery metadata says about the endpoint: grant types and client authentication methods in use. */
  readonly grantTypesSupported: readonly string[];
  readonly authMethodsSupported: readonly string[];
  readonly realm: string;
  close(): Promise<void>;
}

class OAuthTokenService implements TokenService {
  readonly issuer: string;
  readonly maxBodyBytes: number;
  readonly realm: string;
  readonly ephemeralKey: SigningKey | undefined;
  readonly tokenPath: string;
  readonly grantTypesSupported: readonly string[];
  readonly authMethodsSupported: readonly string[];

  constructor(
    private readonly state: OAuthState,
    readonly self: SelfTokens,
  ) {
    this.issuer = state.issuer;
    this.tokenPath = state.tokenPath;
    // Only what some client may actually use.
    const clients = [...state.clients.values()];
    this.grantTypesSupported = Object.freeze(
      [...state.grants.keys()].filter((g) => clients.some((c) => c.grantTypes.has(g))),
    );
    const methods: ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];
    this.authMethodsSupported = Object.freeze(
      methods.filter((m) => clients.some((c) => c.authMethods.has(m))),
    );
    this.maxBodyBytes = state.maxBodyBytes;
    this.realm = state.realm;
    this.ephemeralKey = state.keys?.ephemeral ? state.keys.current : undefined;
  }

  publicJwks(): JWK[] {
    return this.state.keys ? this.state.keys.publicJwks() : [];
  }

  handleToken(req: OAuthRequest): Promise<HttpAnswer> {
    return handleToken(this.state, req);
  }

  handleRevoke(req: OAuthRequest): Promise<HttpAnswer> {
    return handleRevoke(this.state, req);
  }

  handleIntrospect(req: OAuthRequest): Promise<HttpAnswer> {
    return handleIntrospect(this.state, req);
  }

  async close(): Promise<void> {
    this.self.close();
  }
}

/**
 * Builds the token service from a loaded config (the loader has already checked what
 * config alone can tell: grant_issuers names, our issuer not reused by an issuers[]
 * entry, issuer and audience set). Throws ConfigError listing every remaining problem with
 * its config path (clients without credentials, unreadable or expired
 * certificates, signing key problems).
 */
export async function createTokenService(
  cfg: TokenEndpointConfig,
  ctx: TokenServiceContext,
): Promise<TokenService> {
  const problems: string[] = [];
  if (!cfg.enabled) problems.push('token_endpoint.enabled: the token endpoint is not enabled');
  // The loader refuses an enabled endpoint without them (config/sections/token-endpoint.ts).
  if (cfg.enabled && (!cfg.issuer || !cfg.audience))
    throw new Error('token_endpoint: issuer and audience are required; load the config with config/load.ts');
  const clients = new Map<string, Client>();
  const seen = new Set<string>();
  cfg.clients.forEach((c, i) => {
    if (seen.has(c.client_id)) {
      problems.push(`token_endpoint.clients[${i}].client_id: duplicate client_id "${c.client_id}"`);
      return;
    }
    seen.add(c.client_id);
    const client = compileClient(c, i, cfg.audience ?? [], ctx, problems);
    if (client) clients.set(client.id, client);
  });
  const grantIssuers = new Map<string, GrantIssuer>();
  cfg.grant_issuers.forEach((g, j) => {
    const base = ctx.issuersByName.get(g.issuer);
    // The config loader refuses unknown names; this is a caller passing other issuers.
    if (!base) throw new Error(`token_endpoint.grant_issuers[${j}]: issuer "${g.issuer}" was not compiled`);
    if (seen.has(base.issuer)) {
      problems.push(
        `token_endpoint.grant_issuers[${j}]: the issuer "${base.issuer}" is also a client_id; assertions would be ambiguous`,
      );
    }
    // docs/token-endpoint.md "Overview": the issuer entry's own audiences do not apply; assertions are
    // for the token endpoint (or this entry's own audience). iat and jti are optional in RFC 7523:
    // they are required only where this entry says so.
    const required = new Set(base.requiredClaims.filter((c) => c !== 'iat' && c !== 'jti'));
    for (const c of ['iss', 'sub', 'aud', 'exp']) required.add(c);
    if (g.require_jti) required.add('jti');
    if (g.require_iat) required.add('iat');
    const verifier: CompiledIssuer = Object.freeze({
      ...base,
      audiences: new Set(g.audience ?? cfg.audience ?? []),
      requiredClaims: [...required],
    });
    grantIssuers.set(
      base.issuer,
      Object.freeze({
        verifier,
        maxLifetimeSeconds: g.max_assertion_lifetime_seconds ?? cfg.max_assertion_lifetime_seconds,
        requireJti: g.require_jti,
        copyClaims: Object.freeze([...g.copy_claims]),
      }),
    );
  });
  let keys: SigningKeys | undefined;
  if (cfg.access_token.format === 'jwt' && problems.length === 0) {
    try {
      keys = await loadSigningKeys(cfg.access_token.signing, 'token_endpoint.access_token.signing', ctx);
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
    }
  }
  const exchange = cfg.exchange ? compileExchange(cfg.exchange, ctx) : undefined;
  const tokenUrl = configuredTokenUrl(ctx.publicBaseUrl, cfg.path);
  if (ctx.publicBaseUrl && tokenUrl === undefined) {
    // DPoP proofs of token requests name this URL: a typo would refuse every one of them.
    problems.push('public_base_url: must be an http:// or https:// URL without query or fragment');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const issuer = cfg.issuer!;
  const clock = ctx.clock ?? systemClock;
  const self = new SelfTokens(cfg, issuer, keys, ctx, clock);
  const auds = cfg.access_token.audiences.length > 0 ? cfg.access_token.audiences : [issuer];
  const grants = enabledGrants({ cfg, exchange });
  const state: OAuthState = {
    exchange,
    scopesOf: ctx.scopesOf ?? scopeClaimOnly,
    grants,
    tokenPath: cfg.path,
    cfg,
    ctx,
    clients,
    grantIssuers,
    keys,
    selfIssuer: self.issuer,
    issuer,
    accessAudience: auds.length === 1 ? auds[0]! : [...auds],
    accessHeader: keys
      ? Object.freeze({ alg: keys.current.alg, kid: keys.current.kid, typ: 'at+jwt' })
      : undefined,
    maxBodyBytes: cfg.max_body_bytes,
    realm: ctx.realm ?? 'envoy-jwt-authz',
    tokenUrl,
    clock,
  };
  return new OAuthTokenService(state, self);
}

/** The space-separated `scope` claim (what this service's own tokens carry). */
function scopeClaimOnly(claims: Readonly<Record<string, unknown>>): readonly string[] {
  return typeof claims.scope === 'string' ? claims.scope.split(' ').filter((s) => s !== '') : [];
}

/** token_endpoint.exchange: the named issuers (checked by the config loader), by their exact `iss`. */
function compileExchange(
  ex: NonNullable<TokenEndpointConfig['exchange']>,
  ctx: TokenServiceContext,
): ExchangePolicy {
  const byIss = (names: readonly string[], key: string) =>
    new Map(
      names.map((name, k) => {
        const issuer = ctx.issuersByName.get(name);
        // The config loader refuses unknown names; this is a caller passing other issuers.
        if (!issuer)
          throw new Error(`token_endpoint.exchange.${key}[${k}]: issuer "${name}" was not compiled`);
        return [issuer.issuer, issuer] as const;
      }),
    );
  return Object.freeze({
    subjectIssuers: byIss(ex.subject_issuers, 'subject_issuers'),
    actorIssuers: byIss(
      ex.actor_issuers ?? ex.subject_issuers,
      ex.actor_issuers ? 'actor_issuers' : 'subject_issuers',
    ),
  });
}
