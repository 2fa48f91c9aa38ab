import { ACTIONS } from './sections/constants.js';
import { int, oneOf, section, str, strings, Type, bool, type Static } from './sections/kit.js';
import { ApiKeysSchema } from './sections/api-keys.js';
import { DebugSchema } from './sections/debug.js';
import { IssuerSchema } from './sections/issuers.js';
import { RateLimitsFailSchema, RateLimitsSchema, VerifiedTokenCacheSchema } from './sections/rate-limits.js';
import { RulesSchema, TokenSourcesSchema } from './sections/rules.js';
import { LogSchema, ServerSchema } from './sections/server.js';
import { StoreSchema } from './sections/store.js';
import { TokenEndpointSchema } from './sections/token-endpoint.js';
import { TracingSchema } from './sections/tracing.js';
import { UpstreamSchema } from './sections/upstream.js';

// The configuration schema: the one description of every key's structure, default and
// meaning. The loader validates against it (config/validate.ts), convict takes the
// defaults and environment overrides of the keys it loads from it (config/load.ts),
// the types are derived from it (config/types.ts), and `npm run schema:generate` writes
// schema/config.schema.json and docs/configuration.md from it. Each section, with the
// rules that relate its fields, is in sections/.

export * from './sections/constants.js';

export const ConfigSchema = section(
  {
    server: ServerSchema,
    log: LogSchema,
    issuers: Type.Array(IssuerSchema, {
      description:
        'Trusted token issuers. A token is verified against the entry whose issuer equals its (unverified) iss; any other iss is rejected.',
      default: [],
    }),
    api_keys: ApiKeysSchema,
    realm: str({ description: 'realm="…" in WWW-Authenticate challenges', default: 'envoy-jwt-authz' }),
    public_base_url: str({
      description: "base of URLs in discovery documents (set it in production); '' = from the request's Host",
      default: '',
    }),
    token_sources: TokenSourcesSchema,
    max_token_bytes: int({
      description: 'larger tokens are refused before parsing',
      default: 16384,
      minimum: 0,
    }),
    scope_claims: strings({
      description: 'claims holding the scopes (space-delimited string or array); the first present wins',
      default: ['scope', 'scp'],
    }),
    rules: RulesSchema,
    default_action: oneOf(ACTIONS, {
      description: 'action for requests that match no rule',
      default: 'authenticate',
    }),
    reject_ambiguous_paths: bool({
      description:
        'refuse (400) paths backends read differently (";", "%25", control characters, backslash, invalid UTF-8) before any rule',
      default: true,
    }),
    cors_preflight: oneOf(['allow', 'authenticate'] as const, {
      description:
        'allow: an OPTIONS request with Origin and Access-Control-Request-Method passes without a token, before any rule',
      default: 'authenticate',
    }),
    expression_budget_ms: int({
      description: 'per-request CEL evaluation budget in milliseconds',
      default: 10,
      minimum: 1,
      maximum: 1000,
    }),
    upstream: UpstreamSchema,
    token_endpoint: TokenEndpointSchema,
    store: StoreSchema,
    rate_limits: RateLimitsSchema,
    rate_limits_fail: RateLimitsFailSchema,
    verified_token_cache: VerifiedTokenCacheSchema,
    tracing: Type.Optional(TracingSchema),
    debug: DebugSchema,
  },
  { description: 'envoy-jwt-authz configuration' },
);

/** The configuration as validated, defaults filled (before the tracing section meets the environment). */
export type ConfigDocument = Static<typeof ConfigSchema>;

/**
 * The top-level keys convict loads (the keys it can describe: nested objects of scalars).
 * It fills their defaults and applies their environment overrides (`x-env`) over the file.
 */
export const CONVICT_KEYS = [
  'server',
  'log',
  'realm',
  'public_base_url',
  'max_token_bytes',
  'default_action',
  'expression_budget_ms',
] as const;
