import type { CompiledIssuer } from '../authn/verify.js';
import { wholeSeconds, type Clock, type EpochSeconds } from '../core/time.js';
import type { TokenEndpointConfig } from '../config/types.js';
import type { SigningKey, SigningKeys } from '../crypto/signing-keys.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/index.js';

// What every part of the token endpoint shares: the compiled configuration and its
// dependencies, built once by createTokenService (token-service.ts).

/** One token-endpoint request as the routes hand it over (form parameters and the Authorization header). */
export interface OAuthRequest {
  readonly params: Readonly<Record<string, unknown>>;
  readonly authorization?: string;
  /** The DPoP header as received (repeated headers joined with ", "). */
  readonly dpop?: string;
  /** The URL the request was received at (scheme of the connection, Host header, path). */
  readonly url?: string;
}

export interface TokenServiceContext {
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly store: Store;
  readonly issuersByName: ReadonlyMap<string, CompiledIssuer>;
  /** The system clock by default; tests pin it. */
  readonly clock?: Clock;
  /** realm of `WWW-Authenticate: Basic` challenges (default envoy-jwt-authz). */
  readonly realm?: string;
  /** Lifetime of cached store answers for Check, ≤ 1000 ms (default 1000; 0 disables). */
  readonly storeCacheMs?: number;
  /** The previous token service's ephemeral key, reused when `signing` still names no key file and the same alg. */
  readonly ephemeralKey?: SigningKey;
  /** `public_base_url`: when set, the URL DPoP proofs of token requests must name is built from it. */
  readonly publicBaseUrl?: string;
  /**
   * The scopes of a token's claims as Check reads them (scope_claims); used for the
   * subject tokens of a token exchange. Default: the space-separated `scope` claim.
   */
  readonly scopesOf?: (claims: Readonly<Record<string, unknown>>, issuerName: string) => readonly string[];
}

export interface Client {
  readonly id: string;
  readonly scopes: readonly string[];
  readonly scopeSet: ReadonlySet<string>;
  readonly tokenClaims: Readonly<Record<string, unknown>>;
  /** SHA-256 of the client secret (compared in constant time). */
  readonly secretDigest?: Buffer;
  /** Verifies the client's own assertions (certificate or JWKS). */
  readonly assertionIssuer?: CompiledIssuer;
  /** A certificate: one key, so the assertion's kid / thumbprint are not needed to find it. */
  readonly singleKey: boolean;
  /** Its assertions must carry a jti (clients[].require_jti). */
  readonly requireJti: boolean;
  /** How it may authenticate (clients[].token_endpoint_auth_method, else what its credentials allow). */
  readonly authMethods: ReadonlySet<ClientAuthMethod>;
  /** Grant types it may use (clients[].grant_types). */
  readonly grantTypes: ReadonlySet<string>;
  /** Audiences / resources it may ask for in a token exchange. */
  readonly exchangeAudiences: ReadonlySet<string>;
}

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

/** Token exchange (token_endpoint.exchange): whose tokens may be exchanged, and who may act. */
export interface ExchangePolicy {
  /** Subject token issuers by exact `iss`. */
  readonly subjectIssuers: ReadonlyMap<string, CompiledIssuer>;
  /** Actor token issuers by exact `iss`. */
  readonly actorIssuers: ReadonlyMap<string, CompiledIssuer>;
}

/** What an assertion must satisfy beyond its verifier's checks. */
export interface AssertionPolicy {
  /** Largest exp − now, in seconds. */
  readonly maxLifetimeSeconds: number;
  /** Without a jti, replay is refused by remembering the whole assertion instead. */
  readonly requireJti: boolean;
}

/** An identity provider whose JWTs may be exchanged (token_endpoint.grant_issuers). */
export interface GrantIssuer extends AssertionPolicy {
  /** The issuer entry, with this entry's audience and required claims. */
  readonly verifier: CompiledIssuer;
  /** Claims of its JWT carried into issued tokens. */
  readonly copyClaims: readonly string[];
}

/** A refresh-token family: every token issued from one original grant. */
export interface Family {
  readonly id: string;
  /** epoch seconds */
  readonly exp: number;
  /** Scope of the original grant (a rotated refresh token keeps it, RFC 6749 §6). */
  readonly scope: string;
  readonly isNew: boolean;
}

export interface OAuthState {
  readonly cfg: TokenEndpointConfig;
  readonly ctx: TokenServiceContext;
  readonly clients: ReadonlyMap<string, Client>;
  /** Identity providers whose JWTs may be exchanged, by exact `iss`. */
  readonly grantIssuers: ReadonlyMap<string, GrantIssuer>;
  /** Access-token signing keys; undefined for opaque access tokens. */
  readonly keys: SigningKeys | undefined;
  /** Verifies this service's own access tokens. */
  readonly selfIssuer: CompiledIssuer;
  /** The `iss` of issued tokens. */
  readonly issuer: string;
  /** The `aud` of issued access tokens: access_token.audiences, else our own issuer. */
  readonly accessAudience: string | string[];
  /** The JWS header of issued access tokens; undefined for opaque tokens. */
  readonly accessHeader: Readonly<Record<string, unknown>> | undefined;
  readonly maxBodyBytes: number;
  readonly realm: string;
  /** The token endpoint URL (normalised) from public_base_url; undefined: taken from each request. */
  readonly tokenUrl: string | undefined;
  /** Token exchange; undefined when token_endpoint.exchange is not configured. */
  readonly exchange: ExchangePolicy | undefined;
  /** The scopes of a token's claims, as Check reads them (scope_claims). */
  readonly scopesOf: (claims: Readonly<Record<string, unknown>>, issuerName: string) => readonly string[];
  /** The grant types this endpoint serves, by grant_type. */
  readonly grants: ReadonlyMap<string, Grant>;
  /** The token endpoint's path (token_endpoint.path). */
  readonly tokenPath: string;
  readonly clock: Clock;
}

/** One grant: issues tokens for a request, or throws an OAuthError. */
export type Grant = (
  state: OAuthState,
  req: OAuthRequest,
  log: Record<string, unknown>,
  /** Thumbprint of the request's DPoP proof key: issued tokens are bound to it. */
  jkt: string | undefined,
) => Promise<Record<string, unknown>>;

/** Now in whole epoch seconds, as iat / exp are written. */
export const nowSec = (state: OAuthState): EpochSeconds => wholeSeconds(state.clock.nowSeconds());
