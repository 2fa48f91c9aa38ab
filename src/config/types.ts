import type { TlsSettings } from '../net/tls-files.js';
// The validated (defaults filled) shape of the configuration file. Produced by
// load.ts; compiled into runtime objects by runtime.ts. The request path never
// reads these.
import type { TracingSettings } from '../observability/tracing.js';

export type Action = 'allow' | 'deny' | 'authenticate' | 'optional';

export interface JwksCacheConfig {
  max_age_seconds: number;
  cooldown_seconds: number;
  timeout_ms: number;
  max_stale_seconds: number;
}

export interface IssuerConfig {
  name: string;
  issuer: string;
  audiences: string[];
  algorithms?: string[];
  jwks_uri?: string;
  discovery_uri?: string;
  jwks?: unknown;
  jwks_file?: string;
  truststore?: { path: string; default_alias?: string };
  secret_file?: string;
  /** RFC 7662: this issuer's opaque tokens are checked at its introspection endpoint (instead of keys). */
  introspection?: IntrospectionConfig;
  insecure_http: boolean;
  jwks_cache: JwksCacheConfig;
  clock_skew_seconds: number;
  required_claims: string[];
  max_lifetime_seconds: number;
  claim_mappings: { from: string; to: string }[];
  /** Proof-of-possession checks for this issuer's tokens (certificate-bound, DPoP-bound). */
  sender_constraint?: { mtls: SenderConstraintMode; dpop: SenderConstraintMode };
}

export interface IntrospectionConfig {
  endpoint: string;
  client_id: string;
  client_secret_file: string;
  /** How long an answer is reused (never beyond the token's exp). */
  cache_seconds: number;
  timeout_ms: number;
}

export type SenderConstraintMode = 'off' | 'optional' | 'required';

export interface TokenSourceConfig {
  header?: string;
  prefix?: string;
  query?: string;
  cookie?: string;
}

export interface RuleConfig {
  name?: string;
  match: {
    path?: string;
    path_prefix?: string;
    path_separated_prefix?: string;
    path_regex?: string;
    /** Default true; false compares the path matchers ignoring ASCII case. */
    case_sensitive?: boolean;
    methods?: string[];
    hosts?: string[];
  };
  action: Action;
  require?: {
    scopes_all?: string[];
    scopes_any?: string[];
    issuers?: string[];
    claims?: Record<string, (string | number | boolean)[]>;
    /** CEL; must return a boolean. */
    expression?: string;
  };
  /** Replaces the default 401/403 answer of this rule. */
  deny_response?: DenyResponseConfig;
  /** Per-route downstream-token profile over upstream.token; false: no token on this route. */
  token?: TokenProfileConfig | false;
}

export interface DenyResponseConfig {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
}

/** The fields of upstream.token a route may override. */
export interface TokenProfileConfig {
  audiences?: string[];
  ttl_seconds?: number;
  copy_claims?: string[];
  claims?: Record<string, unknown>;
  /** Claim name → CEL expression. */
  claims_expr?: Record<string, string>;
}

export interface SigningConfig {
  alg: string;
  key_file?: string;
  secret_file?: string;
  previous_key_files: string[];
}

export interface EncryptionConfig {
  alg: string;
  enc: string;
  key_file?: string;
  secret_file?: string;
}

export interface UpstreamTokenConfig {
  header: string;
  issuer: string;
  audiences: string[];
  /** What context_extensions `audience` may name (see allowedAudiences in upstream/downstream-token.ts). */
  allowed_audiences?: string[];
  ttl_seconds: number;
  jti: boolean;
  copy_claims: string[];
  claims: Record<string, unknown>;
  /** Claim name → CEL expression. */
  claims_expr?: Record<string, string>;
  cache: boolean;
  cache_max_entries: number;
  signing: SigningConfig;
  encryption?: EncryptionConfig;
}

export interface ClientConfig {
  client_id: string;
  certificate_file?: string;
  jwks_file?: string;
  client_secret_file?: string;
  scopes: string[];
  token_claims: Record<string, unknown>;
  require_jti: boolean;
  /** Default: what its credentials allow (client_secret_basic and/or private_key_jwt). */
  token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** Default: the JWT bearer and refresh-token grants. */
  grant_types?: string[];
  /** Audiences / resources it may ask for in a token exchange. */
  exchange_audiences: string[];
}

export interface TokenEndpointConfig {
  enabled: boolean;
  /** Path of the token endpoint (default /oauth2/token). */
  path: string;
  issuer?: string;
  /** Accepted `aud` of assertions (a comma-separated string is split at load). */
  audience?: string[];
  max_assertion_lifetime_seconds: number;
  max_body_bytes: number;
  access_token: {
    format: 'jwt' | 'opaque';
    ttl_seconds: number;
    opaque_length: number;
    audiences: string[];
    signing: SigningConfig;
  };
  refresh_token: { enabled: boolean; ttl_seconds: number; length: number };
  /** DPoP-bound tokens (RFC 9449): required refuses token requests without a proof. */
  dpop: { required: boolean };
  clients: ClientConfig[];
  grant_issuers: GrantIssuerConfig[];
  /** Token requests per client per window; unset = unlimited. */
  rate_limit?: { limit: number; window_seconds: number };
  /** Token exchange: names of `issuers[]` whose tokens may be exchanged (and act as actors). */
  exchange?: { subject_issuers: string[]; actor_issuers?: string[] };
}

/** One `token_endpoint.grant_issuers` entry (a plain name means `{ issuer: name }`). */
export interface GrantIssuerConfig {
  /** Name of an `issuers[]` entry. */
  issuer: string;
  /** Accepted `aud` of this identity provider's JWTs; default token_endpoint.audience. */
  audience?: string[];
  /** Default token_endpoint.max_assertion_lifetime_seconds. */
  max_assertion_lifetime_seconds?: number;
  require_jti: boolean;
  require_iat: boolean;
  /** Claims of the identity provider's JWT carried into issued access tokens. */
  copy_claims: string[];
}

export interface RateLimitConfig {
  name: string;
  /** CEL giving the counter key; default issuer + sub. */
  key?: string;
  limit: number;
  window_seconds: number;
  /** Only these rule names; default every rule that authenticates. */
  rules?: string[];
  /** CEL filter: the limit applies when it is true. */
  when?: string;
}

export interface StoreConfig {
  type: 'memory' | 'redis';
  purge_interval_seconds: number;
  /** A single Redis node; filled with the default when neither redis.cluster nor redis.sentinels is set. */
  redis_url?: string;
  redis?: RedisTopologyConfig;
  key_prefix: string;
}

/** Redis Cluster or Sentinel, plus credentials kept in files (never inline). */
export interface RedisTopologyConfig {
  /** Seed nodes of a Redis Cluster, "host:port". */
  cluster?: string[];
  /** Sentinels, "host:port"; with `name`, the monitored master's name. */
  sentinels?: string[];
  name?: string;
  username?: string;
  /** Absolute after loading (resolved against the config file's folder). */
  password_file?: string;
  sentinel_password_file?: string;
}

export interface AppConfig {
  server: {
    grpc_address: string;
    http_address: string;
    shutdown_grace_seconds: number;
    /** Concurrent HTTP connections per process; more are closed on arrival. */
    http_max_connections: number;
    /** Concurrent HTTP connections one client address may hold per process; more are closed on arrival. */
    http_max_connections_per_client: number;
    workers: number;
    /** Largest CheckRequest message accepted (bytes). */
    grpc_max_message_bytes: number;
    /** TLS on the gRPC listener ('' fields = off). */
    grpc_tls: TlsSettings;
    /** TLS on the HTTP listener ('' fields = off). */
    http_tls: TlsSettings;
  };
  log: { level: string; denials_per_second: number };
  issuers: IssuerConfig[];
  realm: string;
  public_base_url: string;
  token_sources: TokenSourceConfig[];
  max_token_bytes: number;
  scope_claims: string[];
  rules: RuleConfig[];
  default_action: Action;
  /** Refuse (400) paths that backends resolve differently, before any rule. */
  reject_ambiguous_paths: boolean;
  upstream: {
    forward_original_token: boolean;
    claim_headers: Record<string, string>;
    token?: UpstreamTokenConfig;
    /** Field name → CEL expression, added to CheckResponse.dynamic_metadata. */
    dynamic_metadata: Record<string, string>;
  };
  token_endpoint: TokenEndpointConfig;
  store: StoreConfig;
  /** Quotas on allowed, authenticated requests; counters live in the store. */
  rate_limits: RateLimitConfig[];
  /** Store unreachable while counting: closed answers 503, open allows. */
  rate_limits_fail: 'closed' | 'open';
  verified_token_cache: { enabled: boolean; max_entries: number };
  /** OpenTelemetry tracing, merged with the OTEL_* environment; undefined while off. */
  tracing?: TracingSettings;
}

/** A validated config plus where it came from (paths in it are relative to baseDir). */
export interface LoadedConfig {
  config: AppConfig;
  baseDir: string;
  source: string;
}
