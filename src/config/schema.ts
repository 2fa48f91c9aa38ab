import type { FieldSpec } from './shape.js';

// The structural schema of every config section that holds lists or nested
// optional objects. convict (see load.ts) owns the top level, defaults and the
// environment overrides; these specs are plugged into it as custom formats.

export const JWS_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export const HMAC_ALGORITHMS = JWS_ALGORITHMS.filter((a) => a.startsWith('HS'));
export const ASYMMETRIC_DEFAULT_ALGORITHMS = JWS_ALGORITHMS.filter((a) => !a.startsWith('HS'));

export const JWE_KEY_MANAGEMENT = [
  'RSA-OAEP',
  'RSA-OAEP-256',
  'ECDH-ES',
  'ECDH-ES+A128KW',
  'ECDH-ES+A192KW',
  'ECDH-ES+A256KW',
  'A128KW',
  'A192KW',
  'A256KW',
  'dir',
] as const;
export const JWE_CONTENT_ENCRYPTION = [
  'A128CBC-HS256',
  'A192CBC-HS384',
  'A256CBC-HS512',
  'A128GCM',
  'A192GCM',
  'A256GCM',
] as const;

export const SENDER_CONSTRAINT_MODES = ['off', 'optional', 'required'] as const;

const jwksCache: Record<string, FieldSpec> = {
  max_age_seconds: { type: 'int', default: 600, min: 1 },
  cooldown_seconds: { type: 'int', default: 30, min: 0 },
  timeout_ms: { type: 'int', default: 2000, min: 1, max: 60000 },
  max_stale_seconds: { type: 'int', default: 86400, min: 0 },
};

export const issuerFields: Record<string, FieldSpec> = {
  name: { type: 'string', required: true, nonEmpty: true },
  issuer: { type: 'string', required: true, nonEmpty: true },
  audiences: { type: 'string[]', required: true, nonEmpty: true, splitCommas: true },
  algorithms: { type: 'string[]' },
  jwks_uri: { type: 'string', nonEmpty: true },
  discovery_uri: { type: 'string', nonEmpty: true },
  jwks: { type: 'any' },
  jwks_file: { type: 'string', nonEmpty: true },
  truststore: {
    type: 'object',
    optional: true,
    fields: {
      path: { type: 'string', required: true, nonEmpty: true },
      default_alias: { type: 'string', nonEmpty: true },
    },
  },
  secret_file: { type: 'string', nonEmpty: true },
  introspection: {
    type: 'object',
    optional: true,
    fields: {
      endpoint: { type: 'string', required: true, nonEmpty: true },
      client_id: { type: 'string', required: true, nonEmpty: true },
      client_secret_file: { type: 'string', required: true, nonEmpty: true },
      cache_seconds: { type: 'int', default: 60, min: 0, max: 86400 },
      timeout_ms: { type: 'int', default: 2000, min: 1, max: 60000 },
    },
  },
  insecure_http: { type: 'boolean', default: false },
  jwks_cache: { type: 'object', fields: jwksCache },
  clock_skew_seconds: { type: 'int', default: 60, min: 0, max: 3600 },
  // Default filled in at load: an introspection answer need carry nothing but `active`.
  // Set: at least one (an empty list would accept tokens without exp).
  required_claims: { type: 'string[]', nonEmpty: true },
  max_lifetime_seconds: { type: 'int', default: 86400, min: 1 },
  claim_mappings: {
    type: 'array',
    default: [],
    items: {
      from: { type: 'string', required: true, nonEmpty: true },
      to: { type: 'string', required: true, nonEmpty: true },
    },
  },
  sender_constraint: {
    type: 'object',
    fields: {
      mtls: { type: 'string', default: 'off', enum: SENDER_CONSTRAINT_MODES },
      dpop: { type: 'string', default: 'off', enum: SENDER_CONSTRAINT_MODES },
    },
  },
};

export const tokenSourceFields: Record<string, FieldSpec> = {
  header: { type: 'string', nonEmpty: true },
  prefix: { type: 'string' },
  query: { type: 'string', nonEmpty: true },
  cookie: { type: 'string', nonEmpty: true },
};

export const ruleFields: Record<string, FieldSpec> = {
  name: { type: 'string', nonEmpty: true },
  match: {
    type: 'object',
    fields: {
      path: { type: 'string' },
      path_prefix: { type: 'string' },
      path_separated_prefix: { type: 'string' },
      path_regex: { type: 'string' },
      case_sensitive: { type: 'boolean' },
      methods: { type: 'string[]', nonEmpty: true },
      hosts: { type: 'string[]', nonEmpty: true },
    },
  },
  action: {
    type: 'string',
    default: 'authenticate',
    enum: ['allow', 'deny', 'authenticate', 'optional'],
  },
  // Every list (and the block itself) must say something: an empty one would
  // silently mean "no requirement". Omit what does not apply.
  require: {
    type: 'object',
    optional: true,
    nonEmpty: true,
    fields: {
      scopes_all: { type: 'string[]', nonEmpty: true },
      scopes_any: { type: 'string[]', nonEmpty: true },
      issuers: { type: 'string[]', nonEmpty: true },
      claims: { type: 'map', values: 'scalar[]', nonEmpty: true },
      expression: { type: 'string', nonEmpty: true },
    },
  },
  deny_response: {
    type: 'object',
    optional: true,
    fields: {
      status: { type: 'int', min: 300, max: 599 },
      headers: { type: 'map', values: 'string' },
      body: { type: 'string' },
    },
  },
  // false, or an object checked against tokenProfileFields (load.ts).
  token: { type: 'any' },
};

/** What rules[].token may override of upstream.token. */
export const tokenProfileFields: Record<string, FieldSpec> = {
  // Omitted: upstream.token's; empty would mint tokens without `aud`.
  audiences: { type: 'string[]', nonEmpty: true },
  ttl_seconds: { type: 'int', min: 1, max: 86400 },
  copy_claims: { type: 'string[]' },
  claims: { type: 'map', values: 'any' },
  claims_expr: { type: 'map', values: 'string' },
};

const signingFields: Record<string, FieldSpec> = {
  alg: { type: 'string', default: 'ES256', enum: JWS_ALGORITHMS },
  key_file: { type: 'string', nonEmpty: true },
  secret_file: { type: 'string', nonEmpty: true },
  previous_key_files: { type: 'string[]', default: [] },
};

export const upstreamTokenFields: Record<string, FieldSpec> = {
  header: { type: 'string', default: 'x-jwt-assertion', nonEmpty: true },
  issuer: { type: 'string', required: true, nonEmpty: true },
  audiences: { type: 'string[]', default: [], splitCommas: true },
  // What context_extensions `audience` may name; default: every
  // configured audience of upstream.token and of the rules' token profiles (see the minter).
  allowed_audiences: { type: 'string[]', nonEmpty: true, splitCommas: true },
  ttl_seconds: { type: 'int', default: 300, min: 1, max: 86400 },
  jti: { type: 'boolean', default: true },
  copy_claims: { type: 'string[]', default: [] },
  claims: { type: 'map', default: {}, values: 'any' },
  claims_expr: { type: 'map', default: {}, values: 'string' },
  cache: { type: 'boolean', default: true },
  cache_max_entries: { type: 'int', default: 10000, min: 1 },
  signing: { type: 'object', fields: signingFields },
  encryption: {
    type: 'object',
    optional: true,
    fields: {
      // enum checked in the mint module, so RSA1_5 gets its own explanation.
      alg: { type: 'string', required: true, nonEmpty: true },
      enc: { type: 'string', required: true, enum: JWE_CONTENT_ENCRYPTION },
      key_file: { type: 'string', nonEmpty: true },
      secret_file: { type: 'string', nonEmpty: true },
    },
  },
};

export const upstreamFields: Record<string, FieldSpec> = {
  forward_original_token: { type: 'boolean', default: false },
  claim_headers: { type: 'map', default: {}, values: 'string' },
  token: { type: 'object', optional: true, fields: upstreamTokenFields },
  dynamic_metadata: { type: 'map', default: {}, values: 'string' },
};

export const GRANT_TYPE_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const GRANT_TYPE_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** Grant types a token endpoint client may be allowed (clients[].grant_types). */
export const TOKEN_ENDPOINT_GRANT_TYPES = [
  GRANT_TYPE_JWT_BEARER,
  'refresh_token',
  'client_credentials',
  GRANT_TYPE_TOKEN_EXCHANGE,
] as const;
/** A client's grant types when clients[].grant_types is not set: those that existed before the list did. */
export const DEFAULT_CLIENT_GRANT_TYPES: readonly string[] = [GRANT_TYPE_JWT_BEARER, 'refresh_token'];
export const TOKEN_ENDPOINT_AUTH_METHODS = [
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
] as const;
export const DEFAULT_TOKEN_PATH = '/oauth2/token';

export const tokenEndpointFields: Record<string, FieldSpec> = {
  enabled: { type: 'boolean', default: false },
  path: { type: 'string', default: DEFAULT_TOKEN_PATH, nonEmpty: true },
  issuer: { type: 'string', nonEmpty: true },
  audience: { type: 'string[]', nonEmpty: true, splitCommas: true },
  max_assertion_lifetime_seconds: { type: 'int', default: 300, min: 1 },
  max_body_bytes: { type: 'int', default: 65536, min: 1024, max: 1048576 },
  access_token: {
    type: 'object',
    fields: {
      format: { type: 'string', default: 'jwt', enum: ['jwt', 'opaque'] },
      ttl_seconds: { type: 'int', default: 3600, min: 1 },
      opaque_length: { type: 'int', default: 54, min: 32, max: 512 },
      audiences: { type: 'string[]', default: [], splitCommas: true },
      signing: { type: 'object', fields: signingFields },
    },
  },
  refresh_token: {
    type: 'object',
    fields: {
      enabled: { type: 'boolean', default: false },
      ttl_seconds: { type: 'int', default: 43200, min: 1 },
      length: { type: 'int', default: 46, min: 32, max: 512 },
    },
  },
  dpop: {
    type: 'object',
    fields: {
      required: { type: 'boolean', default: false },
    },
  },
  clients: {
    type: 'array',
    default: [],
    items: {
      client_id: { type: 'string', required: true, nonEmpty: true },
      certificate_file: { type: 'string', nonEmpty: true },
      jwks_file: { type: 'string', nonEmpty: true },
      client_secret_file: { type: 'string', nonEmpty: true },
      scopes: { type: 'string[]', default: [] },
      token_claims: { type: 'map', default: {}, values: 'any' },
      require_jti: { type: 'boolean', default: true },
      token_endpoint_auth_method: { type: 'string', enum: TOKEN_ENDPOINT_AUTH_METHODS },
      grant_types: { type: 'string[]', nonEmpty: true, enum: TOKEN_ENDPOINT_GRANT_TYPES },
      exchange_audiences: { type: 'string[]', default: [] },
    },
  },
  exchange: {
    type: 'object',
    optional: true,
    fields: {
      subject_issuers: { type: 'string[]', required: true, nonEmpty: true },
      actor_issuers: { type: 'string[]', nonEmpty: true },
    },
  },
  rate_limit: {
    type: 'object',
    optional: true,
    fields: {
      limit: { type: 'int', required: true, min: 1 },
      window_seconds: { type: 'int', required: true, min: 1 },
    },
  },
  grant_issuers: {
    type: 'array',
    default: [],
    shorthand: 'issuer',
    items: {
      issuer: { type: 'string', required: true, nonEmpty: true },
      audience: { type: 'string[]', nonEmpty: true, splitCommas: true },
      max_assertion_lifetime_seconds: { type: 'int', min: 1 },
      require_jti: { type: 'boolean', default: true },
      require_iat: { type: 'boolean', default: false },
      copy_claims: { type: 'string[]', default: [] },
    },
  },
};

/** Claims of issued access tokens that the service always sets itself (never copied nor configured). */
export const TOKEN_ENDPOINT_RESERVED_CLAIMS: readonly string[] = [
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'client_id',
  'scope',
  'cnf',
  'act',
];

export const storeFields: Record<string, FieldSpec> = {
  type: { type: 'string', default: 'memory', enum: ['memory', 'redis'] },
  purge_interval_seconds: { type: 'int', default: 60, min: 1 },
  // No default here: exactly one of redis_url, redis.cluster, redis.sentinels may be set,
  // and redis_url falls back to DEFAULT_REDIS_URL only when none is (see load.ts).
  redis_url: { type: 'string', nonEmpty: true },
  redis: {
    type: 'object',
    optional: true,
    fields: {
      cluster: { type: 'string[]', nonEmpty: true },
      sentinels: { type: 'string[]', nonEmpty: true },
      name: { type: 'string', nonEmpty: true },
      username: { type: 'string', nonEmpty: true },
      password_file: { type: 'string', nonEmpty: true },
      sentinel_password_file: { type: 'string', nonEmpty: true },
    },
  },
  key_prefix: { type: 'string', default: 'envoy-jwt-authz:' },
};

/** One `rate_limits` entry (quotas on allowed requests). */
export const rateLimitFields: Record<string, FieldSpec> = {
  name: { type: 'string', required: true, nonEmpty: true },
  key: { type: 'string', nonEmpty: true },
  limit: { type: 'int', required: true, min: 1 },
  window_seconds: { type: 'int', required: true, min: 1 },
  rules: { type: 'string[]', nonEmpty: true },
  when: { type: 'string', nonEmpty: true },
};

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export const verifiedTokenCacheFields: Record<string, FieldSpec> = {
  enabled: { type: 'boolean', default: true },
  max_entries: { type: 'int', default: 10000, min: 1 },
};

export const tracingFields: Record<string, FieldSpec> = {
  otlp_endpoint: { type: 'string', nonEmpty: true },
  protocol: { type: 'string', enum: ['http/protobuf', 'grpc'] },
  // A fraction (0..1): checked where the section is resolved against the OTEL_* environment.
  sample_ratio: { type: 'any' },
  service_name: { type: 'string', nonEmpty: true },
};
