// The types of the validated configuration (defaults filled), derived from the schema in
// schema.ts and sections/: a key added there appears here. Produced by load.ts; compiled
// into runtime objects by server/runtime.ts. The request path never reads these.
import type { Static } from '@sinclair/typebox';
import type { TracingSettings } from '../observability/tracing.js';
import type { ConfigDocument } from './schema.js';
import type { JwksCacheSchema, IntrospectionSchema } from './sections/issuers.js';
import type { SENDER_CONSTRAINT_MODES, ACTIONS } from './sections/constants.js';

export type { IssuerConfig } from './sections/issuers.js';
export type { ApiKeySourceConfig } from './sections/api-keys.js';
export type {
  RuleConfig,
  TokenSourceConfig,
  TokenProfileConfig,
  DenyResponseConfig,
} from './sections/rules.js';
export type { UpstreamTokenConfig, SigningConfig, EncryptionConfig } from './sections/upstream.js';
export type { TokenEndpointConfig, ClientConfig, GrantIssuerConfig } from './sections/token-endpoint.js';
export type { StoreConfig, RedisTopologyConfig } from './sections/store.js';
export type { RateLimitConfig } from './sections/rate-limits.js';

export type Action = (typeof ACTIONS)[number];
export type SenderConstraintMode = (typeof SENDER_CONSTRAINT_MODES)[number];
export type JwksCacheConfig = Static<typeof JwksCacheSchema>;
export type IntrospectionConfig = Static<typeof IntrospectionSchema>;

/** The configuration that runs: the document, with tracing merged with the OTEL_* environment (undefined: off). */
export type AppConfig = Omit<ConfigDocument, 'tracing'> & { tracing?: TracingSettings };

/** A validated config plus where it came from (paths in it are relative to baseDir). */
export interface LoadedConfig {
  config: AppConfig;
  baseDir: string;
  source: string;
}
